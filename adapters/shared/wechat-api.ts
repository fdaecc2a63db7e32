/**
 * The WeChat (mini-program / official account) server API as the gateway uses it: access tokens
 * (`/cgi-bin/stable_token`, or the classic `/cgi-bin/token`), the customer-service send API, and temporary media
 * upload/download. Every call goes through the shared TokenManager, so a token-invalid answer (40001/40014/42001)
 * refreshes the token and retries once; every other errcode is mapped to a DeliveryError (wechat-errors.ts).
 *
 * stable_token is asked in normal mode, which is what an expired or superseded token needs (it returns the current
 * token, renewed 5 minutes before expiry). Force mode invalidates the token every process holds and is limited to
 * 20 a day, 30 s apart (getStableAccessToken doc), so it is used only when normal mode hands back the very token the
 * platform has just refused.
 */
import type { AxiosInstance, AxiosResponse } from 'axios';
import type { Logger } from 'pino';
import type { Readable } from 'node:stream';
import { createHttpClient, deliveryErrorForException, deliveryErrorForStatus, postJson } from './http-client.js';
import type { FetchedMedia } from './media-store.js';
import type { TokenManager } from './token-manager.js';
import { isWechatTokenInvalid, wechatDeliveryError, type WechatApiResult } from './wechat-errors.js';
import { DeliveryError } from '../types.js';

export interface WechatApiOptions {
  apiBaseUrl: string;
  appId: string;
  appSecret: string;
  /** `stable` = POST /cgi-bin/stable_token (recommended, shared safely with other systems); `classic` = GET /cgi-bin/token. */
  tokenEndpoint: 'stable' | 'classic';
  timeoutMs: number;
  /** Shard pause on 45009/45011. */
  rateLimitMs: number;
}

const JSON_REPLY_MAX = 64 * 1024;
/** Force refreshes closer together than this change nothing on the platform (doc). */
const FORCE_REFRESH_SPACING_MS = 30_000;
/** Refused tokens remembered, to recognise normal mode handing one back. */
const REFUSED_MEMORY = 8;

export class WechatApi {
  private readonly http: AxiosInstance;
  /** Tokens the platform refused lately (40001/40014/42001), newest last. */
  private readonly refused: string[] = [];
  private lastForceAt = 0;

  constructor(
    private readonly options: WechatApiOptions,
    private readonly tokens: TokenManager,
    private readonly log: Logger,
  ) {
    this.http = createHttpClient(options.apiBaseUrl.replace(/\/+$/, ''), options.timeoutMs);
  }

  private get tokenKey(): string {
    // Per app (not per channel): two channels with one appid must share a token, a new classic token kills the old.
    return `wechat:${this.options.appId}:${this.options.tokenEndpoint}`;
  }

  private readonly fetchToken = async () => {
    if (this.options.tokenEndpoint !== 'stable') return this.requestToken(false);
    const normal = await this.requestToken(false);
    if (!this.refused.includes(normal.token)) return normal;
    // Normal mode can only hand back the token that was just refused: only a forced one can work.
    if (Date.now() - this.lastForceAt < FORCE_REFRESH_SPACING_MS) {
      this.log.warn({ appId: this.options.appId }, 'access token refused again within 30 s of a forced refresh; not forcing again');
      return normal;
    }
    this.lastForceAt = Date.now();
    this.log.warn({ appId: this.options.appId }, 'stable_token returned the refused access token; forcing a refresh');
    return this.requestToken(true);
  };

  private async requestToken(force: boolean): Promise<{ token: string; expiresInSeconds: number }> {
    const { appId, appSecret } = this.options;
    let res: AxiosResponse<WechatApiResult>;
    try {
      if (this.options.tokenEndpoint === 'stable') {
        res = await this.http.post('/cgi-bin/stable_token', { grant_type: 'client_credential', appid: appId, secret: appSecret, force_refresh: force });
      } else {
        res = await this.http.get('/cgi-bin/token', { params: { grant_type: 'client_credential', appid: appId, secret: appSecret } });
      }
    } catch (err) {
      throw deliveryErrorForException(err, 'access token request');
    }
    const httpError = deliveryErrorForStatus(res.status, 'access token request');
    if (httpError) throw httpError;
    const body = res.data ?? {};
    const error = wechatDeliveryError(body, 'access token request', { rateLimitMs: this.options.rateLimitMs });
    if (error) {
      // A wrong AppSecret/AppID/IP allow-list is a configuration problem: say so once, clearly (never the secret).
      this.log.error({ errcode: body.errcode, errmsg: body.errmsg, appId }, 'WeChat refused to issue an access token');
      throw error;
    }
    if (typeof body.access_token !== 'string' || typeof body.expires_in !== 'number') {
      throw new DeliveryError('access token request: answer without access_token/expires_in', { retryable: true, code: 'bad_token_answer' });
    }
    return { token: body.access_token, expiresInSeconds: body.expires_in };
  }

  private readonly isTokenInvalid = (outcome: unknown): boolean =>
    isWechatTokenInvalid(outcome) || isWechatTokenInvalid((outcome as { json?: unknown } | undefined)?.json);

