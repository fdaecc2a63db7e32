/**
 * Feishu/Lark event security (open.feishu.cn "Encrypt Key" and "接收事件" docs; larksuite/node-sdk aes-cipher.ts):
 * - encryption: key = SHA-256(Encrypt Key) (32 bytes); base64 `encrypt` = 16-byte IV ‖ AES-256-CBC ciphertext,
 *   standard PKCS#7 padding; the plaintext is the event JSON;
 * - signature: X-Lark-Signature = hex(SHA-256(timestamp + nonce + Encrypt Key + raw body)) — a plain hash, not an
 *   HMAC — over the exact bytes received.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const HEADER_TIMESTAMP = 'x-lark-request-timestamp';
export const HEADER_NONCE = 'x-lark-request-nonce';
export const HEADER_SIGNATURE = 'x-lark-signature';

const keyOf = (encryptKey: string) => createHash('sha256').update(encryptKey, 'utf8').digest();

export function decrypt(encryptKey: string, encrypt: string): string {
  const buf = Buffer.from(encrypt, 'base64');
  if (buf.length < 32 || buf.length % 16 !== 0) throw new Error('ciphertext has an invalid length');
  const decipher = createDecipheriv('aes-256-cbc', keyOf(encryptKey), buf.subarray(0, 16));
  return Buffer.concat([decipher.update(buf.subarray(16)), decipher.final()]).toString('utf8');
}

/** The platform side (used by the test fake): a random IV, as Feishu does. */
export function encrypt(encryptKey: string, plaintext: string, iv = randomBytes(16)): string {
  const cipher = createCipheriv('aes-256-cbc', keyOf(encryptKey), iv);
  return Buffer.concat([iv, cipher.update(plaintext, 'utf8'), cipher.final()]).toString('base64');
}

export function signature(timestamp: string, nonce: string, encryptKey: string, rawBody: Buffer | string): string {
  return createHash('sha256').update(timestamp + nonce + encryptKey, 'utf8').update(rawBody).digest('hex');
}

export function signatureMatches(given: string, expected: string): boolean {
  const a = Buffer.from(given.toLowerCase());
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The verification token compared in constant time (both hashed first, so not even the length leaks). */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const digest = (v: string) => createHash('sha256').update(v, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * Whether a signed request's X-Lark-Request-Timestamp (Unix seconds) is within `maxAgeSeconds` of `nowMs`, either
 * way: the signature proves who sent the bytes, not when, so an old captured event could be replayed after the dedupe
 * window has forgotten it.
 */
export function timestampFresh(timestamp: string, maxAgeSeconds: number, nowMs: number): boolean {
  if (!/^\d{1,12}$/.test(timestamp.trim())) return false;
  return Math.abs(nowMs / 1000 - Number(timestamp)) <= maxAgeSeconds;
}
