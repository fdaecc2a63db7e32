/**
 * Append to a Redis list, keep only its newest `max` items and renew its TTL — as steps of a script rather than three
 * commands (RPUSH, LTRIM, EXPIRE). Transcripts and reconnect outboxes grow this way, per message.
 */

/** The steps, for scripts that append to a capped list as part of their work (Lua expressions in). */
export function cappedPushLua(key: string, max: string, ttlSeconds: string, values: string): string {
  return `
local n = redis.call('RPUSH', ${key}, ${values})
if n > tonumber(${max}) then redis.call('LTRIM', ${key}, -tonumber(${max}), -1) end
redis.call('EXPIRE', ${key}, ${ttlSeconds})`;
}
