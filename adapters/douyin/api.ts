/**
 * Douyin OpenAPI calls of the private-message channel: the operator's user `access_token` (15 days) refreshed with
 * `POST /oauth/refresh_token/` (form-urlencoded; the refresh_token keeps its own 30-day lifetime) through the shared
 * TokenManager, and `POST /im/send/msg/?open_id=` with the `access-token` header. Douyin reports failures as
 * `extra.error_code` (newer APIs) or `data.error_code` (OAuth APIs) with HTTP 200.
 */
import type { AxiosInstance } from 'axios';
import type { Logger } from 'pino';
import { createHttpClient, deliveryErrorForException, deliveryErrorForStatus, postJson } from '../shared/http-client.js';
import type { TokenManager } from '../shared/token-manager.js';
import { DeliveryError, type DeliveryFailureReason } from '../types.js';

/** access_token invalid / expired (webhook and OpenAPI error tables): refresh and retry once. */
export const TOKEN_INVALID_CODES: ReadonlySet<number> = new Set([28001003, 28001008, 2190002, 2190008]);
/** "System busy": retry with backoff. */
const RETRYABLE_CODES: ReadonlySet<number> = new Set([2100004, 28001018]);
const REASONS: Record<number, { reason: DeliveryFailureReason; hint: string }> = {
  10010: { reason: 'auth', hint: 'the refresh_token expired: the account owner must authorise the app again' },
  10013: { reason: 'auth', hint: 'wrong client_key or client_secret' },
  2100005: { reason: 'invalid_request', hint: 'invalid parameters' },
  2100007: { reason: 'auth', hint: 'no permission (scope im.direct_message not granted)' },
  2100009: { reason: 'recipient_unreachable', hint: 'the user is banned from this operation' },
  2190004: { reason: 'auth', hint: 'the app lacks the private-message capability' },
  2190015: { reason: 'auth', hint: 'the access_token does not belong to this open_id (check accountOpenId)' },
};

export interface DouyinAnswer {
  data?: Record<string, unknown>;
  extra?: { error_code?: number; description?: string; sub_error_code?: number; sub_description?: string; logid?: string };
  err_no?: number;
  err_msg?: string;
  message?: string;
}

export function douyinErrorCode(body: DouyinAnswer): { code: number; description: string } {
  const code = Number(body.extra?.error_code ?? body.data?.error_code ?? body.err_no ?? 0);
  const description = String(body.extra?.description ?? body.data?.description ?? body.err_msg ?? '');
  return { code: Number.isFinite(code) ? code : 0, description };
}

export function isDouyinTokenInvalid(outcome: unknown): boolean {
  return !!outcome && typeof outcome === 'object' && TOKEN_INVALID_CODES.has(douyinErrorCode(outcome as DouyinAnswer).code);
}

export function douyinDeliveryError(body: DouyinAnswer, what: string): DeliveryError | undefined {
  const { code, description } = douyinErrorCode(body);
  if (code === 0) return undefined;
  const known = REASONS[code];
  const message = `${what}: Douyin error_code ${code} ${description.slice(0, 300)}${known ? ` (${known.hint})` : ''}`;
  if (RETRYABLE_CODES.has(code) || TOKEN_INVALID_CODES.has(code)) return new DeliveryError(message, { retryable: true, code, reason: 'platform_error' });
  return new DeliveryError(message, { retryable: false, code, reason: known?.reason ?? 'invalid_request' });
}

export interface DouyinApiOptions {
  apiBaseUrl: string;
  clientKey: string;
  /** Where the latest refresh_token is kept (Douyin may hand out a new one). */
  refreshTokenKey: string;
  initialRefreshToken: string;
  redis: import('../types.js').RedisClient;
  tokens: TokenManager;
  tokenKey: string;
  log: Logger;
  timeoutMs: number;
}

export class DouyinApi {
  private readonly http: AxiosInstance;

  constructor(private readonly o: DouyinApiOptions) {
    this.http = createHttpClient(o.apiBaseUrl.replace(/\/+$/, ''), o.timeoutMs);
  }

  /** POSTs JSON with the user access token; resolves with the body on error_code 0. */
  async post(path: string, query: Record<string, string>, body: unknown, what = path): Promise<DouyinAnswer> {
    const answer = await this.o.tokens.callWithToken(
      this.o.tokenKey,
      () => this.refresh(),
      async (token) => {
        let res;
        try {
          res = await postJson(this.http, path, body, { params: query, headers: { 'access-token': token } });
        } catch (err) {
          throw deliveryErrorForException(err, what);
        }
        const status = deliveryErrorForStatus(res.status, what, res.headers['retry-after'] as string | undefined);
        if (status) throw status;
        if (!res.data || typeof res.data !== 'object') throw new DeliveryError(`${what}: Douyin answered something that is not JSON`, { retryable: true, code: 'bad_response' });
        return res.data as DouyinAnswer;
      },
      isDouyinTokenInvalid,
    );
    const error = douyinDeliveryError(answer, what);
    if (error) throw error;
    return answer;
  }

  private async refresh() {
    const refreshToken = (await this.o.redis.get(this.o.refreshTokenKey)) ?? this.o.initialRefreshToken;
    const form = new URLSearchParams({ client_key: this.o.clientKey, grant_type: 'refresh_token', refresh_token: refreshToken });
    let res;
    try {
      res = await this.http.post('/oauth/refresh_token/', form.toString(), { headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    } catch (err) {
      throw deliveryErrorForException(err, 'oauth/refresh_token');
    }
    const status = deliveryErrorForStatus(res.status, 'oauth/refresh_token');
    if (status) throw status;
    const body = res.data as DouyinAnswer;
    const error = douyinDeliveryError(body, 'oauth/refresh_token');
    if (error) {
      this.o.log.error({ errorCode: douyinErrorCode(body).code }, 'Douyin refused to refresh the access token');
      throw error;
    }
    const data = body.data ?? {};
    if (typeof data.refresh_token === 'string' && data.refresh_token && data.refresh_token !== refreshToken) {
      await this.o.redis.set(this.o.refreshTokenKey, data.refresh_token);
    }
    return { token: String(data.access_token ?? ''), expiresInSeconds: Number(data.expires_in ?? 0) };
  }
}
