/**
 * The wire under the platform HTTP client: an undici connection pool, driven through its handler interface
 * (exchange below), used two ways.
 *
 * - As an axios adapter, for plain requests — a string, Buffer or typed-array body (or none), a JSON, text or
 *   arraybuffer answer, no redirects to follow, no proxy, no size cap, no progress callbacks. Anything else (streams,
 *   FormData uploads, redirects, capped downloads) goes to axios's own Node adapter unchanged, so every axios feature
 *   keeps working. Measured on one loopback server, a JSON POST costs ≈ 230–275 µs of CPU through axios's Node adapter
 *   and ≈ 160–210 µs through axios with this one.
 * - Directly, for an adapter's message-send call (`postJson` in http-client.ts): a JSON POST without axios's
 *   per-request machinery — config merging, header normalisation, transforms, the interceptor chain — which costs
 *   ≈ 0.1 ms of CPU per call in a busy worker, about a fifth of its CPU per message (`npm run bench:worker`).
 *
 * Both paths build the URL (base URL + path + params) and apply the timeout the way axios does, and fail with the
 * AxiosError codes axios gives the same failures, so callers handle one kind of error.
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
export type Params = Record<string, string | number | boolean | undefined | null>;

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

/** A request's URL as axios builds it: base URL + path (an absolute URL ignores the base) + params. */
function requestUrl(baseURL: string | undefined, path: string, query: string): URL {
  const full = baseURL && !ABSOLUTE_URL.test(path) ? `${baseURL.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}` : path;
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

/** What the wire gave back: status, headers (lower-case names, repeated ones joined) and the body. */
export interface Exchanged<D> {
  status: number;
  headers: Record<string, string>;
  data: D;
}

export interface UndiciTransport {
  adapter: AxiosAdapter;
  /** False when a proxy is configured: then every request must go through axios, which speaks proxies. */
  direct: boolean;
  /** A POST of `body` as is, its answer read whole as text; every status is returned (see postJson). */
  post(
    defaults: Pick<InternalAxiosRequestConfig, 'baseURL' | 'timeout' | 'transitional'>,
    path: string,
    body: string,
    opts: { params?: Params; headers?: Record<string, string> },
  ): Promise<Exchanged<string>>;
}

export function createUndiciTransport(opts: TransportOptions): UndiciTransport {
  const fallback = axios.getAdapter('http');
  const proxied = proxyConfigured();
  const dispatcher = new Agent({ connections: opts.connections, pipelining: 1 });

  const adapter: AxiosAdapter = async (config) => {
    if (proxied || !isPlain(config)) return fallback(config);
    const url = requestUrl(config.baseURL, config.url ?? '', plainQuery(config.params) ?? '');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(AxiosHeaders.from(config.headers).toJSON(true))) {
      if (value !== undefined && value !== null) headers[name.toLowerCase()] = String(value);
    }
    const method = config.method?.toUpperCase() ?? 'GET';
    const res = await exchange<Buffer | string>(
      dispatcher,
      url,
      { method, headers, body: plainBody(config.data) ?? undefined, signal: config.signal as AbortSignal | undefined },
      config,
      config.responseType === 'arraybuffer' ? asBuffer : utf8Text,
    );
    const response: AxiosResponse = {
      data: res.data,
      status: res.status,
      statusText: '',
      headers: AxiosHeaders.from(res.headers),
      config,
      request: { method, url: url.href },
    };
    const validateStatus = config.validateStatus;
    if (!validateStatus || validateStatus(res.status)) return response;
    throw new AxiosError(
      `Request failed with status code ${res.status}`,
      res.status >= 500 ? AxiosError.ERR_BAD_RESPONSE : AxiosError.ERR_BAD_REQUEST,
      config,
      response.request,
      response,
    );
  };

  return {
    adapter,
    direct: !proxied,
    post: (defaults, path, body, { params, headers = {} }) => {
      const url = requestUrl(defaults.baseURL, path, plainQuery(params) ?? '');
      // The config an AxiosError carries: what axios would have built for the same call.
      const config = { ...defaults, url: path, method: 'post' };
      return exchange(dispatcher, url, { method: 'POST', headers, body }, config as InternalAxiosRequestConfig, utf8Text);
    },
  };
}

/**
 * One request through the pool's handler interface, its answer's chunks collected as they arrive; failures become the
 * AxiosError axios would throw for `config`. undici's `request` builds a body stream, and a timeout there needs an
 * AbortController and its signal, for every call: ≈ 38 µs of CPU per send against ≈ 30–32 this way (bench/README.md).
 */
function exchange<D>(
  dispatcher: Dispatcher,
  url: URL,
  request: { method: string; headers: Record<string, string>; body: Body; signal?: AbortSignal | undefined },
  config: InternalAxiosRequestConfig,
  decode: (answer: Buffer) => D,
): Promise<Exchanged<D>> {
  return new Promise((resolve, reject) => {
    const { signal } = request;
    let settled = false;
    let controller: Dispatcher.DispatchController | undefined;
    let status = 0;
    let answerHeaders: Record<string, string> = {};
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    /** Settles once: with the answer, or with the AxiosError for `err`. False when it had settled already. */
    const finish = (err: unknown, answer?: Exchanged<D>): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      if (onAbort) signal!.removeEventListener('abort', onAbort);
      if (answer) resolve(answer);
      else reject(asAxiosError(err, config, { method: request.method, url: url.href }));
      return true;
    };
    // Stopping the request: the caller hears at once; a request still queued for a socket is dropped when it starts.
    const stop = (reason: unknown) => {
      if (finish(reason)) controller?.abort(reason instanceof Error ? reason : new Error('timed out'));
    };
    // A message send has no signal: no listener, no closure for it.
    const onAbort = signal && (() => stop(canceled()));
    if (signal?.aborted) return stop(canceled());
    if (onAbort) signal!.addEventListener('abort', onAbort, { once: true });
    // axios's timeout covers the whole exchange, a wait for a free socket included; undici's own timers are per phase
    // and coarse (≈ 1 s). The timer never fires on a request that completes in time.
    if (config.timeout && config.timeout > 0) timer = setTimeout(stop, config.timeout, TIMED_OUT);
    try {
      dispatcher.dispatch(
        { origin: url.origin, path: url.pathname + url.search, method: request.method as Dispatcher.HttpMethod, headers: request.headers, body: request.body ?? null },
        {
          onRequestStart(started) {
            controller = started;
            if (settled) started.abort(new Error('stopped before it started'));
          },
          onResponseStart(_c, statusCode, responseHeaders) {
            status = statusCode;
            answerHeaders = flattenHeaders(responseHeaders);
          },
          onResponseData(_c, chunk) {
            chunks.push(chunk);
          },
          onResponseEnd() {
            if (!settled) finish(undefined, { status, headers: answerHeaders, data: decode(Buffer.concat(chunks)) });
          },
          onResponseError(_c, err) {
            finish(err);
          },
        },
      );
    } catch (err) {
      finish(err);
    }
  });
}

const asBuffer = (answer: Buffer) => answer;

/** An answer as text, as undici's text() reads it: UTF-8, a byte order mark dropped. */
function utf8Text(data: Buffer): string {
  const text = data.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** What a caller's abort signal ends a request with (asAxiosError turns it into axios's ERR_CANCELED). */
function canceled(): Error {
  const err = new Error('canceled');
  err.name = 'AbortError';
  return err;
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
