/**
 * `Idempotency-Key` on POSTs: the first request with a key runs and its response is stored in Redis; a retry with
 * the same key (and the same body) gets that stored response back instead of acting again — so an agent reply
 * retried after a timeout is delivered once. A retry while the first is still running gets 409; the same key with a
 * different body gets 422. A request that failed with an error is not stored, so it can be retried.
 *
 * The in-progress mark expires after `runningTtlSeconds`, not the full TTL: should the process die mid-request, a
 * retry may run it again a minute later rather than get 409 for a day. Only the finished record is kept the full TTL.
 * A run whose mark expired still stores its result unless another run took the key over meanwhile (that run's record
 * wins), so a request slower than the mark is not run again by a later retry.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { RedisClient } from '../../adapters/types.js';
import { HttpError } from '../errors.js';
import type { RouteResult } from './route.js';

interface Stored {
  state: 'running' | 'done';
  fingerprint: string;
  /** Names the run holding a "running" mark. */
  claim?: string;
  result?: RouteResult;
}

// KEYS[1] the record. ARGV: the running mark this run wrote, the finished record ('' to delete), its TTL in seconds.
// The record is settled when it still holds this run's mark, and also when it is gone (the mark expired during a long
// run and nobody retried meanwhile): storing then keeps a later retry from acting twice. Only another run's record
// (a newer mark or its finished result) is left alone.
const SETTLE_LUA = `
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  if current then redis.call('DEL', KEYS[1]) end
  return 1
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
`;

export class Idempotency {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
    private readonly runningTtlSeconds = 60,
  ) {
    redis.defineCommand('gwIdempotencySettle', { numberOfKeys: 1, lua: SETTLE_LUA });
  }

  async run(keyId: string, idempotencyKey: string, request: { method: string; path: string; body: unknown }, act: () => Promise<RouteResult>): Promise<RouteResult> {
    if (idempotencyKey.length > 255) throw new HttpError(400, 'invalid_idempotency_key', 'Idempotency-Key is longer than 255 characters');
    const scope = createHash('sha256').update(`${keyId}\u0000${request.method}\u0000${request.path}\u0000${idempotencyKey}`).digest('hex');
    const redisKey = `${this.prefix}:idem:${scope}`;
    const fingerprint = createHash('sha256').update(JSON.stringify(request.body ?? null)).digest('hex');
    const running = JSON.stringify({ state: 'running', fingerprint, claim: randomUUID() } satisfies Stored);
    const claimed = await this.redis.set(redisKey, running, 'EX', Math.min(this.runningTtlSeconds, this.ttlSeconds), 'NX');
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
    let result: RouteResult;
    try {
      result = await act();
    } catch (err) {
      await this.settle(redisKey, running, '');
      throw err;
    }
    await this.settle(redisKey, running, JSON.stringify({ state: 'done', fingerprint, result } satisfies Stored));
    return result;
  }

  /** Replaces this run's running mark (or its expired absence) with the finished record ('' deletes it), unless another run holds the key. */
  private async settle(redisKey: string, running: string, finished: string): Promise<void> {
    await (this.redis as any).gwIdempotencySettle(redisKey, running, finished, this.ttlSeconds);
  }
}
