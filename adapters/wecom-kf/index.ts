/**
 * WeCom customer service (微信客服, kf): WeChat users chat with a kf account; WeCom's encrypted callback says "there
 * is news" and the messages are pulled with `kf/sync_msg` (sync.ts). Replies go out with `kf/send_msg` — only while
 * the session is new (0) or with the bot (1), within 48 h of the customer's last message and at most 5 per customer
 * message — or, for an enter_session event carrying a welcome_code, once with `kf/send_msg_on_event`.
 *
 * Hand-off: `transferSession` moves the session to the servicer pool (2) or to a named servicer (3) inside WeCom;
 * with `handoffToWecomAgent` it runs on the gateway's `conversation.handoff_requested` event.
 *
 * Session state: who holds the session is learnt from the pulled items (a servicer's own message, session_status_change
 * events) and from our own transfers, and kept per customer in Redis. While a servicer holds it, or after it ended,
 * send_msg is refused by WeCom; send() refuses it first, and customer messages carry `kfServiceState` in metadata.
 * The gateway's conversation state follows (ctx.platformMoved): `agent` while a servicer holds it, `closed` when it
 * ended, so the bot does not answer over a human.
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
import { WecomApi } from '../wecom-app/api.js';
import { field, wecomCallbackRoutes } from '../wecom-app/callback.js';
import type { WecomResult } from '../wecom-app/errors.js';
import { truncateBytes } from '../wecom-app/index.js';
import { common, Secret } from '../wecom-app/options.js';
import { decodeKfItem, KF_STATE, kfConversationId, kfSessionChangeOf, type KfItem, type KfSessionChange } from './decode.js';
import { KfSync } from './sync.js';

export const WecomKfOptions = z.object({
  ...common,
  kfSecret: Secret.describe('Secret of 微信客服 (WeCom admin → 微信客服 → API → Secret); never logged'),
  openKfIds: z
    .array(z.string().regex(/^wk[0-9A-Za-z_-]{4,64}$/, 'an open_kfid starts with "wk" (微信客服 → the account → API)'))
    .default([])
    .describe('kf accounts polled on start and every pollIntervalMs, besides those announced by callbacks'),
  syncLimit: z.number().int().min(1).max(1000).default(1000).describe('Messages per sync_msg page (max 1000)'),
  voiceFormat: z.union([z.literal(0), z.literal(1)]).default(0).describe('Voice media format: 0 = AMR, 1 = Silk'),
  pollIntervalMs: z.number().int().min(0).default(60_000).describe('Safety poll for missed callbacks; 0 disables'),
  syncLockMs: z.number().int().positive().default(30_000).describe('Per-page lease of the per-open_kfid sync lock'),
  handoffToWecomAgent: z.boolean().default(false).describe('On a gateway hand-off, move the kf session to WeCom servicers'),
  handoffServicerUserId: z.string().min(1).optional().describe('Servicer UserID to hand to (state 3); absent: the queue (state 2)'),
});
export type WecomKfOptions = z.infer<typeof WecomKfOptions>;

/** kf link cards need an uploaded thumbnail (thumb_media_id is required), so links go out as text. */
const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text', 'image']);
const WINDOW_MS = 48 * 3600 * 1000;
const REPLIES_PER_CUSTOMER_MESSAGE = 5;

export { KF_STATE };
/** The enter_session welcome_code is valid for 20 s (path 96428). */
const WELCOME_CODE_VALID_MS = 20_000;
const RESTORE_WELCOME = `if redis.call('hget', KEYS[1], 'welcomeFor') == ARGV[2] and redis.call('hexists', KEYS[1], 'welcomeCode') == 0 then
  return redis.call('hset', KEYS[1], 'welcomeCode', ARGV[1]) end return 0`;
/** A session lasts at most 48 h from the customer's enquiry (94698): a remembered state is not kept longer. */
const SESSION_STATE_TTL_MS = 48 * 3600 * 1000;
const STATE_NAMES: Record<number, string> = { 2: 'queued for a servicer', 3: 'with a human servicer', 4: 'ended' };

class WecomKfAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  private readonly api: WecomApi;
  /** Signed-timestamp check of the callback; its clock is replaceable in tests. */
  readonly timestamps: TimestampWindow;
  readonly sync: KfSync;
  private poller: NodeJS.Timeout | undefined;
  private readonly unsubscribe: (() => void) | undefined;

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: WecomKfOptions,
    private readonly ctx: AdapterContext,
  ) {
    this.timestamps = new TimestampWindow(options.timestampToleranceSeconds, ctx.log);
    this.api = new WecomApi({
      apiBaseUrl: options.apiBaseUrl,
      corpId: options.corpId,
      secret: options.kfSecret,
      tokenKey: `wecom:${options.corpId}:kf`,
      tokens: new TokenManager(ctx.redis, ctx.keyPrefix, ctx.log),
      log: ctx.log,
      timeoutMs: options.timeoutMs,
      rateLimitPauseMs: options.rateLimitPauseMs,
    });
    this.sync = new KfSync({
      redis: ctx.redis,
      keyPrefix: ctx.keyPrefix,
      api: this.api,
      log: ctx.log,
      limit: options.syncLimit,
      voiceFormat: options.voiceFormat,
      lockMs: options.syncLockMs,
      onPage: (items) => this.ingestPage(items),
    });
    ctx.media.setFetcher((mediaId) => this.api.downloadMedia(mediaId, ctx.media.maxBytes));
    if (options.handoffToWecomAgent && ctx.events) {
      this.unsubscribe = ctx.events.on('conversation.handoff_requested', ({ message }) => {
        if (message.channel !== this.id) return;
        const openKfid = String(message.metadata.openKfid ?? '');
        this.handToWecomServicer(openKfid, message.sender.id).catch((err) =>
          ctx.log.error({ err: (err as Error).message, code: (err as DeliveryError).code, openKfid }, 'kf session transfer failed'),
        );
      });
    }
  }

  routes(): WebhookRoute[] {
    return wecomCallbackRoutes({
      crypto: createWechatCrypto({ token: this.options.token, encodingAESKey: this.options.encodingAESKey, receiveId: this.options.corpId }),
      log: this.ctx.log,
      maxXmlBytes: this.options.maxXmlBytes,
      timestamps: this.timestamps,
      onMessage: async (fields) => {
        const event = field(fields, 'Event');
        const openKfid = field(fields, 'OpenKfId');
        if (event !== 'kf_msg_or_event' || !openKfid) {
          this.ctx.log.info({ event, msgType: field(fields, 'MsgType') }, 'kf callback without news acknowledged');
          return;
        }
        // Durable before the ack: a crash after this still leads to a sync (poll or next start).
        await this.sync.markPending(openKfid, field(fields, 'Token') || undefined);
        void this.sync.sync(openKfid);
      },
    });
  }

  async start(): Promise<void> {
    // Resume what a previous process left unfinished, then keep a slow safety poll for missed callbacks.
    for (const openKfid of await this.sync.pendingKfids(this.options.openKfIds)) void this.sync.sync(openKfid);
    if (this.options.pollIntervalMs > 0) {
      this.poller = setInterval(() => void this.poll(), this.options.pollIntervalMs);
      this.poller.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.poller) clearInterval(this.poller);
    this.unsubscribe?.();
  }

  private async poll(): Promise<void> {
    try {
      for (const openKfid of new Set([...this.options.openKfIds, ...(await this.ctx.redis.smembers(`${this.ctx.keyPrefix}kf:known`))])) {
        await this.sync.markPending(openKfid);
        await this.sync.sync(openKfid);
      }
    } catch (err) {
      this.ctx.log.warn({ err: (err as Error).message }, 'kf poll failed');
    }
  }

  private windowKey(conversationId: string): string {
    return `${this.ctx.keyPrefix}kf:window:${conversationId}`;
  }

  private sessionKey(conversationId: string): string {
    return `${this.ctx.keyPrefix}kf:session:${conversationId}`;
  }

  private async rememberSessionState(change: KfSessionChange): Promise<void> {
    const key = this.sessionKey(kfConversationId(this.id, change.openKfid, change.externalUserId));
    const fields = { state: String(change.state), servicerUserId: change.servicerUserId ?? '' };
    await this.ctx.redis.multi().hset(key, fields).pexpire(key, SESSION_STATE_TTL_MS).exec();
  }

  /** The last known state of the customer's session, or undefined when nothing says it left the API. */
  private async sessionState(conversationId: string): Promise<{ state: number; servicerUserId?: string } | undefined> {
    const stored = await this.ctx.redis.hgetall(this.sessionKey(conversationId));
    if (stored.state === undefined) return undefined;
    return { state: Number(stored.state), ...(stored.servicerUserId && { servicerUserId: stored.servicerUserId }) };
  }

  private async ingestPage(items: KfItem[]): Promise<void> {
    for (const item of items) {
      const change = kfSessionChangeOf(item);
      if (change) {
        await this.rememberSessionState(change);
        this.ctx.log.info({ openKfid: change.openKfid, state: change.state, servicer: change.servicerUserId }, 'kf session state changed');
        // The gateway's state follows the session, so the bot does not answer a customer a servicer is talking to.
        const conversationId = kfConversationId(this.id, change.openKfid, change.externalUserId);
        const servicer = change.servicerUserId ? ` (servicer ${change.servicerUserId})` : '';
        if (change.state === KF_STATE.human) await this.ctx.platformMoved?.(conversationId, 'agent', `a WeCom servicer holds the kf session${servicer}`);
        if (change.state === KF_STATE.ended) await this.ctx.platformMoved?.(conversationId, 'closed', 'the kf session ended in WeCom');
      }
      const decoded = decodeKfItem(item, this);
      if (decoded.kind === 'skip') {
        this.ctx.log.debug({ msgid: item?.msgid, reason: decoded.reason }, 'kf item not ingested');
        continue;
      }
      if (decoded.kind === 'undecodable') {
        // Ingested as an `undecodable` event so the page (and the cursor) moves on and the item stays visible.
        this.ctx.log.warn({ msgid: item.msgid, msgtype: item.msgtype, err: decoded.error }, 'kf item undecodable; ingested as an undecodable event');
      }
      const { message, openKfid, externalUserId } = decoded;
      const content = message.content;
      if ((content.type === 'image' || content.type === 'audio' || content.type === 'video' || content.type === 'file') && content.mediaId) {
        content.url = await this.ctx.media.register(content.mediaId);
      }
      // The reply window is platform state the reference cannot carry across later events: keep it per conversation.
      const window = this.windowKey(message.conversationId);
      if (decoded.fromCustomer) {
        await this.ctx.redis.multi().hset(window, { lastCustomerAt: String(message.timestamp), sent: '0' }).pexpire(window, WINDOW_MS * 2).exec();
        const session = await this.sessionState(message.conversationId);
        // A customer writing after the session ended opens a new one (state 0, 94698).
        if (session?.state === KF_STATE.ended) await this.ctx.redis.del(this.sessionKey(message.conversationId));
        else if (session) message.metadata.kfServiceState = session.state;
      }
      if (decoded.kind === 'message' && decoded.welcomeCode) {
        const welcome = { welcomeCode: decoded.welcomeCode, welcomeFor: message.id, welcomeAt: String(message.timestamp) };
        await this.ctx.redis.multi().hset(window, welcome).pexpire(window, WINDOW_MS * 2).exec();
      }
      const result = await this.ctx.ingest(message, { peerId: externalUserId, threadId: openKfid, context: { openKfid } });
      if (!result.duplicate && 'mediaId' in content && content.mediaId) {
        this.ctx.media.resolve(content.mediaId).catch((err) => this.ctx.log.warn({ err: (err as Error).message }, 'kf media download failed'));
      }
    }
  }

  async send(message: UnifiedMessage, reference: ConversationReference): Promise<SendResult> {
    const openKfid = reference.context.openKfid ?? reference.threadId ?? '';
    const window = this.windowKey(message.conversationId);
    const state = await this.ctx.redis.hgetall(window);

    if (state.welcomeCode && message.replyTo === state.welcomeFor) {
      const welcomed = await this.sendWelcome(message, window, state);
      if (welcomed) return welcomed;
    }
    await this.refuseUnlessWithApi(message.conversationId);
    const payload = await this.payload(message);

    const lastCustomerAt = Number(state.lastCustomerAt ?? 0);
    if (lastCustomerAt > 0 && Date.now() - lastCustomerAt > WINDOW_MS) {
      throw new DeliveryError('kf/send_msg: more than 48 h since the customer last wrote', { retryable: false, code: 'kf_window_48h', reason: 'reply_window_expired' });
    }
    if (lastCustomerAt > 0 && Number(state.sent ?? 0) >= REPLIES_PER_CUSTOMER_MESSAGE) {
      throw new DeliveryError('kf/send_msg: 5 replies already sent since the customer last wrote', { retryable: false, code: 'kf_quota_5', reason: 'quota_exhausted' });
    }
    const sent = await this.api.post<WecomResult & { msgid?: string }>('kf/send_msg', {
      touser: reference.peerId,
      open_kfid: openKfid,
      // Our id (26 chars of [0-9A-Z]) fits the msgid rules and ties the platform's record to ours.
      msgid: message.id,
      ...payload,
    });
    if (lastCustomerAt > 0) await this.ctx.redis.hincrby(window, 'sent', 1);
    return { channelMessageId: sent.msgid ?? message.id };
  }

  /**
   * A welcome answers enter_session with its one-time code, valid 20 s (path 96428). The code is claimed atomically
   * (a second reply to the same event goes through send_msg) and put back when the send may be retried, so a
   * transient failure does not lose the welcome; past 20 s it fails at once. send_msg_on_event takes only text or
   * msgmenu, so any other content goes as its text form. Undefined: another reply claimed the code.
   */
  private async sendWelcome(message: UnifiedMessage, window: string, state: Record<string, string>): Promise<SendResult | undefined> {
    const code = state.welcomeCode!;
    if ((await this.ctx.redis.hdel(window, 'welcomeCode')) !== 1) return undefined;
    const issuedAt = Number(state.welcomeAt ?? 0);
    if (issuedAt > 0 && Date.now() - issuedAt > WELCOME_CODE_VALID_MS) {
      throw new DeliveryError('kf/send_msg_on_event: the welcome code is older than 20 s', { retryable: false, code: 'kf_welcome_expired', reason: 'reply_window_expired' });
    }
    try {
      const sent = await this.api.post<WecomResult & { msgid?: string }>('kf/send_msg_on_event', { code, msgid: message.id, ...textPayload(message.content) });
      return { channelMessageId: sent.msgid ?? message.id };
    } catch (err) {
      const retryable = !(err instanceof DeliveryError) || err.retryable;
      // Put the code back for the retry, unless a newer enter_session replaced it meanwhile.
      if (retryable) await this.ctx.redis.eval(RESTORE_WELCOME, 1, window, code, state.welcomeFor ?? '').catch(() => undefined);
      throw err;
    }
  }

  /** send_msg is allowed only in states 0 and 1 (94677): a session with a servicer, queued or ended is not ours. */
  private async refuseUnlessWithApi(conversationId: string): Promise<void> {
    const session = await this.sessionState(conversationId);
    if (!session || session.state === KF_STATE.new || session.state === KF_STATE.bot) return;
    const servicer = session.servicerUserId ? ` (${session.servicerUserId})` : '';
    throw new DeliveryError(`kf/send_msg: the session is ${STATE_NAMES[session.state] ?? `in state ${session.state}`}${servicer}; the API may not answer`, {
      retryable: false,
      code: session.state === KF_STATE.ended ? 'kf_session_ended' : session.state === KF_STATE.human ? 'kf_session_with_servicer' : 'kf_session_queued',
      reason: session.state === KF_STATE.ended ? 'reply_window_expired' : 'recipient_unreachable',
    });
  }

  private async payload(message: UnifiedMessage): Promise<Record<string, unknown>> {
    const c = message.content;
    if (c.type === 'image' && c.url) {
      let loaded;
      try {
        loaded = await this.ctx.media.load(c.url);
      } catch (err) {
        throw new DeliveryError(`image could not be loaded for upload: ${(err as Error).message}`, {
        // A file over the size cap stays too big and a URL refused as private stays refused; a network failure
        // fetching it may pass next time.
        retryable: !(err instanceof MediaTooLargeError || err instanceof MediaRefusedError),
        code: err instanceof MediaTooLargeError ? 'media_too_large' : err instanceof MediaRefusedError ? 'media_refused' : 'media_unavailable',
        reason: 'invalid_request',
      });
      }
      const mediaId = await this.api.uploadMedia('image', loaded.data, loaded.fileName || fileNameFor('image', loaded.contentType), loaded.contentType);
      return { msgtype: 'image', image: { media_id: mediaId } };
    }
    return textPayload(c);
  }

  /** `kf/service_state/get`: 0 new, 1 bot, 2 queued, 3 human (with servicer_userid), 4 ended. */
  async serviceState(openKfid: string, externalUserId: string): Promise<{ state: number; servicerUserId?: string }> {
    const r = await this.api.post<WecomResult & { service_state?: number; servicer_userid?: string }>('kf/service_state/get', {
      open_kfid: openKfid,
      external_userid: externalUserId,
    });
    return { state: Number(r.service_state ?? 0), ...(r.servicer_userid && { servicerUserId: r.servicer_userid }) };
  }

  /** `kf/service_state/trans`: moves the session (2 = servicer queue, 3 = a named servicer, 4 = end). */
  async transferSession(openKfid: string, externalUserId: string, serviceState: 1 | 2 | 3 | 4, servicerUserId?: string): Promise<void> {
    if (serviceState === 3 && !servicerUserId) throw new Error('state 3 (human) needs a servicer_userid');
    await this.api.post('kf/service_state/trans', {
      open_kfid: openKfid,
      external_userid: externalUserId,
      service_state: serviceState,
      ...(servicerUserId && { servicer_userid: servicerUserId }),
    });
    await this.rememberSessionState({ openKfid, externalUserId, state: serviceState, ...(servicerUserId && { servicerUserId }) });
  }

  /** Hand-off inside WeCom: only sessions still with the API (0/1) can be moved; others are already with people. */
  async handToWecomServicer(openKfid: string, externalUserId: string): Promise<void> {
    const { state } = await this.serviceState(openKfid, externalUserId);
    if (state !== KF_STATE.new && state !== KF_STATE.bot) {
      this.ctx.log.info({ openKfid, state }, 'kf session not with the API any more; no transfer needed');
      return;
    }
    const servicer = this.options.handoffServicerUserId;
    await this.transferSession(openKfid, externalUserId, servicer ? KF_STATE.human : KF_STATE.queued, servicer);
    this.ctx.log.info({ openKfid, to: servicer ? 'servicer' : 'queue' }, 'kf session handed to WeCom servicers');
  }
}

/** A kf text message: `text.content` is at most 2048 bytes (send_msg, path 94677). */
function textPayload(content: UnifiedMessage['content']): Record<string, unknown> {
  return { msgtype: 'text', text: { content: truncateBytes(contentAsText(content), 2048) } };
}

export default defineAdapter({
  type: 'wecom-kf',
  description: 'WeCom customer service (微信客服): encrypted callback + kf/sync_msg pull in, kf/send_msg out, session transfer to servicers',
  options: WecomKfOptions,
  create: (instance, ctx) => new WecomKfAdapter(instance.id, instance.type, instance.options, ctx),
});
export type { WecomKfAdapter };
