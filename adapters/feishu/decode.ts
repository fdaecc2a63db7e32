/**
 * Feishu/Lark event payloads → what the adapter does with them. Pure: no I/O, no clock except `now`.
 *
 * Envelopes (after decryption): `url_verification` {challenge, token}; schema 2.0 {schema, header{event_id,
 * event_type, token, ...}, event}; legacy v1 {uuid, token, type:"event_callback", event{type}}.
 * `im.message.receive_v1`: event.sender{sender_id{open_id,union_id,user_id}, sender_type}, event.message{message_id,
 * chat_id, chat_type p2p|group, message_type, content (a JSON *string*), mentions[], create_time (ms, string)}.
 */
import { z } from 'zod';
import { capRaw, capText, conversationIdFor, createMessage, type Content, type UnifiedMessage } from '../../gateway/message.js';
import type { ReferenceInput } from '../types.js';

export type Envelope =
  | { kind: 'challenge'; challenge: string; token: string | undefined }
  | { kind: 'event'; eventId: string; eventType: string; token: string | undefined; event: unknown }
  | { kind: 'legacy'; eventType: string; token: string | undefined };

const V2 = z.object({
  schema: z.literal('2.0'),
  header: z.object({ event_id: z.string().min(1), event_type: z.string().min(1), token: z.string().optional() }).passthrough(),
  event: z.unknown(),
});

