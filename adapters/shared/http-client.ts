/**
 * One keep-alive axios client per adapter instance (reusing connections to a platform matters at load; plain
 * requests go out through an undici pool, see http-transport.ts), and the mapping from an HTTP failure to a
 * DeliveryError: network errors, 5xx and 408 retry; 429 pauses the shard for Retry-After; any other 4xx cannot be
 * fixed by retrying.
 */
import http from 'node:http';
import https from 'node:https';
import axios, { AxiosError, type AxiosInstance } from 'axios';
import { DeliveryError } from '../types.js';
import { createUndiciTransport, type Exchanged, type Params, type UndiciTransport } from './http-transport.js';

/**
 * TCP keep-alive probe interval of the pooled sockets. axios sets 60 s on every request's socket; the agent sets its
 * own `keepAliveMsecs` each time a socket goes back to the pool. Node skips the setsockopt when nothing changes, so
 * with the same value on both sides a reused socket costs no system call — with the agent's default (1 s) the two
 * alternated and made four per request, which showed in profiles at a few hundred sends per second.
 */
const KEEPALIVE_PROBE_MS = 60_000;

/** Sockets per platform origin, in the undici pool and in the agents axios's own adapter uses. */
const MAX_SOCKETS = 64;

/** Each client's undici transport, for postJson. */
const transports = new WeakMap<AxiosInstance, UndiciTransport>();

export function createHttpClient(baseURL?: string, timeoutMs = 10_000): AxiosInstance {
  const transport = createUndiciTransport({ connections: MAX_SOCKETS });
  const client = axios.create({
    ...(baseURL !== undefined && { baseURL }),
    timeout: timeoutMs,
    adapter: transport.adapter,
    httpAgent: new http.Agent({ keepAlive: true, keepAliveMsecs: KEEPALIVE_PROBE_MS, maxSockets: MAX_SOCKETS }),
    httpsAgent: new https.Agent({ keepAlive: true, keepAliveMsecs: KEEPALIVE_PROBE_MS, maxSockets: MAX_SOCKETS }),
    maxRedirects: 0,
    // Callers look at status codes themselves.
    validateStatus: () => true,
    transitional: { clarifyTimeoutError: true },
  });
  transports.set(client, transport);
  return client;
}

/**
 * An adapter's message-send call: a JSON POST whose answer is read whole, through the client's own pool, URL
 * building (base URL, params) and timeout, answering every status like the client does — without axios's per-request
 * machinery, ≈ 0.1 ms of CPU per call in a busy worker (http-transport.ts). A string body goes out byte for byte
 * (signed bodies); anything else is sent as its JSON. The answer's data is its parsed JSON, or its text when it is
 * not JSON, as axios gives it. With a proxy configured the call goes through axios.
 */
export async function postJson<T = unknown>(
  client: AxiosInstance,
  url: string,
  body: unknown,
  opts: { params?: Params; headers?: Record<string, string> } = {},
): Promise<Exchanged<T>> {
  const transport = transports.get(client);
  const json = typeof body === 'string' ? body : JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  for (const [name, value] of Object.entries(opts.headers ?? {})) headers[name.toLowerCase()] = value;
  if (!transport?.direct) {
    const res = await client.post(url, json, { params: opts.params, headers });
    return { status: res.status, headers: res.headers as Record<string, string>, data: res.data as T };
  }
  const { baseURL, timeout, transitional } = client.defaults;
  const res = await transport.post({ baseURL, timeout, transitional }, url, json, {
    ...(opts.params && { params: opts.params }),
    headers,
  });
  return { ...res, data: parseJson(res.data) as T };
}

/** What a JSON text can start with, after JSON's own whitespace: an object, array, string, number or literal. */
const JSON_START = /^[ \t\n\r]*[{["\-0-9tfn]/;

/**
 * JSON when the text is JSON, else the text itself (axios's default for a JSON answer). Text that cannot start a JSON
 * value — an app's callback answering "ok" — is returned without trying: a failing JSON.parse throws, and building
 * that SyntaxError (with its stack trace) on every send was ≈ 4 % of a worker's CPU on the app channel.
 */
function parseJson(text: string): unknown {
  if (!JSON_START.test(text)) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
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