  /** TokenManager.callWithToken, remembering which token the platform refused (see fetchToken). */
  private withToken<T>(call: (token: string) => Promise<T>): Promise<T> {
    return this.tokens.callWithToken(
      this.tokenKey,
      this.fetchToken,
      async (token) => {
        const outcome = await call(token);
        if (this.isTokenInvalid(outcome)) this.noteRefused(token);
        return outcome;
      },
      this.isTokenInvalid,
    );
  }

  private noteRefused(token: string): void {
    if (this.refused.includes(token)) return;
    this.refused.push(token);
    if (this.refused.length > REFUSED_MEMORY) this.refused.shift();
  }

  accessToken(): Promise<string> {
    return this.tokens.get(this.tokenKey, this.fetchToken);
  }

  /**
   * One API call with the access token: transport failures and HTTP errors become DeliveryErrors, a token-invalid
   * answer refreshes the token and retries once, and a non-zero errcode is mapped by wechatDeliveryError.
   */
  private async call(what: string, send: (token: string) => Promise<{ status: number; data: WechatApiResult }>): Promise<WechatApiResult> {
    const result = await this.withToken(async (token) => {
      let res: { status: number; data: WechatApiResult };
      try {
        res = await send(token);
      } catch (err) {
        throw deliveryErrorForException(err, what);
      }
      const httpError = deliveryErrorForStatus(res.status, what);
      if (httpError) throw httpError;
      return (res.data ?? {}) as WechatApiResult;
    });
    const error = wechatDeliveryError(result, what, { rateLimitMs: this.options.rateLimitMs });
    if (error) throw error;
    return result;
  }

  /** POSTs JSON to `path?access_token=`; returns the (successful) answer or throws a DeliveryError. */
  postJson(path: string, body: unknown, what: string): Promise<WechatApiResult> {
    return this.call(what, (token) =>
      postJson(this.http, path, body, { params: { access_token: token }, headers: { 'content-type': 'application/json; charset=utf-8' } }),
    );
  }

  /** `POST /cgi-bin/message/custom/send`: one customer-service message. */
  sendCustom(body: { touser: string; msgtype: string; [field: string]: unknown }): Promise<WechatApiResult> {
    return this.postJson('/cgi-bin/message/custom/send', body, `customer-service send (${body.msgtype})`);
  }

  /** `POST /cgi-bin/media/upload?type=`: a temporary media file (multipart field `media`), returns its media_id. */
  async uploadMedia(type: 'image' | 'voice' | 'video' | 'thumb', data: Buffer, fileName: string, contentType: string): Promise<string> {
    const what = `media upload (${type})`;
    const result = await this.call(what, (token) => {
      const form = new FormData();
      form.append('media', new Blob([new Uint8Array(data)], { type: contentType }), fileName);
      return this.http.post('/cgi-bin/media/upload', form, { params: { access_token: token, type } });
    });
    if (typeof result.media_id !== 'string') throw new DeliveryError(`${what}: answer without media_id`, { retryable: true, code: 'bad_upload_answer' });
    return result.media_id;
  }

  /**
   * `GET /cgi-bin/media/get?media_id=`: the bytes of an inbound media id. Errors come back as JSON instead of the
   * file; video ids answer JSON `{video_url}` pointing at the file.
   */
  async fetchMedia(mediaId: string): Promise<FetchedMedia> {
    const what = 'media download';
    const outcome = await this.withToken(async (token): Promise<{ res: AxiosResponse<Readable> } | { json: WechatApiResult }> => {
      const res = await this.http.get<Readable>('/cgi-bin/media/get', { params: { access_token: token, media_id: mediaId }, responseType: 'stream' });
      const type = String(res.headers['content-type'] ?? '');
      if (res.status >= 200 && res.status < 300 && !/json|text\/plain/i.test(type)) return { res };
      const text = await readSmall(res.data);
      const httpError = deliveryErrorForStatus(res.status, what);
      if (httpError) throw httpError;
      try {
        return { json: JSON.parse(text) as WechatApiResult };
      } catch {
        throw new Error(`${what}: unreadable answer`);
      }
    });
    if ('json' in outcome) {
      const json = outcome.json;
      const error = wechatDeliveryError(json, what, { rateLimitMs: this.options.rateLimitMs });
      if (error) throw error;
      if (typeof json.video_url === 'string') {
        const video = await this.http.get<Readable>(json.video_url, { baseURL: '', responseType: 'stream', maxRedirects: 3 });
        if (video.status < 200 || video.status >= 300) throw new Error(`${what}: video_url answered HTTP ${video.status}`);
        return { body: video.data, contentType: String(video.headers['content-type'] ?? 'video/mp4'), size: sizeOf(video) };
      }
      throw new Error(`${what}: JSON answer without file`);
    }
    const { res } = outcome;
    return {
      body: res.data,
      contentType: String(res.headers['content-type'] ?? 'application/octet-stream'),
      fileName: fileNameOf(res.headers['content-disposition']),
      size: sizeOf(res),
    };
  }
}

function sizeOf(res: AxiosResponse): number | undefined {
  const n = Number(res.headers['content-length']);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

function fileNameOf(disposition: unknown): string | undefined {
  const match = /filename="?([^";]+)"?/i.exec(String(disposition ?? ''));
  return match?.[1];
}

async function readSmall(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > JSON_REPLY_MAX) {
      stream.destroy();
      throw new Error('media API answer too large to be an error message');
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
