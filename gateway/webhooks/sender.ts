/**
 * One delivery attempt, per the Standard Webhooks specification: the same `webhook-id` on every attempt, a fresh
 * `webhook-timestamp` and `webhook-signature` (v1, HMAC-SHA256 over "<id>.<timestamp>.<body>") per attempt, signed
 * with the `standardwebhooks` reference library so any receiver can verify with an off-the-shelf one.
 */
import { Webhook } from 'standardwebhooks';

export type AttemptOutcome =
  | { kind: 'delivered'; status: number; latencyMs: number }
  /** Any 5xx, 408, 425, 429 or a network error: try again later (no sooner than `retryAfterMs` when the receiver said so). */
  | { kind: 'retry'; status?: number; error: string; latencyMs: number; retryAfterMs?: number }
  /** 410 Gone: the receiver asks to stop sending; the endpoint gets disabled. */
  | { kind: 'gone'; status: number; latencyMs: number }
  /** Any other 4xx (or 3xx): retrying the same bytes will not help; dead-letter it (replayable by hand). */
  | { kind: 'rejected'; status: number; error: string; latencyMs: number };

/**
 * Whether an answer may go away by itself: a server error (a 500 is as often a deploy or a restarting database as a
 * bug), a timeout on the receiver's side (408), "too early" (425) or "too many requests" (429). The other 4xx say the
 * request itself is wrong, and the same bytes will be refused again.
 */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 425 || status === 429;
}

export function signedHeaders(secret: string, webhookId: string, body: string, now = new Date()): Record<string, string> {
  const signature = new Webhook(secret).sign(webhookId, now, body);
  return {
    'content-type': 'application/json',
    'user-agent': 'channel-hub-webhooks/1',
    'webhook-id': webhookId,
    'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
    'webhook-signature': signature,
  };
}

/** Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export async function attemptDelivery(url: string, secret: string, webhookId: string, body: string, timeoutMs: number): Promise<AttemptOutcome> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', body, headers: signedHeaders(secret, webhookId, body), signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const error = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : `${e.cause?.code ?? e.name}: ${e.message}`;
    return { kind: 'retry', error, latencyMs: latency() };
  }
  // Drain (bounded) so the connection can be reused; the receiver's body is not otherwise used.
  await res.arrayBuffer().catch(() => undefined);
  const latencyMs = latency();
  if (res.status >= 200 && res.status < 300) return { kind: 'delivered', status: res.status, latencyMs };
  if (res.status === 410) return { kind: 'gone', status: 410, latencyMs };
  if (isRetryableStatus(res.status)) {
    const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    return { kind: 'retry', status: res.status, error: `HTTP ${res.status}`, latencyMs, ...(retryAfterMs !== undefined && { retryAfterMs }) };
  }
  return { kind: 'rejected', status: res.status, error: `HTTP ${res.status}`, latencyMs };
}

/** Exponential backoff with jitter: base·2^(n-1) capped at max, then a random 50–100 % of it (no thundering herd). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(exp * (0.5 + random() * 0.5));
}
