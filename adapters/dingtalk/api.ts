/**
 * DingTalk sending: the session webhook while it is valid, else the robot OpenAPI on api.dingtalk.com with the
 * new-style access token (header `x-acs-dingtalk-access-token`) from the shared TokenManager:
 * - POST /v1.0/oauth2/accessToken {appKey, appSecret} → {accessToken, expireIn}
 * - POST /v1.0/robot/oToMessages/batchSend {robotCode, userIds[], msgKey, msgParam} → {processQueryKey,
 *   invalidStaffIdList[], flowControlledStaffIdList[]}
 * - POST /v1.0/robot/groupMessages/send {robotCode, openConversationId, msgKey, msgParam} → {processQueryKey};
 *   msgParam is a JSON string of at most 15,000 bytes (open.dingtalk.com "the-robot-sends-a-group-message")
 * OpenAPI errors are HTTP 4xx/5xx with {code, message, requestid}; a refused token is HTTP 400/401
 * `InvalidAuthentication` (refresh + one retry); `Forbidden.AccessDenied.QpsLimit*` / HTTP 429 pause the shard.
 * The session webhook answers {errcode, errmsg} (errcode 0 = sent).
 */
import type { AxiosInstance, AxiosResponse } from 'axios';
import { deliveryErrorForException, postJson, retryAfterMs } from '../shared/http-client.js';
import type { FetchedToken, TokenManager } from '../shared/token-manager.js';
import { DeliveryError } from '../types.js';

export const TOKEN_INVALID_CODE = 'InvalidAuthentication';
/** groupMessages/send: "msgParam … The length must not exceed 15,000 bytes" (official API reference). */
export const GROUP_MSG_PARAM_MAX_BYTES = 15_000;

/**
 * The `sampleText` msgParam (a JSON string `{"content": …}`) for `text`, cut so the whole string stays within
 * `maxBytes`: a longer one is refused by DingTalk, so the reply is shortened (ending in "...") rather than lost.
 */
export function sampleTextParam(text: string, maxBytes = Number.POSITIVE_INFINITY): string {
  let content = text;
  let param = JSON.stringify({ content });
  while (Buffer.byteLength(param) > maxBytes) {
    // JSON escaping can make the string longer than the text, so cut by the overshoot and measure again.
    const keep = Buffer.byteLength(content) - (Buffer.byteLength(param) - maxBytes) - 3;
    let cut = Buffer.from(content).subarray(0, Math.max(0, keep)).toString('utf8');
    cut = cut.replace(/\uFFFD+$/, ''); // a cut inside a multi-byte character leaves U+FFFD at the end
    content = `${cut}...`;
    param = JSON.stringify({ content });
  }
  return param;
}

type OpenApiAnswer = { code?: string; message?: string; [key: string]: unknown };

export class DingTalkApi {
  constructor(
    private readonly http: AxiosInstance,
    private readonly baseUrl: string,
    private readonly appKey: string,
    private readonly appSecret: string,
    private readonly tokens: TokenManager,
  ) {}

  readonly fetchToken = async (): Promise<FetchedToken> => {
    const what = 'DingTalk accessToken';
    let res: AxiosResponse;
    try {
      res = await this.http.post(`${this.baseUrl}/v1.0/oauth2/accessToken`, { appKey: this.appKey, appSecret: this.appSecret });
    } catch (err) {
      throw deliveryErrorForException(err, what);
    }
    const body = (res.data ?? {}) as { accessToken?: string; expireIn?: number; code?: string; message?: string };
    if (res.status !== 200 || !body.accessToken) {
      throw new DeliveryError(`${what}: ${body.message ?? `HTTP ${res.status}`}`, { retryable: res.status >= 500, code: body.code ?? res.status });
    }
    return { token: body.accessToken, expiresInSeconds: body.expireIn ?? 7200 };
  };

  async openApi(path: string, body: unknown): Promise<Record<string, unknown>> {
    const what = `DingTalk POST ${path}`;
    const res = await this.tokens.callWithToken(
      `dingtalk:${this.appKey}`,
      this.fetchToken,
      async (token) => {
        try {
          return await postJson(this.http, `${this.baseUrl}${path}`, body, { headers: { 'x-acs-dingtalk-access-token': token } });
        } catch (err) {
          throw deliveryErrorForException(err, what);
        }
      },
      (outcome) => ((outcome as { data?: unknown } | undefined)?.data as OpenApiAnswer | undefined)?.code === TOKEN_INVALID_CODE,
    );
    const answer = (res.data && typeof res.data === 'object' ? res.data : {}) as OpenApiAnswer;
    if (res.status >= 200 && res.status < 300) return answer;
    throw openApiError(what, res.status, answer, res.headers['retry-after'] as string | undefined);
  }

  /** Session webhooks need no token: the URL itself is the credential, valid until sessionWebhookExpiredTime. */
  async sessionWebhook(url: string, body: unknown): Promise<void> {
    const what = 'DingTalk sessionWebhook';
    let res: { status: number; headers: Record<string, unknown>; data: unknown };
    try {
      res = await postJson(this.http, url, body);
    } catch (err) {
      throw deliveryErrorForException(err, what);
    }
    const answer = (res.data ?? {}) as { errcode?: number; errmsg?: string };
    if (res.status >= 200 && res.status < 300 && answer.errcode === 0) return;
    if (res.status === 429 || answer.errcode === 410100) {
      // 410100: "send too fast" (robot webhook frequency limit).
      throw new DeliveryError(`${what}: ${answer.errmsg ?? 'rate limited'}`, { retryable: true, code: answer.errcode ?? 429, rateLimitMs: retryAfterMs(res.headers['retry-after'] as string | undefined) ?? 60_000 });
    }
    throw new DeliveryError(`${what}: ${answer.errmsg ?? `HTTP ${res.status}`}`, { retryable: res.status >= 500, code: answer.errcode ?? res.status });
  }
}

export function openApiError(what: string, status: number, answer: OpenApiAnswer, retryAfter?: string): DeliveryError {
  const code = answer.code ?? status;
  const message = `${what}: ${answer.message ?? `HTTP ${status}`}`;
  if (status === 429 || (typeof answer.code === 'string' && answer.code.startsWith('Forbidden.AccessDenied.QpsLimit'))) {
    return new DeliveryError(message, { retryable: true, code, rateLimitMs: retryAfterMs(retryAfter) ?? 1000 });
  }
  if (answer.code === TOKEN_INVALID_CODE || status >= 500 || status === 408) return new DeliveryError(message, { retryable: true, code });
  return new DeliveryError(message, { retryable: false, code });
}
