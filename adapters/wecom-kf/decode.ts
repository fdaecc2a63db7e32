/**
 * Pure decoder: one `msg_list[]` item of WeCom kf `sync_msg` (path 94670) → a UnifiedMessage, or the reason it is
 * not a customer message.
 *
 * - origin 3 (customer) messages: text, image, voice, video, file, location, link, miniprogram, business_card,
 *   msgmenu, channels_shop_product/order, merged_msg, channels, meeting, schedule, note... — the ones with a unified
 *   shape are mapped, the rest kept as `event` named after the msgtype with the payload in `data`;
 * - origin 4 (system) `event` items: enter_session (with welcome_code), msg_send_fail, user_recall_msg, ... →
 *   `event` named after event_type; events with no customer (servicer_status_change) skip, and so does
 *   session_status_change, which moves the conversation's state instead;
 * - origin 5 is a human servicer typing in the WeCom client: not the customer, so it never reaches the bot; like a
 *   session_status_change event, it tells who holds the session (kfSessionChangeOf).
 *
 * `msgid` is the dedupe key: a page fetched twice (crash between ingest and cursor save) ingests nothing twice.
 *
 * An item that cannot be made into a valid message never throws: one bad item would otherwise fail its page, keep
 * the cursor where it is and block every later message of the kf account. It becomes an `undecodable` event for
 * the same customer instead (kind 'undecodable', so the adapter logs it), or a skip when not even that is possible.
 */
import { capRaw, capText, conversationIdFor, createMessage, type Content, type UnifiedMessage } from '../../gateway/message.js';

export interface KfItem {
  msgid: string;
  open_kfid?: string;
  external_userid?: string;
  send_time?: number;
  origin?: number;
  servicer_userid?: string;
  msgtype: string;
  [field: string]: unknown;
}

export type DecodedKf =
  | { kind: 'message'; message: UnifiedMessage; openKfid: string; externalUserId: string; fromCustomer: boolean; welcomeCode?: string }
  | { kind: 'undecodable'; message: UnifiedMessage; openKfid: string; externalUserId: string; fromCustomer: boolean; error: string }
  | { kind: 'skip'; reason: string };

export const ORIGIN_CUSTOMER = 3;
export const ORIGIN_SYSTEM = 4;
export const ORIGIN_SERVICER = 5;

export function decodeKfItem(item: KfItem, channel: { id: string; type: string }, now = Date.now()): DecodedKf {
  if (!item || typeof item !== 'object') return { kind: 'skip', reason: 'msg_list item is not an object' };
  if (item.origin === ORIGIN_SERVICER) return { kind: 'skip', reason: 'sent by a human servicer in the WeCom client' };
  const payload = obj(item[item.msgtype]);
  const isEvent = item.msgtype === 'event';
  const openKfid = str(item.open_kfid) || str(payload.open_kfid);
  const externalUserId = str(item.external_userid) || str(payload.external_userid);
  if (!openKfid || !externalUserId) return { kind: 'skip', reason: `${isEvent ? str(payload.event_type) : item.msgtype} concerns no customer` };
  // Who holds the session is the gateway's conversation state (kfSessionChangeOf → ctx.platformMoved); as a message
  // the change would reopen the conversation its end just closed and reach the bot.
  if (isEvent && str(payload.event_type) === 'session_status_change') return { kind: 'skip', reason: 'session state change (conversation state follows it)' };
  const welcomeCode = isEvent ? str(payload.welcome_code) : '';
  const fromCustomer = item.origin === ORIGIN_CUSTOMER;
  const base = { openKfid, externalUserId, fromCustomer };
  let message: UnifiedMessage;
  try {
    message = createMessage({
      channel: channel.id,
      channelType: channel.type,
      direction: 'in',
      conversationId: kfConversationId(channel.id, openKfid, externalUserId),
      channelMessageId: item.msgid,
      sender: { id: externalUserId, role: fromCustomer ? 'customer' : 'system' },
      timestamp: typeof item.send_time === 'number' && item.send_time > 0 ? item.send_time * 1000 : now,
      receivedAt: now,
      content: isEvent ? eventContent(payload) : contentOf(item.msgtype, payload),
      metadata: {
        openKfid,
        msgType: item.msgtype,
        ...(typeof item.origin === 'number' && { origin: item.origin }),
        ...(item.servicer_userid && { servicerUserId: item.servicer_userid }),
        ...(item.msgtype === 'text' && str(payload.menu_id) && { menuId: str(payload.menu_id) }),
      },
      raw: capRaw('wecom-kf/json', item),
    });
  } catch (err) {
    const error = problemOf(err);
    try {
      return { kind: 'undecodable', message: undecodableMessage(item, channel, base, error, now), ...base, error };
    } catch (again) {
      return { kind: 'skip', reason: `undecodable: ${error}; ${problemOf(again)}` };
    }
  }
  return { kind: 'message', message, ...base, ...(welcomeCode && { welcomeCode }) };
}

