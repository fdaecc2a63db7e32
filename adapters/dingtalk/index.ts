/**
 * DingTalk enterprise-internal robot, HTTP mode: signed callbacks in (timestamp + sign headers, 1-hour window),
 * replies through the conversation's session webhook while it is valid, otherwise through the robot OpenAPI
 * (single chat: oToMessages/batchSend, group: groupMessages/send). Acknowledged only once the message is queued.
 */
import { reply, type WebhookReply, type WebhookRequest, type WebhookRoute } from '../http.js';
import { z } from 'zod';
import { badRequest, parseJsonBody, unauthorized } from '../../gateway/errors.js';
import { contentAsText, type ContentType, type UnifiedMessage } from '../../gateway/message.js';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { createHttpClient } from '../shared/http-client.js';
import { TokenManager } from '../shared/token-manager.js';
import { defineAdapter, DeliveryError, type AdapterContext, type ChannelAdapter, type SendResult } from '../types.js';
import { DingTalkApi, GROUP_MSG_PARAM_MAX_BYTES, sampleTextParam } from './api.js';
import { decodeRobotCallback, RobotCallback } from './decode.js';
import { verifyRobotSign } from './sign.js';

export const DingTalkOptions = z.object({
  appKey: z.string().min(1).describe('Client ID (AppKey) of the enterprise-internal app'),
  appSecret: z.string().min(1).describe('Client Secret (AppSecret): signs callbacks and gets access tokens (use ${ENV})'),
  robotCode: z.string().min(1).optional().describe('Robot code for the OpenAPI; defaults to the payload robotCode, then appKey'),
  apiBaseUrl: z.url().default('https://api.dingtalk.com').describe('OpenAPI host'),
  toleranceSeconds: z.number().int().positive().default(3600).describe('Largest accepted distance of the timestamp header from now'),
  sessionWebhookOrigins: z
    .array(z.url())
    .default(['https://oapi.dingtalk.com', 'https://api.dingtalk.com'])
    .describe('Origins a sessionWebhook may point at; others are ignored (the sign does not cover the body)'),
  webhookMarginSeconds: z.number().int().min(0).default(30).describe('Stop using a session webhook this long before it expires'),
  mentionSender: z.boolean().default(true).describe('In groups, @-mention the customer in replies'),
  timeoutMs: z.number().int().positive().default(10_000),
});
export type DingTalkOptions = z.infer<typeof DingTalkOptions>;

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text']);

class DingTalkAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  private readonly api: DingTalkApi;
  private readonly origins: ReadonlySet<string>;

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: DingTalkOptions,
    private readonly ctx: AdapterContext,
  ) {
    const tokens = new TokenManager(ctx.redis, ctx.keyPrefix, ctx.log);
    this.api = new DingTalkApi(createHttpClient(undefined, options.timeoutMs), options.apiBaseUrl.replace(/\/+$/, ''), options.appKey, options.appSecret, tokens);
    this.origins = new Set(options.sessionWebhookOrigins.map((u) => new URL(u).origin));
  }

  private webhookAllowed = (url: string): boolean => {
    try {
      return this.origins.has(new URL(url).origin);
    } catch {
      return false;
    }
  };

  routes(): WebhookRoute[] {
    return [{ method: 'POST', path: '/', handle: (req) => this.receive(req) }];
  }

  private async receive(req: WebhookRequest): Promise<WebhookReply> {
    const check = verifyRobotSign(req.header('timestamp'), req.header('sign'), this.options.appSecret, this.options.toleranceSeconds);
    if (!check.ok) {
      throw unauthorized(
        check.reason,
        check.reason === 'stale_timestamp'
          ? `the timestamp header is more than ${this.options.toleranceSeconds} s from the gateway clock`
          : 'headers timestamp (ms) and sign = base64(HMAC-SHA256(app secret, timestamp + "\\n" + app secret)) are required and must match',
      );
    }
    const parsed = RobotCallback.safeParse(parseJsonBody(req.body));
    if (!parsed.success) {
      throw badRequest('invalid_callback', parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; '));
    }
    const { message, reference, webhookRefused } = decodeRobotCallback(parsed.data, this, {
      robotCode: this.options.robotCode ?? this.options.appKey,
      webhookAllowed: this.webhookAllowed,
    });
    if (webhookRefused) this.ctx.log.warn({ channel: this.id }, 'sessionWebhook outside sessionWebhookOrigins ignored; replies use the OpenAPI');
    const result = await this.ctx.ingest(message, reference);
    this.ctx.log.debug({ channel: this.id, messageId: result.messageId, duplicate: result.duplicate }, 'DingTalk message accepted');
    return reply.json({});
  }

  async send(message: UnifiedMessage, reference: ConversationReference): Promise<SendResult> {
    const text = contentAsText(message.content);
    const group = reference.context.conversationType === '2';
    const webhook = reference.context.sessionWebhook;
    const windowOpen = reference.replyWindowUntil !== undefined && Date.now() < reference.replyWindowUntil - this.options.webhookMarginSeconds * 1000;
    const staffId = reference.context.staffId;

    if (webhook && windowOpen) {
      const at = group && this.options.mentionSender && staffId ? { at: { atUserIds: [staffId] } } : {};
      await this.api.sessionWebhook(webhook, { msgtype: 'text', text: { content: text }, ...at });
      return {};
    }
    const robotCode = reference.context.robotCode ?? this.options.robotCode ?? this.options.appKey;
    if (group) {
      if (!reference.threadId) throw new DeliveryError('DingTalk: no openConversationId for the group', { retryable: false, code: 'no_conversation' });
      const msgParam = sampleTextParam(text, GROUP_MSG_PARAM_MAX_BYTES);
      const answer = await this.api.openApi('/v1.0/robot/groupMessages/send', { robotCode, openConversationId: reference.threadId, msgKey: 'sampleText', msgParam });
      return typeof answer.processQueryKey === 'string' ? { channelMessageId: answer.processQueryKey } : {};
    }
    if (!staffId) {
      // External users have no staffId: only the (expired) session webhook could reach them.
      throw new DeliveryError('DingTalk: the session webhook expired and the sender has no staffId for the OpenAPI', { retryable: false, code: 'no_staff_id' });
    }
    const msgParam = sampleTextParam(text);
    const answer = await this.api.openApi('/v1.0/robot/oToMessages/batchSend', { robotCode, userIds: [staffId], msgKey: 'sampleText', msgParam });
    if (Array.isArray(answer.flowControlledStaffIdList) && answer.flowControlledStaffIdList.includes(staffId)) {
      throw new DeliveryError('DingTalk batchSend: recipient flow-controlled', { retryable: true, code: 'flow_controlled', rateLimitMs: 1000 });
    }
    if (Array.isArray(answer.invalidStaffIdList) && answer.invalidStaffIdList.includes(staffId)) {
      throw new DeliveryError('DingTalk batchSend: invalid staffId', { retryable: false, code: 'invalid_staff_id' });
    }
    return typeof answer.processQueryKey === 'string' ? { channelMessageId: answer.processQueryKey } : {};
  }
}

export default defineAdapter({
  type: 'dingtalk',
  description: 'DingTalk robot (HTTP mode): signed callbacks in, session webhook or robot OpenAPI out',
  options: DingTalkOptions,
  create: (instance, ctx) => new DingTalkAdapter(instance.id, instance.type, instance.options, ctx),
});
