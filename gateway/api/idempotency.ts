/**
 * `Idempotency-Key` on POSTs: the first request with a key runs and its response is stored in Redis; a retry with
 * the same key (and the same body) gets that stored response back instead of acting again — so an agent reply
 * retried after a timeout is delivered once. A retry while the first is still running gets 409; the same key with a
 * different body gets 422. A request that failed with an error is not stored, so it can be retried.
 */
import { createHash } from 'node:crypto';
import type { RedisClient } from '../../adapters/types.js';
import { HttpError } from '../errors.js';
import type { RouteResult } from './route.js';

interface Stored {
  state: 'running' | 'done';
  fingerprint: string;
  result?: RouteResult;
}

export class Idempotency {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {}

  async run(keyId: string, idempotencyKey: string, request: { method: string; path: string; body: unknown }, act: () => Promise<RouteResult>): Promise<RouteResult> {
    if (idempotencyKey.length > 255) throw new HttpError(400, 'invalid_idempotency_key', 'Idempotency-Key is longer than 255 characters');
    const scope = createHash('sha256').update(`${keyId}\u0000${request.method}\u0000${request.path}\u0000${idempotencyKey}`).digest('hex');
    const redisKey = `${this.prefix}:idem:${scope}`;
    const fingerprint = createHash('sha256').update(JSON.stringify(request.body ?? null)).digest('hex');
    const claimed = await this.redis.set(redisKey, JSON.stringify({ state: 'running', fingerprint } satisfies Stored), 'EX', this.ttlSeconds, 'NX');
    if (claimed !== 'OK') {
      const stored = JSON.parse((await this.redis.get(redisKey)) ?? '{"state":"running","fingerprint":""}') as Stored;
      if (stored.fingerprint !== fingerprint) {
        throw new HttpError(422, 'idempotency_key_reused', 'this Idempotency-Key was used with a different request body');
      }
      if (stored.state === 'running' || !stored.result) {
        throw new HttpError(409, 'idempotency_in_progress', 'a request with this Idempotency-Key is still being processed; retry shortly', { 'Retry-After': '1' });
      }
      return { ...stored.result, headers: { ...stored.result.headers, 'Idempotent-Replayed': 'true' } };
    }
    try {
      const result = await act();
      await this.redis.set(redisKey, JSON.stringify({ state: 'done', fingerprint, result } satisfies Stored), 'EX', this.ttlSeconds);
      return result;
    } catch (err) {
      await this.redis.del(redisKey);
      throw err;
    }
  }
}
