/**
 * Inbound verification of config-defined channels: an HMAC over a templated string (Slack: "v0:<ts>:<body>",
 * GitHub: the body) or a shared token in a header (Telegram's secret token, a bearer key), optionally bound to a
 * timestamp header with a tolerance so a captured request cannot be replayed later.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { CustomVerify } from './options.js';
import { compileTemplate, type Bindings } from './expression.js';

export type VerifyResult = { ok: true } | { ok: false; reason: 'missing_signature' | 'stale_timestamp' | 'bad_signature'; detail: string };

export interface InboundRequestView {
  headers: Record<string, string>;
  rawBody: string;
  body: unknown;
  query: Record<string, string>;
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function hmacDigest(algorithm: string, secret: string, payload: string, encoding: 'hex' | 'base64' | 'base64url'): string {
  return createHmac(algorithm, secret).update(payload, 'utf8').digest(encoding);
}

function checkTimestamp(spec: NonNullable<Extract<CustomVerify, { kind: 'hmac' | 'token' }>['timestamp']>, headers: Record<string, string>, now: number): VerifyResult {
  const value = headers[spec.header.toLowerCase()];
  if (!value || !/^\d{1,16}$/.test(value)) {
    return { ok: false, reason: 'missing_signature', detail: `the ${spec.header} header (Unix ${spec.unit === 's' ? 'seconds' : 'milliseconds'}) is required` };
  }
  const ms = spec.unit === 's' ? Number(value) * 1000 : Number(value);
  if (Math.abs(now - ms) > spec.toleranceSeconds * 1000) {
    return { ok: false, reason: 'stale_timestamp', detail: `${spec.header} is more than ${spec.toleranceSeconds} s from the gateway clock` };
  }
  return { ok: true };
}

/** Builds the checker once per channel (the payload template is compiled here, validated earlier by the schema). */
export function createVerifier(spec: CustomVerify): (req: InboundRequestView, now?: number) => Promise<VerifyResult> {
  if (spec.kind === 'none') return async () => ({ ok: true });
  if (spec.kind === 'token') {
    const header = spec.header.toLowerCase();
    return async (req, now = Date.now()) => {
      const given = req.headers[header];
      if (!given) return { ok: false, reason: 'missing_signature', detail: `the ${spec.header} header is required` };
      if (!safeEqual(given, spec.prefix + spec.token)) return { ok: false, reason: 'bad_signature', detail: `${spec.header} does not match` };
      return spec.timestamp ? checkTimestamp(spec.timestamp, req.headers, now) : { ok: true };
    };
  }
  const payload = compileTemplate(spec.payload);
  const header = spec.header.toLowerCase();
  return async (req, now = Date.now()) => {
    const given = req.headers[header];
    if (!given) return { ok: false, reason: 'missing_signature', detail: `the ${spec.header} header is required` };
    // The timestamp first: a stale request is refused whatever its signature.
    if (spec.timestamp) {
      const fresh = checkTimestamp(spec.timestamp, req.headers, now);
      if (!fresh.ok) return fresh;
    }
    const bindings: Bindings = { headers: req.headers, rawBody: req.rawBody, query: req.query };
    const signed = await payload.render(req.body ?? {}, bindings);
    const expected = spec.prefix + hmacDigest(spec.algorithm, spec.secret, signed, spec.encoding);
    if (!safeEqual(given, expected)) {
      return { ok: false, reason: 'bad_signature', detail: `${spec.header} does not match ${spec.prefix}${spec.encoding}(HMAC-${spec.algorithm.toUpperCase()}(secret, payload))` };
    }
    return { ok: true };
  };
}
