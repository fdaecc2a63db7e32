/**
 * The long-lived IMAP side of the email channel: one imapflow connection on the configured mailbox, woken by IDLE
 * (EXISTS notifications) and by a safety poll, reading every mail with a UID above the saved cursor, in UID order,
 * one at a time; the cursor advances only after the mail's handler resolved (i.e. after ctx.ingest). A dropped
 * connection is re-opened with exponential backoff and jitter.
 *
 * UIDVALIDITY change (mailbox rebuilt or replaced; the old UIDs mean nothing): every mail whose internal date is
 * within `resyncDays` (at most as long as the thread index remembers Message-IDs) before the last processed one is
 * read again, flagged `mayBeRepeat`, and the adapter skips those whose Message-ID it already knows. When nothing had
 * been processed yet there is nothing to catch up with: the first-start rule applies. First start without a cursor:
 * "new" begins after the newest mail present, "all" reads the mailbox.
 */
import { ImapFlow, type FetchMessageObject } from 'imapflow';
import type { Logger } from 'pino';
import type { CursorStore, Cursor } from './cursor.js';
import type { EmailOptions } from './options.js';
import { THREAD_TTL_DAYS } from './threads.js';

export type InboxState = 'stopped' | 'connecting' | 'connected' | 'reconnecting';

export interface FetchedMail {
  uid: number;
  source: Buffer;
  internalDate: number;
  size: number;
  /** Present in the mailbox when its UIDVALIDITY changed, so possibly read before under another UID. */
  mayBeRepeat: boolean;
}

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 60_000;

export class ImapInbox {
  state: InboxState = 'stopped';
  lastError: string | undefined;
  private client: ImapFlow | undefined;
  private cursor: Cursor | undefined;
  private stopping = false;
  private draining: Promise<void> | undefined;
  private drainAgain = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failures = 0;

