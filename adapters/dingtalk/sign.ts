/**
 * DingTalk robot HTTP-mode callback authentication (open.dingtalk.com "消息接收"): headers `timestamp` (ms) and
 * `sign` = base64(HMAC-SHA256(key = app secret, data = timestamp + "\n" + app secret)); refused when the timestamp
 * is more than an hour from now. The sign does not cover the body, so msgId dedupe is what stops replays.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function robotSign(timestamp: string, appSecret: string): string {
  return createHmac('sha256', appSecret).update(`${timestamp}\n${appSecret}`, 'utf8').digest('base64');
}

export type SignCheck = { ok: true } | { ok: false; reason: 'missing_signature' | 'stale_timestamp' | 'bad_signature' };

export function verifyRobotSign(
  timestamp: string | undefined,
  sign: string | undefined,
  appSecret: string,
  toleranceSeconds: number,
  now = Date.now(),
): SignCheck {
  if (!timestamp || !sign || !/^\d{10,16}$/.test(timestamp)) return { ok: false, reason: 'missing_signature' };
  if (Math.abs(now - Number(timestamp)) > toleranceSeconds * 1000) return { ok: false, reason: 'stale_timestamp' };
  const expected = Buffer.from(robotSign(timestamp, appSecret));
  const given = Buffer.from(sign);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'bad_signature' };
  return { ok: true };
}
