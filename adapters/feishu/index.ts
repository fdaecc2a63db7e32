/**
 * Feishu / Lark bot channel (event subscription over HTTP): URL verification, Encrypt Key decryption, signature and
 * verification-token checks, `im.message.receive_v1` decoding, replies through im/v1/messages with a cached
 * tenant_access_token. The platform is acknowledged (HTTP 200) only once the message is queued.
 */
import { reply, type WebhookReply, type WebhookRequest, type WebhookRoute } from '../http.js';
import { z } from 'zod';
import { badRequest, HttpError, parseJsonBody, unauthorized } from '../../gateway/errors.js';
import { contentAsText, type ContentType, type UnifiedMessage } from '../../gateway/message.js';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { createHttpClient } from '../shared/http-client.js';
import { TokenManager } from '../shared/token-manager.js';
import { defineAdapter, DeliveryError, type AdapterContext, type ChannelAdapter, type SendResult } from '../types.js';
import { FeishuApi } from './api.js';
import { decrypt, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature, signatureMatches, timestampFresh, tokenMatches } from './crypto.js';
import { decodeMessageEvent, MessageReceiveEvent, parseEnvelope } from './decode.js';

export const FeishuOptions = z
  .object({
    appId: z.string().min(1).describe('App ID (cli_…) from the developer console → Credentials'),
    appSecret: z.string().min(1).describe('App Secret (use ${ENV})'),
    verificationToken: z.string().min(1).optional().describe('Events & callbacks → Encryption strategy → Verification Token'),
    encryptKey: z.string().min(1).optional().describe('Events & callbacks → Encryption strategy → Encrypt Key (enables decryption and X-Lark-Signature checks)'),
    apiBaseUrl: z.url().default('https://open.feishu.cn').describe('Open API host; https://open.larksuite.com for Lark'),
    groupMessages: z
      .enum(['mention', 'all'])
      .default('mention')
      .describe('Group chats: answer only messages that @-mention the bot, or every message the app receives'),
    botOpenId: z.string().optional().describe("The bot's open_id; fetched from /open-apis/bot/v3/info when absent"),
    replyMode: z
      .enum(['chat', 'reply'])
      .default('chat')
      .describe('chat: new message in the chat; reply: quote-reply to the customer\'s last message'),
    maxEventAgeSeconds: z
      .number()
      .int()
      .positive()
      .default(24 * 3600)
      .describe(
        'Signed events whose X-Lark-Request-Timestamp is further than this from now are refused (401): above Feishu\'s retry schedule (last retry after about 6 h), below the dedupe window, so a captured event cannot be replayed once it is forgotten',
      ),
    timeoutMs: z.number().int().positive().default(10_000),
  })
  .refine((o) => o.verificationToken !== undefined || o.encryptKey !== undefined, {
    message: 'set verificationToken and/or encryptKey: without one, anyone could post events',
  });
export type FeishuOptions = z.infer<typeof FeishuOptions>;

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text']);

class FeishuAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  readonly api: FeishuApi;

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: FeishuOptions,
    private readonly ctx: AdapterContext,
  ) {
    const tokens = new TokenManager(ctx.redis, ctx.keyPrefix, ctx.log);
    this.api = new FeishuApi(createHttpClient(undefined, options.timeoutMs), options.apiBaseUrl.replace(/\/+$/, ''), options.appId, options.appSecret, tokens);
  }

  routes(): WebhookRoute[] {
    return [{ method: 'POST', path: '/', handle: (req) => this.receive(req) }];
  }

  private async receive(req: WebhookRequest): Promise<WebhookReply> {
    const raw = req.body;
    const { encryptKey, verificationToken } = this.options;
    const timestamp = req.header(HEADER_TIMESTAMP);
    const nonce = req.header(HEADER_NONCE);
    const given = req.header(HEADER_SIGNATURE);
    const signed = timestamp !== undefined && nonce !== undefined && given !== undefined;
    // The signature covers the exact bytes, so it is checked before anything is parsed.
    if (encryptKey && signed && !signatureMatches(given, signature(timestamp, nonce, encryptKey, raw))) {
      throw unauthorized('bad_signature', 'X-Lark-Signature does not match sha256(timestamp + nonce + encrypt key + body)');
    }
    if (encryptKey && signed && !timestampFresh(timestamp, this.options.maxEventAgeSeconds, Date.now())) {
      this.ctx.log.warn({ channel: this.id, timestamp, maxEventAgeSeconds: this.options.maxEventAgeSeconds }, 'Feishu event refused: X-Lark-Request-Timestamp outside the accepted window');
      throw unauthorized('stale_timestamp', `X-Lark-Request-Timestamp must be within ${this.options.maxEventAgeSeconds} s of the gateway clock (maxEventAgeSeconds)`);
    }
    let body = parseJsonBody(raw) as Record<string, unknown>;
    if (body && typeof body === 'object' && typeof body.encrypt === 'string') {
      if (!encryptKey) throw badRequest('encrypted_without_key', 'the event is encrypted but no encryptKey is configured for this channel');
      try {
        body = JSON.parse(decrypt(encryptKey, body.encrypt)) as Record<string, unknown>;
      } catch (err) {
        throw badRequest('decrypt_failed', `the encrypt field does not decrypt with the configured Encrypt Key: ${(err as Error).message}`);
      }
    }
    let envelope;
    try {
      envelope = parseEnvelope(body);
    } catch (err) {
      throw badRequest('unknown_payload', (err as Error).message);
    }
    if (verificationToken && !tokenMatches(envelope.token, verificationToken)) {
      throw unauthorized('bad_token', 'the verification token in the payload does not match');
    }
    if (envelope.kind === 'challenge') {
      // The request-URL check is not signed (the token above authenticates it); answer at once.
      this.ctx.log.info({ channel: this.id }, 'answered the Feishu URL verification');
      return reply.json({ challenge: envelope.challenge });
    }
    if (encryptKey && !signed) {
      throw unauthorized('missing_signature', 'events must carry X-Lark-Request-Timestamp, X-Lark-Request-Nonce and X-Lark-Signature');
    }
    if (envelope.kind === 'legacy' || envelope.eventType !== 'im.message.receive_v1') {
      this.ctx.log.debug({ channel: this.id, eventType: envelope.eventType }, 'Feishu event acknowledged, not a message');
      return reply.json({});
    }
    const event = MessageReceiveEvent.safeParse(envelope.event);
    if (!event.success) {
      throw badRequest('invalid_event', `im.message.receive_v1: ${event.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    }
    const botOpenId = await this.botOpenIdFor(event.data);
    const outcome = decodeMessageEvent(event.data, envelope.eventId, this, { groupMessages: this.options.groupMessages, botOpenId });
    if (outcome.kind === 'skip') {
      this.ctx.log.debug({ channel: this.id, reason: outcome.reason }, 'Feishu message skipped');
      return reply.json({});
    }
    const result = await this.ctx.ingest(outcome.message, outcome.reference);
    this.ctx.log.debug({ channel: this.id, messageId: result.messageId, duplicate: result.duplicate }, 'Feishu message accepted');
    return reply.json({});
  }

  /** Only a group message under the 'mention' policy needs to know who the bot is. */
  private async botOpenIdFor(event: MessageReceiveEvent): Promise<string | undefined> {
    if (event.message.chat_type !== 'group' || this.options.groupMessages !== 'mention') return undefined;
    if (this.options.botOpenId) return this.options.botOpenId;
    try {
      return await this.api.botId();
    } catch (err) {
      // Feishu retries unacknowledged events, so a temporary failure loses nothing.
      this.ctx.log.warn({ err, channel: this.id }, 'cannot read the bot open_id');
      throw new HttpError(503, 'bot_identity_unavailable', 'the bot open_id could not be fetched; retry later');
    }
  }

  async send(message: UnifiedMessage, reference: ConversationReference): Promise<SendResult> {
    const content = JSON.stringify({ text: contentAsText(message.content) });
    // uuid makes Feishu drop a repeat of the same send (our retries) within an hour.
    const uuid = message.id;
    const lastMessageId = reference.context.messageId;
    let answer;
    if (this.options.replyMode === 'reply' && lastMessageId) {
      answer = await this.api.call('POST', `/open-apis/im/v1/messages/${encodeURIComponent(lastMessageId)}/reply`, { msg_type: 'text', content, uuid });
    } else {
      const chatId = reference.threadId ?? reference.context.chatId;
      if (!chatId) throw new DeliveryError('Feishu: the conversation has no chat_id', { retryable: false, code: 'no_chat_id' });
      answer = await this.api.call('POST', '/open-apis/im/v1/messages?receive_id_type=chat_id', { receive_id: chatId, msg_type: 'text', content, uuid });
    }
    const sentId = (answer.data as { message_id?: string } | undefined)?.message_id;
    return sentId ? { channelMessageId: sentId } : {};
  }
}

export default defineAdapter({
  type: 'feishu',
  description: 'Feishu / Lark bot: event subscription (encrypted, signed) in, im/v1/messages out',
  options: FeishuOptions,
  create: (instance, ctx) => new FeishuAdapter(instance.id, instance.type, instance.options, ctx),
});
