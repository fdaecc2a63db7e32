/**
 * Email channel: one support mailbox. Mail is read over IMAP (IDLE, polling fallback; adapters/email/inbox.ts),
 * threaded into conversations by Message-ID / In-Reply-To / References (threads.ts), decoded (decode.ts) and
 * ingested; replies go out over SMTP with nodemailer, threaded and marked per RFC 3834 (compose.ts).
 *
 * Guarded mail (auto-replies, bulk/list mail, bounces, our own mail; guards.ts) is never ingested: it is logged
 * with its reason and counted in Redis (`<prefix>:ch:<id>:guarded`, shown on /readyz), because feeding it to the bot
 * is exactly how mail loops start. Mail the handler cannot parse is ingested as an `event` so nothing is lost.
 */
import { simpleParser } from 'mailparser';
import nodemailer, { type Transporter } from 'nodemailer';
import { ZodError } from 'zod';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { capRaw, createMessage, type ContentType, type UnifiedMessage } from '../../gateway/message.js';
import { defineAdapter, DeliveryError, type AdapterContext, type AdapterHealth, type ChannelAdapter } from '../types.js';
import { composeReply, newMessageIdFor, type EmailContext } from './compose.js';
import { CursorStore } from './cursor.js';
import { emailConversationId, mailToMessages, readInboundMail, type InboundMail, type StoredAttachment } from './decode.js';
import { ImapInbox, type FetchedMail } from './inbox.js';
import { EmailOptions } from './options.js';
import { messageIds, replyReferences, ThreadIndex } from './threads.js';

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text', 'link']);
/** How long the "this inbound message was an attachment part" marks live (longer than any delivery retry). */
const PART_TTL_SECONDS = 7 * 24 * 3600;

class EmailAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  private readonly threads: ThreadIndex;
  private readonly inbox: ImapInbox;
  private readonly smtp: Transporter;
  /** Attachment bytes of the mail being ingested, handed to the media store's fetcher by media id. */
  private readonly pendingAttachments = new Map<string, { content: Buffer; contentType: string; fileName?: string | undefined }>();
  private guardedCount = 0;

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: EmailOptions,
    private readonly ctx: AdapterContext,
  ) {
    this.threads = new ThreadIndex(ctx.redis, ctx.keyPrefix);
    const cursors = new CursorStore(ctx.redis, `${ctx.keyPrefix}imap:${options.imap.mailbox}`);
    this.inbox = new ImapInbox(options.imap, options.maxMessageBytes, cursors, (mail) => this.onMail(mail), ctx.log);
    const { host, port, secure, requireTLS, auth, timeoutMs } = options.smtp;
    this.smtp = nodemailer.createTransport({
      host,
      port,
      secure,
      requireTLS,
      ...(auth && { auth }),
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    });
    ctx.media.setFetcher(async (mediaId) => {
      const pending = this.pendingAttachments.get(mediaId);
      // Attachment bytes exist only inside the mail; they are stored while it is ingested and served from disk after.
      if (!pending) throw new Error(`attachment ${mediaId} is not held by this process`);
      return { body: pending.content, contentType: pending.contentType, fileName: pending.fileName, size: pending.content.length };
    });
  }

  async start(): Promise<void> {
    await this.inbox.start();
  }

  async stop(): Promise<void> {
    await this.inbox.stop();
    this.smtp.close();
  }

  health(): AdapterHealth {
    const ok = this.inbox.state === 'connected';
    const detail = `imap ${this.inbox.state}${this.inbox.lastError ? ` (${this.inbox.lastError})` : ''}; guarded mails skipped since start: ${this.guardedCount}`;
    return { ok, detail };
  }

  // ── Inbound ────────────────────────────────────────────────────────────────────────────────────────────────────
  private async onMail(fetched: FetchedMail): Promise<void> {
    let mail: InboundMail;
    try {
      const parsed = await simpleParser(fetched.source, { skipImageLinks: true, skipTextToHtml: true });
      mail = readInboundMail(parsed, {
        ownAddress: this.options.address,
        fallbackId: `uid-${fetched.uid}-${fetched.internalDate}`,
        receivedAt: fetched.internalDate,
      });
    } catch (err) {
      await this.ingestUnreadable(fetched, err as Error);
      return;
    }
    try {
      await this.ingestMail(fetched, mail);
    } catch (err) {
      // Redis or the queue being away is worth waiting for: the cursor stays and the mail is read again. A mail whose
      // messages fail validation fails the same way on every read and would hold up every mail behind it.
      if (!(err instanceof ZodError)) throw err;
      await this.ingestUnreadable(fetched, err);
    }
  }

  private async ingestMail(fetched: FetchedMail, mail: InboundMail): Promise<void> {
    const log = this.ctx.log.child({ uid: fetched.uid });
    if (mail.guard) {
      this.guardedCount++;
      await this.ctx.redis.hincrby(`${this.ctx.keyPrefix}guarded`, mail.guard, 1);
      log.info({ reason: mail.guard, from: mail.from.address, messageId: mail.messageId }, 'mail not answered: loop/noise guard');
      return;
    }
    if (fetched.mayBeRepeat && (await this.threads.knows(mail.messageId))) {
      log.info({ messageId: mail.messageId }, 'mail read before the UIDVALIDITY change: not ingested again');
      return;
    }
    const root = await this.threads.rootOf(mail);
    const conversationId = emailConversationId(this.id, mail.from.address, root);
    const attachments = await this.storeAttachments(mail, log);
    const messages = mailToMessages(mail, attachments, this, conversationId);
    const context: EmailContext = {
      lastMessageId: mail.messageId,
      references: replyReferences(mail.references, mail.messageId).join(' '),
      subject: mail.subject.slice(0, 500),
      root,
      ...(mail.replyTo && mail.replyTo !== mail.from.address && { replyTo: mail.replyTo }),
    };
    await this.threads.remember(mail.messageId, root);
    for (const message of messages) {
      if (message.metadata.part === 'attachment') {
        await this.ctx.redis.set(`${this.ctx.keyPrefix}part:${message.id}`, '1', 'EX', PART_TTL_SECONDS);
      }
      const result = await this.ctx.ingest(message, {
        peerId: mail.from.address,
        ...(mail.from.name && { peerName: mail.from.name }),
        threadId: root,
        context: { ...context },
      });
      log.debug({ msgId: result.messageId, duplicate: result.duplicate, messageId: mail.messageId }, 'mail ingested');
    }
  }

  private async storeAttachments(mail: InboundMail, log: AdapterContext['log']): Promise<StoredAttachment[]> {
    const cap = Math.min(this.options.attachments.maxBytes, this.ctx.media.maxBytes);
    const stored: StoredAttachment[] = [];
    for (const [index, a] of mail.attachments.entries()) {
      const info: StoredAttachment = { name: a.filename, mimeType: a.contentType, size: a.size, url: undefined };
      if (a.size <= cap) {
        const mediaId = `${mail.messageId}#${index + 1}`;
        this.pendingAttachments.set(mediaId, { content: a.content, contentType: a.contentType, fileName: a.filename });
        try {
          await this.ctx.media.register(mediaId);
          info.url = (await this.ctx.media.resolve(mediaId)).url;
        } catch (err) {
          log.warn({ err: (err as Error).message, name: a.filename }, 'attachment not stored');
        } finally {
          this.pendingAttachments.delete(mediaId);
        }
      } else {
        log.info({ name: a.filename, size: a.size, cap }, 'attachment over the size cap: passed on without its bytes');
      }
      stored.push(info);
    }
    return stored;
  }

  /** A mail that cannot be read or turned into messages still reaches the helpdesk as an event, with the position to find it. */
  private async ingestUnreadable(fetched: FetchedMail, err: Error): Promise<void> {
    this.ctx.log.warn({ uid: fetched.uid, err: err.message.slice(0, 1000) }, 'mail could not be parsed; passed on as an event');
    const peer = 'unknown-sender';
    const message = createMessage({
      channel: this.id,
      channelType: this.type,
      direction: 'in',
      conversationId: emailConversationId(this.id, peer, `uid-${fetched.uid}`),
      channelMessageId: `unparsed-${fetched.uid}-${fetched.internalDate}`,
      sender: { id: peer, role: 'customer' },
      content: { type: 'event', event: 'unparsable_mail', key: String(fetched.uid), data: { error: err.message.slice(0, 1000), size: fetched.size } },
      raw: capRaw('email/source', fetched.source.subarray(0, 4096).toString('latin1')),
    });
    await this.ctx.ingest(message, { peerId: peer, context: {} });
  }

  // ── Outbound ───────────────────────────────────────────────────────────────────────────────────────────────────
  async send(message: UnifiedMessage, reference: ConversationReference) {
    const isBot = message.sender.role === 'bot';
    if (isBot && message.replyTo && (await this.ctx.redis.exists(`${this.ctx.keyPrefix}part:${message.replyTo}`))) {
      // One mail, one answer: the bot already answers the mail's primary part.
      this.ctx.log.info({ msgId: message.id, replyTo: message.replyTo }, 'bot reply to an attachment part not mailed');
      return {};
    }
    const messageId = newMessageIdFor(message.id, this.options.address);
    const mail = composeReply(message, reference, { address: this.options.address, name: this.options.name }, messageId);
    if (isBot) await this.checkBotReplyLimit(String(mail.to), message.id);
    try {
      await this.smtp.sendMail(mail);
    } catch (err) {
      throw smtpDeliveryError(err as SmtpError);
    }
    // The customer's answer to this mail will cite our Message-ID: map it to the thread.
    const root = reference.context.root ?? reference.threadId;
    if (root) await this.threads.remember(messageId, root);
    return { channelMessageId: messageId };
  }

  /**
   * Fixed-window counter per recipient (the address the mail goes to, Reply-To included, so rotating senders cannot
   * aim many replies at one address): a customer's auto-responder that escapes the guards still cannot loop for long.
   * Each reply counts once: a delivery retried after a temporary SMTP failure was already let through.
   */
  private async checkBotReplyLimit(recipient: string, gatewayMessageId: string): Promise<void> {
    const { count, perSeconds } = this.options.botReplyLimit;
    const key = `${this.ctx.keyPrefix}botlimit:${recipient.toLowerCase()}`;
    const first = await this.ctx.redis.set(`${key}:counted:${gatewayMessageId}`, '1', 'EX', perSeconds, 'NX');
    if (first === null) return;
    const used = await this.ctx.redis.incr(key);
    if (used === 1) await this.ctx.redis.expire(key, perSeconds);
    if (used > count) {
      throw new DeliveryError(`bot reply limit reached for this recipient (${count} per ${perSeconds} s)`, {
        retryable: false,
        code: 'sender_rate_limited',
        reason: 'rate_limited',
      });
    }
  }
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
}

/** SMTP reply codes: 4xx is temporary (retry), 5xx permanent (dead-letter); no reply at all is a network fault. */
export function smtpDeliveryError(err: SmtpError): DeliveryError {
  const status = err.responseCode;
  const detail = `smtp: ${err.response ?? err.message}`;
  if (status !== undefined && status >= 500) {
    const reason = status === 550 || status === 551 || status === 553 ? 'recipient_unreachable' : status === 535 ? 'auth' : 'invalid_request';
    return new DeliveryError(detail, { retryable: false, code: status, reason });
  }
  if (err.code === 'EAUTH') return new DeliveryError(detail, { retryable: false, code: 'EAUTH', reason: 'auth' });
  return new DeliveryError(detail, { retryable: true, code: status ?? err.code ?? 'smtp_error', reason: 'platform_error' });
}

export { messageIds };

export default defineAdapter({
  type: 'email',
  description: 'Email: one mailbox read over IMAP (IDLE), replies over SMTP, threaded by Message-ID/References',
  options: EmailOptions,
  create: (instance, ctx) => new EmailAdapter(instance.id, instance.type, instance.options, ctx),
});
