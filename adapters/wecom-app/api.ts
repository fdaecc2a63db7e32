/**
 * The WeCom server API as the self-built app and the customer-service (kf) channels use it: `gettoken` through the
 * shared TokenManager (one refresh cluster-wide, refresh + one retry on 40014/42001), JSON POSTs with
 * `?access_token=`, media upload and download. Secrets and tokens only ever travel in the query string of requests
 * to `apiBaseUrl`; they are never logged and never part of an error message.
 */
import type { AxiosInstance } from 'axios';
import type { Logger } from 'pino';
import { createHttpClient, deliveryErrorForException, deliveryErrorForStatus, postJson } from '../shared/http-client.js';
import type { FetchedMedia } from '../shared/media-store.js';
import type { TokenManager } from '../shared/token-manager.js';
import { DeliveryError } from '../types.js';
import { isTokenInvalid, wecomDeliveryError, type WecomResult } from './errors.js';

export interface WecomApiOptions {
  apiBaseUrl: string;
  corpId: string;
  /** The secret of this app (or of the kf "微信客服" app). */
  secret: string;
  /** Token cache key; distinct per corp and secret. */
  tokenKey: string;
  tokens: TokenManager;
  log: Logger;
  timeoutMs: number;
  rateLimitPauseMs: number;
}

export class WecomApi {
  private readonly http: AxiosInstance;

  constructor(private readonly options: WecomApiOptions) {
    this.http = createHttpClient(options.apiBaseUrl.replace(/\/+$/, ''), options.timeoutMs);
  }

  /** POSTs JSON to `/cgi-bin/<path>`; resolves with the body when errcode is 0, throws DeliveryError otherwise. */
  async post<T extends WecomResult>(path: string, body: unknown, what = path): Promise<T> {
    return this.withToken(what, (token) => postJson(this.http, `/cgi-bin/${path}`, body, { params: { access_token: token } }));
  }

  /** Uploads a temporary media file (valid 3 days) and returns its media_id. */
  async uploadMedia(type: 'image' | 'voice' | 'video' | 'file', bytes: Buffer, filename: string, mimeType: string): Promise<string> {
    const result = await this.withToken<WecomResult & { media_id?: string }>(`media/upload ${type}`, (token) => {
      const form = new FormData();
      form.append('media', new Blob([new Uint8Array(bytes)], { type: mimeType }), filename);
      return this.http.post('/cgi-bin/media/upload', form, { params: { access_token: token, type } });
    });
    if (!result.media_id) throw new DeliveryError('media/upload: WeCom returned no media_id', { retryable: true, code: 'no_media_id' });
    return result.media_id;
  }

  /**
   * Downloads a temporary media file by media_id (`GET /cgi-bin/media/get`), for the gateway media store. WeCom answers
   * the bytes with a Content-Disposition header, or a JSON error body (errcode) with HTTP 200.
   */
  async downloadMedia(mediaId: string, maxBytes: number): Promise<FetchedMedia> {
    const result = await this.withToken<WecomResult & { bytes?: Buffer; type?: string; disposition?: string }>('media/get', async (token) => {
      const r = await this.http.get<ArrayBuffer>('/cgi-bin/media/get', {
        params: { access_token: token, media_id: mediaId },
        responseType: 'arraybuffer',
        maxContentLength: maxBytes,
      });
      const type = String(r.headers['content-type'] ?? '');
      const bytes = Buffer.from(r.data);
      if (r.status === 200 && (type.includes('json') || type.startsWith('text/plain'))) {
        return { ...r, data: JSON.parse(bytes.toString('utf8')) as unknown };
      }
      return { ...r, data: { errcode: 0, bytes, type, disposition: String(r.headers['content-disposition'] ?? '') } };
    });
    const fileName = /filename="?([^";]+)"?/.exec(result.disposition ?? '')?.[1];
    return { body: result.bytes ?? Buffer.alloc(0), contentType: result.type?.split(';')[0] || 'application/octet-stream', fileName, size: result.bytes?.length };
  }

  /** Fetches a fresh token (used by TokenManager only). */
  private async fetchToken() {
    let res;
    try {
      res = await this.http.get('/cgi-bin/gettoken', { params: { corpid: this.options.corpId, corpsecret: this.options.secret } });
    } catch (err) {
      throw deliveryErrorForException(err, 'gettoken');
    }
    const status = deliveryErrorForStatus(res.status, 'gettoken');
    if (status) throw status;
    const body = res.data as WecomResult & { access_token?: string; expires_in?: number };
    // gettoken's own 40001 means "invalid secret": a config error, not a token to refresh.
    const error = wecomDeliveryError(body, 'gettoken', this.options.rateLimitPauseMs);
    if (error) {
      this.options.log.error({ errcode: body.errcode, corpId: this.options.corpId }, 'WeCom refused to issue an access token');
      throw error;
    }
    return { token: String(body.access_token ?? ''), expiresInSeconds: Number(body.expires_in ?? 7200) };
  }

  private async withToken<T extends WecomResult>(
    what: string,
    call: (token: string) => Promise<{ status: number; data: unknown; headers: Record<string, unknown> | object }>,
  ): Promise<T> {
    const result = await this.options.tokens.callWithToken(
      this.options.tokenKey,
      () => this.fetchToken(),
      async (token) => {
        let res;
        try {
          res = await call(token);
        } catch (err) {
          throw deliveryErrorForException(err, what);
        }
        const status = deliveryErrorForStatus(res.status, what, (res.headers as Record<string, unknown>)['retry-after'] as string | undefined);
        if (status) throw status;
        if (!res.data || typeof res.data !== 'object') {
          throw new DeliveryError(`${what}: WeCom answered something that is not JSON`, { retryable: true, code: 'bad_response' });
        }
        return res.data as T;
      },
      isTokenInvalid,
    );
    const error = wecomDeliveryError(result, what, this.options.rateLimitPauseMs);
    if (error) throw error;
    return result;
  }
}
