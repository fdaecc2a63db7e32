/**
 * Douyin enterprise-account private messages (抖音开放平台 私信, scope im.direct_message): signed JSON webhooks in at
 * `/webhooks/<id>` (verify_webhook challenge answered; X-Douyin-Signature checked over the raw bytes), replies out
 * through `POST /im/send/msg/` as the authorised enterprise account, answering the customer's latest message.
 */
import { reply, type WebhookReply, type WebhookRequest, type WebhookRoute } from '../http.js';
import { z } from 'zod';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { badRequest, HttpError, parseJsonBody, unauthorized } from '../../gateway/errors.js';
import { contentAsText, type ContentType, type UnifiedMessage } from '../../gateway/message.js';
import { TokenManager } from '../shared/token-manager.js';
import { defineAdapter, DeliveryError, type AdapterContext, type ChannelAdapter, type SendResult } from '../types.js';
import { DouyinApi } from './api.js';
import { decodeDouyinEvent, parseContent, type DouyinEvent } from './decode.js';
import { SIGNATURE_HEADER, verifyDouyinSignature } from './signature.js';

export const DouyinOptions = z.object({
  clientKey: z.string().regex(/^aw[0-9a-z]{6,30}$|^tt[0-9a-z]{6,30}$/i, 'clientKey is the Client Key of the app (控制台 → 应用信息), e.g. "aw1234abcd"').describe('Client Key'),
  clientSecret: z.string().min(16, 'clientSecret is the Client Secret shown next to the Client Key; it looks too short').describe('Client Secret (signs webhooks; never logged)'),
  webhookSecret: z.string().min(8).optional().describe('Mini-program apps: the separate webhook 验签秘钥; absent means clientSecret'),
  accountOpenId: z.string().min(8, 'accountOpenId is the open_id of the authorised enterprise account (from /oauth/access_token/)').describe('open_id of the enterprise account replies are sent as'),
  refreshToken: z.string().min(8, 'refreshToken comes from the OAuth authorisation of the enterprise account (/oauth/access_token/)').describe('The account owner\'s refresh_token (30 days; renewed automatically up to 5 times; a new value here replaces the stored one)'),
  apiBaseUrl: z.url().default('https://open.douyin.com').describe('Douyin OpenAPI host (tests point it at a loopback fake)'),
  timeoutMs: z.number().int().positive().default(10_000),
  maxJsonBytes: z.number().int().positive().default(64 * 1024).describe('Largest webhook body accepted; larger → 413'),
});
export type DouyinOptions = z.infer<typeof DouyinOptions>;

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text']);
const REPLY_SCENE = 'im_reply_msg';
/** How often the refresh_token's expiry is checked (it is renewed 10 days before it lapses). */
const REFRESH_TOKEN_CHECK_MS = 6 * 3_600_000;

class DouyinAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  private readonly api: DouyinApi;
  private refreshTokenTimer: NodeJS.Timeout | undefined;
  private refreshTokenCheck: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: DouyinOptions,
    private readonly ctx: AdapterContext,
  ) {
    this.api = new DouyinApi({
      apiBaseUrl: options.apiBaseUrl,
      clientKey: options.clientKey,
      refreshTokenKey: `${ctx.keyPrefix}douyin:refresh-token`,
      initialRefreshToken: options.refreshToken,
      redis: ctx.redis,
      tokens: new TokenManager(ctx.redis, ctx.keyPrefix, ctx.log),
      tokenKey: `douyin:${options.clientKey}:${options.accountOpenId}`,
      log: ctx.log,
      timeoutMs: options.timeoutMs,
    });
  }

  /** Keeps the refresh_token alive even while nobody writes: an idle channel would otherwise lapse after 30 days. */
  async start(): Promise<void> {
    const check = () => {
      this.refreshTokenCheck = this.api.maintainRefreshToken().catch((err: unknown) => {
        this.ctx.log.error({ err: err instanceof Error ? err.message : String(err) }, 'Douyin refresh_token check failed');
      });
    };
    check();
    this.refreshTokenTimer = setInterval(check, REFRESH_TOKEN_CHECK_MS).unref();
  }

  async stop(): Promise<void> {
    if (this.refreshTokenTimer) clearInterval(this.refreshTokenTimer);
    this.refreshTokenTimer = undefined;
    // Let a check that is running finish with Redis still open.
    await this.refreshTokenCheck;
  }

  routes(): WebhookRoute[] {
    return [{ method: 'POST', path: '/', handle: (req) => this.receive(req) }];
  }

  private async receive(req: WebhookRequest): Promise<WebhookReply> {
    const raw = req.body;
    if (raw.length > this.options.maxJsonBytes) {
      throw new HttpError(413, 'payload_too_large', `the webhook body is ${raw.length} bytes; at most ${this.options.maxJsonBytes} are accepted`);
    }
    if (!verifyDouyinSignature(this.options.webhookSecret ?? this.options.clientSecret, raw, req.header(SIGNATURE_HEADER))) {
      throw unauthorized('bad_signature', `${SIGNATURE_HEADER} must be hex(sha1(client_secret + raw body)); check clientSecret / webhookSecret`);
    }
    const body = parseJsonBody(raw);
    if (!body || typeof body !== 'object' || Array.isArray(body) || typeof (body as DouyinEvent).event !== 'string') {
      throw badRequest('invalid_event', 'expected a JSON object with an "event" field');
    }
    const event = body as DouyinEvent;
    if (event.event === 'verify_webhook') {
      const challenge = parseContent(event.content).challenge;
      if (challenge === undefined) throw badRequest('missing_challenge', 'verify_webhook without content.challenge');
      this.ctx.log.info('Douyin webhook URL verified');
      // The same value and type back ({"challenge": 12345}).
      return reply.json({ challenge });
    }
    if (event.to_user_id && event.event.startsWith('im_') && event.to_user_id !== this.options.accountOpenId && event.event !== 'im_send_msg') {
      this.ctx.log.info({ event: event.event }, 'event for another authorised account acknowledged and ignored');
      return reply.empty();
    }
    const decoded = decodeDouyinEvent(event, this, { clientKey: this.options.clientKey, msgIdHeader: req.header('msg-id') });
    if (decoded.kind === 'skip') {
      this.ctx.log[decoded.level]({ event: event.event, reason: decoded.reason }, 'Douyin event acknowledged, not ingested');
      return reply.empty();
    }
    await this.ctx.ingest(decoded.message, {
      peerId: decoded.userId,
      ...(decoded.message.sender.name && { peerName: decoded.message.sender.name }),
      ...(decoded.conversationShortId && { threadId: decoded.conversationShortId }),
      context: {
        accountOpenId: decoded.accountOpenId || this.options.accountOpenId,
        ...(decoded.conversationShortId && { conversationId: decoded.conversationShortId }),
        ...(decoded.serverMessageId && { replyToMsgId: decoded.serverMessageId }),
      },
    });
    return reply.empty();
  }

  async send(message: UnifiedMessage, reference: ConversationReference): Promise<SendResult> {
    const conversationId = reference.context.conversationId ?? reference.threadId;
    const msgId = reference.context.replyToMsgId;
    if (!conversationId || !msgId) {
      throw new DeliveryError('Douyin replies answer a received private message; this conversation has none to answer', {
        retryable: false,
        code: 'no_message_to_answer',
        reason: 'reply_window_expired',
      });
    }
    const answer = await this.api.post(
      '/im/send/msg/',
      { open_id: reference.context.accountOpenId ?? this.options.accountOpenId },
      {
        msg_id: msgId,
        conversation_id: conversationId,
        to_user_id: reference.peerId,
        scene: REPLY_SCENE,
        content: { msg_type: 1, text: { text: contentAsText(message.content) } },
      },
      'im/send/msg',
    );
    const sentId = answer.data?.msg_id ?? answer.data?.server_message_id;
    return typeof sentId === 'string' || typeof sentId === 'number' ? { channelMessageId: String(sentId) } : {};
  }
}

export default defineAdapter({
  type: 'douyin',
  description: 'Douyin enterprise-account private messages: signed JSON webhooks in, /im/send/msg/ replies out',
  options: DouyinOptions,
  create: (instance, ctx) => new DouyinAdapter(instance.id, instance.type, instance.options, ctx),
});
