/**
 * Personal WeChat through Wechaty: the adapter runs one Wechaty bot with the configured puppet, turns its messages
 * into UnifiedMessages (decode.ts) and answers through the same bot, to the contact or into the room. Login is a
 * QR-code scan on the phone: the code and the login state are logged and shown on /readyz.
 *
 * Wechaty is imported when the channel starts, not when the gateway loads: it costs seconds of start-up, which
 * gateways without a Wechaty channel should not pay.
 */
import type { MessageInterface, WechatyInterface } from 'wechaty/impls';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import type { ContentType, UnifiedMessage } from '../../gateway/message.js';
import * as PUPPET_TYPES from 'wechaty-puppet/types';
import { defineAdapter, DeliveryError, type AdapterContext, type AdapterHealth, type ChannelAdapter } from '../types.js';
import { decodeWechatyMessage } from './decode.js';
import { WechatyOptions } from './options.js';

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text', 'link']);
const MEDIA_TYPES = new Set<number>([PUPPET_TYPES.Message.Image, PUPPET_TYPES.Message.Attachment, PUPPET_TYPES.Message.Audio, PUPPET_TYPES.Message.Video]);
const INGEST_ATTEMPTS = 3;

type LoginState = 'stopped' | 'starting' | 'waiting_for_scan' | 'logged_in' | 'logged_out' | 'failed';

