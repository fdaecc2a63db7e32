/**
 * The shard count is part of the data layout: a conversation's queue is `hash(conversation) % shards`. Lowering
 * `pipeline.shards` leaves the queues beyond the new count without a consumer, so the jobs still in them would wait
 * forever. Workers therefore record the count they run with, and refuse to start with a lower one while those queues
 * hold jobs; an ingress that writes with another count than the workers read is logged.
 */
import type { RedisClient } from '../adapters/types.js';
import type { Logger } from './logger.js';
import { queueName, type Stage } from './queues.js';

/** Jobs not finished yet (waiting, running, delayed for a retry...) in one queue of the pipeline. */
export type UnfinishedJobs = (stage: Stage, shard: number) => Promise<number>;

export class ShardCountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShardCountError';
  }
}

const key = (prefix: string) => `${prefix}:pipeline:shards`;

/** Before a worker consumes: checks that no queue beyond `shards` still holds jobs, then records `shards`. */
export async function claimShardCount(redis: RedisClient, prefix: string, shards: number, unfinished: UnfinishedJobs): Promise<void> {
  const recorded = Number((await redis.get(key(prefix))) ?? 0);
  for (let shard = shards; shard < recorded; shard++) {
    for (const stage of ['in', 'out'] as const) {
      const jobs = await unfinished(stage, shard);
      if (jobs === 0) continue;
      throw new ShardCountError(
        `pipeline.shards is ${shards}, but queue ${queueName(stage, shard)} (written while it was ${recorded}) still holds ${jobs} ` +
          `unfinished job(s) that no worker would read. Run the workers with pipeline.shards: ${recorded} until the queues ` +
          `beyond ${shards} are empty (gw_queue_jobs in /metrics), then lower it.`,
      );
    }
  }
  if (recorded !== shards) await redis.set(key(prefix), String(shards));
}

/** For an ingress: warns when the workers last started with another shard count than this process writes with. */
export async function checkShardCount(redis: RedisClient, prefix: string, shards: number, log: Logger): Promise<void> {
  const recorded = await redis.get(key(prefix));
  if (recorded === null || Number(recorded) === shards) return;
  log.warn(
    { shards, workerShards: Number(recorded) },
    `pipeline.shards is ${shards} here but ${recorded} in the workers: messages are only read once the workers run with the same count`,
  );
}
