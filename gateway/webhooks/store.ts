/**
 * What the webhook dispatcher keeps in Redis: events (the exact signed body, fixed at creation so every attempt
 * sends the same bytes under the same webhook-id), one delivery record per event and endpoint with its attempt log,
 * and one FIFO "outbox" list per (endpoint, conversation) that serialises deliveries.
 *
 * Every key carries the `{wh}` hash tag so the Lua scripts below stay single-slot on Redis Cluster.
 */
import type { RedisClient } from '../../adapters/types.js';
import type { WebhookEventType } from './config.js';

export interface StoredEvent {
  id: string;
  type: WebhookEventType;
  conversationId: string;
  createdAt: number;
  /** The exact JSON body that is signed and POSTed. */
  body: string;
}

export type DeliveryStatus = 'pending' | 'retrying' | 'delivered' | 'dead';

export interface DeliveryAttempt {
  attempt: number;
  at: number;
  latencyMs: number;
  /** HTTP status, absent for network errors and timeouts. */
  status?: number;
  error?: string;
  /** When the next attempt is due (retryable failures). */
  nextAttemptAt?: number;
}

export interface DeliveryRecord {
  id: string;
  eventId: string;
  endpointId: string;
  conversationId: string;
  type: WebhookEventType;
  status: DeliveryStatus;
  createdAt: number;
  attempts: DeliveryAttempt[];
  deliveredAt?: number;
  deadAt?: number;
  deadReason?: string;
  replays: number;
}

// KEYS[1] outbox list, KEYS[2] set of outboxes. ARGV[1] delivery id. Returns 1 when it became the head (the caller
// then queues its job), 0 when it waits behind earlier deliveries.
const PUSH_LUA = `
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('LLEN', KEYS[1]) == 1 then return 1 end
return 0
`;
// KEYS[1] outbox list, KEYS[2] set of outboxes. ARGV[1] delivery id that finished. Pops it if it is the head and
// returns the new head (or false). A finished delivery that is not the head (a replay) leaves the outbox alone.
const ADVANCE_LUA = `
local head = redis.call('LINDEX', KEYS[1], 0)
if head == ARGV[1] then
  redis.call('LPOP', KEYS[1])
  head = redis.call('LINDEX', KEYS[1], 0)
end
if not head then redis.call('SREM', KEYS[2], KEYS[1]); return false end
if head == ARGV[1] then return false end
return head
`;

export class WebhookStore {
  constructor(
    private readonly redis: RedisClient,
    readonly keyPrefix: string,
    private readonly retentionSeconds: number,
  ) {
    redis.defineCommand('gwWhPush', { numberOfKeys: 2, lua: PUSH_LUA });
    redis.defineCommand('gwWhAdvance', { numberOfKeys: 2, lua: ADVANCE_LUA });
  }

  private eventKey(id: string) {
    return `${this.keyPrefix}:event:${id}`;
  }
  private deliveryKey(id: string) {
    return `${this.keyPrefix}:delivery:${id}`;
  }
  private attemptsKey(id: string) {
    return `${this.keyPrefix}:delivery:${id}:attempts`;
  }
  outboxKey(endpointId: string, conversationId: string) {
    return `${this.keyPrefix}:outbox:${endpointId}:${conversationId}`;
  }
  get outboxesKey() {
    return `${this.keyPrefix}:outboxes`;
  }
  private logKey(endpointId: string) {
    return `${this.keyPrefix}:log:${endpointId}`;
  }
  get deadKey() {
    return `${this.keyPrefix}:dead`;
  }

  static deliveryId(eventId: string, endpointId: string): string {
    return `${eventId}.${endpointId}`;
  }

  async saveEvent(event: StoredEvent): Promise<void> {
    await this.redis.set(this.eventKey(event.id), JSON.stringify(event), 'EX', this.retentionSeconds);
  }

  async event(id: string): Promise<StoredEvent | null> {
    const json = await this.redis.get(this.eventKey(id));
    return json ? (JSON.parse(json) as StoredEvent) : null;
  }

