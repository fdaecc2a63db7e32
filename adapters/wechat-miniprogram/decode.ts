/**
 * Mini-program customer-service pushes → UnifiedMessage (pure). The documented session types are text, image,
 * miniprogrampage (a mini-program card the user shared) and the user_enter_tempsession event (the user opened the
 * customer-service session, SessionFrom = the contact button's session-from). Other ordinary types are decoded the
 * same way as for an official account; anything unknown stays an `event` with its raw fields.
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

export function decodeMiniProgramPush(fields: Fields, ctx: WechatDecodeContext): UnifiedMessage {
  return wechatMessage(fields, miniProgramContent(fields, ctx), ctx);
}

function miniProgramContent(fields: Fields, ctx: WechatDecodeContext): Content {
  const msgType = field(fields, 'MsgType');
  if (msgType === 'miniprogrampage') {
    const appId = field(fields, 'AppId');
    const pagePath = field(fields, 'PagePath');
    const thumbUrl = field(fields, 'ThumbUrl');
    return {
      type: 'link',
      title: field(fields, 'Title') ?? '',
      ...(appId && { appId }),
      ...(pagePath && { pagePath }),
      ...(thumbUrl && { thumbUrl }),
    };
  }
  if (msgType === 'event' && field(fields, 'Event') === 'user_enter_tempsession') {
    const sessionFrom = field(fields, 'SessionFrom');
    return { type: 'event', event: 'enter_session', ...(sessionFrom && { key: sessionFrom }) };
  }
  if (msgType === 'event') return unknownContent(fields);
  return commonContent(fields, ctx) ?? unknownContent(fields);
}

/**
 * How long a push allows customer-service replies (introduction/custom.md): a user's message 48 h, entering the
 * customer-service session 1 minute; other events open nothing.
 */
export function replyWindowMs(message: UnifiedMessage): number {
  if (message.content.type !== 'event') return REPLY_WINDOW_MS;
  return message.content.event === 'enter_session' ? EVENT_REPLY_WINDOW_MS : 0;
}
