/**
 * A collection of JSON documents kept in one Redis hash and mirrored in memory by every process, for data that
 * is read on every message and changed rarely (the KB, admin-defined rules).
 *
 * Every write runs as one Lua script: change the hash, bump a version counter, publish `{v, ids}` on a channel —
 * so the announcements go out in version order. A process applies an announcement by fetching only the changed
 * ids when it is exactly the next version; any gap (a missed message during a reconnect, a bulk replace) makes it
 * reload the whole hash. A periodic version check catches a subscriber that was away without noticing.
 */
import type { Redis } from 'ioredis';
import type { RedisClient } from '../adapters/types.js';
import type { Logger } from '../gateway/logger.js';

export interface CollectionChange<T> {
  /** True when the whole collection was reloaded: `upserted` is then everything there is. */
  reset: boolean;
  upserted: T[];
  removed: string[];
}

export interface SyncedCollectionOptions<T> {
  redis: RedisClient;
  /** Key base; the hash and the counter share one hash tag so the script also runs on a cluster. */
  key: string;
  log: Logger;
  /** Validates a stored document; throwing skips it (logged). */
  parse(json: unknown): T;
  onChange(change: CollectionChange<T>): void;
  resyncIntervalMs?: number;
}

/** Bulk writes bigger than this announce a reset instead of listing ids. */
const MAX_ANNOUNCED_IDS = 200;

const WRITE_SCRIPT = `
if ARGV[2] == '1' then redis.call('DEL', KEYS[1]) end
local ids = {}
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i]) else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  ids[#ids + 1] = ARGV[i]
end
local v = redis.call('INCR', KEYS[2])
local reset = ARGV[2] == '1' or #ids > ${MAX_ANNOUNCED_IDS}
if reset then ids = {} end
redis.call('PUBLISH', ARGV[1], cjson.encode({ v = v, reset = reset, ids = ids }))
return v
`;

export class SyncedCollection<T extends { id: string }> {
  private readonly items = new Map<string, T>();
  private version = 0;
  private subscriber: Redis | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Applies announcements one at a time, in arrival order. */
  private chain: Promise<void> = Promise.resolve();
  private readonly hashKey: string;
  private readonly versionKey: string;
  private readonly channel: string;

  constructor(private readonly options: SyncedCollectionOptions<T>) {
    this.hashKey = `${options.key}:{sync}:items`;
    this.versionKey = `${options.key}:{sync}:version`;
    this.channel = `${options.key}:changed`;
  }

  get currentVersion(): number {
    return this.version;
  }

  all(): T[] {
    return [...this.items.values()];
  }

  get(id: string): T | undefined {
    return this.items.get(id);
  }

  get size(): number {
    return this.items.size;
  }

  async start(): Promise<void> {
    // Redis and Cluster share this surface; the cast only picks one set of event overloads.
    const subscriber = (this.options.redis as Redis).duplicate();
    this.subscriber = subscriber;
    subscriber.on('error', (err: Error) => this.options.log.warn({ err: err.message, key: this.options.key }, 'sync subscriber error'));
    subscriber.on('message', (_channel: string, payload: string) => {
      this.enqueue(() => this.applyAnnouncement(payload));
    });
    // After a reconnect ioredis re-subscribes; anything announced meanwhile is caught by the version check.
    subscriber.on('ready', () => this.enqueue(() => this.checkVersion()));
    await subscriber.subscribe(this.channel);
    await this.enqueue(() => this.reload());
    this.timer = setInterval(() => void this.enqueue(() => this.checkVersion()), this.options.resyncIntervalMs ?? 30_000);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.chain;
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }

  /** Writes (or with `replace`, replaces the whole collection by) these documents; resolves once applied here. */
  async upsert(docs: T[], opts: { replace?: boolean } = {}): Promise<number> {
    return this.write(
      docs.map((d) => [d.id, JSON.stringify(d)]),
      opts.replace ?? false,
    );
  }

  async remove(ids: string[]): Promise<number> {
    return this.write(
      ids.map((id) => [id, '']),
      false,
    );
  }

  /** Imports only when the collection has never been written (seeding a demo KB on first start). */
  async seedIfEmpty(docs: T[]): Promise<boolean> {
    const claimed = await this.options.redis.set(`${this.options.key}:{sync}:seeded`, '1', 'NX');
    if (claimed !== 'OK') return false;
    if ((await this.options.redis.hlen(this.hashKey)) > 0) return false;
    await this.upsert(docs);
    return true;
  }

  private async write(pairs: Array<[string, string]>, replace: boolean): Promise<number> {
    const args = [this.channel, replace ? '1' : '0', ...pairs.flat()];
    const version = Number(await this.options.redis.eval(WRITE_SCRIPT, 2, this.hashKey, this.versionKey, ...args));
    await this.enqueue(async () => {
      if (version <= this.version) return;
      if (version === this.version + 1 && !replace && pairs.length <= MAX_ANNOUNCED_IDS) await this.fetch(pairs.map(([id]) => id), version);
      else await this.reload();
    });
    return version;
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const next = this.chain.then(task).catch((err) => this.options.log.error({ err, key: this.options.key }, 'sync failed'));
    this.chain = next;
    return next;
  }

  private async applyAnnouncement(payload: string): Promise<void> {
    let message: { v: number; reset: boolean; ids: unknown };
    try {
      message = JSON.parse(payload);
    } catch {
      return;
    }
    if (message.v <= this.version) return; // our own write, already applied
    const ids = Array.isArray(message.ids) ? (message.ids as string[]) : [];
    if (message.reset || message.v !== this.version + 1 || ids.length === 0) return this.reload();
    await this.fetch(ids, message.v);
  }

  private async fetch(ids: string[], version: number): Promise<void> {
    const values = await this.options.redis.hmget(this.hashKey, ...ids);
    const change: CollectionChange<T> = { reset: false, upserted: [], removed: [] };
    ids.forEach((id, i) => {
      const doc = this.decode(id, values[i] ?? null);
      if (doc) {
        this.items.set(id, doc);
        change.upserted.push(doc);
      } else if (this.items.delete(id)) change.removed.push(id);
    });
    this.version = version;
    this.options.onChange(change);
  }

  private async checkVersion(): Promise<void> {
    const stored = Number((await this.options.redis.get(this.versionKey)) ?? 0);
    if (stored !== this.version) await this.reload();
  }

  private async reload(): Promise<void> {
    // Read the hash and its version in one transaction so they describe the same moment.
    const results = await this.options.redis.multi().hgetall(this.hashKey).get(this.versionKey).exec();
    const hash = (results?.[0]?.[1] ?? {}) as Record<string, string>;
    const version = Number(results?.[1]?.[1] ?? 0);
    this.items.clear();
    for (const [id, json] of Object.entries(hash)) {
      const doc = this.decode(id, json);
      if (doc) this.items.set(id, doc);
    }
    this.version = version;
    this.options.onChange({ reset: true, upserted: [...this.items.values()], removed: [] });
  }

  private decode(id: string, json: string | null): T | undefined {
    if (json === null) return undefined;
    try {
      return this.options.parse(JSON.parse(json));
    } catch (err) {
      this.options.log.warn({ key: this.options.key, id, err: (err as Error).message }, 'stored document skipped: invalid');
      return undefined;
    }
  }
}
