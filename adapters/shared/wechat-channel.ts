/**
 * The WeChat channel adapter shared by the mini-program and official-account channel types; each product supplies
 * its pure decoder and how it sends cards. Flow:
 *
 *   GET  /webhooks/<id>  URL-verification handshake → echostr
 *   POST /webhooks/<id>  verify signature → decrypt → decode → register media ids → ctx.ingest → "success"
 *                        (the bot runs later on the pipeline; media downloads start after the ack)
 *   send()               customer-service send API, images uploaded through the media API, token via TokenManager
 */
import { reply, type WebhookRoute } from '../http.js';
import { z } from 'zod';
import { contentAsText, type Content, type ContentType, type UnifiedMessage } from '../../gateway/message.js';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { DeliveryError, type AdapterContext, type ChannelAdapter, type RedisClient, type ReferenceInput } from '../types.js';
import { MediaTooLargeError } from './media-store.js';
import { TokenManager } from './token-manager.js';
import { WechatApi } from './wechat-api.js';
import { encodingAESKeyProblem } from './wechat-crypto.js';
import { mediaIdsOf, type Fields, type WechatDecodeContext } from './wechat-message.js';
import { TIMESTAMP_TOLERANCE_SECONDS, WechatEndpoint, type DataFormat } from './wechat-webhook.js';


/** Options common to both WeChat channel types; `console` names where the operator finds each value. */
export function wechatOptionsSchema(console: string) {
  return z
    .object({
      appId: z
        .string()
        .regex(/^wx[0-9a-f]{16}$/i, `appId must be the 18-character AppID starting with "wx" (${console})`)
        .describe(`AppID (${console})`),
      appSecret: z
        .string()
        .regex(/^[0-9a-f]{32}$/i, `appSecret must be the 32-character hexadecimal AppSecret (${console}); it is never logged`)
        .describe('AppSecret, used only to obtain access tokens; never logged'),
      token: z
        .string()
        .regex(/^[A-Za-z0-9]{3,32}$/, 'token must be 3–32 letters or digits, exactly as entered in the message-push settings')
        .describe('Token from the message-push (服务器配置 / 消息推送) settings'),
      encodingAESKey: z
        .string()
        .refine((k) => encodingAESKeyProblem(k) === undefined, { message: 'encodingAESKey must be the 43-character EncodingAESKey from the message-push settings' })
        .optional()
        .describe('EncodingAESKey; required for compatible and safe mode'),
      messageMode: z
        .enum(['plain', 'compatible', 'safe'])
        .default('safe')
        .describe('Message encryption mode chosen on the console: plain (明文), compatible (兼容) or safe (安全)'),
      apiBaseUrl: z.url().default('https://api.weixin.qq.com').describe('WeChat API base URL (change only for a proxy or tests)'),
      tokenEndpoint: z
        .enum(['stable', 'classic'])
        .default('stable')
        .describe('stable = /cgi-bin/stable_token (recommended, does not invalidate tokens other systems hold); classic = /cgi-bin/token'),
      timeoutMs: z.number().int().positive().default(10_000).describe('Timeout of each WeChat API call'),
      rateLimitBackoffMs: z.number().int().positive().default(60_000).describe('How long delivery pauses after 45009/45011 (API quota/frequency)'),
      prefetchMedia: z.boolean().default(true).describe('Download inbound media right after the ack (otherwise on first GET /media/<id>)'),
      timestampToleranceSeconds: z
        .number()
        .int()
        .min(30)
        .default(TIMESTAMP_TOLERANCE_SECONDS)
        .describe('Largest difference between a push’s signed timestamp and the gateway clock; older (replayed) pushes get 401'),
    })
    .superRefine((o, issue) => {
      if (o.messageMode !== 'plain' && o.encodingAESKey === undefined) {
        issue.addIssue({
          code: 'custom',
          path: ['encodingAESKey'],
          message: `messageMode "${o.messageMode}" needs the encodingAESKey from the console (or set messageMode: plain)`,
        });
      }
    });
}
export type WechatOptions = z.output<ReturnType<typeof wechatOptionsSchema>>;

