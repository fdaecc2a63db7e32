/**
 * An axios adapter that sends plain requests through an undici connection pool. Platform calls keep axios's API
 * (defaults, params, interceptors, AxiosError codes) while the wire work is undici's: measured on the same loopback
 * server, one JSON POST costs ≈ 230–275 µs of CPU through axios's Node http adapter and ≈ 70–95 µs through this one
 * (`npm run bench` sends one per bot reply, so at saturation that difference is a large share of a worker's CPU).
 *
 * "Plain" is a string, Buffer or typed-array body (or none), a JSON, text or arraybuffer answer, no redirects to
 * follow, no proxy, no size cap and no progress callbacks. Anything else — streams, FormData uploads, redirects,
 * capped downloads — goes to axios's own http adapter unchanged, so every axios feature keeps working.
 */
import axios, { AxiosError, AxiosHeaders, type AxiosAdapter, type AxiosResponse, type InternalAxiosRequestConfig } from 'axios';
import { Agent, errors as undiciErrors, type Dispatcher } from 'undici';

export interface TransportOptions {
  /** Sockets kept per origin (the pool reuses them: keep-alive). */
  connections: number;
}

/** Proxy variables axios would honour: with any of them set, every request takes axios's adapter (it speaks proxies). */
const PROXY_ENV = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'ALL_PROXY', 'all_proxy'];

export function proxyConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  return PROXY_ENV.some((name) => Boolean(env[name]));
}

type Body = string | Buffer | Uint8Array | undefined;

/** The request body when it is one undici can send as is; null when axios's adapter must handle the request. */
function plainBody(data: unknown): Body | null {
  if (data === undefined || data === null) return undefined;
  if (typeof data === 'string' || Buffer.isBuffer(data) || data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return null;
}

/** Params as a query string when they are plain values (axios's serializer handles nested ones); null otherwise. */
function plainQuery(params: unknown): string | null {
  if (params === undefined || params === null) return '';
  if (params instanceof URLSearchParams) return params.toString();
  if (typeof params !== 'object') return null;
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return null;
    query.append(name, String(value));
  }
  return query.toString();
}

const ABSOLUTE_URL = /^[a-z][a-z\d+\-.]*:\/\//i;

/** The request's URL as axios builds it (base URL + path + params), without merging the config a second time. */
function requestUrl(config: InternalAxiosRequestConfig, query: string): URL {
  const path = config.url ?? '';
  const full = config.baseURL && !ABSOLUTE_URL.test(path) ? `${config.baseURL.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}` : path;
  const url = new URL(full);
  if (query) url.search = url.search ? `${url.search}&${query}` : query;
  return url;
}

function isPlain(config: InternalAxiosRequestConfig): boolean {
  const responseType = config.responseType ?? 'json';
  return (
    (responseType === 'json' || responseType === 'text' || responseType === 'arraybuffer') &&
    !config.maxRedirects &&
    !config.proxy &&
    !config.socketPath &&
    !config.auth &&
    !config.onUploadProgress &&
    !config.onDownloadProgress &&
    !(config.maxContentLength !== undefined && config.maxContentLength >= 0) &&
    !config.cancelToken &&
    !config.paramsSerializer &&
    plainQuery(config.params) !== null &&
    plainBody(config.data) !== null
  );
}

export function createUndiciAdapter(opts: TransportOptions): { adapter: AxiosAdapter; close(): Promise<void> } {
  const fallback = axios.getAdapter('http');
  const useFallbackOnly = proxyConfigured();
  const dispatcher = new Agent({ connections: opts.connections, pipelining: 1 });

  const adapter: AxiosAdapter = async (config) => {
    if (useFallbackOnly || !isPlain(config)) return fallback(config);
    const url = requestUrl(config, plainQuery(config.params) ?? '');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(AxiosHeaders.from(config.headers).toJSON(true))) {
      if (value !== undefined && value !== null) headers[name.toLowerCase()] = String(value);
    }
    const request = { method: config.method?.toUpperCase() ?? 'GET', url: url.href };
    // axios's timeout covers the whole exchange; undici's own timers are per phase and coarse (≈ 1 s), so a plain
    // timer aborts the request instead (it never fires on a request that completes in time).
    const abort = new AbortController();
    const timer = config.timeout && config.timeout > 0 ? setTimeout(() => abort.abort(TIMED_OUT), config.timeout) : undefined;
    const signal = config.signal ? AbortSignal.any([abort.signal, config.signal as AbortSignal]) : abort.signal;
    let res: Dispatcher.ResponseData;
    let data: string | Buffer;
    try {
      res = await dispatcher.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: request.method as Dispatcher.HttpMethod,
        headers,
        body: plainBody(config.data) ?? null,
        signal,
      });
      data = config.responseType === 'arraybuffer' ? Buffer.from(await res.body.arrayBuffer()) : await res.body.text();
    } catch (err) {
      throw asAxiosError(signal.aborted && signal.reason === TIMED_OUT ? TIMED_OUT : err, config, request);
    } finally {
      clearTimeout(timer);
    }
    const response: AxiosResponse = {
      data,
      status: res.statusCode,
      statusText: '',
      headers: AxiosHeaders.from(flattenHeaders(res.headers)),
      config,
      request,
    };
    const validateStatus = config.validateStatus;
    if (!validateStatus || validateStatus(res.statusCode)) return response;
    throw new AxiosError(
      `Request failed with status code ${res.statusCode}`,
      res.statusCode >= 500 ? AxiosError.ERR_BAD_RESPONSE : AxiosError.ERR_BAD_REQUEST,
      config,
      request,
      response,
    );
  };
  return { adapter, close: () => dispatcher.close() };
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** The abort reason of a request that ran past axios's `timeout`. */
const TIMED_OUT = Symbol('timed out');

/** undici's failures with the codes axios gives the same failures (callers and retries look at `code`). */
function asAxiosError(err: unknown, config: InternalAxiosRequestConfig, request: unknown): AxiosError {
  if (err === TIMED_OUT || err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    const code = config.transitional?.clarifyTimeoutError ? AxiosError.ETIMEDOUT : AxiosError.ECONNABORTED;
    return new AxiosError(`timeout of ${config.timeout}ms exceeded`, code, config, request);
  }
  if (err instanceof Error && err.name === 'AbortError') return new AxiosError('canceled', AxiosError.ERR_CANCELED, config, request);
  const code = (err as { code?: string }).code;
  return AxiosError.from(err as Error, code ?? AxiosError.ERR_NETWORK, config, request);
}
