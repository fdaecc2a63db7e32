/**
 * App channel signatures, both directions: `X-Gateway-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
 * with `X-Gateway-Timestamp` in Unix seconds. Binding the timestamp into the MAC and refusing stale ones stops
 * replays of a captured request; the platform message id dedupes the rest.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const HEADER_APP = 'x-gateway-app';
export const HEADER_TIMESTAMP = 'x-gateway-timestamp';
export const HEADER_SIGNATURE = 'x-gateway-signature';

export function sign(secret: string, timestamp: number | string, body: string | Buffer): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: 'missing_signature' | 'stale_timestamp' | 'bad_signature' };

export function verify(
  secret: string,
  timestamp: string | undefined,
  signature: string | undefined,
  body: string | Buffer,
  toleranceSeconds: number,
  now = Date.now(),
): SignatureCheck {
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'missing_signature' };
  if (Math.abs(now / 1000 - Number(timestamp)) > toleranceSeconds) return { ok: false, reason: 'stale_timestamp' };
  const expected = Buffer.from(sign(secret, timestamp, body));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'bad_signature' };
  return { ok: true };
}

/** Headers for a request the gateway sends (reply callbacks), or that an app sends. */
export function signedHeaders(appId: string, secret: string, body: string, now = Date.now()): Record<string, string> {
  const timestamp = Math.floor(now / 1000);
  return {
    'content-type': 'application/json',
    [HEADER_APP]: appId,
    [HEADER_TIMESTAMP]: String(timestamp),
    [HEADER_SIGNATURE]: sign(secret, timestamp, body),
  };
}
