/**
 * One consumer per shard, across any number of worker processes.
 *
 * Each process heart-beats into a sorted set and aims to own ceil(shards / live processes) shards. Ownership is a
 * Redis lease (SET NX PX) renewed every `renewMs`; a process that owns too many closes those shards' workers —
 * waiting for their in-flight jobs — before it lets the lease go, so two consumers never run one shard at once.
 * Renewal runs on its own timer, apart from the rebalancing that acquires and releases shards: closing a worker can
 * take longer than `ttlMs`, and both the heartbeat and every lease — the closing shard's too — must live through it.
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
  /**
   * Shards this process consumes, each with the value its lease holds. The value names the acquisition, not just the
   * process, so a renewal answered after the shard was released and taken again is not mistaken for the new lease.
   */
  private readonly owned = new Map<number, string>();
  /** Shards given up whose consumers are still closing: their leases are renewed until the close has finished. */
  private readonly closing = new Map<number, string>();
  private acquisitions = 0;
  /**
   * Shards whose lease was lost, while their consumers stop: not taken again until the stop has finished (the lease
   * key may be free at once, and a second consumer in this process would break the shard's order), and stop()
   * waits for them.
   */
  private readonly lostStopping = new Map<number, Promise<void>>();
  private rebalanceTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private rebalancing: Promise<void> = Promise.resolve();
  private renewing: Promise<void> | undefined;
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
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  private leaseKey(shard: number): string {
    return `${this.opts.prefix}:lease:shard-${shard}`;
  }
  private get membersKey(): string {
    return `${this.opts.prefix}:workers`;
  }

  async start(): Promise<void> {
    await this.heartbeat();
    await this.rebalance();
    this.renewTimer = setInterval(() => this.renewOnce(), this.renewMs);
    this.renewTimer.unref();
    this.rebalanceTimer = setInterval(() => {
      this.rebalancing = this.rebalancing
        .then(() => this.rebalance())
        .catch((err) => this.opts.log.error({ err }, 'shard rebalancing failed'));
    }, this.renewMs);
    this.rebalanceTimer.unref();
  }

  /** One renewal at a time: a slow Redis must not pile renewals up. */
  private renewOnce(): void {
    if (this.renewing) return;
    this.renewing = this.renew()
      .catch((err) => this.opts.log.error({ err }, 'shard lease renewal failed'))
      .finally(() => (this.renewing = undefined));
  }

  private async heartbeat(): Promise<void> {
    await this.opts.redis.zadd(this.membersKey, Date.now(), this.opts.processId);
  }

  private async renew(): Promise<void> {
    // A stopping process no longer heart-beats, so the others rebalance without it while it closes its workers.
    if (!this.stopped) await this.heartbeat();
    const leases = [...this.owned, ...this.closing];
    const results = await Promise.all(
      leases.map(([shard, value]) => (this.opts.redis as any).gwLeaseRenew(this.leaseKey(shard), value, this.ttlMs)),
    );
    leases.forEach(([shard, value], i) => {
      if (results[i] !== 1) this.leaseLost(shard, value);
    });
  }

  private leaseLost(shard: number, value: string): void {
    // A closing shard goes on closing; its lease is simply no longer ours to renew or release.
    if (this.closing.get(shard) === value) this.closing.delete(shard);
    if (this.owned.get(shard) !== value) return;
    this.owned.delete(shard);
    this.opts.log.warn({ shard }, 'shard lease lost; stopping its consumer');
    const release: Promise<void> = this.opts
      .release(shard)
      .catch((err) => this.opts.log.error({ err, shard }, 'stopping the consumer of a lost shard failed'))
      .finally(() => this.lostStopping.delete(shard));
    this.lostStopping.set(shard, release);
  }

  private async rebalance(): Promise<void> {
    if (this.stopped) return;
    const { redis, shards } = this.opts;
    await redis.zremrangebyscore(this.membersKey, 0, Date.now() - this.ttlMs);
    const live = Math.max(1, await redis.zcard(this.membersKey));
    const target = Math.ceil(shards / live);

    while (this.owned.size > target) {
      const shard = Math.max(...this.owned.keys());
      await this.releaseShard(shard);
    }
    for (let shard = 0; shard < shards && this.owned.size < target; shard++) {
      if (this.owned.has(shard) || this.closing.has(shard) || this.lostStopping.has(shard)) continue;
      const value = `${this.opts.processId}#${++this.acquisitions}`;
      const got = await redis.set(this.leaseKey(shard), value, 'PX', this.ttlMs, 'NX');
      if (got === 'OK') {
        this.owned.set(shard, value);
        await this.opts.acquire(shard);
      }
    }
  }

  /** Stops the shard's consumer while its lease is still renewed, and lets the lease go only once it has stopped. */
  private async releaseShard(shard: number): Promise<void> {
    const value = this.owned.get(shard);
    if (value === undefined) return;
    this.owned.delete(shard);
    this.closing.set(shard, value);
    try {
      await this.opts.release(shard);
    } catch (err) {
      // The consumer may still run: leave the lease to expire rather than hand the shard over now.
      this.closing.delete(shard);
      throw err;
    }
    if (this.closing.get(shard) !== value) return; // the lease was lost meanwhile
    this.closing.delete(shard);
    await (this.opts.redis as any).gwLeaseRelease(this.leaseKey(shard), value);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.rebalanceTimer) clearInterval(this.rebalanceTimer);
    await this.rebalancing.catch(() => {});
    await this.renewing; // a renewal begun before the stop may still heart-beat
    await this.opts.redis.zrem(this.membersKey, this.opts.processId);
    // The renew timer keeps running until every consumer has stopped.
    await Promise.all([...this.owned.keys()].map((shard) => this.releaseShard(shard)));
    await Promise.all([...this.lostStopping.values()]);
    if (this.renewTimer) clearInterval(this.renewTimer);
    await this.renewing;
  }
}
