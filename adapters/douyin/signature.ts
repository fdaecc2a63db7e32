/**
 * Douyin webhook signature (webhooks 概述, confirmed by the official Go sample): the `X-Douyin-Signature` header is
 * hex(sha1(client_secret ‖ raw request body)). Mini-program apps sign with their separate "webhook 验签秘钥" instead
 * of the client secret. Computed over the exact bytes received, compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-douyin-signature';

export function douyinSignature(secret: string, rawBody: Buffer | string): string {
  return createHash('sha1').update(secret).update(rawBody).digest('hex');
}

export function verifyDouyinSignature(secret: string, rawBody: Buffer, given: string | undefined): boolean {
  if (!given) return false;
  const expected = Buffer.from(douyinSignature(secret, rawBody));
  const actual = Buffer.from(given.trim().toLowerCase());
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
