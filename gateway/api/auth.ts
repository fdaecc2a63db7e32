/**
 * API key authentication with scopes, and a per-key rate limit shared by every gateway process (Redis).
 * Missing/unknown key → 401 invalid_api_key; known key without the route's scope → 403 insufficient_scope;
 * over the limit → 429 rate_limited with Retry-After. `admin` implies `read` and `reply`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { RedisClient } from '../../adapters/types.js';
import { forbidden, HttpError } from '../errors.js';
import type { ApiConfig, ApiKey, ApiScope } from './config.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

export class ApiAuth {
  private readonly keys: Array<{ key: ApiKey; digest: Buffer }>;
  private readonly limiter: RateLimiterRedis;

  constructor(config: ApiConfig, redis: RedisClient, prefix: string) {
    this.keys = config.keys.map((key) => ({ key, digest: digest(key.key) }));
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${prefix}:rl:api`,
      points: config.rateLimit.points,
      duration: config.rateLimit.durationSeconds,
    });
  }

  /** Compares digests in constant time, so neither a key's content nor its length leaks through timing. */
  authenticate(req: Request): ApiKey {
    const header = req.get('authorization') ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (given) {
      const d = digest(given);
      const match = this.keys.find((k) => timingSafeEqual(k.digest, d));
      if (match) return match.key;
    }
    throw new HttpError(401, 'invalid_api_key', 'send a valid API key as "Authorization: Bearer <key>"', { 'WWW-Authenticate': 'Bearer realm="gateway api"' });
  }

  authorize(key: ApiKey, scope: ApiScope): void {
    if (key.scopes.includes('admin') || key.scopes.includes(scope)) return;
    throw forbidden('insufficient_scope', `API key "${key.id}" lacks the "${scope}" scope`);
  }

  async limit(key: ApiKey): Promise<Record<string, string>> {
    try {
      const res = await this.limiter.consume(key.id);
      return { 'RateLimit-Remaining': String(res.remainingPoints), 'RateLimit-Reset': String(Math.ceil(res.msBeforeNext / 1000)) };
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        const seconds = String(Math.max(1, Math.ceil(err.msBeforeNext / 1000)));
        throw new HttpError(429, 'rate_limited', `API key "${key.id}" is over its rate limit; retry in ${seconds} s`, { 'Retry-After': seconds, 'RateLimit-Remaining': '0' });
      }
      throw err;
    }
  }
}
