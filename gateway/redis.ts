/**
 * Redis connections. A target is one server (`redis://` URL) or a Redis Cluster (seed nodes). Every key the gateway
 * and BullMQ create carries a hash tag per queue or per conversation, so multi-key scripts stay in one slot and the
 * shards spread across the cluster's masters.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisClient } from '../adapters/types.js';
import { installLeanPipeline } from './ioredis-pipeline.js';

// Before any connection builds a pipeline (ioredis-pipeline.ts).
installLeanPipeline();

export type RedisTarget = { url: string } | { cluster: Array<{ host: string; port: number }> };

/** BullMQ workers need `maxRetriesPerRequest: null` so blocking commands survive reconnects. */
export function redisOptions(extra: RedisOptions = {}): RedisOptions {
  return { maxRetriesPerRequest: null, enableReadyCheck: true, ...extra };
}

/**
 * A new client for the target. `autoPipelining` batches the commands issued in one event-loop tick into one round
 * trip — on for the shared command client, off for connections BullMQ blocks on.
 */
export function connectRedis(target: RedisTarget | string, opts: { autoPipelining?: boolean } = {}): RedisClient {
  const t = typeof target === 'string' ? { url: target } : target;
  const autoPipelining = opts.autoPipelining ?? true;
  if ('cluster' in t) {
    const options: ClusterOptions = {
      redisOptions: redisOptions(),
      enableAutoPipelining: autoPipelining,
      enableReadyCheck: true,
      slotsRefreshTimeout: 2000,
    };
    return new Cluster(t.cluster, options);
  }
  return new Redis(t.url, redisOptions({ enableAutoPipelining: autoPipelining }));
}

/** "host:port" strings from config → cluster seed nodes. */
export function clusterNodes(list: string[]): Array<{ host: string; port: number }> {
  return list.map((entry) => {
    const i = entry.lastIndexOf(':');
    return { host: entry.slice(0, i), port: Number(entry.slice(i + 1)) };
  });
}

export function describeTarget(target: RedisTarget): string {
  return 'url' in target ? target.url.replace(/\/\/[^@]*@/, '//***@') : `cluster ${target.cluster.map((n) => `${n.host}:${n.port}`).join(',')}`;
}