/** Classifies a decrypted body; throws a message that becomes a 400 when it is none of the known shapes. */
export function parseEnvelope(body: unknown): Envelope {
  const b = body as Record<string, unknown> | null;
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new Error('the event body must be a JSON object');
  if (b.type === 'url_verification') {
    if (typeof b.challenge !== 'string') throw new Error('url_verification without a challenge');
    return { kind: 'challenge', challenge: b.challenge, token: typeof b.token === 'string' ? b.token : undefined };
  }
  if (b.schema !== undefined) {
    const v2 = V2.safeParse(b);
    if (!v2.success) throw new Error(`not a schema 2.0 event: ${v2.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    return { kind: 'event', eventId: v2.data.header.event_id, eventType: v2.data.header.event_type, token: v2.data.header.token, event: v2.data.event };
  }
  if (b.type === 'event_callback') {
    const type = (b.event as { type?: unknown } | undefined)?.type;
    return { kind: 'legacy', eventType: typeof type === 'string' ? type : 'unknown', token: typeof b.token === 'string' ? b.token : undefined };
  }
  throw new Error('neither url_verification nor an event (no schema/type field)');
}

const Mention = z.object({
  key: z.string(),
  id: z.object({ open_id: z.string().optional(), union_id: z.string().optional(), user_id: z.string().optional() }).partial(),
  name: z.string().optional(),
});

export const MessageReceiveEvent = z.object({
  sender: z.object({
    sender_id: z.object({ open_id: z.string().optional(), union_id: z.string().optional(), user_id: z.string().optional() }),
    sender_type: z.string(),
    tenant_key: z.string().optional(),
  }),
  message: z.object({
    message_id: z.string().min(1),
    root_id: z.string().optional(),
    parent_id: z.string().optional(),
    create_time: z.string().optional(),
    chat_id: z.string().min(1),
    thread_id: z.string().optional(),
    chat_type: z.string(),
    message_type: z.string(),
    content: z.string(),
    mentions: z.array(Mention).optional(),
  }),
});
export type MessageReceiveEvent = z.infer<typeof MessageReceiveEvent>;

export interface DecodeOptions {
  /** 'mention': in group chats, only messages that @-mention the bot; 'all': every group message. */
  groupMessages: 'mention' | 'all';
  /** The bot's open_id, to recognise its mention; needed only for groupMessages 'mention'. */
  botOpenId: string | undefined;
}

export type DecodeOutcome =
  | { kind: 'message'; message: UnifiedMessage; reference: ReferenceInput }
  | { kind: 'skip'; reason: string };

export function decodeMessageEvent(
  event: MessageReceiveEvent,
  eventId: string,
  channel: { id: string; type: string },
  opts: DecodeOptions,
  now = Date.now(),
): DecodeOutcome {
  const { sender, message } = event;
  if (sender.sender_type !== 'user') return { kind: 'skip', reason: `sender_type ${sender.sender_type}` };
  const senderId = sender.sender_id.open_id ?? sender.sender_id.union_id ?? sender.sender_id.user_id;
  if (!senderId) return { kind: 'skip', reason: 'sender has no id' };
  const mentions = message.mentions ?? [];
  if (message.chat_type === 'group' && opts.groupMessages === 'mention') {
    const mentioned = opts.botOpenId !== undefined && mentions.some((m) => m.id.open_id === opts.botOpenId);
    if (!mentioned) return { kind: 'skip', reason: 'group message without a mention of the bot' };
  }
  const content = decodeContent(message.message_type, message.content, mentions.map((m) => m.key));
  const created = Number(message.create_time);
  const timestamp = Number.isFinite(created) && created > 0 ? created : now;
  const mentionName = mentions.find((m) => m.id.open_id === senderId)?.name;

  const unified = createMessage({
    channel: channel.id,
    channelType: channel.type,
    direction: 'in',
    // One conversation per chat: a p2p chat_id is one person with the bot, a group chat_id the whole group.
    conversationId: conversationIdFor(channel.id, message.chat_id),
    channelMessageId: message.message_id,
    sender: { id: senderId, role: 'customer', ...(mentionName && { name: mentionName }) },
    timestamp,
    receivedAt: now,
    content,
    metadata: { chatType: message.chat_type },
    raw: capRaw('feishu/im.message.receive_v1', { event_id: eventId, ...event }),
  });
  const context: Record<string, string> = { chatId: message.chat_id, chatType: message.chat_type, messageId: message.message_id };
  if (sender.tenant_key) context.tenantKey = sender.tenant_key;
  return { kind: 'message', message: unified, reference: { peerId: senderId, threadId: message.chat_id, context } };
}

/**
 * Mention placeholders (`@_user_1`) are noise for the bot; strip them. One pass over the message's own keys, longest
 * first and never followed by a digit, so `@_user_1` does not eat the start of `@_user_10`.
 */
function stripMentions(text: string, keys: string[]): string {
  const escaped = [...keys].sort((a, b) => b.length - a.length).map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const stripped = keys.length > 0 ? text.replace(new RegExp(`(?:${escaped.join('|')})(?!\\d)`, 'g'), '') : text;
  return stripped.replace(/[ \t]{2,}/g, ' ').trim();
}

type PostNode = { tag?: string; text?: string; href?: string; user_id?: string; user_name?: string; image_key?: string };

export function decodeContent(type: string, raw: string, mentionKeys: string[] = []): Content {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = undefined;
  }
  // Every message_type's content is a JSON object; anything else ("null", "[]", a number) is kept as it came.
  if (!isPlainObject(parsed)) return { type: 'event', event: type, data: { content: raw.slice(0, 1000) } };
  const c = parsed;
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  switch (type) {
    case 'text':
      return { type: 'text', text: capText(stripMentions(typeof c.text === 'string' ? c.text : '', mentionKeys)) || '[empty]' };
    case 'post': {
      // Rich text: paragraphs of inline nodes. Received posts are not keyed by language; sent ones may be.
      const body = (Array.isArray(c.content) ? c : (Object.values(c).find((v) => Array.isArray((v as { content?: unknown })?.content)) ?? {})) as {
        title?: unknown;
        content?: unknown[];
      };
      // Paragraphs are arrays of node objects; anything else in their place is skipped, not trusted.
      const lines = (body.content ?? []).filter(Array.isArray).map((paragraph: unknown[]) =>
        paragraph
          .filter(isPlainObject)
          .map((n: PostNode) => (n.tag === 'text' || n.tag === 'a' ? (typeof n.text === 'string' ? n.text : '') : n.tag === 'img' ? '[image]' : ''))
          .join('')
          .trim(),
      );
      const title = typeof body.title === 'string' ? body.title : undefined;
      const text = [title, ...lines].filter((l) => l && l.length > 0).join('\n');
      return { type: 'text', text: capText(stripMentions(text, mentionKeys)) || '[post]' };
    }
    case 'image':
      return { type: 'image', ...(str(c.image_key) && { mediaId: str(c.image_key) }) };
    case 'file':
      return { type: 'file', ...(str(c.file_key) && { mediaId: str(c.file_key) }), ...(str(c.file_name) && { name: str(c.file_name) }) };
    case 'audio':
      return { type: 'audio', ...(str(c.file_key) && { mediaId: str(c.file_key) }), ...(typeof c.duration === 'number' && { durationMs: c.duration }) };
    case 'media':
      return {
        type: 'video',
        ...(str(c.file_key) && { mediaId: str(c.file_key) }),
        ...(typeof c.duration === 'number' && { durationMs: c.duration }),
      };
    case 'location': {
      const latitude = Number(c.latitude);
      const longitude = Number(c.longitude);
      if (Number.isFinite(latitude) && Number.isFinite(longitude) && Math.abs(latitude) <= 90 && Math.abs(longitude) <= 180) {
        return { type: 'location', latitude, longitude, ...(str(c.name) && { label: str(c.name) }) };
      }
      return { type: 'event', event: 'location', data: c };
    }
    case 'sticker':
      return { type: 'event', event: 'sticker', ...(str(c.file_key) && { key: str(c.file_key) }) };
    case 'share_chat':
      return { type: 'event', event: 'share_chat', ...(str(c.chat_id) && { key: str(c.chat_id) }) };
    case 'share_user':
      return { type: 'event', event: 'share_user', ...(str(c.user_id) && { key: str(c.user_id) }) };
    default:
      // interactive cards, merge_forward, system, share_calendar_event, todo...: kept as an event with its payload.
      return { type: 'event', event: type, data: capData(c) };
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function capData(c: Record<string, unknown>): Record<string, unknown> {
  const text = JSON.stringify(c);
  return text.length <= 4000 ? c : { truncated: text.slice(0, 4000) };
}