/** The least a customer's unreadable item still says: who, where, which msgtype, and why it could not be read. */
function undecodableMessage(
  item: KfItem,
  channel: { id: string; type: string },
  who: { openKfid: string; externalUserId: string; fromCustomer: boolean },
  error: string,
  now: number,
): UnifiedMessage {
  return createMessage({
    channel: channel.id,
    channelType: channel.type,
    direction: 'in',
    conversationId: kfConversationId(channel.id, who.openKfid, who.externalUserId),
    channelMessageId: str(item.msgid) || undefined,
    sender: { id: who.externalUserId, role: who.fromCustomer ? 'customer' : 'system' },
    timestamp: now,
    receivedAt: now,
    content: { type: 'event', event: 'undecodable', data: { msgtype: str(item.msgtype), error } },
    metadata: { openKfid: who.openKfid, msgType: str(item.msgtype), undecodable: true },
    raw: capRaw('wecom-kf/json', item),
  });
}

function problemOf(err: unknown): string {
  const issues = (err as { issues?: Array<{ path: PropertyKey[]; message: string }> }).issues;
  if (Array.isArray(issues) && issues.length > 0) return issues.map((i) => `${i.path.map(String).join('.')}: ${i.message}`).join('; ').slice(0, 300);
  return String((err as Error)?.message ?? err).slice(0, 300);
}

/** kf session states (path 94669). */
export const KF_STATE = { new: 0, bot: 1, queued: 2, human: 3, ended: 4 } as const;

export interface KfSessionChange {
  openKfid: string;
  externalUserId: string;
  state: number;
  servicerUserId?: string;
}

/**
 * What an item says about the session's state, if anything: a servicer writing from the WeCom client (origin 5)
 * holds it (3); a session_status_change event (94698/94670: change_type 1 taken from the queue, 2 transferred,
 * 4 a servicer wrote in an ended session → 3; 3 ended → 4).
 */
export function kfSessionChangeOf(item: KfItem): KfSessionChange | undefined {
  if (!item || typeof item !== 'object') return undefined;
  const payload = obj(item[item.msgtype]);
  const openKfid = str(item.open_kfid) || str(payload.open_kfid);
  const externalUserId = str(item.external_userid) || str(payload.external_userid);
  if (!openKfid || !externalUserId) return undefined;
  if (item.origin === ORIGIN_SERVICER) {
    const servicer = str(item.servicer_userid);
    return { openKfid, externalUserId, state: KF_STATE.human, ...(servicer && { servicerUserId: servicer }) };
  }
  if (item.msgtype !== 'event' || str(payload.event_type) !== 'session_status_change') return undefined;
  const changeType = Number(payload.change_type);
  if (changeType === 3) return { openKfid, externalUserId, state: KF_STATE.ended };
  if (changeType === 1 || changeType === 2 || changeType === 4) {
    const servicer = str(payload.new_servicer_userid);
    return { openKfid, externalUserId, state: KF_STATE.human, ...(servicer && { servicerUserId: servicer }) };
  }
  return undefined;
}

export function kfConversationId(channelId: string, openKfid: string, externalUserId: string): string {
  return conversationIdFor(channelId, openKfid, externalUserId);
}

function contentOf(msgtype: string, p: Record<string, unknown>): Content {
  switch (msgtype) {
    case 'text':
      return { type: 'text', text: capText(str(p.content)) };
    case 'image':
      return { type: 'image', mediaId: str(p.media_id) };
    case 'voice':
      return { type: 'audio', mediaId: str(p.media_id) };
    case 'video':
      return { type: 'video', mediaId: str(p.media_id) };
    case 'file':
      return { type: 'file', mediaId: str(p.media_id) };
    case 'location': {
      const latitude = Number(p.latitude);
      const longitude = Number(p.longitude);
      if (!Number.isFinite(latitude) || !Number.isFinite(longitude) || Math.abs(latitude) > 90 || Math.abs(longitude) > 180) {
        return { type: 'event', event: 'location', data: p };
      }
      const label = [str(p.name), str(p.address)].filter(Boolean).join(' ');
      return { type: 'location', latitude, longitude, ...(label && { label }) };
    }
    case 'link':
      return {
        type: 'link',
        title: str(p.title),
        ...(str(p.url) && { url: str(p.url) }),
        ...(str(p.desc) && { description: str(p.desc) }),
        ...(str(p.pic_url) && { thumbUrl: str(p.pic_url) }),
      };
    case 'miniprogram':
      return { type: 'link', title: str(p.title), ...(str(p.appid) && { appId: str(p.appid) }), ...(str(p.pagepath) && { pagePath: str(p.pagepath) }) };
    default:
      // business_card, msgmenu, channels_shop_product, merged_msg, channels, meeting, schedule, note, and anything new.
      return { type: 'event', event: msgtype || 'unknown', ...(Object.keys(p).length > 0 && { data: p }) };
  }
}

function eventContent(p: Record<string, unknown>): Content {
  const data: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) if (k !== 'event_type' && k !== 'welcome_code') data[k] = v;
  const scene = str(p.scene);
  return { type: 'event', event: str(p.event_type) || 'event', ...(scene && { key: scene }), ...(Object.keys(data).length > 0 && { data }) };
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
function str(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}
