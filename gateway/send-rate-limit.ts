/**
 * Per channel instance send quotas (`channels[].rateLimit`), enforced in the one outbound hook chain with a Redis
 * limiter shared by every worker process. Over the quota a delivery waits (the shard pauses) rather than failing, so
 * the platform never sees more than the configured rate and no reply is dropped.
 */
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisClient } from '../adapters/types.js';
import type { SendRateLimit } from '../config/schema.js';
import type { OutboundHook } from './outbound-hooks.js';

export function sendRateLimitHook(
  limits: ReadonlyArray<{ channel: string; rateLimit: SendRateLimit }>,
  redis: RedisClient,
  prefix: string,
): OutboundHook | undefined {
  if (limits.length === 0) return undefined;
  const limiters = new Map(
    limits.map(({ channel, rateLimit }) => [
      channel,
      new RateLimiterRedis({ storeClient: redis, keyPrefix: `${prefix}:rl:send`, points: rateLimit.messages, duration: rateLimit.perSeconds }),
    ]),
  );
  return {
    name: 'send-rate-limit',
    async beforeSend(message) {
      const limiter = limiters.get(message.channel);
      if (!limiter) return { message };
      try {
        await limiter.consume(message.channel);
        return { message };
      } catch (res) {
        if (!(res instanceof RateLimiterRes)) throw res;
        return { retryAfterMs: Math.max(1, res.msBeforeNext), reason: `channel ${message.channel} over its send quota` };
      }
    },
  };
}