  /** Records a new delivery and appends it to its outbox; true when it is first in line. */
  async enqueue(event: StoredEvent, endpointId: string): Promise<{ deliveryId: string; head: boolean }> {
    const id = WebhookStore.deliveryId(event.id, endpointId);
    const key = this.deliveryKey(id);
    await this.redis.hset(key, {
      id,
      eventId: event.id,
      endpointId,
      conversationId: event.conversationId,
      type: event.type,
      status: 'pending',
      createdAt: event.createdAt,
      replays: 0,
    });
    await this.redis.expire(key, this.retentionSeconds);
    await this.redis.zadd(this.logKey(endpointId), event.createdAt, id);
    await this.redis.zremrangebyscore(this.logKey(endpointId), '-inf', Date.now() - this.retentionSeconds * 1000);
    const head = (await (this.redis as any).gwWhPush(this.outboxKey(endpointId, event.conversationId), this.outboxesKey, id)) as number;
    return { deliveryId: id, head: head === 1 };
  }

  /** Takes a finished delivery off its outbox; returns the delivery now first in line, if any. */
  async advance(record: Pick<DeliveryRecord, 'id' | 'endpointId' | 'conversationId'>): Promise<string | null> {
    const next = (await (this.redis as any).gwWhAdvance(this.outboxKey(record.endpointId, record.conversationId), this.outboxesKey, record.id)) as
      | string
      | null;
    return next ?? null;
  }

  async head(outboxKey: string): Promise<string | null> {
    return this.redis.lindex(outboxKey, 0);
  }

  async outboxes(): Promise<string[]> {
    return this.redis.smembers(this.outboxesKey);
  }

  async delivery(id: string): Promise<DeliveryRecord | null> {
    const [h, attempts] = await Promise.all([this.redis.hgetall(this.deliveryKey(id)), this.redis.lrange(this.attemptsKey(id), 0, -1)]);
    if (!h.id) return null;
    return {
      id: h.id,
      eventId: h.eventId!,
      endpointId: h.endpointId!,
      conversationId: h.conversationId!,
      type: h.type as WebhookEventType,
      status: h.status as DeliveryStatus,
      createdAt: Number(h.createdAt),
      attempts: attempts.map((a) => JSON.parse(a) as DeliveryAttempt),
      ...(h.deliveredAt && { deliveredAt: Number(h.deliveredAt) }),
      ...(h.deadAt && { deadAt: Number(h.deadAt) }),
      ...(h.deadReason && { deadReason: h.deadReason }),
      replays: Number(h.replays ?? 0),
    };
  }

  async recordAttempt(id: string, attempt: DeliveryAttempt, status: DeliveryStatus): Promise<void> {
    await this.redis.rpush(this.attemptsKey(id), JSON.stringify(attempt));
    await this.redis.expire(this.attemptsKey(id), this.retentionSeconds);
    await this.redis.hset(this.deliveryKey(id), 'status', status, ...(status === 'delivered' ? ['deliveredAt', String(attempt.at)] : []));
    await this.redis.expire(this.deliveryKey(id), this.retentionSeconds);
  }

  async markDead(id: string, reason: string): Promise<void> {
    const now = Date.now();
    await this.redis.hset(this.deliveryKey(id), 'status', 'dead', 'deadAt', now, 'deadReason', reason);
    await this.redis.zadd(this.deadKey, now, id);
    await this.redis.zremrangebyscore(this.deadKey, '-inf', now - this.retentionSeconds * 1000);
  }

  /** A replayed dead delivery goes to the back of its outbox (the receiver has seen what came after it). */
  async requeue(id: string): Promise<{ head: boolean } | null> {
    const record = await this.delivery(id);
    if (!record) return null;
    await this.redis.hset(this.deliveryKey(id), 'status', 'pending', 'replays', record.replays + 1);
    await this.redis.hdel(this.deliveryKey(id), 'deadAt', 'deadReason');
    await this.redis.zrem(this.deadKey, id);
    const head = (await (this.redis as any).gwWhPush(this.outboxKey(record.endpointId, record.conversationId), this.outboxesKey, id)) as number;
    return { head: head === 1 };
  }

  async listDeliveries(opts: { endpointId?: string; dead?: boolean; limit: number; before?: number }): Promise<DeliveryRecord[]> {
    const max = opts.before === undefined ? '+inf' : `(${opts.before}`;
    let ids: string[];
    if (opts.dead) ids = await this.redis.zrevrangebyscore(this.deadKey, max, '-inf', 'LIMIT', 0, opts.limit);
    else if (opts.endpointId) ids = await this.redis.zrevrangebyscore(this.logKey(opts.endpointId), max, '-inf', 'LIMIT', 0, opts.limit);
    else ids = [];
    const records = await Promise.all(ids.map((id) => this.delivery(id)));
    return records.filter((r): r is DeliveryRecord => r !== null);
  }
}
