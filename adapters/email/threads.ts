/**
 * Mail threading: which conversation a mail belongs to. Every Message-ID the gateway sees or sends is mapped (in
 * Redis) to its thread root. A new mail joins the thread of the first of its In-Reply-To / References ids that is
 * known (newest first); otherwise the oldest References entry is the root (RFC 5322: References starts with the
 * thread's first message), and a mail with neither starts its own thread.
 */
import type { RedisClient } from '../types.js';

/** Mappings outlive any support thread a person would still reply to. */
export const THREAD_TTL_DAYS = 180;
const THREAD_TTL_SECONDS = THREAD_TTL_DAYS * 24 * 3600;
/** References can grow without bound on long threads; keep the root and the most recent ids (RFC 5322 3.6.4). */
const MAX_REFERENCES = 20;

export class ThreadIndex {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyPrefix: string,
  ) {}

  private key(messageId: string): string {
    return `${this.keyPrefix}thread:${messageId.toLowerCase()}`;
  }

  /** The root of the thread `mail` belongs to (its own Message-ID when it starts one). */
  async rootOf(mail: { messageId: string; inReplyTo?: string | undefined; references: string[] }): Promise<string> {
    const candidates = [...(mail.inReplyTo ? [mail.inReplyTo] : []), ...[...mail.references].reverse()];
    for (const id of candidates) {
      const root = await this.redis.get(this.key(id));
      if (root) return root;
    }
    return mail.references[0] ?? mail.inReplyTo ?? mail.messageId;
  }

  /** Whether a mail with this Message-ID was read (or sent) within the mappings' lifetime. */
  async knows(messageId: string): Promise<boolean> {
    return (await this.redis.exists(this.key(messageId))) === 1;
  }

  async remember(messageId: string, root: string): Promise<void> {
    await this.redis.set(this.key(messageId), root, 'EX', THREAD_TTL_SECONDS);
  }
}

/** Message-IDs in a header value ("<a@b> <c@d>"), each with its angle brackets. */
export function messageIds(value: string | string[] | undefined): string[] {
  const text = Array.isArray(value) ? value.join(' ') : (value ?? '');
  return text.match(/<[^<>\s]+>/g) ?? [];
}

/** The References of a reply to a mail: the mail's References plus its own Message-ID, bounded. */
export function replyReferences(references: string[], messageId: string): string[] {
  const all = [...references.filter((r) => r !== messageId), messageId];
  if (all.length <= MAX_REFERENCES) return all;
  return [all[0]!, ...all.slice(all.length - (MAX_REFERENCES - 1))];
}

/** "Re: <subject>" without stacking "Re: Re:" / "RE:" / "AW:" / "回复：" prefixes. */
export function replySubject(subject: string | undefined): string {
  const base = (subject ?? '').replace(/^\s*((re|aw|sv|antw|回复|答复)\s*(\[\d+\])?\s*[:：]\s*)+/i, '').trim();
  return base ? `Re: ${base}` : 'Re: your message';
}
