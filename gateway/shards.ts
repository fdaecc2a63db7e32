/**
 * One consumer per shard, across any number of worker processes.
 *
 * Each process heart-beats into a sorted set and aims to own ceil(shards / live processes) shards. Ownership is a
 * Redis lease (SET NX PX) renewed every `renewMs`; a process that owns too many closes those shards' workers —
 * waiting for their in-flight jobs — before it lets the lease go, so two consumers never run one shard at once.
 * If a process dies, its leases expire after `ttlMs` and the survivors take the shards over.
 */
import type { RedisClient } from '../adapters/types.js';
import type { Logger } from './logger.js';

const RENEW_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export interface ShardLeaseOptions {
  redis: RedisClient;
  prefix: string;
  shards: number;
  processId: string;
  log: Logger;
  acquire(shard: number): Promise<void>;
  release(shard: number): Promise<void>;
  ttlMs?: number;
  renewMs?: number;
}

export class ShardLeases {
  private readonly owned = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly ttlMs: number;
  private readonly renewMs: number;

  constructor(private readonly opts: ShardLeaseOptions) {
    this.ttlMs = opts.ttlMs ?? 10_000;
    this.renewMs = opts.renewMs ?? 2_000;
    opts.redis.defineCommand('gwLeaseRenew', { numberOfKeys: 1, lua: RENEW_LUA });
    opts.redis.defineCommand('gwLeaseRelease', { numberOfKeys: 1, lua: RELEASE_LUA });
  }

  get ownedShards(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  private leaseKey(shard: number): string {
    return `${this.opts.prefix}:lease:shard-${shard}`;
  }
  private get membersKey(): string {
    return `${this.opts.prefix}:workers`;
  }

  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => {
      this.ticking = this.ticking.then(() => this.tick()).catch((err) => this.opts.log.error({ err }, 'shard lease tick failed'));
    }, this.renewMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const { redis, processId, shards } = this.opts;
    const now = Date.now();
    await redis.zadd(this.membersKey, now, processId);
    await redis.zremrangebyscore(this.membersKey, 0, now - this.ttlMs);
    const live = Math.max(1, await redis.zcard(this.membersKey));
    const target = Math.ceil(shards / live);

    for (const shard of [...this.owned]) {
      const renewed = await (redis as any).gwLeaseRenew(this.leaseKey(shard), processId, this.ttlMs);
      if (renewed !== 1) {
        this.opts.log.warn({ shard }, 'shard lease lost; stopping its consumer');
        this.owned.delete(shard);
        await this.opts.release(shard);
      }
    }
    while (this.owned.size > target) {
      const shard = Math.max(...this.owned);
      await this.releaseShard(shard);
    }
    for (let shard = 0; shard < shards && this.owned.size < target; shard++) {
      if (this.owned.has(shard)) continue;
      const got = await redis.set(this.leaseKey(shard), processId, 'PX', this.ttlMs, 'NX');
      if (got === 'OK') {
        this.owned.add(shard);
        await this.opts.acquire(shard);
      }
    }
  }

  private async releaseShard(shard: number): Promise<void> {
    this.owned.delete(shard);
    await this.opts.release(shard);
    await (this.opts.redis as any).gwLeaseRelease(this.leaseKey(shard), this.opts.processId);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking.catch(() => {});
    await Promise.all([...this.owned].map((shard) => this.releaseShard(shard)));
    await this.opts.redis.zrem(this.membersKey, this.opts.processId);
  }
}
