/**
 * Pure decoder: the decrypted XML fields of a WeCom self-built app callback (接收消息与事件, path 90239/90240) → a
 * UnifiedMessage. Messages: text, image, voice, video, location, link. Events: subscribe, unsubscribe, enter_agent,
 * LOCATION, click, view, scancode_*, pic_*, location_select, template_card_event, ... — every event (and any
 * message type not listed) becomes an `event` with the raw fields, never dropped.
 *
 * Dedupe keys (the doc's advice): messages by MsgId; events by FromUserName + CreateTime (+ Event, EventKey).
 */
import { capRaw, capText, conversationIdFor, createMessage, type Content, type UnifiedMessage } from '../../gateway/message.js';
import { field, type WecomFields } from './callback.js';

export interface DecodedWecomApp {
  message: UnifiedMessage;
  /** The member's UserID: where replies go. */
  userId: string;
  agentId: string;
}

/** Fields every payload carries; an event's `data` holds the rest. */
const COMMON = new Set(['ToUserName', 'FromUserName', 'CreateTime', 'MsgType', 'Event', 'EventKey', 'AgentID', 'MsgId']);

export function decodeWecomAppMessage(fields: WecomFields, channel: { id: string; type: string }, now = Date.now()): DecodedWecomApp {
  const msgType = field(fields, 'MsgType') || 'unknown';
  const userId = field(fields, 'FromUserName') || 'sys';
  const agentId = field(fields, 'AgentID');
  const createTime = Number(field(fields, 'CreateTime'));
  const timestamp = Number.isFinite(createTime) && createTime > 0 ? createTime * 1000 : now;
  const msgId = field(fields, 'MsgId');
  const event = field(fields, 'Event');
  const channelMessageId = msgId
    ? `msg:${msgId}`
    : `evt:${userId}:${field(fields, 'CreateTime')}:${event || msgType}:${field(fields, 'EventKey')}`;

  const message = createMessage({
    channel: channel.id,
    channelType: channel.type,
    direction: 'in',
    conversationId: wecomAppConversationId(channel.id, userId),
    channelMessageId,
    // Contact-change and other system events come from "sys", not from a person.
    sender: { id: userId, role: userId === 'sys' ? 'system' : 'customer' },
    timestamp,
    receivedAt: now,
    content: contentOf(msgType, event, fields),
    metadata: { agentId, msgType },
    raw: capRaw('wecom-app/xml', fields),
  });
  return { message, userId, agentId };
}

export function wecomAppConversationId(channelId: string, userId: string): string {
  return conversationIdFor(channelId, userId);
}

// field() is called directly: a local helper arrow would be re-created, and wrapped in tsx's `__name`, per message.
function contentOf(msgType: string, event: string, fields: WecomFields): Content {
  switch (msgType) {
    case 'text':
      return { type: 'text', text: capText(field(fields, 'Content')) };
    case 'image':
      return { type: 'image', mediaId: field(fields, 'MediaId'), ...(field(fields, 'PicUrl') && { url: field(fields, 'PicUrl') }) };
    case 'voice':
      return { type: 'audio', mediaId: field(fields, 'MediaId'), mimeType: voiceMime(field(fields, 'Format')) };
    case 'video':
      return { type: 'video', mediaId: field(fields, 'MediaId') };
    case 'location': {
      const latitude = Number(field(fields, 'Location_X'));
      const longitude = Number(field(fields, 'Location_Y'));
      if (Number.isFinite(latitude) && Number.isFinite(longitude) && Math.abs(latitude) <= 90 && Math.abs(longitude) <= 180) {
        return { type: 'location', latitude, longitude, ...(field(fields, 'Label') && { label: field(fields, 'Label') }) };
      }
      return asEvent('location', fields);
    }
    case 'link':
      return {
        type: 'link',
        title: field(fields, 'Title'),
        ...(field(fields, 'Url') && { url: field(fields, 'Url') }),
        ...(field(fields, 'Description') && { description: field(fields, 'Description') }),
        ...(field(fields, 'PicUrl') && { thumbUrl: field(fields, 'PicUrl') }),
      };
    case 'event':
      return asEvent(event || 'event', fields);
    default:
      return asEvent(msgType, fields);
  }
}

function asEvent(name: string, fields: WecomFields): Content {
  const data: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) if (!COMMON.has(key)) data[key] = value;
  const key = field(fields, 'EventKey');
  return { type: 'event', event: name, ...(key && { key }), ...(Object.keys(data).length > 0 && { data }) };
}

function voiceMime(format: string): string {
  switch (format.toLowerCase()) {
    case 'amr':
      return 'audio/amr';
    case 'speex':
      return 'audio/speex';
    default:
      return format ? `audio/${format.toLowerCase()}` : 'audio/amr';
  }
}
