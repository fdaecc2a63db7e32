/**
 * The wire under the platform HTTP client: an undici connection pool, used two ways.
 *
 * - As an axios adapter, for plain requests — a string, Buffer or typed-array body (or none), a JSON, text or
 *   arraybuffer answer, no redirects to follow, no proxy, no size cap, no progress callbacks. Anything else (streams,
 *   FormData uploads, redirects, capped downloads) goes to axios's own Node adapter unchanged, so every axios feature
 *   keeps working. Measured on one loopback server, a JSON POST costs ≈ 230–275 µs of CPU through axios's Node adapter
 *   and ≈ 160–210 µs through axios with this one.
 * - Directly, for an adapter's message-send call (`postJson` in http-client.ts): a JSON POST without axios's
 *   per-request machinery — config merging, header normalisation, transforms, the interceptor chain — which costs
 *   ≈ 0.1 ms of CPU per call in a busy worker, about a fifth of its CPU per message (`npm run bench:worker`), and
 *   through the pool's handler interface rather than undici's `request` (postText below).
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

  /** One request through the pool; failures become the AxiosError axios would throw for `config`. */
  async function exchange<D>(
    url: URL,
    request: { method: string; headers: Record<string, string>; body: Body; signal?: AbortSignal | undefined },
    read: (body: Dispatcher.ResponseData['body']) => Promise<D>,
    config: InternalAxiosRequestConfig,
  ): Promise<Exchanged<D>> {
    // axios's timeout covers the whole exchange; undici's own timers are per phase and coarse (≈ 1 s), so a plain
    // timer aborts the request instead (it never fires on a request that completes in time).
    const abort = new AbortController();
    const timer = config.timeout && config.timeout > 0 ? setTimeout(() => abort.abort(TIMED_OUT), config.timeout) : undefined;
    const signal = request.signal ? AbortSignal.any([abort.signal, request.signal]) : abort.signal;
    const described = { method: request.method, url: url.href };
    try {
      const res = await dispatcher.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: request.method as Dispatcher.HttpMethod,
        headers: request.headers,
        body: request.body ?? null,
        signal,
      });
      return { status: res.statusCode, headers: flattenHeaders(res.headers), data: await read(res.body) };
    } catch (err) {
      throw asAxiosError(signal.aborted && signal.reason === TIMED_OUT ? TIMED_OUT : err, config, described);
    } finally {
      clearTimeout(timer);
    }
  }

  const adapter: AxiosAdapter = async (config) => {
    if (proxied || !isPlain(config)) return fallback(config);
    const url = requestUrl(config.baseURL, config.url ?? '', plainQuery(config.params) ?? '');
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(AxiosHeaders.from(config.headers).toJSON(true))) {
      if (value !== undefined && value !== null) headers[name.toLowerCase()] = String(value);
    }
    const method = config.method?.toUpperCase() ?? 'GET';
    const res = await exchange(
      url,
      { method, headers, body: plainBody(config.data) ?? undefined, signal: config.signal as AbortSignal | undefined },
      async (body) => (config.responseType === 'arraybuffer' ? Buffer.from(await body.arrayBuffer()) : body.text()),
      config,
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
      return postText(dispatcher, url, headers, body, config as InternalAxiosRequestConfig);
    },
  };
}

/**
 * A POST through the pool's handler interface: the answer's chunks are collected as they arrive. undici's `request`
 * (exchange() above) builds a body stream, and the timeout there needs an AbortController and its signal, for every
 * call: ≈ 38 µs of CPU per send against ≈ 30–32 this way (bench/README.md). Same timeout and errors as exchange().
 */
function postText(
  dispatcher: Dispatcher,
  url: URL,
  headers: Record<string, string>,
  body: string,
  config: InternalAxiosRequestConfig,
): Promise<Exchanged<string>> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let controller: Dispatcher.DispatchController | undefined;
    let status = 0;
    let answerHeaders: Record<string, string> = {};
    const chunks: Buffer[] = [];
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(asAxiosError(err, config, { method: 'POST', url: url.href }));
    };
    // axios's timeout covers the whole exchange, a wait for a free socket included: the caller hears at once, and a
    // request still queued is dropped when it reaches a socket.
    const timer =
      config.timeout && config.timeout > 0
        ? setTimeout(() => {
            fail(TIMED_OUT);
            controller?.abort(new Error('timed out'));
          }, config.timeout)
        : undefined;
    try {
      dispatcher.dispatch(
        { origin: url.origin, path: url.pathname + url.search, method: 'POST', headers, body },
        {
          onRequestStart(started) {
            controller = started;
            if (settled) started.abort(new Error('timed out'));
          },
          onResponseStart(_c, statusCode, responseHeaders) {
            status = statusCode;
            answerHeaders = flattenHeaders(responseHeaders);
          },
          onResponseData(_c, chunk) {
            chunks.push(chunk);
          },
          onResponseEnd() {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            // As undici's text(): UTF-8, a byte order mark dropped.
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status, headers: answerHeaders, data: text.charCodeAt(0) === 0xfeff ? text.slice(1) : text });
          },
          onResponseError(_c, err) {
            fail(err);
          },
        },
      );
    } catch (err) {
      fail(err);
    }
  });
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
