/**
 * One access-token manager for every platform adapter (WeChat, WeCom, Douyin, Feishu...).
 *
 * Platform tokens are rate-limited to fetch and each new one may invalidate the previous one, so:
 * - the token is cached in Redis (shared by every process) and treated as expired `marginSeconds` early;
 * - only one process refreshes at a time: it takes a Redis lock holding a random token (released only by its
 *   holder, expiring by itself if the holder dies); everyone else polls the cache for the holder's result;
 * - in one process, concurrent callers share one in-flight refresh, and a token read from Redis is reused for up to
 *   `memoMs` (one GET per second instead of one per platform call under load; a token another process refreshes is
 *   picked up within that time, and platforms keep the previous token valid for minutes after a refresh);
 * - when the platform says "token invalid/expired" the caller invalidates exactly the token it used (compare-and-
 *   delete, so a token someone else just refreshed survives), refreshes at once and retries ONCE.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisClient } from '../types.js';

export interface FetchedToken {
  token: string;
  expiresInSeconds: number;
}
export type TokenFetcher = () => Promise<FetchedToken>;

export interface TokenManagerOptions {
  /** Refresh this long before the platform's expiry (default 300 s, at most half the lifetime). */
  marginSeconds?: number;
  /** How long the refresh lock lives if its holder dies mid-refresh (default 15 s). */
  lockMs?: number;
  /** How often waiters poll for the holder's result (default 50 ms). */
  pollMs?: number;
  /** Waiters give up after this long and fail (default 20 s). */
  waitMs?: number;
  /** How long this process reuses a token it read from Redis (default 1 s; 0 reads Redis every time). */
  memoMs?: number;
}

interface Cached {
  token: string;
  /** ms since epoch after which the token is not used any more (platform expiry minus margin). */
  useUntil: number;
}

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;
const INVALIDATE = `local v = redis.call('get', KEYS[1])
if v and cjson.decode(v).token == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;

export class TokenManager {
  private readonly inFlight = new Map<string, Promise<string>>();
  private readonly memo = new Map<string, Cached>();
  /**
   * Per key, the token the platform last refused, until a refresh stores one. A cache read already in flight when the
   * token was invalidated returns it after the invalidation; without this it would be remembered again and the
   * retry would send the refused token a second time.
   */
  private readonly refused = new Map<string, string>();
  private readonly memoMs: number;
  private readonly marginSeconds: number;
  private readonly lockMs: number;
  private readonly pollMs: number;
  private readonly waitMs: number;

  constructor(
    private readonly redis: RedisClient,
    /** Key prefix, e.g. ctx.keyPrefix; keys are `<prefix>token:<key>` and `<prefix>token-lock:<key>`. */
    private readonly prefix: string,
    private readonly log: Logger,
    options: TokenManagerOptions = {},
  ) {
    this.marginSeconds = options.marginSeconds ?? 300;
    this.lockMs = options.lockMs ?? 15_000;
    this.pollMs = options.pollMs ?? 50;
    this.waitMs = options.waitMs ?? 20_000;
    this.memoMs = options.memoMs ?? 1_000;
  }

  private cacheKey(key: string): string {
    return `${this.prefix}token:${key}`;
  }
  private lockKey(key: string): string {
    return `${this.prefix}token-lock:${key}`;
  }

  /** A valid token for `key`, fetching a new one (once, cluster-wide) when none is cached. */
  async get(key: string, fetch: TokenFetcher): Promise<string> {
    const memo = this.memo.get(key);
    if (memo && memo.useUntil > Date.now() && memo.token !== this.refused.get(key)) return memo.token;
    const cached = await this.readCache(key);
    if (cached) return cached;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.refresh(key, fetch).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  /** Drops `badToken` from the cache if it is still the cached one (a newer token is kept). */
  async invalidate(key: string, badToken: string): Promise<void> {
    this.refused.set(key, badToken);
    if (this.memo.get(key)?.token === badToken) this.memo.delete(key);
    const dropped = await this.redis.eval(INVALIDATE, 1, this.cacheKey(key), badToken);
    this.log.info({ tokenKey: key, dropped: dropped === 1 }, 'access token invalidated by the platform');
  }

  /**
   * Runs `call` with a token; when `isTokenInvalid` says the platform refused the token (as a result or a thrown
   * error), invalidates it, gets a fresh one and retries exactly once. The retry's outcome is final.
   */
  async callWithToken<T>(
    key: string,
    fetch: TokenFetcher,
    call: (token: string) => Promise<T>,
    isTokenInvalid: (outcome: T | unknown) => boolean,
  ): Promise<T> {
    const token = await this.get(key, fetch);
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await call(token) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    if (!isTokenInvalid(outcome.ok ? outcome.value : outcome.error)) {
      if (outcome.ok) return outcome.value;
      throw outcome.error;
    }
    await this.invalidate(key, token);
    return call(await this.get(key, fetch));
  }

  private async readCache(key: string): Promise<string | undefined> {
    const raw = await this.redis.get(this.cacheKey(key));
    if (!raw) return undefined;
    try {
      const cached = JSON.parse(raw) as Cached;
      if (cached.useUntil <= Date.now() || cached.token === this.refused.get(key)) return undefined;
      if (this.memoMs > 0) this.memo.set(key, { token: cached.token, useUntil: Math.min(cached.useUntil, Date.now() + this.memoMs) });
      return cached.token;
    } catch {
      return undefined;
    }
  }

  private async refresh(key: string, fetch: TokenFetcher): Promise<string> {
    const deadline = Date.now() + this.waitMs;
    const lockValue = randomBytes(16).toString('hex');
    for (;;) {
      const got = await this.redis.set(this.lockKey(key), lockValue, 'PX', this.lockMs, 'NX');
      if (got === 'OK') {
        try {
          // Someone may have finished a refresh between our cache miss and taking the lock.
          const fresh = await this.readCache(key);
          if (fresh) return fresh;
          return await this.fetchAndStore(key, fetch);
        } finally {
          await this.redis.eval(RELEASE, 1, this.lockKey(key), lockValue).catch(() => undefined);
        }
      }
      // Another process is refreshing: wait for its result (or for its lock to lapse if it died).
      await new Promise((r) => setTimeout(r, this.pollMs));
      const fresh = await this.readCache(key);
      if (fresh) return fresh;
      if (Date.now() > deadline) throw new Error(`timed out waiting for another process to refresh access token "${key}"`);
    }
  }

  private async fetchAndStore(key: string, fetch: TokenFetcher): Promise<string> {
    const started = Date.now();
    const { token, expiresInSeconds } = await fetch();
    if (!token || !(expiresInSeconds > 0)) throw new Error(`the platform returned no usable access token for "${key}"`);
    const margin = Math.min(this.marginSeconds, expiresInSeconds / 2);
    const useUntil = started + (expiresInSeconds - margin) * 1000;
    const ttlMs = Math.max(1, useUntil - Date.now());
    await this.redis.set(this.cacheKey(key), JSON.stringify({ token, useUntil } satisfies Cached), 'PX', Math.ceil(ttlMs));
    // The platform has just issued it: even a token equal to the one refused before (some platforms hand the same one
    // back while it is valid) is good now.
    this.refused.delete(key);
    // Never log the token itself.
    this.log.info({ tokenKey: key, expiresInSeconds }, 'access token refreshed');
    return token;
  }
}
