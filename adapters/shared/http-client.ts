/**
 * One keep-alive axios client per adapter instance (reusing connections to a platform matters at load; plain
 * requests go out through an undici pool, see http-transport.ts), and the mapping from an HTTP failure to a DeliveryError: network errors, 5xx and 408 retry; 429 pauses the shard for
 * Retry-After; any other 4xx cannot be fixed by retrying.
 */
import http from 'node:http';
import https from 'node:https';
import axios, { AxiosError, type AxiosInstance } from 'axios';
import { DeliveryError } from '../types.js';
import { createUndiciAdapter } from './http-transport.js';

/**
 * TCP keep-alive probe interval of the pooled sockets. axios sets 60 s on every request's socket; the agent sets its
 * own `keepAliveMsecs` each time a socket goes back to the pool. Node skips the setsockopt when nothing changes, so
 * with the same value on both sides a reused socket costs no system call — with the agent's default (1 s) the two
 * alternated and made four per request, which showed in profiles at a few hundred sends per second.
 */
const KEEPALIVE_PROBE_MS = 60_000;

/** Sockets per platform origin, in the undici pool and in the agents axios's own adapter uses. */
const MAX_SOCKETS = 64;

export function createHttpClient(baseURL?: string, timeoutMs = 10_000): AxiosInstance {
  return axios.create({
    ...(baseURL !== undefined && { baseURL }),
    timeout: timeoutMs,
    adapter: createUndiciAdapter({ connections: MAX_SOCKETS }).adapter,
    httpAgent: new http.Agent({ keepAlive: true, keepAliveMsecs: KEEPALIVE_PROBE_MS, maxSockets: MAX_SOCKETS }),
    httpsAgent: new https.Agent({ keepAlive: true, keepAliveMsecs: KEEPALIVE_PROBE_MS, maxSockets: MAX_SOCKETS }),
    maxRedirects: 0,
    // Callers look at status codes themselves.
    validateStatus: () => true,
    transitional: { clarifyTimeoutError: true },
  });
}

/** Seconds or an HTTP date → milliseconds; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function deliveryErrorForStatus(status: number, what: string, retryAfter?: string): DeliveryError | undefined {
  if (status >= 200 && status < 300) return undefined;
  if (status === 429) {
    return new DeliveryError(`${what}: HTTP 429 rate limited`, { retryable: true, code: 429, rateLimitMs: retryAfterMs(retryAfter) ?? 1000 });
  }
  if (status >= 500 || status === 408) return new DeliveryError(`${what}: HTTP ${status}`, { retryable: true, code: status });
  return new DeliveryError(`${what}: HTTP ${status}`, { retryable: false, code: status });
}

/** Wraps a transport failure (no HTTP answer) as retryable. */
export function deliveryErrorForException(err: unknown, what: string): DeliveryError {
  if (err instanceof DeliveryError) return err;
  const code = err instanceof AxiosError ? (err.code ?? 'network') : 'error';
  return new DeliveryError(`${what}: ${(err as Error).message}`, { retryable: true, code });
}
