/**
 * The few Feishu/Lark Open APIs the channel calls, with the tenant_access_token from the shared TokenManager:
 * - POST /open-apis/auth/v3/tenant_access_token/internal {app_id, app_secret} → {code:0, tenant_access_token, expire}
 * - POST /open-apis/im/v1/messages?receive_id_type=chat_id {receive_id, msg_type, content, uuid}
 * - POST /open-apis/im/v1/messages/:message_id/reply {msg_type, content, uuid}
 * - GET  /open-apis/bot/v3/info → {code:0, bot:{open_id, app_name}}
 * Every answer carries `code` (0 = success). Token refused (99991661 missing, 99991663/99991668 invalid or expired,
 * 99991671 bad format) → refresh + one retry; 99991400 (frequency limit) → pause the shard.
 */
import type { AxiosInstance, AxiosResponse } from 'axios';
import { deliveryErrorForException, retryAfterMs } from '../shared/http-client.js';
import type { TokenManager, FetchedToken } from '../shared/token-manager.js';
import { DeliveryError } from '../types.js';

export const TOKEN_INVALID_CODES: ReadonlySet<number> = new Set([99991661, 99991663, 99991668, 99991671]);
export const RATE_LIMIT_CODE = 99991400;

export interface FeishuAnswer {
  code?: number;
  msg?: string;
  data?: Record<string, unknown>;
  [key: string]: unknown;
}

export class FeishuApi {
  private botOpenId: Promise<string> | undefined;

  constructor(
    private readonly http: AxiosInstance,
    private readonly baseUrl: string,
    private readonly appId: string,
    private readonly appSecret: string,
    private readonly tokens: TokenManager,
  ) {}

  private get tokenKey() {
    return `feishu:${this.appId}`;
  }

  readonly fetchToken = async (): Promise<FetchedToken> => {
    const what = 'Feishu tenant_access_token';
    let res: AxiosResponse;
    try {
      res = await this.http.post(`${this.baseUrl}/open-apis/auth/v3/tenant_access_token/internal`, { app_id: this.appId, app_secret: this.appSecret });
    } catch (err) {
      throw deliveryErrorForException(err, what);
    }
    const body = (res.data ?? {}) as { code?: number; msg?: string; tenant_access_token?: string; expire?: number };
    if (body.code !== 0 || !body.tenant_access_token) {
      // A wrong app_id/app_secret will not fix itself; a 5xx might.
      throw new DeliveryError(`${what}: ${body.msg ?? `HTTP ${res.status}`}`, { retryable: res.status >= 500, code: body.code ?? res.status });
    }
    return { token: body.tenant_access_token, expiresInSeconds: body.expire ?? 7200 };
  };

  /** One authorised call; token-refused answers are refreshed and retried once by the TokenManager. */
  async call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<FeishuAnswer> {
    const what = `Feishu ${method} ${path.split('?')[0]}`;
    const res = await this.tokens.callWithToken(
      this.tokenKey,
      this.fetchToken,
      async (token) => {
        try {
          return await this.http.request({
            method,
            url: `${this.baseUrl}${path}`,
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json; charset=utf-8' },
            ...(body !== undefined && { data: body }),
          });
        } catch (err) {
          throw deliveryErrorForException(err, what);
        }
      },
      (outcome) => TOKEN_INVALID_CODES.has(((outcome as AxiosResponse | undefined)?.data as FeishuAnswer | undefined)?.code ?? -1),
    );
    const answer = (res.data && typeof res.data === 'object' ? res.data : {}) as FeishuAnswer;
    if (answer.code === 0 && res.status >= 200 && res.status < 300) return answer;
    throw errorFor(what, res.status, answer, res.headers as Record<string, string | undefined>);
  }

  /** The bot's own open_id (to recognise @-mentions of it in groups), fetched once. */
  async botId(): Promise<string> {
    this.botOpenId ??= this.call('GET', '/open-apis/bot/v3/info').then((answer) => {
      const openId = (answer.bot as { open_id?: string } | undefined)?.open_id;
      if (!openId) throw new Error('bot/v3/info returned no open_id');
      return openId;
    });
    return this.botOpenId.catch((err) => {
      this.botOpenId = undefined;
      throw err;
    });
  }
}

export function errorFor(what: string, status: number, answer: FeishuAnswer, headers: Record<string, string | undefined>): DeliveryError {
  const code = answer.code ?? status;
  const message = `${what}: ${answer.msg ?? `HTTP ${status}`}`;
  if (answer.code === RATE_LIMIT_CODE || status === 429) {
    // Feishu's gateway says when the window resets (seconds) in x-ogw-ratelimit-reset.
    const rateLimitMs = retryAfterMs(headers['x-ogw-ratelimit-reset']) ?? retryAfterMs(headers['retry-after']) ?? 1000;
    return new DeliveryError(message, { retryable: true, code, rateLimitMs: Math.max(rateLimitMs, 100) });
  }
  if (answer.code !== undefined && TOKEN_INVALID_CODES.has(answer.code)) return new DeliveryError(message, { retryable: true, code });
  if (status >= 500 || status === 408) return new DeliveryError(message, { retryable: true, code });
  return new DeliveryError(message, { retryable: false, code });
}
