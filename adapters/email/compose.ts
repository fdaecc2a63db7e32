/**
 * The pure part of outbound mail: a UnifiedMessage + the conversation reference → nodemailer message options that
 * thread correctly in every client (In-Reply-To = the customer's last Message-ID, References = theirs + it,
 * "Re:" subject without stacking), with a plain-text and an HTML part. Bot replies are marked
 * `Auto-Submitted: auto-replied` (RFC 3834) so well-behaved auto-responders on the other side do not answer them;
 * replies written by an agent are ordinary mail and carry no such mark.
 */
import { randomBytes } from 'node:crypto';
import type Mail from 'nodemailer/lib/mailer/index.js';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { contentAsText, type UnifiedMessage } from '../../gateway/message.js';
import { messageIds, replyReferences, replySubject } from './threads.js';

export interface ComposeOptions {
  address: string;
  name?: string | undefined;
}

/** Reference context keys the adapter writes on every inbound mail and reads here. */
export interface EmailContext {
  lastMessageId: string;
  references: string;
  subject: string;
  root: string;
  replyTo?: string;
}

export function newMessageIdFor(gatewayMessageId: string, address: string): string {
  const domain = address.split('@')[1] ?? 'localhost';
  return `<${gatewayMessageId}.${randomBytes(4).toString('hex')}@${domain}>`;
}

export function composeReply(
  message: UnifiedMessage,
  reference: ConversationReference,
  opts: ComposeOptions,
  messageId: string,
): Mail.Options {
  const context = reference.context as Partial<EmailContext>;
  const text = contentAsText(message.content);
  const lastId = context.lastMessageId;
  const references = lastId ? replyReferences(messageIds(context.references), lastId) : [];
  const headers: Record<string, string> = {};
  if (message.sender.role === 'bot') {
    headers['Auto-Submitted'] = 'auto-replied';
    // Exchange/Outlook honour this instead of RFC 3834: no out-of-office answers to a bot.
    headers['X-Auto-Response-Suppress'] = 'All';
  }
  return {
    from: opts.name ? { name: opts.name, address: opts.address } : opts.address,
    to: context.replyTo ?? reference.peerId,
    subject: replySubject(context.subject),
    messageId,
    ...(lastId && { inReplyTo: lastId, references: references.join(' ') }),
    text,
    html: textToHtml(message),
    headers,
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A minimal HTML rendering: paragraphs and line breaks kept, links clickable, nothing else invented. */
function textToHtml(message: UnifiedMessage): string {
  const content = message.content;
  const linkify = (s: string) => escapeHtml(s).replace(/\bhttps?:\/\/[^\s<&]+/g, (url) => `<a href="${url}">${url}</a>`);
  let body: string;
  if (content.type === 'link' && content.url) {
    body = `<p><a href="${escapeHtml(content.url)}">${escapeHtml(content.title)}</a></p>${content.description ? `<p>${linkify(content.description)}</p>` : ''}`;
  } else {
    body = contentAsText(content)
      .split(/\n{2,}/)
      .map((p) => `<p>${linkify(p).replace(/\n/g, '<br>')}</p>`)
      .join('\n');
  }
  return `<!doctype html><html><body>${body}</body></html>`;
}
