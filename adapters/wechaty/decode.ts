/**
 * The pure Wechaty decoder: a Wechaty message payload (wechaty-puppet `payloads.Message`) plus what the adapter
 * looked up for it (names, the url-link / mini-program payload, the media URL) → a UnifiedMessage, or the reason it
 * is not one the bot should see (our own message, a room message that does not mention us, a recalled message...).
 */
// The light sub-modules only: the decoder must not load Wechaty itself (seconds of start-up).
import * as PUPPET_TYPES from 'wechaty-puppet/types';
import type * as payloads from 'wechaty-puppet/payloads';
import { capRaw, capText, conversationIdFor, createMessage, type Content, type UnifiedMessage } from '../../gateway/message.js';

export type RoomPolicy = 'mention' | 'all' | 'off';

export interface WechatyDecodeInput {
  payload: payloads.Message;
  /** The logged-in account. */
  self: { id: string; name?: string | undefined };
  talkerName?: string | undefined;
  roomTopic?: string | undefined;
  /** For Url messages. */
  urlLink?: payloads.UrlLink | undefined;
  /** For MiniProgram messages. */
  miniProgram?: payloads.MiniProgram | undefined;
  /** Gateway URL of the message's media (image/file/audio/video), registered with the media store. */
  mediaUrl?: string | undefined;
  /** Rooms: answer only when mentioned ("mention"), always ("all"), or never ("off"). */
  roomPolicy: RoomPolicy;
  /** When set, only these room ids or topics are answered. */
  allowedRooms?: readonly string[] | undefined;
}

export type SkipReason = 'self' | 'room_off' | 'room_not_allowed' | 'not_mentioned' | 'recalled';
export type WechatyDecoded = { message: UnifiedMessage; roomId?: string | undefined } | { skip: SkipReason };

const MENTION_SPACE = /[\u2005\u0020]/;

/** Did this room message mention us? The puppet's mention list, else "@<our name>" in the text. */
export function mentionsSelf(payload: payloads.Message, self: { id: string; name?: string | undefined }): boolean {
  const list = 'mentionIdList' in payload ? payload.mentionIdList : undefined;
  if (list?.includes(self.id)) return true;
  return !!self.name && (payload.text ?? '').includes(`@${self.name}`);
}

/** The text with the "@name " mention of us removed (WeChat separates a mention with U+2005). */
export function stripSelfMention(text: string, selfName: string | undefined): string {
  if (!selfName) return text.trim();
  const escaped = selfName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return text.replace(new RegExp(`@${escaped}(${MENTION_SPACE.source}|$)`, 'g'), ' ').replace(/\s{2,}/g, ' ').trim();
}

export function wechatyConversationId(channelId: string, talkerId: string, roomId: string | undefined): string {
  return roomId ? conversationIdFor(channelId, 'room', roomId, talkerId) : conversationIdFor(channelId, 'contact', talkerId);
}

export function decodeWechatyMessage(input: WechatyDecodeInput, channel: { id: string; type: string }, now = Date.now()): WechatyDecoded {
  const { payload, self } = input;
  if (payload.talkerId === self.id) return { skip: 'self' };
  const roomId = 'roomId' in payload && payload.roomId ? payload.roomId : undefined;
  let text = payload.text ?? '';
  if (roomId) {
    if (input.roomPolicy === 'off') return { skip: 'room_off' };
    if (input.allowedRooms?.length && !input.allowedRooms.some((r) => r === roomId || r === input.roomTopic)) return { skip: 'room_not_allowed' };
    if (input.roomPolicy === 'mention') {
      if (!mentionsSelf(payload, self)) return { skip: 'not_mentioned' };
    }
    text = stripSelfMention(text, self.name);
  }
  const content = contentOf(input, text);
  if (!content) return { skip: 'recalled' };
  const message = createMessage({
    channel: channel.id,
    channelType: channel.type,
    direction: 'in',
    conversationId: wechatyConversationId(channel.id, payload.talkerId, roomId),
    channelMessageId: payload.id,
    sender: { id: payload.talkerId, role: 'customer', ...(input.talkerName && { name: input.talkerName }) },
    // Puppets give milliseconds; some older ones seconds.
    timestamp: payload.timestamp < 1e12 ? payload.timestamp * 1000 : payload.timestamp,
    receivedAt: now,
    content,
    metadata: {
      wechatyType: PUPPET_TYPES.Message[payload.type] ?? String(payload.type),
      ...(roomId && { roomId }),
      ...(input.roomTopic && { roomTopic: input.roomTopic.slice(0, 200) }),
    },
    raw: capRaw('wechaty/payload', payload),
  });
  return { message, roomId };
}

function contentOf(input: WechatyDecodeInput, text: string): Content | undefined {
  const { payload, mediaUrl } = input;
  const T = PUPPET_TYPES.Message;
  const media = { ...(mediaUrl && { url: mediaUrl }), mediaId: payload.id };
  switch (payload.type) {
    case T.Text:
      return { type: 'text', text: capText(text) };
    case T.Image:
      return { type: 'image', ...media };
    case T.Attachment:
      return { type: 'file', ...media, ...(payload.filename && { name: payload.filename }) };
    case T.Audio:
      return { type: 'audio', ...media };
    case T.Video:
      return { type: 'video', ...media };
    case T.Url: {
      const link = input.urlLink;
      if (!link) return { type: 'event', event: 'url_link_unavailable' };
      return {
        type: 'link',
        url: link.url,
        title: link.title || link.url,
        ...(link.description && { description: link.description }),
        ...(link.thumbnailUrl && { thumbUrl: link.thumbnailUrl }),
      };
    }
    case T.MiniProgram: {
      const mp = input.miniProgram;
      return {
        type: 'link',
        title: mp?.title || mp?.description || 'Mini Program',
        ...(mp?.description && { description: mp.description }),
        ...(mp?.thumbUrl && { thumbUrl: mp.thumbUrl }),
        ...(mp?.appid && { appId: mp.appid }),
        ...(mp?.pagePath && { pagePath: mp.pagePath }),
      };
    }
    case T.Recalled:
      return undefined;
    default:
      // Contact cards, emoticons, transfers, red envelopes, locations...: the helpdesk sees that something came.
      return { type: 'event', event: `wechaty_${(T[payload.type] ?? 'unknown').toLowerCase()}`, ...(text && { data: { text: text.slice(0, 2000) } }) };
  }
}
