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
 * - im_receive_msg: the customer wrote to the enterprise account → a customer message;
 * - im_enter_direct_msg, im_recall_msg and any other event → `event`;
 * - im_send_msg: the account itself sent something (our own API replies carry `source` = our client_key, and a
 *   person typing in the Douyin app is a human agent) → never fed back to the bot.
 */
import { capRaw, conversationIdFor, createMessage, type Content, type UnifiedMessage } from '../../gateway/message.js';

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
  | { kind: 'skip'; reason: string };

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
    return { kind: 'skip', reason: str(content.source) === opts.clientKey ? 'our own reply echoed back' : 'sent by the account owner in the Douyin app' };
  }
  const userId = str(body.from_user_id);
  const accountOpenId = str(body.to_user_id);
  if (!userId) return { kind: 'skip', reason: `${body.event} names no user` };
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
    content: body.event === 'im_receive_msg' ? messageContent(content) : { type: 'event', event: body.event || 'unknown', ...(Object.keys(content).length > 0 && { data: content }) },
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

export function douyinConversationId(channelId: string, accountOpenId: string, userId: string): string {
  return conversationIdFor(channelId, accountOpenId, userId);
}

function messageContent(c: Record<string, unknown>): Content {
  const type = str(c.message_type);
  switch (type) {
    case 'text': {
      // The text field's exact name is not shown in the docs; `text` is what the samples use, `content` a fallback.
      const text = str(c.text) || str(obj(c.text).text) || str(c.content);
      return text ? { type: 'text', text } : { type: 'event', event: 'text', data: c };
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
