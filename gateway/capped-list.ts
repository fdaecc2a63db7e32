/**
 * Append to a Redis list, keep only its newest `max` items and renew its TTL — one script instead of three commands
 * (RPUSH, LTRIM, EXPIRE). Transcripts and reconnect outboxes do this per message.
 */
import type { RedisClient } from '../adapters/types.js';

/** The script's body, for other scripts that append to a capped list as one of their steps (Lua expressions in). */
export function cappedPushLua(key: string, max: string, ttlSeconds: string, values: string): string {
  return `
local n = redis.call('RPUSH', ${key}, ${values})
if n > tonumber(${max}) then redis.call('LTRIM', ${key}, -tonumber(${max}), -1) end
redis.call('EXPIRE', ${key}, ${ttlSeconds})`;
}

const LUA = `${cappedPushLua('KEYS[1]', 'ARGV[1]', 'ARGV[2]', 'unpack(ARGV, 3)')}
return n
`;

const defined = new WeakSet<object>();

/**
 * Registers the script on a client. Call it when a store is built, before the client's first command: with
 * auto-pipelining, a pipeline already open in the current tick does not know commands defined after it.
 */
export function defineCappedPush(redis: RedisClient): void {
  if (defined.has(redis)) return;
  redis.defineCommand('gwCappedPush', { numberOfKeys: 1, lua: LUA });
  defined.add(redis);
}

export function cappedPush(redis: RedisClient, key: string, max: number, ttlSeconds: number, ...values: string[]): Promise<number> {
  if (!defined.has(redis)) throw new Error('defineCappedPush(redis) was not called when the store was built');
  return (redis as unknown as { gwCappedPush(...args: Array<string | number>): Promise<number> }).gwCappedPush(key, max, ttlSeconds, ...values);
}
