/**
 * Douyin OpenAPI calls of the private-message channel: the operator's user `access_token` (15 days) refreshed with
 * `POST /oauth/refresh_token/` (form-urlencoded; the refresh_token keeps its own 30-day lifetime) through the shared
 * TokenManager; the refresh_token itself renewed with `POST /oauth/renew_refresh_token/` (form-urlencoded client_key
 * + refresh_token → a new one valid 30 days, the old one invalid at once; at most 5 times, then 10020); and
 * `POST /im/send/msg/?open_id=` with the `access-token` header. Douyin reports failures as
 * `extra.error_code` (newer APIs) or `data.error_code` (OAuth APIs) with HTTP 200.
 */
import type { AxiosInstance } from 'axios';
import type { Logger } from 'pino';
import { createHttpClient, deliveryErrorForException, deliveryErrorForStatus, postJson } from '../shared/http-client.js';
import type { FetchedToken, TokenManager } from '../shared/token-manager.js';
import { DeliveryError, type DeliveryFailureReason } from '../types.js';
import { RefreshTokenStore, type RefreshTokenRecord } from './refresh-token.js';

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
  /** Where the latest refresh_token is kept (Douyin hands out a new one on renewal). */
  refreshTokenKey: string;
  initialRefreshToken: string;
  redis: import('../types.js').RedisClient;
  tokens: TokenManager;
  tokenKey: string;
  log: Logger;
  timeoutMs: number;
}

const DAY_MS = 86_400_000;
/** Renew the refresh_token when it has less than this left: checked every few hours, so there is room for retries. */
export const RENEW_REFRESH_TOKEN_WITHIN_MS = 10 * DAY_MS;
const REFRESH_TOKEN_EXPIRED = 10010;
const RENEWALS_EXHAUSTED = 10020;
const RENEW_NOT_PERMITTED = 10004;

function isRefreshTokenExpired(err: unknown): boolean {
  return err instanceof DeliveryError && err.code === REFRESH_TOKEN_EXPIRED;
}

export class DouyinApi {
  private readonly http: AxiosInstance;
  private readonly refreshToken: RefreshTokenStore;

  constructor(private readonly o: DouyinApiOptions) {
    this.http = createHttpClient(o.apiBaseUrl.replace(/\/+$/, ''), o.timeoutMs);
    this.refreshToken = new RefreshTokenStore({
      redis: o.redis,
      key: o.refreshTokenKey,
      configToken: o.initialRefreshToken,
      log: o.log,
      // Two OAuth calls (renewal, refresh) may run under the lock.
      lockMs: 2 * o.timeoutMs + 5_000,
    });
  }

