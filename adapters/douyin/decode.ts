/**
 * Pure decoder: one Douyin webhook event (enterprise-account private messages, scope im.direct_message) → a
 * UnifiedMessage, or why it is not one.
 *
 * Envelope `{event, client_key, from_user_id, to_user_id, log_id, content}`; `content` arrives as a JSON string or as
 * an object (both appear in the docs). IM content: conversation_short_id, server_message_id, conversation_type,
 * message_type (text, image, emoji, video, user_local_image, user_local_video, retain_consult_card, other), source,
 * create_time (ms), user_infos[{open_id, nick_name, avatar}]. Image/video messages carry no URL (doc: view them in
 * the app), so they map to media without a url; everything not mapped is kept as an `event` with the content.
 *
 * - im_receive_msg: the customer wrote to the enterprise account → a customer message (any message_type);
 * - im_send_msg: the account itself sent something (our own API replies carry `source` = our client_key, and a
 *   person typing in the Douyin app is a human agent) → never fed back to the bot;
 * - everything else (im_enter_direct_msg, im_recall_msg, group events, authorize / unauthorize, contract_*) → skipped.
 *   A reply must answer a received message (`msg_id` = its server_message_id), and ingesting an event would replace
 *   the conversation's reference with one that has nothing to answer; a recall names a message the customer took
 *   back, which must never become the one answered. `unauthorize` is flagged so it is logged as a warning: the
 *   channel stops working until the account authorises the app again.
 */
import { capRaw, capText, conversationIdFor, createMessage, type Content, type UnifiedMessage } from '../../gateway/message.js';

export interface DouyinEvent {
  event: string;
  client_key?: string;
  from_user_id?: string;
  to_user_id?: string;
  log_id?: string;
  content?: unknown;
  [field: string]: unknown;
}

export type DecodedDouyin =
  | {
      kind: 'message';
      message: UnifiedMessage;
      /** The customer's open_id: where replies go. */
      userId: string;
      /** The enterprise account's open_id. */
      accountOpenId: string;
      conversationShortId?: string;
      serverMessageId?: string;
    }
  | { kind: 'skip'; reason: string; level: 'debug' | 'info' | 'warn' };

export function parseContent(content: unknown): Record<string, unknown> {
  if (typeof content === 'string') {
    try {
      const parsed = JSON.parse(content) as unknown;
      return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : { value: parsed };
    } catch {
      return { text: content };
    }
  }
  return content && typeof content === 'object' && !Array.isArray(content) ? (content as Record<string, unknown>) : {};
}

export function decodeDouyinEvent(
  body: DouyinEvent,
  channel: { id: string; type: string },
  opts: { clientKey: string; msgIdHeader?: string },
  now = Date.now(),
): DecodedDouyin {
  const content = parseContent(body.content);
  if (body.event === 'im_send_msg') {
    const reason = str(content.source) === opts.clientKey ? 'our own reply echoed back' : 'sent by the account owner in the Douyin app';
    return { kind: 'skip', reason, level: 'debug' };
  }
  if (body.event !== 'im_receive_msg') return skippedEvent(body.event, content);
  const userId = str(body.from_user_id);
  const accountOpenId = str(body.to_user_id);
  if (!userId) return { kind: 'skip', reason: `${body.event} names no user`, level: 'info' };
  const serverMessageId = str(content.server_message_id);
  const conversationShortId = str(content.conversation_short_id);
  const createTime = Number(content.create_time);
  const profile = Array.isArray(content.user_infos)
    ? (content.user_infos as Array<Record<string, unknown>>).find((u) => u && u.open_id === userId)
    : undefined;
  const name = str(profile?.nick_name);
  const dedupe = serverMessageId ? `${body.event}:${serverMessageId}` : opts.msgIdHeader ? `hdr:${opts.msgIdHeader}` : body.log_id ? `log:${body.log_id}` : undefined;

  const message = createMessage({
    channel: channel.id,
    channelType: channel.type,
    direction: 'in',
    conversationId: douyinConversationId(channel.id, accountOpenId, userId),
    ...(dedupe && { channelMessageId: dedupe }),
    sender: { id: userId, role: 'customer', ...(name && { name }) },
    timestamp: Number.isFinite(createTime) && createTime > 0 ? createTime : now,
    receivedAt: now,
    content: messageContent(content),
    metadata: { event: body.event, ...(str(content.message_type) && { messageType: str(content.message_type) }) },
    raw: capRaw('douyin/json', { ...body, content }),
  });
  return {
    kind: 'message',
    message,
    userId,
    accountOpenId,
    ...(conversationShortId && { conversationShortId }),
    ...(serverMessageId && { serverMessageId }),
  };
}

function skippedEvent(event: string, content: Record<string, unknown>): DecodedDouyin {
  switch (event) {
    case 'im_recall_msg':
      return { kind: 'skip', reason: `the customer recalled message ${str(content.server_message_id) || '(no id)'}`, level: 'info' };
    case 'im_enter_direct_msg':
      return { kind: 'skip', reason: 'the customer opened the private-message page (nothing to answer yet)', level: 'debug' };
    case 'unauthorize':
    case 'contract_unauthorize':
      return { kind: 'skip', reason: 'the account revoked the authorisation: replies fail until it authorises the app again', level: 'warn' };
    default:
      return { kind: 'skip', reason: `${event || '(no event name)'} is not a received private message`, level: 'info' };
  }
}

export function douyinConversationId(channelId: string, accountOpenId: string, userId: string): string {
  return conversationIdFor(channelId, accountOpenId, userId);
}

function messageContent(c: Record<string, unknown>): Content {
  const type = str(c.message_type);
  switch (type) {
    case 'text': {
      // The text field's exact name is not shown in the docs; `text` is what the samples use, `content` a fallback.
      const text = str(c.text) || str(obj(c.text).text) || str(c.content);
      return text ? { type: 'text', text: capText(text) } : { type: 'event', event: 'text', data: c };
    }
    case 'image':
    case 'user_local_image':
    case 'emoji':
      return { type: 'image', ...(str(c.resource_url) && { url: str(c.resource_url) }) };
    case 'video':
    case 'user_local_video':
      return { type: 'video', ...(str(c.resource_url) && { url: str(c.resource_url) }) };
    default:
      return { type: 'event', event: type || 'other', data: c };
  }
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}
function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
}
