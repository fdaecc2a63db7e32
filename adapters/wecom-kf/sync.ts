/**
 * The kf pull loop. The callback only says "open_kfid X has news" (with a 10-minute Token); messages are read with
 * `kf/sync_msg` from a cursor. Guarantees, across processes and restarts:
 *
 * - nothing missed: the cursor in Redis advances only after every message of the page is durably ingested, and a
 *   "pending" flag set by the callback (before it is acknowledged) survives until a sync completes — a crash or a
 *   failed page leaves it set, and the next callback, the periodic poll or the next start picks up from the cursor;
 * - nothing repeated: a page re-read after a crash is deduplicated by msgid in ctx.ingest;
 * - one sync per open_kfid at a time: a Redis lock (random value, compare-and-delete release, renewed per page);
 *   a callback arriving mid-sync only sets the flag, and the holder loops until the flag stays clear;
 * - `has_more` is followed page after page, even when a page's msg_list is empty (doc).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RedisClient } from '../types.js';
import type { WecomApi } from '../wecom-app/api.js';
import type { WecomResult } from '../wecom-app/errors.js';
import type { KfItem } from './decode.js';

export interface KfSyncOptions {
  redis: RedisClient;
  keyPrefix: string;
  api: WecomApi;
  log: Logger;
  limit: number;
  voiceFormat: 0 | 1;
  lockMs: number;
  /** Ingests one page (resolves once every message is durably queued). */
  onPage(items: KfItem[]): Promise<void>;
}

interface SyncPage extends WecomResult {
  next_cursor?: string;
  has_more?: number;
  msg_list?: KfItem[];
}

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0`;
/** Callback tokens live 10 minutes (doc). */
const SYNC_TOKEN_TTL_S = 600;
/** A misbehaving platform cannot keep one sync running forever. */
const MAX_PAGES_PER_RUN = 1000;

export class KfSync {
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly o: KfSyncOptions) {}

  private key(kind: 'cursor' | 'pending' | 'lock' | 'token', openKfid: string): string {
    return `${this.o.keyPrefix}kf:${kind}:${openKfid}`;
  }
  private get knownKey(): string {
    return `${this.o.keyPrefix}kf:known`;
  }

  /** Durably records "there is news for openKfid" (call before acknowledging the callback). */
  async markPending(openKfid: string, token?: string): Promise<void> {
    const multi = this.o.redis.multi().set(this.key('pending', openKfid), '1').sadd(this.knownKey, openKfid);
    if (token) multi.set(this.key('token', openKfid), token, 'EX', SYNC_TOKEN_TTL_S);
    await multi.exec();
  }

  async cursor(openKfid: string): Promise<string | null> {
    return this.o.redis.get(this.key('cursor', openKfid));
  }

  /** open_kfids with unfinished news (after a crash or a failed page). */
  async pendingKfids(extra: readonly string[] = []): Promise<string[]> {
    const known = new Set([...(await this.o.redis.smembers(this.knownKey)), ...extra]);
    const out: string[] = [];
    for (const id of known) if ((await this.o.redis.exists(this.key('pending', id))) === 1) out.push(id);
    return out;
  }

  /** Runs a sync for openKfid unless this process already runs one; never rejects (failures stay pending). */
  sync(openKfid: string): Promise<void> {
    let run = this.running.get(openKfid);
    if (!run) {
      run = this.runLocked(openKfid)
        .catch((err) => this.o.log.warn({ openKfid, err: (err as Error).message, code: (err as { code?: unknown }).code }, 'kf sync failed; will resume from the saved cursor'))
        .finally(() => this.running.delete(openKfid));
      this.running.set(openKfid, run);
    }
    return run;
  }

  private async runLocked(openKfid: string): Promise<void> {
    const { redis, lockMs } = this.o;
    const lockKey = this.key('lock', openKfid);
    const lockValue = randomBytes(12).toString('hex');
    for (;;) {
      if ((await redis.set(lockKey, lockValue, 'PX', lockMs, 'NX')) !== 'OK') {
        // Another process is syncing; it will see the pending flag before it lets go.
        this.o.log.debug({ openKfid }, 'kf sync already running elsewhere');
        return;
      }
      try {
        // Clear the flag *before* reading, so news arriving during the read sets it again and is not lost.
        while ((await redis.del(this.key('pending', openKfid))) === 1) {
          try {
            await this.drain(openKfid, lockKey, lockValue);
          } catch (err) {
            await redis.set(this.key('pending', openKfid), '1');
            throw err;
          }
        }
      } finally {
        await redis.eval(RELEASE, 1, lockKey, lockValue).catch(() => undefined);
      }
      // News that arrived between our last check and the release found the lock taken: take another turn.
      if ((await redis.exists(this.key('pending', openKfid))) !== 1) return;
    }
  }

  /** Reads pages from the saved cursor until has_more is 0. */
  private async drain(openKfid: string, lockKey: string, lockValue: string): Promise<void> {
    const { redis, api, log } = this.o;
    for (let pages = 0; pages < MAX_PAGES_PER_RUN; pages++) {
      const cursor = await redis.get(this.key('cursor', openKfid));
      const token = await redis.get(this.key('token', openKfid));
      const body = {
        ...(cursor && { cursor }),
        ...(token && { token }),
        limit: this.o.limit,
        voice_format: this.o.voiceFormat,
        open_kfid: openKfid,
      };
      let page: SyncPage;
      try {
        page = await api.post<SyncPage>('kf/sync_msg', body);
      } catch (err) {
        // An expired callback Token (95007): read on without it (stricter rate limit, but no message is stuck).
        if ((err as { code?: unknown }).code === 95007 && token) {
          await redis.del(this.key('token', openKfid));
          continue;
        }
        throw err;
      }
      const items = Array.isArray(page.msg_list) ? page.msg_list : [];
      await this.o.onPage(items);
      if (typeof page.next_cursor === 'string' && page.next_cursor !== '') await redis.set(this.key('cursor', openKfid), page.next_cursor);
      log.debug({ openKfid, count: items.length, hasMore: page.has_more }, 'kf page ingested');
      if ((await redis.eval(RENEW, 1, lockKey, lockValue, String(this.o.lockMs))) !== 1) {
        throw new Error('kf sync lock lost (a page took longer than lockMs); another process resumes from the cursor');
      }
      if (page.has_more !== 1) return;
    }
  }
}