  /** POSTs JSON with the user access token; resolves with the body on error_code 0. */
  async post(path: string, query: Record<string, string>, body: unknown, what = path): Promise<DouyinAnswer> {
    const answer = await this.o.tokens.callWithToken(
      this.o.tokenKey,
      () => this.refreshAccessToken(),
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

  /**
   * Keeps the refresh_token alive while nothing is sent: learns its expiry when unknown, renews it when it is due,
   * and warns while it is close to lapsing and cannot be renewed. Called periodically by the channel.
   */
  async maintainRefreshToken(now = Date.now()): Promise<void> {
    await this.refreshToken.withLock(async () => {
      let record = await this.refreshToken.current();
      if (record.expiresAt === undefined) record = (await this.exchange(record)).record;
      await this.renewIfDue(record, now);
    });
  }

  private async refreshAccessToken(): Promise<FetchedToken> {
    return this.refreshToken.withLock(async () => {
      const record = await this.renewIfDue(await this.refreshToken.current(), Date.now());
      try {
        return (await this.exchange(record)).accessToken;
      } catch (err) {
        // A stored token Douyin no longer knows (now forgotten): the config value may be a newer authorisation.
        if (!isRefreshTokenExpired(err) || record.token === this.o.initialRefreshToken) throw err;
        return (await this.exchange({ token: this.o.initialRefreshToken, from: record.from })).accessToken;
      }
    });
  }

  /** `/oauth/refresh_token/`: a new access token for the refresh token, whose remaining lifetime is recorded. */
  private async exchange(record: RefreshTokenRecord): Promise<{ accessToken: FetchedToken; record: RefreshTokenRecord }> {
    const data = await this.oauth('/oauth/refresh_token/', { grant_type: 'refresh_token', refresh_token: record.token });
    const refreshExpiresIn = Number(data.refresh_expires_in);
    const saved = await this.refreshToken.save({
      ...record,
      token: typeof data.refresh_token === 'string' && data.refresh_token ? data.refresh_token : record.token,
      ...(refreshExpiresIn > 0 && { expiresAt: Date.now() + refreshExpiresIn * 1000 }),
    });
    return { accessToken: { token: String(data.access_token ?? ''), expiresInSeconds: Number(data.expires_in ?? 0) }, record: saved };
  }

  /**
   * `/oauth/renew_refresh_token/` when the token has less than RENEW_REFRESH_TOKEN_WITHIN_MS left (the old one stops
   * working at once, so the new one is stored before anything else uses it). A refused renewal is logged, not
   * thrown: the current token still works until it lapses.
   */
  private async renewIfDue(record: RefreshTokenRecord, now: number): Promise<RefreshTokenRecord> {
    if (record.expiresAt === undefined || record.expiresAt - now > RENEW_REFRESH_TOKEN_WITHIN_MS) return record;
    try {
      const data = await this.oauth('/oauth/renew_refresh_token/', { refresh_token: record.token });
      const expiresIn = Number(data.expires_in);
      if (typeof data.refresh_token !== 'string' || !data.refresh_token || !(expiresIn > 0)) {
        throw new DeliveryError('oauth/renew_refresh_token: Douyin answered without refresh_token / expires_in', { retryable: true, code: 'bad_response' });
      }
      const renewals = (record.renewals ?? 0) + 1;
      const renewed = await this.refreshToken.save({ token: data.refresh_token, expiresAt: Date.now() + expiresIn * 1000, renewals });
      this.o.log.info({ renewals, expiresInDays: Math.floor(expiresIn / 86_400) }, 'Douyin refresh_token renewed');
      return renewed;
    } catch (err) {
      if (isRefreshTokenExpired(err)) throw err;
      const code = err instanceof DeliveryError ? err.code : undefined;
      const daysLeft = Math.max(0, Math.floor((record.expiresAt - now) / DAY_MS));
      const hint =
        code === RENEWALS_EXHAUSTED
          ? 'it was renewed 5 times already: the account owner must authorise the app again and the new refreshToken go into config'
          : code === RENEW_NOT_PERMITTED
            ? 'the app lacks the renew_refresh_token permission: request it, or have the account authorise again'
            : 'the renewal is tried again at the next check';
      this.o.log.warn({ daysLeft, code, err: err instanceof Error ? err.message : String(err) }, `Douyin refresh_token lapses in ${daysLeft} days and could not be renewed: ${hint}`);
      return record;
    }
  }

  /** A form-urlencoded OAuth call; Douyin's error codes become DeliveryErrors, 10010 also drops the stored token. */
  private async oauth(path: string, fields: Record<string, string>): Promise<Record<string, unknown>> {
    const what = path.replace(/^\/|\/$/g, '');
    const form = new URLSearchParams({ client_key: this.o.clientKey, ...fields });
    let res;
    try {
      res = await this.http.post(path, form.toString(), { headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    } catch (err) {
      throw deliveryErrorForException(err, what);
    }
    const status = deliveryErrorForStatus(res.status, what);
    if (status) throw status;
    const body = (res.data && typeof res.data === 'object' ? res.data : {}) as DouyinAnswer;
    const error = douyinDeliveryError(body, what);
    if (error) {
      const { code } = douyinErrorCode(body);
      if (code === REFRESH_TOKEN_EXPIRED) {
        // Forget it, so the next attempt uses the config value: the operator's fix is a new refreshToken there.
        await this.refreshToken.forget();
        this.o.log.error({ errorCode: code }, 'Douyin refresh_token expired: the account owner must authorise the app again and the new refreshToken go into config');
      } else {
        this.o.log.error({ errorCode: code }, `Douyin refused ${what}`);
      }
      throw error;
    }
    return body.data ?? {};
  }
}
