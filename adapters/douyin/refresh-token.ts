/**
 * Where the enterprise account's refresh_token lives between calls. Douyin invalidates a refresh_token once it is
 * renewed (`/oauth/renew_refresh_token/`), so the newest one is kept in Redis, shared by every process, together with
 * a fingerprint of the `refreshToken` in config it descends from: when an operator puts a new token into config
 * (after a re-authorisation), the fingerprints differ and the config value wins over the stored one.
 *
 * Everything that uses or replaces the token runs under one Redis lock, so a renewal in one process never races an
 * access-token refresh (or another renewal) in another one with the token it just invalidated.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisClient } from '../types.js';

export interface RefreshTokenRecord {
  token: string;
  /** Fingerprint of the config refreshToken this token descends from. */
  from: string;
  /** When Douyin said the token lapses (ms since epoch); unknown until Douyin was first asked. */
  expiresAt?: number;
  /** Renewals made since the config token (Douyin allows 5). */
  renewals?: number;
}

const RELEASE_LOCK = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;
const LOCK_POLL_MS = 50;

export class RefreshTokenStore {
  private readonly fingerprint: string;

  constructor(
    private readonly o: {
      redis: RedisClient;
      key: string;
      configToken: string;
      log: Logger;
      /** How long the lock lives if its holder dies; also how long a caller waits for it. */
      lockMs: number;
    },
  ) {
    this.fingerprint = fingerprintOf(o.configToken);
  }

  /** The token to use: the stored one when it descends from the config value, the config value otherwise. */
  async current(): Promise<RefreshTokenRecord> {
    const stored = parseRecord(await this.o.redis.get(this.o.key), this.fingerprint);
    if (stored && stored.from === this.fingerprint) return stored;
    if (stored) this.o.log.info('the refreshToken in config changed: it replaces the one stored from the previous authorisation');
    return { token: this.o.configToken, from: this.fingerprint };
  }

  async save(record: Omit<RefreshTokenRecord, 'from'>): Promise<RefreshTokenRecord> {
    const full: RefreshTokenRecord = { ...record, from: this.fingerprint };
    await this.o.redis.set(this.o.key, JSON.stringify(full));
    return full;
  }

  /** Drops the stored token (Douyin said it lapsed), so a new config value is used as soon as it is there. */
  async forget(): Promise<void> {
    await this.o.redis.del(this.o.key);
  }

  /** Runs `work` holding the cluster-wide lock on the refresh token. */
  async withLock<T>(work: () => Promise<T>): Promise<T> {
    const lockKey = `${this.o.key}:lock`;
    const holder = randomBytes(12).toString('hex');
    const deadline = Date.now() + this.o.lockMs;
    while ((await this.o.redis.set(lockKey, holder, 'PX', this.o.lockMs, 'NX')) !== 'OK') {
      if (Date.now() > deadline) throw new Error('timed out waiting for another process using the Douyin refresh_token');
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    }
    try {
      return await work();
    } finally {
      await this.o.redis.eval(RELEASE_LOCK, 1, lockKey, holder).catch(() => undefined);
    }
  }
}

export function fingerprintOf(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 16);
}

/** A stored record; a bare token (written before records existed) is taken as descending from the current config. */
function parseRecord(raw: string | null, currentFingerprint: string): RefreshTokenRecord | undefined {
  if (!raw) return undefined;
  if (!raw.startsWith('{')) return { token: raw, from: currentFingerprint };
  try {
    const parsed = JSON.parse(raw) as Partial<RefreshTokenRecord>;
    if (typeof parsed.token !== 'string' || !parsed.token || typeof parsed.from !== 'string') return undefined;
    return {
      token: parsed.token,
      from: parsed.from,
      ...(typeof parsed.expiresAt === 'number' && { expiresAt: parsed.expiresAt }),
      ...(typeof parsed.renewals === 'number' && { renewals: parsed.renewals }),
    };
  } catch {
    return undefined;
  }
}
