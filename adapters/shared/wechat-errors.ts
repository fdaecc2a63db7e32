/**
 * WeChat-family API answers (`{"errcode": n, "errmsg": "..."}`) → DeliveryError, so the pipeline knows whether
 * retrying can help. Sources: the global return-code table and the customer-service send page (see
 * docs/channels-wechat.md). WeCom and other platforms pass their own extra codes in `extra`.
 *
 * - retry with backoff: -1 (system busy), transport errors and HTTP 5xx;
 * - slow down (rateLimitMs, the shard pauses and the attempt is not used): 45009 daily API quota, 45011 frequency;
 * - fail fast into the dead-letter view: the reply window is closed (45015), the per-window quota is spent (45047),
 *   the recipient cannot be reached (40003 invalid openid, 43004 not following, 43019 blocked), bad credentials or
 *   permissions (40001 after a refresh, 40013, 40125, 40164 IP not allow-listed, 48001), and malformed requests.
 */
import { DeliveryError, type DeliveryFailureReason } from '../types.js';

export interface WechatApiResult {
  errcode?: number;
  errmsg?: string;
  [field: string]: unknown;
}

/** Token invalid or expired: refresh the token at once and retry once (TokenManager.callWithToken). */
export const WECHAT_TOKEN_INVALID = new Set([40001, 40014, 42001]);

export function isWechatTokenInvalid(outcome: unknown): boolean {
  const code = (outcome as WechatApiResult | undefined)?.errcode;
  return typeof code === 'number' && WECHAT_TOKEN_INVALID.has(code);
}

interface Rule {
  retryable: boolean;
  reason: DeliveryFailureReason;
  rateLimited?: boolean;
  hint: string;
}

export const WECHAT_ERRORS: Record<number, Rule> = {
  [-1]: { retryable: true, reason: 'platform_error', hint: 'system busy' },
  40001: { retryable: false, reason: 'auth', hint: 'access token refused even after a refresh: check the AppSecret' },
  40014: { retryable: true, reason: 'auth', hint: 'access token invalid even after a refresh' },
  42001: { retryable: true, reason: 'auth', hint: 'access token expired even after a refresh' },
  40002: { retryable: false, reason: 'auth', hint: 'invalid grant_type' },
  40003: { retryable: false, reason: 'recipient_unreachable', hint: 'invalid openid (not a user of this app)' },
  40007: { retryable: false, reason: 'invalid_request', hint: 'invalid media_id' },
  40008: { retryable: false, reason: 'invalid_request', hint: 'invalid message type' },
  40013: { retryable: false, reason: 'auth', hint: 'invalid AppID' },
  40125: { retryable: false, reason: 'auth', hint: 'invalid AppSecret' },
  40164: { retryable: false, reason: 'auth', hint: "the gateway's IP is not on the console's IP allow-list" },
  41001: { retryable: false, reason: 'auth', hint: 'access_token missing' },
  43004: { retryable: false, reason: 'recipient_unreachable', hint: 'the user does not follow / has unsubscribed' },
  43019: { retryable: false, reason: 'recipient_unreachable', hint: 'the user is on the blacklist' },
  44002: { retryable: false, reason: 'invalid_request', hint: 'empty POST data' },
  45002: { retryable: false, reason: 'invalid_request', hint: 'message content too long' },
  45009: { retryable: true, rateLimited: true, reason: 'rate_limited', hint: 'daily API quota reached' },
  45011: { retryable: true, rateLimited: true, reason: 'rate_limited', hint: 'API called too often' },
  45015: { retryable: false, reason: 'reply_window_expired', hint: 'reply window (48 h) expired or the user left' },
  45047: { retryable: false, reason: 'quota_exhausted', hint: 'customer-service message quota for this window used up' },
  47001: { retryable: false, reason: 'invalid_request', hint: 'malformed JSON/XML data' },
  48001: { retryable: false, reason: 'auth', hint: 'API not authorised for this account' },
};

export interface WechatErrorOptions {
  /** How long the shard pauses on a rate-limit answer (default 60 s). */
  rateLimitMs?: number;
  /** Platform-specific codes that override or extend the table. */
  extra?: Record<number, Rule>;
}

/** undefined when the answer is a success (no errcode, or errcode 0). */
export function wechatDeliveryError(result: WechatApiResult, what: string, opts: WechatErrorOptions = {}): DeliveryError | undefined {
  const code = result.errcode;
  if (code === undefined || code === 0) return undefined;
  const rule = opts.extra?.[code] ?? WECHAT_ERRORS[code];
  const errmsg = typeof result.errmsg === 'string' ? result.errmsg : '';
  if (!rule) {
    return new DeliveryError(`${what}: errcode ${code} ${errmsg}`.trim(), { retryable: false, code, reason: 'invalid_request' });
  }
  return new DeliveryError(`${what}: errcode ${code} ${errmsg} (${rule.hint})`, {
    retryable: rule.retryable,
    code,
    reason: rule.reason,
    ...(rule.rateLimited && { rateLimitMs: opts.rateLimitMs ?? 60_000 }),
  });
}
