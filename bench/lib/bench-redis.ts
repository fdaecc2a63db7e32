/**
 * The benchmark's Redis: one private redis-server (AOF on), or with `--cluster` a local Redis Cluster of N masters.
 * Everything the benchmark starts reaches it through `spec` (a redis:// URL, or `cluster:host:port,host:port,…`), and
 * the per-phase Redis figures (commands, CPU, forks) are summed over the masters, each a `redis-server` process of its
 * own. A cluster needs at least 3 masters (`redis-cli --cluster create`).
 */
import { Redis } from 'ioredis';
import type { RedisClient } from '../../adapters/types.js';
import { startLocalCluster } from '../../gateway/redis-cluster-server.js';
import { startPrivateRedis } from '../../gateway/redis-server.js';
import { clusterNodes, connectRedis, type RedisTarget } from '../../gateway/redis.js';
import { redisCounters } from './processes.js';

/** The bare-enqueue reference's queue (hash-tagged, like the gateway's queue names). */
export const BARE_QUEUE = '{bare}';

export type RedisCounters = Awaited<ReturnType<typeof redisCounters>>;

export interface BenchRedis {
  /** For child processes' command lines: see targetFromSpec. */
  spec: string;
  /** The `redis` section of the gateway's config (the prefix is the benchmark's). */
  gatewayConfig: { prefix: string; cluster?: string[] };
  /** Environment for gateway processes (REDIS_URL for a single server). */
  env: Record<string, string>;
  /** For the JSON report. */
  describe: { mode: 'single' } | { mode: 'cluster'; masters: number };
  /** A client for the benchmark's own reads (queue backlogs, id counters, conversation state). */
  client: RedisClient;
  /** INFO counters summed over every master (the latest fork is the longest of them). */
  counters(): Promise<RedisCounters>;
  stop(): Promise<void>;
}

/** A redis:// URL or `cluster:host:port,host:port` back to a connection target. */
export function targetFromSpec(spec: string): RedisTarget {
  return spec.startsWith('cluster:') ? { cluster: clusterNodes(spec.slice('cluster:'.length).split(',')) } : { url: spec };
}

export async function startBenchRedis(dataDir: string, clusterMasters?: number): Promise<BenchRedis> {
  if (clusterMasters === undefined) {
    const server = await startPrivateRedis({ dataDir });
    const client = new Redis(server.url);
    return {
      spec: server.url,
      gatewayConfig: { prefix: 'gw' },
      env: { REDIS_URL: server.url },
      describe: { mode: 'single' },
      client,
      counters: () => redisCounters(client),
      async stop() {
        client.disconnect();
        await server.stop();
      },
    };
  }
  const cluster = await startLocalCluster(clusterMasters);
  const spec = `cluster:${cluster.nodes.join(',')}`;
  const client = connectRedis(targetFromSpec(spec), { autoPipelining: false });
  // One direct connection per master: INFO describes the node it is sent to.
  const masters = cluster.nodes.map((node) => new Redis(`redis://${node}`));
  return {
    spec,
    gatewayConfig: { prefix: 'gw', cluster: cluster.nodes },
    env: {},
    describe: { mode: 'cluster', masters: clusterMasters },
    client,
    async counters() {
      const each = await Promise.all(masters.map((m) => redisCounters(m)));
      const byCommand = new Map<string, number>();
      for (const c of each) for (const [name, n] of c.byCommand) byCommand.set(name, (byCommand.get(name) ?? 0) + n);
      const sum = (key: 'commands' | 'netInputBytes' | 'netOutputBytes' | 'cpuSeconds' | 'forks' | 'delayedFsyncs') =>
        each.reduce((n, c) => n + c[key], 0);
      return {
        commands: sum('commands'),
        netInputBytes: sum('netInputBytes'),
        netOutputBytes: sum('netOutputBytes'),
        cpuSeconds: sum('cpuSeconds'),
        forks: sum('forks'),
        latestForkMs: Math.max(...each.map((c) => c.latestForkMs)),
        delayedFsyncs: sum('delayedFsyncs'),
        byCommand,
      };
    },
    async stop() {
      client.disconnect();
      for (const m of masters) m.disconnect();
      await cluster.stop();
    },
  };
}
