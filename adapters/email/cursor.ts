/**
 * Where the inbox reader is: the mailbox's UIDVALIDITY, the highest UID whose mail is safely ingested, and that
 * mail's internal date. Persisted in Redis after each mail, so a restart resumes exactly there. A crash between
 * ingest and cursor write re-reads one mail, which the Message-ID dedupe then drops: never a miss, never a repeat.
 */
import type { RedisClient } from '../types.js';

export interface Cursor {
  uidValidity: string;
  lastUid: number;
  /** Internal date (ms) of the last processed mail; anchors the re-read window after a UIDVALIDITY change. */
  lastDate: number;
  /** After a UIDVALIDITY change, the highest UID that existed then: mail up to it may have been read under the old UIDs. */
  resyncUid: number;
}

export class CursorStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly key: string,
  ) {}

  async load(): Promise<Cursor | undefined> {
    const h = await this.redis.hgetall(this.key);
    if (!h.uidValidity || h.lastUid === undefined) return undefined;
    return { uidValidity: h.uidValidity, lastUid: Number(h.lastUid), lastDate: Number(h.lastDate ?? 0), resyncUid: Number(h.resyncUid ?? 0) };
  }

  async save(cursor: Cursor): Promise<void> {
    await this.redis.hset(this.key, {
      uidValidity: cursor.uidValidity,
      lastUid: String(cursor.lastUid),
      lastDate: String(cursor.lastDate),
      resyncUid: String(cursor.resyncUid),
    });
  }
}