export interface WechatProduct {
  /** Pure decoder of one push. */
  decode(fields: Fields, ctx: WechatDecodeContext): UnifiedMessage;
  /** Push data format: the official account only pushes XML; the mini-program lets the operator choose. */
  dataFormat: DataFormat;
  /** Events after which nothing can be sent (reply window closes at once). */
  closesReplyWindow?(message: UnifiedMessage): boolean;
  /**
   * How long after it a push allows customer-service replies: 48 h for a user's message, 1 minute for the user
   * events the product's quota table names, 0 for anything else (platform notices, automatic location reports),
   * which leaves the window as it was.
   */
  replyWindowMs(message: UnifiedMessage): number;
  /** The send body of a link/card, given a thumbnail uploader; undefined = send it as text. */
  linkBody(content: Extract<Content, { type: 'link' }>, uploadThumb: () => Promise<string | undefined>): Promise<Record<string, unknown> | undefined>;
}

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text', 'image', 'link']);

// KEYS[1] the conversation's window (when it closes, ms). ARGV: when this push's window closes (0 = opens none), now
// (ms). Stores the new end only when it is later than the one kept, and returns the end that holds. One script so a
// push costs one round trip before its ack, and so two pushes at once cannot let a short window overwrite a long one.
const EXTEND_WINDOW_LUA = `
local kept = redis.call('GET', KEYS[1]) or '0'
local ttl = tonumber(ARGV[1]) - tonumber(ARGV[2])
if tonumber(ARGV[1]) > tonumber(kept) and ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  return ARGV[1]
end
return kept
`;

const windowScriptDefined = new WeakSet<object>();

/** Registers the script once per client (both WeChat channel types, any number of channels, share it). */
function defineExtendWindow(redis: RedisClient): void {
  if (windowScriptDefined.has(redis)) return;
  redis.defineCommand('gwWechatExtendWindow', { numberOfKeys: 1, lua: EXTEND_WINDOW_LUA });
  windowScriptDefined.add(redis);
}

function extendWindow(redis: RedisClient, key: string, until: number, now: number): Promise<string> {
  return (redis as unknown as { gwWechatExtendWindow(key: string, until: number, now: number): Promise<string> }).gwWechatExtendWindow(key, until, now);
}