  constructor(
    private readonly options: EmailOptions['imap'],
    private readonly maxMessageBytes: number,
    private readonly cursors: CursorStore,
    private readonly handle: (mail: FetchedMail) => Promise<void>,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.stopping = false;
    // The first connection is awaited so a wrong password shows at start-up; later ones retry in the background.
    try {
      await this.connect();
    } catch (err) {
      this.scheduleReconnect(err as Error);
    }
    this.pollTimer = setInterval(() => this.wake('poll'), this.options.pollIntervalMs);
    this.pollTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.reconnectTimer);
    await this.draining?.catch(() => {});
    const client = this.client;
    this.client = undefined;
    if (client) await client.logout().catch(() => client.close());
    this.state = 'stopped';
  }

  private async connect(): Promise<void> {
    this.state = this.failures ? 'reconnecting' : 'connecting';
    const { host, port, secure, auth, idle, pollIntervalMs, mailbox } = this.options;
    const client = new ImapFlow({
      host,
      port,
      secure,
      auth,
      logger: false,
      disableAutoIdle: !idle,
      missingIdleCommand: 'NOOP',
      // IDLE (or the NOOP fallback) starts this long after the last command: soon, so new mail shows at once.
      autoIdleDelay: 1000,
      maxIdleTime: Math.min(pollIntervalMs, 25 * 60_000),
      connectionTimeout: 30_000,
    });
    client.on('error', (err: Error) => this.log.warn({ err: err.message }, 'imap connection error'));
    client.on('exists', (event: { path: string; count: number; prevCount: number }) => {
      if (event.count > event.prevCount) this.wake('exists');
    });
    client.on('close', () => {
      if (this.client !== client) return;
      this.client = undefined;
      if (!this.stopping) this.scheduleReconnect(new Error(this.lastError ?? 'connection closed'));
    });
    try {
      await client.connect();
      const box = await client.mailboxOpen(mailbox);
      this.client = client;
      this.cursor = await this.initialCursor(String(box.uidValidity), box.uidNext);
      this.state = 'connected';
      this.failures = 0;
      this.lastError = undefined;
      this.log.info({ mailbox, uidValidity: this.cursor.uidValidity, lastUid: this.cursor.lastUid, idle: idle && client.capabilities.has('IDLE') }, 'imap mailbox open');
      this.wake('connect');
    } catch (err) {
      this.lastError = (err as Error).message;
      client.close();
      throw err;
    }
  }

  private async initialCursor(uidValidity: string, uidNext: number): Promise<Cursor> {
    const saved = await this.cursors.load();
    if (saved && saved.uidValidity === uidValidity) return saved;
    if (saved && saved.lastDate > 0) {
      this.log.warn({ was: saved.uidValidity, now: uidValidity }, 'imap UIDVALIDITY changed: re-reading recent mail, mail already read is skipped by Message-ID');
      // Older than the thread index remembers, a re-read mail could not be told from a new one.
      const days = Math.min(this.options.resyncDays, THREAD_TTL_DAYS);
      const cursor: Cursor = { uidValidity, lastUid: 0, lastDate: Math.max(0, saved.lastDate - days * 86_400_000), resyncUid: uidNext - 1 };
      await this.cursors.save(cursor);
      return cursor;
    }
    if (saved) this.log.warn({ was: saved.uidValidity, now: uidValidity }, 'imap UIDVALIDITY changed before any mail was read: starting afresh');
    const cursor: Cursor = { uidValidity, lastUid: this.options.firstStart === 'all' ? 0 : uidNext - 1, lastDate: 0, resyncUid: 0 };
    await this.cursors.save(cursor);
    return cursor;
  }

  private scheduleReconnect(err: Error): void {
    if (this.stopping) return;
    this.failures++;
    this.lastError = err.message;
    this.state = 'reconnecting';
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.failures - 1));
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.log.warn({ err: err.message, attempt: this.failures, delayMs: delay }, 'imap disconnected; reconnecting');
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.connect().catch((e: Error) => this.scheduleReconnect(e));
    }, delay);
  }

  /** Runs one drain at a time; a wake-up during a drain makes it run once more instead of in parallel. */
  private wake(why: string): void {
    if (this.stopping || !this.client) return;
    if (this.draining) {
      this.drainAgain = true;
      return;
    }
    this.draining = (async () => {
      do {
        this.drainAgain = false;
        await this.drain(why);
      } while (this.drainAgain && !this.stopping && this.client);
    })()
      .catch((err: Error) => this.log.error({ err: err.message }, 'imap read failed; retried on the next wake-up'))
      .finally(() => (this.draining = undefined));
  }

  private async drain(why: string): Promise<void> {
    const client = this.client;
    const cursor = this.cursor;
    if (!client || !cursor) return;
    const query = cursor.lastUid === 0 && cursor.lastDate > 0 ? { since: new Date(cursor.lastDate) } : { uid: `${cursor.lastUid + 1}:*` };
    const found = await client.search(query, { uid: true });
    // "n:*" always matches the newest mail even when its UID is below n: filter.
    const uids = (found || []).filter((uid) => uid > cursor.lastUid).sort((a, b) => a - b);
    if (uids.length) this.log.debug({ why, count: uids.length }, 'imap new mail');
    for (const uid of uids) {
      if (this.stopping || this.client !== client) return;
      const fetched = (await client.fetchOne(
        String(uid),
        { uid: true, internalDate: true, size: true, source: { maxLength: this.maxMessageBytes } },
        { uid: true },
      )) as FetchMessageObject | false;
      if (!fetched || !fetched.source) continue; // expunged in the meantime
      const internalDate = readableTime(fetched.internalDate) ?? Date.now();
      const size = fetched.size ?? fetched.source.length;
      await this.handle({ uid, source: fetched.source, internalDate, size, mayBeRepeat: uid <= cursor.resyncUid });
      cursor.lastUid = uid;
      cursor.lastDate = Math.max(cursor.lastDate, internalDate);
      await this.cursors.save(cursor);
    }
  }
}

/** A date as ms since 1970, or undefined when missing, unreadable or before 1970. */
function readableTime(date: Date | string | undefined): number | undefined {
  const time = date === undefined ? NaN : new Date(date).getTime();
  return Number.isSafeInteger(time) && time >= 0 ? time : undefined;
}
