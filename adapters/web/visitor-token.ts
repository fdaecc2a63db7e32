/**
 * Visitor tokens identify a web-widget visitor across reconnects without any login: `v1.<visitorId>.<expiresAt>.<mac>`
 * where mac = base64url(HMAC-SHA256(secret, "v1.<visitorId>.<expiresAt>")). Stateless, so any ingress process can
 * check them; expiring, so a leaked token stops working.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export type TokenCheck = { ok: true; visitorId: string; expiresAt: number } | { ok: false; reason: 'malformed' | 'bad_signature' | 'expired' };

export function newVisitorId(): string {
  return randomBytes(12).toString('base64url');
}

function mac(secret: string, body: string): string {
  return createHmac('sha256', secret).update(body).digest('base64url');
}

export function issueVisitorToken(secret: string, visitorId: string, ttlSeconds: number, now = Date.now()): string {
  const body = `v1.${visitorId}.${Math.floor(now / 1000) + ttlSeconds}`;
  return `${body}.${mac(secret, body)}`;
}

export function verifyVisitorToken(secret: string, token: string, now = Date.now()): TokenCheck {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== 'v1' || !/^[A-Za-z0-9_-]{8,64}$/.test(parts[1]!) || !/^\d+$/.test(parts[2]!)) {
    return { ok: false, reason: 'malformed' };
  }
  const body = parts.slice(0, 3).join('.');
  const expected = Buffer.from(mac(secret, body));
  const given = Buffer.from(parts[3]!);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'bad_signature' };
  const expiresAt = Number(parts[2]) * 1000;
  if (expiresAt <= now) return { ok: false, reason: 'expired' };
  return { ok: true, visitorId: parts[1]!, expiresAt };
}