export class WechatChannelAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  readonly endpoint: WechatEndpoint;
  readonly api: WechatApi;

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: WechatOptions & { dataFormat?: DataFormat },
    private readonly ctx: AdapterContext,
    private readonly product: WechatProduct,
  ) {
    // Before the client's first command: an auto-pipeline already open does not know commands defined after it.
    defineExtendWindow(ctx.redis);
    this.endpoint = new WechatEndpoint({
      token: options.token,
      encodingAESKey: options.encodingAESKey,
      appId: options.appId,
      messageMode: options.messageMode,
      dataFormat: options.dataFormat ?? product.dataFormat,
      timestampToleranceSeconds: options.timestampToleranceSeconds,
      log: ctx.log,
    });
    // Tokens are per app across the whole gateway, so the manager uses the global prefix, not the channel's.
    const globalPrefix = ctx.keyPrefix.replace(/ch:[^:]*:$/, '');
    this.api = new WechatApi(
      {
        apiBaseUrl: options.apiBaseUrl,
        appId: options.appId,
        appSecret: options.appSecret,
        tokenEndpoint: options.tokenEndpoint,
        timeoutMs: options.timeoutMs,
        rateLimitMs: options.rateLimitBackoffMs,
      },
      new TokenManager(ctx.redis, globalPrefix, ctx.log),
      ctx.log,
    );
    ctx.media.setFetcher((mediaId) => this.api.fetchMedia(mediaId));
  }

  routes(): WebhookRoute[] {
    return [
      { method: 'GET', path: '/', handle: (req) => reply.text(this.endpoint.handshake(req.query)) },
      {
        method: 'POST',
        path: '/',
        handle: async (req) => {
          const opened = this.endpoint.open(req.query, req.body, req.header('content-type'));
          const message = this.product.decode(opened.fields, {
            channel: this,
            format: opened.format,
            mediaUrl: (mediaId) => this.ctx.media.urlFor(mediaId),
          });
          const mediaIds = mediaIdsOf(message.content, opened.fields);
          await Promise.all(mediaIds.map((mediaId) => this.ctx.media.register(mediaId)));
          const result = await this.ctx.ingest(message, await this.referenceFor(message));
          this.ctx.log.debug({ msgId: result.messageId, duplicate: result.duplicate, encrypted: opened.encrypted }, 'push accepted');
          if (this.options.prefetchMedia && !result.duplicate) {
            for (const mediaId of mediaIds) {
              this.ctx.media.resolve(mediaId).catch((err) => this.ctx.log.warn({ err: (err as Error).message }, 'inbound media download failed; retried on first request'));
            }
          }
          // The documented "stop retrying" answer; the reply itself goes out through the send API.
          return reply.text('success');
        },
      },
    ];
  }

  private async referenceFor(message: UnifiedMessage): Promise<ReferenceInput> {
    return {
      peerId: message.sender.id,
      replyWindowUntil: await this.replyWindowAfter(message),
      context: { appId: this.options.appId, ...(typeof message.metadata.toUserName === 'string' && { toUserName: message.metadata.toUserName }) },
    };
  }

  /**
   * The reply window once this push is counted. The reference is replaced by every push, so the window is also kept
   * per conversation in Redis: a push that opens a shorter window (or none) does not cut a longer one still open.
   */
  private async replyWindowAfter(message: UnifiedMessage): Promise<number> {
    const key = `${this.ctx.keyPrefix}wechat:window:${message.conversationId}`;
    if (this.product.closesReplyWindow?.(message)) {
      await this.ctx.redis.del(key);
      return message.receivedAt;
    }
    const windowMs = this.product.replyWindowMs(message);
    const opened = windowMs > 0 ? message.timestamp + windowMs : 0;
    const open = Number(await extendWindow(this.ctx.redis, key, opened, Date.now()));
    // Nothing open: a notice is not an invitation to write to the user.
    return open > 0 ? open : message.receivedAt;
  }

  async send(message: UnifiedMessage, reference: ConversationReference) {
    if (reference.replyWindowUntil !== undefined && Date.now() > reference.replyWindowUntil) {
      throw new DeliveryError('the 48 h customer-service reply window is closed: the customer has to write first', {
        retryable: false,
        code: 'reply_window_expired',
        reason: 'reply_window_expired',
      });
    }
    const body = await this.bodyFor(message.content);
    await this.api.sendCustom({ touser: reference.peerId, ...body });
    return {};
  }

  private async bodyFor(content: Content): Promise<{ msgtype: string; [field: string]: unknown }> {
    if (content.type === 'image') {
      const mediaId = content.mediaId ?? (content.url ? await this.upload('image', content.url) : undefined);
      if (mediaId) return { msgtype: 'image', image: { media_id: mediaId } };
    }
    if (content.type === 'link') {
      const thumb = content.thumbUrl;
      const card = await this.product.linkBody(content, async () => (thumb ? this.upload('thumb', thumb) : undefined));
      if (card) return card as { msgtype: string };
    }
    return { msgtype: 'text', text: { content: content.type === 'text' ? content.text : contentAsText(content) } };
  }

  /** Fetches a URL's bytes (capped) and uploads them as temporary media. */
  private async upload(type: 'image' | 'thumb', url: string): Promise<string> {
    let media;
    try {
      media = await this.ctx.media.load(url);
    } catch (err) {
      const permanent = err instanceof MediaTooLargeError || err instanceof TypeError || /HTTP 4\d\d|only http/.test((err as Error).message);
      throw new DeliveryError(`could not fetch the ${type} to send: ${(err as Error).message}`, {
        retryable: !permanent,
        code: 'media_unavailable',
        ...(permanent && { reason: 'invalid_request' as const }),
      });
    }
    // The thumbnail of a card is uploaded as an image (the documented thumb_media_id is an image media id).
    return this.api.uploadMedia('image', media.data, media.fileName, media.contentType);
  }
}
