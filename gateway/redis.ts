/** Redis connections: one auto-pipelined command client shared by the process, and BullMQ's own per worker. */
import { Redis, type RedisOptions } from 'ioredis';
import type { RedisClient } from '../adapters/types.js';

/** BullMQ workers need `maxRetriesPerRequest: null` so blocking commands survive reconnects. */
export function redisOptions(extra: RedisOptions = {}): RedisOptions {
  return { maxRetriesPerRequest: null, enableReadyCheck: true, ...extra };
}

export function connectRedis(url: string, extra: RedisOptions = {}): RedisClient {
  // Auto-pipelining batches the commands issued in one event-loop tick into one round trip.
  return new Redis(url, redisOptions({ enableAutoPipelining: true, ...extra }));
}

/** ioredis options from a redis:// URL, for libraries (BullMQ workers) that should own their connections. */
export function redisConnectionOptions(url: string, extra: RedisOptions = {}): RedisOptions {
  const u = new URL(url);
  return redisOptions({
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username && { username: decodeURIComponent(u.username) }),
    ...(u.password && { password: decodeURIComponent(u.password) }),
    ...(u.pathname.length > 1 && { db: Number(u.pathname.slice(1)) }),
    ...(u.protocol === 'rediss:' && { tls: {} }),
    ...extra,
  });
}