export class WechatyAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  /** The running Wechaty instance (undefined until start). */
  bot: WechatyInterface | undefined;
  private state: LoginState = 'stopped';
  private detail = '';

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: WechatyOptions,
    private readonly ctx: AdapterContext,
  ) {
    ctx.media.setFetcher(async (messageId) => {
      const bot = this.bot;
      if (!bot?.isLoggedIn) throw new Error('wechaty is not logged in');
      const payload = await bot.puppet.messagePayload(messageId);
      const box =
        payload.type === PUPPET_TYPES.Message.Image
          ? await bot.puppet.messageImage(messageId, PUPPET_TYPES.Image.HD)
          : await bot.puppet.messageFile(messageId);
      const body = await box.toBuffer();
      return { body, contentType: box.mediaType, fileName: box.name, size: body.length };
    });
  }

  async start(): Promise<void> {
    this.state = 'starting';
    const { WechatyBuilder } = await import('wechaty');
    const { puppet, puppetToken, puppetOptions, sessionName } = this.options;
    const bot = WechatyBuilder.build({
      puppet: puppet as never,
      puppetOptions: { ...puppetOptions, ...(puppetToken && { token: puppetToken }) },
      ...(sessionName && { name: sessionName }),
    });
    this.bot = bot;
    const log = this.ctx.log;
    bot.on('scan', (qrcode, status) => {
      this.state = 'waiting_for_scan';
      const statusName = PUPPET_TYPES.ScanStatus[status] ?? String(status);
      this.detail = `scan the QR code with the WeChat app (status ${statusName}): ${qrcode}`;
      log.warn({ qrcode, status: statusName }, 'wechaty login: scan this QR code value with the WeChat app');
    });
    bot.on('login', (user) => {
      this.state = 'logged_in';
      this.detail = `logged in as ${user.name()} (${user.id})`;
      log.info({ user: user.id, name: user.name() }, 'wechaty logged in');
    });
    bot.on('logout', (user, reason) => {
      this.state = 'logged_out';
      this.detail = `logged out${reason ? `: ${reason}` : ''}`;
      log.warn({ user: user.id, reason }, 'wechaty logged out');
    });
    bot.on('error', (err) => log.error({ err: (err as Error).message ?? String(err) }, 'wechaty error'));
    bot.on('message', (message) => {
      this.onMessage(message).catch((err: Error) => log.error({ err: err.message, wechatyId: message.id }, 'wechaty message lost'));
    });
    try {
      await bot.start();
    } catch (err) {
      this.state = 'failed';
      this.detail = `puppet ${puppet} failed to start: ${(err as Error).message}`;
      log.error({ err: (err as Error).message, puppet }, 'wechaty did not start');
    }
  }

  async stop(): Promise<void> {
    await this.bot?.stop().catch((err: Error) => this.ctx.log.warn({ err: err.message }, 'wechaty stop failed'));
    this.state = 'stopped';
  }

  health(): AdapterHealth {
    return { ok: this.state === 'logged_in', detail: `${this.state}${this.detail ? `: ${this.detail}` : ''}` };
  }

  private async onMessage(msg: MessageInterface): Promise<void> {
    const bot = this.bot;
    const payload = msg.payload;
    if (!bot || !payload || !bot.isLoggedIn) return;
    const self = bot.currentUser;
    const room = msg.room();
    const talker = msg.talker();
    const type = payload.type;
    const decoded = decodeWechatyMessage(
      {
        payload,
        self: { id: self.id, name: self.name() },
        talkerName: talker.name(),
        roomTopic: room ? await room.topic() : undefined,
        urlLink: type === PUPPET_TYPES.Message.Url ? await bot.puppet.messageUrl(payload.id).catch(() => undefined) : undefined,
        miniProgram: type === PUPPET_TYPES.Message.MiniProgram ? await bot.puppet.messageMiniProgram(payload.id).catch(() => undefined) : undefined,
        mediaUrl: MEDIA_TYPES.has(type) ? await this.ctx.media.register(payload.id) : undefined,
        roomPolicy: this.options.rooms.policy,
        allowedRooms: this.options.rooms.allow,
      },
      this,
    );
    if ('skip' in decoded) {
      this.ctx.log.debug({ wechatyId: payload.id, reason: decoded.skip }, 'wechaty message not for the bot');
      return;
    }
    const reference = {
      peerId: payload.talkerId,
      ...(talker.name() && { peerName: talker.name() }),
      ...(decoded.roomId && { threadId: decoded.roomId }),
      context: { ...(decoded.roomId && { roomId: decoded.roomId }) },
    };
    // Wechaty does not redeliver a message: retry the durable enqueue briefly before giving up on it.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.ctx.ingest(decoded.message, reference);
        return;
      } catch (err) {
        if (attempt >= INGEST_ATTEMPTS) throw err;
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
      }
    }
  }

  async send(message: UnifiedMessage, reference: ConversationReference) {
    const bot = this.bot;
    if (!bot?.isLoggedIn) {
      throw new DeliveryError(`wechaty is not logged in (${this.state})`, { retryable: true, code: 'not_logged_in', reason: 'auth' });
    }
    const roomId = reference.context.roomId ?? reference.threadId;
    const content = message.content;
    let sent: void | MessageInterface;
    if (roomId) {
      const room = await bot.Room.find({ id: roomId });
      if (!room) throw new DeliveryError(`room ${roomId} not found`, { retryable: false, code: 'room_not_found', reason: 'recipient_unreachable' });
      if (content.type === 'link' && content.url) sent = await room.say(new bot.UrlLink(linkPayload(content)));
      else {
        const mention = this.options.rooms.mentionSender ? await bot.Contact.find({ id: reference.peerId }) : undefined;
        sent = mention ? await room.say(textOf(message), mention) : await room.say(textOf(message));
      }
    } else {
      const contact = await bot.Contact.find({ id: reference.peerId });
      if (!contact) throw new DeliveryError(`contact ${reference.peerId} not found`, { retryable: false, code: 'contact_not_found', reason: 'recipient_unreachable' });
      sent = content.type === 'link' && content.url ? await contact.say(new bot.UrlLink(linkPayload(content))) : await contact.say(textOf(message));
    }
    return sent ? { channelMessageId: sent.id } : {};
  }
}

function textOf(message: UnifiedMessage): string {
  const c = message.content;
  if (c.type === 'text') return c.text;
  if (c.type === 'link') return [c.title, c.description, c.url].filter(Boolean).join('\n');
  return '';
}

function linkPayload(content: Extract<UnifiedMessage['content'], { type: 'link' }>) {
  return {
    url: content.url!,
    title: content.title,
    ...(content.description && { description: content.description }),
    ...(content.thumbUrl && { thumbnailUrl: content.thumbUrl }),
  };
}

export default defineAdapter({
  type: 'wechaty',
  description: 'Personal WeChat through a Wechaty puppet: QR-code login, contacts and rooms (@-mention), text/media/link in',
  options: WechatyOptions,
  create: (instance, ctx) => new WechatyAdapter(instance.id, instance.type, instance.options, ctx),
});
