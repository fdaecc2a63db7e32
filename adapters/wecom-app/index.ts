/**
 * WeCom self-built app (企业微信自建应用): members message the app; the encrypted callback arrives at
 * `/webhooks/<id>` (GET = URL verification, POST = messages and events), is acknowledged with an empty 200 once
 * ingested, and replies go out through `message/send` (touser + agentid) as pipeline delivery jobs.
 */
import type { WebhookRoute } from '../http.js';
import { z } from 'zod';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { contentAsText, type ContentType, type UnifiedMessage } from '../../gateway/message.js';
import { fileNameFor, MediaRefusedError, MediaTooLargeError } from '../shared/media-store.js';
import { TokenManager } from '../shared/token-manager.js';
import { createWechatCrypto } from '../shared/wechat-crypto.js';
import { TimestampWindow } from '../shared/wechat-webhook.js';
import { defineAdapter, DeliveryError, type AdapterContext, type ChannelAdapter, type SendResult } from '../types.js';
import { WecomApi } from './api.js';
import { wecomCallbackRoutes } from './callback.js';
import { decodeWecomAppMessage } from './decode.js';
import { common, Secret } from './options.js';
import type { WecomResult } from './errors.js';

export const WecomAppOptions = z.object({
  ...common,
  agentId: z.number().int().positive().describe('AgentId of the self-built app (应用管理 → the app)'),
  corpSecret: Secret,
});
export type WecomAppOptions = z.infer<typeof WecomAppOptions>;

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text', 'image', 'link']);
/** WeCom text messages are limited to 2048 bytes. */
const TEXT_MAX_BYTES = 2048;

class WecomAppAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  private readonly api: WecomApi;
  /** Signed-timestamp check of the callback; its clock is replaceable in tests. */
  readonly timestamps: TimestampWindow;

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: WecomAppOptions,
    private readonly ctx: AdapterContext,
  ) {
    this.timestamps = new TimestampWindow(options.timestampToleranceSeconds, ctx.log);
    this.api = new WecomApi({
      apiBaseUrl: options.apiBaseUrl,
      corpId: options.corpId,
      secret: options.corpSecret,
      tokenKey: `wecom:${options.corpId}:${options.agentId}`,
      tokens: new TokenManager(ctx.redis, ctx.keyPrefix, ctx.log),
      log: ctx.log,
      timeoutMs: options.timeoutMs,
      rateLimitPauseMs: options.rateLimitPauseMs,
    });
    ctx.media.setFetcher((mediaId) => this.api.downloadMedia(mediaId, ctx.media.maxBytes));
  }

  routes(): WebhookRoute[] {
    return wecomCallbackRoutes({
      crypto: createWechatCrypto({ token: this.options.token, encodingAESKey: this.options.encodingAESKey, receiveId: this.options.corpId }),
      log: this.ctx.log,
      maxXmlBytes: this.options.maxXmlBytes,
      timestamps: this.timestamps,
      onMessage: async (fields) => {
        const { message, userId, agentId } = decodeWecomAppMessage(fields, this);
        if (agentId && agentId !== String(this.options.agentId)) {
          this.ctx.log.warn({ agentId }, 'callback for another AgentID ignored (check which app this URL is configured on)');
          return;
        }
        const content = message.content;
        // Inbound media ids become gateway URLs now (cheap); the bytes are fetched after the ack.
        if ((content.type === 'image' || content.type === 'audio' || content.type === 'video') && content.mediaId) {
          content.url = await this.ctx.media.register(content.mediaId);
        }
        const result = await this.ctx.ingest(message, { peerId: userId, context: { agentId: String(this.options.agentId) } });
        if (!result.duplicate && 'mediaId' in content && content.mediaId) {
          this.ctx.media.resolve(content.mediaId).catch((err) => this.ctx.log.warn({ err: (err as Error).message }, 'inbound media download failed'));
        }
      },
    });
  }

  async send(message: UnifiedMessage, reference: ConversationReference): Promise<SendResult> {
    const base = { touser: reference.peerId, agentid: this.options.agentId, safe: 0 };
    const content = message.content;
    let body: Record<string, unknown>;
    if (content.type === 'image') {
      const mediaId = await this.uploadImage(content.url, content.mediaId);
      body = { ...base, msgtype: 'image', image: { media_id: mediaId } };
    } else if (content.type === 'link' && content.url) {
      // news: a card with title, description, link and picture; the closest to a titled pointer.
      body = {
        ...base,
        msgtype: 'news',
        news: {
          articles: [
            { title: content.title, url: content.url, ...(content.description && { description: content.description }), ...(content.thumbUrl && { picurl: content.thumbUrl }) },
          ],
        },
      };
    } else {
      body = { ...base, msgtype: 'text', text: { content: truncateBytes(contentAsText(content), TEXT_MAX_BYTES) } };
    }
    const result = await this.api.post<WecomResult & { msgid?: string; invaliduser?: string }>('message/send', body);
    // errcode 0 with the member listed as invalid: nobody got it, and retrying will not change that.
    if (result.invaliduser) {
      throw new DeliveryError(`message/send: WeCom lists ${reference.peerId} as an invalid user`, { retryable: false, code: 'invaliduser', reason: 'recipient_unreachable' });
    }
    return result.msgid ? { channelMessageId: result.msgid } : {};
  }

  private async uploadImage(url: string | undefined, mediaId: string | undefined): Promise<string> {
    if (!url) {
      if (mediaId) return mediaId;
      throw new DeliveryError('image without url or media id', { retryable: false, code: 'no_media', reason: 'invalid_request' });
    }
    let loaded;
    try {
      loaded = await this.ctx.media.load(url);
    } catch (err) {
      throw new DeliveryError(`image could not be loaded for upload: ${(err as Error).message}`, {
        // A file over the size cap stays too big and a URL refused as private stays refused; a network failure
        // fetching it may pass next time.
        retryable: !(err instanceof MediaTooLargeError || err instanceof MediaRefusedError),
        code: err instanceof MediaTooLargeError ? 'media_too_large' : err instanceof MediaRefusedError ? 'media_refused' : 'media_unavailable',
        reason: 'invalid_request',
      });
    }
    return this.api.uploadMedia('image', loaded.data, loaded.fileName || fileNameFor('image', loaded.contentType), loaded.contentType);
  }
}

export function truncateBytes(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let out = Buffer.from(text).subarray(0, maxBytes - 3).toString('utf8');
  // A cut inside a multi-byte character leaves U+FFFD at the end.
  out = out.replace(/\uFFFD+$/, '');
  return `${out}...`;
}

export default defineAdapter({
  type: 'wecom-app',
  description: 'WeCom self-built app: encrypted callback in (/webhooks/<id>), message/send out',
  options: WecomAppOptions,
  create: (instance, ctx) => new WecomAppAdapter(instance.id, instance.type, instance.options, ctx),
});
