/**
 * Official account pushes → UnifiedMessage (pure). Ordinary messages (text, image, voice with Recognition, video,
 * shortvideo, location, link) and the user events a customer-service conversation cares about:
 * subscribe (incl. scan-to-follow, EventKey "qrscene_…"), unsubscribe, SCAN, LOCATION reports, menu CLICK and VIEW.
 * Everything else (template-send results, mass-send results, card events...) stays an `event` with its raw fields.
 */
import type { Content, UnifiedMessage } from '../../gateway/message.js';
import {
  commonContent,
  EVENT_REPLY_WINDOW_MS,
  field,
  REPLY_WINDOW_MS,
  unknownContent,
  wechatMessage,
  type Fields,
  type WechatDecodeContext,
} from '../shared/wechat-message.js';

export function decodeOfficialAccountPush(fields: Fields, ctx: WechatDecodeContext): UnifiedMessage {
  return wechatMessage(fields, officialAccountContent(fields, ctx), ctx);
}

function officialAccountContent(fields: Fields, ctx: WechatDecodeContext): Content {
  if (field(fields, 'MsgType') !== 'event') return commonContent(fields, ctx) ?? unknownContent(fields);
  const key = field(fields, 'EventKey');
  const withKey = (event: string, data?: Record<string, unknown>): Content => ({
    type: 'event',
    event,
    ...(key && { key }),
    ...(data && { data }),
  });
  switch (field(fields, 'Event')) {
    case 'subscribe': {
      // Following by scanning a parametric QR code: EventKey = "qrscene_<scene>", plus the code's Ticket.
      const ticket = field(fields, 'Ticket');
      return withKey('subscribe', ticket ? { ticket, scene: key?.replace(/^qrscene_/, '') } : undefined);
    }
    case 'unsubscribe':
      return { type: 'event', event: 'unsubscribe' };
    case 'SCAN': {
      const ticket = field(fields, 'Ticket');
      return withKey('scan', ticket ? { ticket } : undefined);
    }
    case 'LOCATION': {
      const latitude = Number(field(fields, 'Latitude'));
      const longitude = Number(field(fields, 'Longitude'));
      const precision = Number(field(fields, 'Precision'));
      return { type: 'event', event: 'location_report', data: { latitude, longitude, precision } };
    }
    case 'CLICK':
      return withKey('menu_click');
    case 'VIEW': {
      const menuId = field(fields, 'MenuId');
      return withKey('menu_view', menuId ? { menuId } : undefined);
    }
    default:
      return unknownContent(fields);
  }
}

/**
 * How long a push allows customer-service replies (服务号 customer-service message doc): a user's message 48 h; a
 * menu click, a follow (including scan-to-follow) or a QR scan 1 minute; other events (menu links, location reports,
 * template and mass-send results...) open nothing.
 */
export function replyWindowMs(message: UnifiedMessage): number {
  if (message.content.type !== 'event') return REPLY_WINDOW_MS;
  return ['menu_click', 'subscribe', 'scan'].includes(message.content.event) ? EVENT_REPLY_WINDOW_MS : 0;
}

/** Events after which no message can be sent (the reply window closes at once). */
export function closesReplyWindow(message: UnifiedMessage): boolean {
  return message.content.type === 'event' && message.content.event === 'unsubscribe';
}
