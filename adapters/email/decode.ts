/**
 * The pure part of inbound mail: a mailparser result → what the adapter needs (threading ids, customer, visible
 * text, attachments, loop guard) → UnifiedMessages. Redis lookups (thread root) and storage (attachments) happen
 * in the adapter; everything here is testable without a server.
 */
import type { Attachment, ParsedMail } from 'mailparser';
import { capRaw, capText, conversationIdFor, createMessage, type UnifiedMessage } from '../../gateway/message.js';
import { mailBodyText } from './body-text.js';
import { guardReason, type GuardReason } from './guards.js';
import { messageIds } from './threads.js';

export interface InboundMail {
  /** With angle brackets; synthesised from the mailbox position when the mail has none. */
  messageId: string;
  inReplyTo: string | undefined;
  references: string[];
  from: { address: string; name?: string | undefined };
  replyTo: string | undefined;
  subject: string;
  date: number;
  text: string;
  attachments: Attachment[];
  guard: GuardReason | undefined;
  headers: Record<string, string>;
}

/** Headers kept in `raw` for audit: the ones threading and the guards look at. */
const AUDIT_HEADERS = ['message-id', 'in-reply-to', 'references', 'from', 'reply-to', 'to', 'subject', 'date', 'auto-submitted', 'precedence', 'list-id'];

/** A header's value from the raw header lines (mailparser folds List-* into one object, so lines are the truth). */
export function rawHeader(parsed: ParsedMail, name: string): string | undefined {
  const line = parsed.headerLines.find((h) => h.key === name);
  if (!line) return undefined;
  return line.line.slice(line.line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
}

/**
 * `receivedAt`: when the mailbox got the mail (its IMAP internal date); it stands in for a Date header that is
 * missing, unreadable or before 1970 (a message timestamp cannot be negative).
 */
export function readInboundMail(parsed: ParsedMail, opts: { ownAddress: string; fallbackId: string; receivedAt?: number }): InboundMail {
  const sender = parsed.from?.value[0];
  const address = sender?.address?.toLowerCase() ?? '';
  const header = (name: string) => rawHeader(parsed, name);
  const headers: Record<string, string> = {};
  for (const name of AUDIT_HEADERS) {
    const value = header(name);
    if (value !== undefined) headers[name] = value.slice(0, 2000);
  }
  return {
    messageId: messageIds(parsed.messageId)[0] ?? `<${opts.fallbackId}@imap.invalid>`,
    inReplyTo: messageIds(parsed.inReplyTo)[0],
    references: messageIds(parsed.references),
    from: { address, name: sender?.name || undefined },
    replyTo: parsed.replyTo?.value[0]?.address?.toLowerCase(),
    subject: parsed.subject ?? '',
    date: mailDate(parsed.date) ?? opts.receivedAt ?? Date.now(),
    text: mailBodyText({ text: parsed.text, html: parsed.html }),
    // Inline images referenced from the HTML (logos, signature pictures) are layout, not something the customer sent.
    attachments: parsed.attachments.filter((a) => !(a.related && a.contentType.startsWith('image/'))),
    guard: guardReason({ from: address, ownAddress: opts.ownAddress, header, returnPath: header('return-path') }),
    headers,
  };
}

function mailDate(date: Date | undefined): number | undefined {
  const time = date?.getTime();
  return time !== undefined && Number.isSafeInteger(time) && time >= 0 ? time : undefined;
}

/** One conversation per customer and thread. */
export function emailConversationId(channelId: string, customer: string, threadRoot: string): string {
  return conversationIdFor(channelId, customer.toLowerCase(), threadRoot.toLowerCase());
}

export interface StoredAttachment {
  name: string | undefined;
  mimeType: string;
  size: number;
  /** Absent when the attachment was over the size cap and not stored. */
  url: string | undefined;
}

/**
 * The messages one mail becomes: its text (when it has any) and one `file` message per attachment. The first one is
 * the mail's primary message (the one the bot answers); the others carry `metadata.part` so replies to them are
 * not mailed separately (one mail, one answer).
 */
export function mailToMessages(
  mail: InboundMail,
  attachments: StoredAttachment[],
  channel: { id: string; type: string },
  conversationId: string,
  now = Date.now(),
): UnifiedMessage[] {
  const base = {
    channel: channel.id,
    channelType: channel.type,
    direction: 'in' as const,
    conversationId,
    sender: { id: mail.from.address, role: 'customer' as const, ...(mail.from.name && { name: mail.from.name }) },
    timestamp: mail.date,
    receivedAt: now,
  };
  const messages: UnifiedMessage[] = [];
  if (mail.text || attachments.length === 0) {
    messages.push(
      createMessage({
        ...base,
        channelMessageId: mail.messageId,
        content: { type: 'text', text: capText(mail.text || mail.subject || '(empty mail)') },
        metadata: { subject: mail.subject.slice(0, 500), attachments: attachments.length },
        raw: capRaw('email/headers', mail.headers),
      }),
    );
  }
  attachments.forEach((a, index) => {
    messages.push(
      createMessage({
        ...base,
        channelMessageId: `${mail.messageId}#${index + 1}`,
        content: {
          type: 'file',
          mimeType: a.mimeType,
          size: a.size,
          ...(a.name !== undefined && { name: a.name }),
          ...(a.url !== undefined && { url: a.url }),
        },
        metadata: {
          subject: mail.subject.slice(0, 500),
          ...(messages.length > 0 && { part: 'attachment' }),
          ...(a.url === undefined && { notStored: 'over_size_limit' }),
        },
        raw: capRaw('email/headers', mail.headers),
      }),
    );
  });
  return messages;
}
