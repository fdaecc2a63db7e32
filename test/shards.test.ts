import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RedisClient } from '../adapters/types.js';
import type { Logger } from '../gateway/logger.js';
import { ShardLeases } from '../gateway/shards.js';
import { eventually } from './helpers/gateway.js';
import { redisClientForTests } from './helpers/redis.js';

const quiet = { info() {}, debug() {}, warn() {}, error() {} } as unknown as Logger;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The consumers running each shard right now, and every moment two ran one shard at once — two processes, or two in
 * one process (each start is a consumer of its own).
 */
class ConsumerLedger {
  private readonly consumers = new Map<number, string[]>();
  readonly overlaps: string[] = [];

  start(shard: number, processId: string): void {
    const list = this.consumers.get(shard) ?? [];
    list.push(processId);
    this.consumers.set(shard, list);
    if (list.length > 1) this.overlaps.push(`shard ${shard} consumed by ${list.join(' and ')}`);
  }

  /** The oldest consumer of `processId` on the shard has stopped. */
  stop(shard: number, processId: string): void {
    const list = this.consumers.get(shard) ?? [];
    const i = list.indexOf(processId);
    if (i >= 0) list.splice(i, 1);
  }
}

describe('shard leases', () => {
  const redis = redisClientForTests();

  function leases(processId: string, ledger: ConsumerLedger, closeMs: number) {
    const connection = redis.client.duplicate();
    const shardLeases = new ShardLeases({
      redis: connection as unknown as RedisClient,
      prefix: 'gw-shards-test',
      shards: 2,
      processId,
      log: quiet,
      ttlMs: 1_000,
      renewMs: 200,
      acquire: async (shard) => ledger.start(shard, processId),
      // A worker's close() waits for its in-flight job: here a job that outlasts the lease TTL several times.
      release: async (shard) => {
        await sleep(closeMs);
        ledger.stop(shard, processId);
      },
    });
    return { shardLeases, connection };
  }

  it('keeps renewing a shard it gives up until its consumer has stopped, so no two processes consume it at once', async () => {
    const ledger = new ConsumerLedger();
    const first = leases('A', ledger, 3_000);
    const second = leases('B', ledger, 0);
    try {
      await first.shardLeases.start();
      assert.deepEqual(first.shardLeases.ownedShards, [0, 1]);
      await second.shardLeases.start();
      // A gives shard 1 up on a later tick and its consumer needs 3 s to stop; B must wait for it, then take it.
      const deadline = Date.now() + 8_000;
      while (second.shardLeases.ownedShards.length < 1 && Date.now() < deadline) await sleep(100);
      assert.deepEqual(ledger.overlaps, []);
      assert.deepEqual(first.shardLeases.ownedShards, [0]);
      assert.deepEqual(second.shardLeases.ownedShards, [1]);
    } finally {
      await second.shardLeases.stop();
      await first.shardLeases.stop();
      first.connection.disconnect();
      second.connection.disconnect();
    }
    assert.deepEqual(ledger.overlaps, []);
  });

  it('does not take a lost shard again while the consumer it lost is still stopping', async () => {
    const ledger = new ConsumerLedger();
    const only = leases('A', ledger, 3_000);
    try {
      await only.shardLeases.start();
      assert.deepEqual(only.shardLeases.ownedShards, [0, 1]);
      // The lease goes (a stall past the TTL, a failover): the key is free at once, the old consumer takes 3 s to stop.
      await redis.client.del('gw-shards-test:lease:shard-1');
      await eventually(() => !only.shardLeases.ownedShards.includes(1), 'the lost lease noticed', 3_000);
      await eventually(() => only.shardLeases.ownedShards.includes(1), 'the shard taken again', 8_000);
      assert.deepEqual(ledger.overlaps, [], 'one consumer at a time');
      assert.deepEqual(only.shardLeases.ownedShards, [0, 1], 'taken again once the old consumer had stopped');
    } finally {
      await only.shardLeases.stop();
      only.connection.disconnect();
    }
    assert.deepEqual(ledger.overlaps, []);
  });
});
