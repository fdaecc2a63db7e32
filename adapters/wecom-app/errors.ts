/**
 * WeCom `errcode` → DeliveryError: the shared WeChat-family table plus WeCom's own codes. WeCom answers HTTP 200 for
 * almost everything and reports the outcome in `errcode`/`errmsg`, so this (not the HTTP status) decides whether
 * the pipeline retries, pauses the shard or dead-letters.
 *
 * Sources: WeCom global error codes (全局错误码), frequency limits (path 90454: a per-minute block lasts 60 s), the kf
 * send_msg rules (48 h window / 5 messages per customer message, path 94677) and silenceper/wechat `work/kf/error.go`.
 */
import { wechatDeliveryError, WECHAT_TOKEN_INVALID, type WechatErrorOptions } from '../shared/wechat-errors.js';
import type { DeliveryError } from '../types.js';

type Rule = NonNullable<WechatErrorOptions['extra']>[number];

/** WeCom codes the WeChat table lacks or means differently. */
export const WECOM_ERRORS: Record<number, Rule> = {
  40001: { retryable: false, reason: 'auth', hint: 'invalid corpsecret: check the app secret' },
  40013: { retryable: false, reason: 'auth', hint: 'invalid CorpID' },
  40056: { retryable: false, reason: 'invalid_request', hint: 'invalid agentid: check agentId' },
  45033: { retryable: true, rateLimited: true, reason: 'rate_limited', hint: 'too many concurrent calls' },
  50001: { retryable: false, reason: 'auth', hint: 'redirect/callback domain not registered for this app' },
  60011: { retryable: false, reason: 'auth', hint: 'no permission for this recipient (outside the app visible range)' },
  60020: { retryable: false, reason: 'auth', hint: "the gateway's egress IP is not in the app's trusted IPs (企业可信IP)" },
  81013: { retryable: false, reason: 'recipient_unreachable', hint: 'no valid recipient (left the corp or outside the app scope)' },
  95000: { retryable: false, reason: 'invalid_request', hint: 'invalid open_kfid' },
  95001: { retryable: false, reason: 'quota_exhausted', hint: 'the 5 replies allowed per customer message are used up; wait for the customer to write' },
  95002: { retryable: false, reason: 'reply_window_expired', hint: 'more than 48 h since the customer last wrote; wait for the customer to write' },
  95004: { retryable: false, reason: 'invalid_request', hint: 'the open_kfid does not exist' },
  95007: { retryable: false, reason: 'invalid_request', hint: 'invalid or expired sync_msg token' },
  95013: { retryable: false, reason: 'reply_window_expired', hint: 'the kf session has ended' },
  95014: { retryable: false, reason: 'invalid_request', hint: 'the servicer is not active or not receiving customers' },
  95017: { retryable: false, reason: 'auth', hint: 'the kf API is not enabled for this kf account (微信客服 → API → grant it to the app)' },
  95018: { retryable: false, reason: 'recipient_unreachable', hint: 'the kf session state does not allow API messages (queued, with a servicer or ended)' },
};

export interface WecomResult {
  errcode?: number;
  errmsg?: string;
  [field: string]: unknown;
}

/** The platform refused the access token itself: refresh and retry once (shared TokenManager). */
export function isTokenInvalid(outcome: unknown): boolean {
  const code = (outcome as WecomResult | undefined)?.errcode;
  return typeof code === 'number' && (WECHAT_TOKEN_INVALID.has(code) || code === 42007 || code === 42009);
}

/** undefined when errcode is 0 (success); otherwise the error the pipeline should see. */
export function wecomDeliveryError(result: WecomResult, what: string, rateLimitPauseMs: number): DeliveryError | undefined {
  return wechatDeliveryError({ ...result, errmsg: String(result.errmsg ?? '').slice(0, 300) }, `${what}: WeCom`, {
    rateLimitMs: rateLimitPauseMs,
    extra: WECOM_ERRORS,
  });
}
