/**
 * Pieces shared by the WeChat decoders (mini-program and official account): the common envelope fields, the message
 * types both products push (text, image, voice, video, shortvideo, location, link), and the fallback that keeps an
 * unknown type as an `event` with its raw fields instead of dropping it. Pure: no I/O, no clock unless given.
 */
import { badRequest } from '../../gateway/errors.js';
import { capRaw, capText, conversationIdFor, createMessage, type Content, type UnifiedMessage } from '../../gateway/message.js';

export interface WechatDecodeContext {
  channel: { id: string; type: string };
  /** "xml" or "json": recorded in raw.format. */
  format: string;
  /** Gateway URL at which a platform media id will be served (ctx.media.urlFor). */
  mediaUrl: (mediaId: string) => string;
  now?: number;
}

export type Fields = Record<string, unknown>;

/** A user's message allows customer-service replies for 48 h. */
export const REPLY_WINDOW_MS = 48 * 3600 * 1000;
/** Entering a customer-service session, a menu click, a follow or a QR scan allow replies for 1 minute only. */
export const EVENT_REPLY_WINDOW_MS = 60 * 1000;


/** A field as a string: XML gives strings, JSON may give numbers. */
export function field(fields: Fields, name: string): string | undefined {
  const v = fields[name];
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  return undefined;
}

function number(fields: Fields, name: string): number | undefined {
  const v = field(fields, name);
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Media ids every decoded message refers to (so the adapter registers them with the media store): the content's own,
 * and a video's thumbnail (ThumbMediaId), whose gateway URL is in `thumbUrl`.
 */
export function mediaIdsOf(content: Content, fields: Fields = {}): string[] {
  const ids = 'mediaId' in content && content.mediaId ? [content.mediaId] : [];
  const thumb = content.type === 'video' ? field(fields, 'ThumbMediaId') : undefined;
  if (thumb) ids.push(thumb);
  return ids;
}

/** The platform's dedupe key: MsgId for messages, FromUserName+CreateTime (+event name) for events. */
export function wechatDedupeKey(fields: Fields): string {
  const msgId = field(fields, 'MsgId') ?? field(fields, 'MsgID');
  if (msgId) return msgId;
  return `${field(fields, 'FromUserName')}:${field(fields, 'CreateTime')}:${field(fields, 'Event') ?? field(fields, 'MsgType')}`;
}

/** The content of the message types both products push; undefined for types this does not know. */
export function commonContent(fields: Fields, ctx: WechatDecodeContext): Content | undefined {
  const media = (mediaId: string | undefined) => (mediaId ? { mediaId, url: ctx.mediaUrl(mediaId) } : {});
  switch (field(fields, 'MsgType')) {
    case 'text':
      return { type: 'text', text: capText(field(fields, 'Content') ?? '') };
    case 'image':
      return { type: 'image', ...media(field(fields, 'MediaId')) };
    case 'voice': {
      const format = field(fields, 'Format')?.toLowerCase();
      const transcript = field(fields, 'Recognition');
      return {
        type: 'audio',
        ...media(field(fields, 'MediaId')),
        ...(format && { mimeType: format === 'amr' ? 'audio/amr' : `audio/${format}` }),
        ...(transcript && { transcript }),
      };
    }
    case 'video':
    case 'shortvideo': {
      const thumb = field(fields, 'ThumbMediaId');
      return { type: 'video', ...media(field(fields, 'MediaId')), ...(thumb && { thumbUrl: ctx.mediaUrl(thumb) }) };
    }
    case 'location': {
      const latitude = number(fields, 'Location_X');
      const longitude = number(fields, 'Location_Y');
      if (latitude === undefined || longitude === undefined || Math.abs(latitude) > 90 || Math.abs(longitude) > 180) return undefined;
      const label = field(fields, 'Label');
      return { type: 'location', latitude, longitude, ...(label && { label }) };
    }
    case 'link': {
      const description = field(fields, 'Description');
      return { type: 'link', title: field(fields, 'Title') ?? '', url: field(fields, 'Url') ?? '', ...(description && { description }) };
    }
    default:
      return undefined;
  }
}

/** Anything not understood: kept as an event named after its MsgType/Event, with the scalar fields as data. */
export function unknownContent(fields: Fields): Content {
  const msgType = field(fields, 'MsgType') ?? 'unknown';
  const event = msgType === 'event' ? (field(fields, 'Event') ?? 'event') : msgType;
  const key = field(fields, 'EventKey');
  return { type: 'event', event, ...(key && { key }), data: fields };
}

/** Wraps decoded content into a UnifiedMessage for the sender (openid) of a push. */
export function wechatMessage(fields: Fields, content: Content, ctx: WechatDecodeContext): UnifiedMessage {
  const openid = field(fields, 'FromUserName');
  if (!openid) throw badRequest('invalid_message', 'the push has no FromUserName (openid)');
  const now = ctx.now ?? Date.now();
  const created = number(fields, 'CreateTime');
  const toUser = field(fields, 'ToUserName');
  return createMessage({
    channel: ctx.channel.id,
    channelType: ctx.channel.type,
    direction: 'in',
    conversationId: conversationIdFor(ctx.channel.id, openid),
    channelMessageId: wechatDedupeKey(fields),
    sender: { id: openid, role: 'customer' },
    timestamp: created !== undefined && created > 0 ? created * 1000 : now,
    receivedAt: now,
    content,
    metadata: { ...(toUser && { toUserName: toUser }) },
    raw: capRaw(`${ctx.channel.type}/${ctx.format}`, fields),
  });
}
