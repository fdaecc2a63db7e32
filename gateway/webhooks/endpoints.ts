/**
 * Webhook subscriptions: those in the config plus those added over the API (kept in Redis), and each endpoint's
 * enabled/disabled state (a 410 from the receiver disables it; an admin can re-enable it). Config endpoints cannot be
 * deleted over the API, only disabled — the config file stays the source of truth for them.
 */
import type { RedisClient } from '../../adapters/types.js';
import { WebhookEndpoint, type WebhookEventType } from './config.js';

export interface EndpointView extends WebhookEndpoint {
  source: 'config' | 'api';
  disabledReason?: string;
}

const SUBSCRIPTIONS_CACHE_MS = 1000;

export class WebhookEndpoints {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyPrefix: string,
    private readonly fromConfig: readonly WebhookEndpoint[],
  ) {}

  private get storedKey(): string {
    return `${this.keyPrefix}:endpoints`;
  }
  private get stateKey(): string {
    return `${this.keyPrefix}:endpoint-state`;
  }

  async list(): Promise<EndpointView[]> {
    const [stored, state] = await Promise.all([this.redis.hgetall(this.storedKey), this.redis.hgetall(this.stateKey)]);
    const views: EndpointView[] = [];
    const apply = (endpoint: WebhookEndpoint, source: EndpointView['source']): EndpointView => {
      const s = state[endpoint.id];
      if (s === undefined) return { ...endpoint, source };
      const parsed = JSON.parse(s) as { enabled: boolean; reason?: string };
      return { ...endpoint, source, enabled: parsed.enabled, ...(parsed.reason !== undefined && !parsed.enabled && { disabledReason: parsed.reason }) };
    };
    for (const endpoint of this.fromConfig) views.push(apply(endpoint, 'config'));
    for (const [id, json] of Object.entries(stored)) {
      if (this.fromConfig.some((e) => e.id === id)) continue;
      views.push(apply(WebhookEndpoint.parse(JSON.parse(json)), 'api'));
    }
    return views;
  }

  async get(id: string): Promise<EndpointView | undefined> {
    return (await this.list()).find((e) => e.id === id);
  }

  /**
   * Endpoints whose filter takes this event type — disabled ones included: their events are held in the outboxes
   * (nothing is sent to them) and flow in order once the endpoint is enabled again, so disabling loses nothing.
   */
  async subscribedTo(type: WebhookEventType): Promise<EndpointView[]> {
    return (await this.cachedList()).filter((e) => e.events.includes('*') || e.events.includes(type));
  }

  /**
   * Every delivered message asks "who subscribes to this?"; reading both hashes each time cost two Redis commands
   * per event. The list is kept for SUBSCRIPTIONS_CACHE_MS: a subscription added or removed in another process
   * takes effect there within that time (at once in this one). Enabled state is not cached (list/get read it).
   */
  private cache: { at: number; views: Promise<EndpointView[]> } | undefined;
  private cachedList(): Promise<EndpointView[]> {
    const now = Date.now();
    if (!this.cache || now - this.cache.at > SUBSCRIPTIONS_CACHE_MS) {
      const views = this.list();
      this.cache = { at: now, views };
      views.catch(() => (this.cache = undefined));
    }
    return this.cache.views;
  }

  isFromConfig(id: string): boolean {
    return this.fromConfig.some((e) => e.id === id);
  }

  async put(endpoint: WebhookEndpoint): Promise<void> {
    this.cache = undefined;
    await this.redis.hset(this.storedKey, endpoint.id, JSON.stringify(endpoint));
    await this.redis.hdel(this.stateKey, endpoint.id);
  }

  async remove(id: string): Promise<boolean> {
    this.cache = undefined;
    const removed = await this.redis.hdel(this.storedKey, id);
    await this.redis.hdel(this.stateKey, id);
    return removed > 0;
  }

  async setEnabled(id: string, enabled: boolean, reason?: string): Promise<void> {
    await this.redis.hset(this.stateKey, id, JSON.stringify({ enabled, ...(reason !== undefined && { reason }), at: Date.now() }));
  }
}
