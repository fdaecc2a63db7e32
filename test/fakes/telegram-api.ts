/**
 * A loopback Telegram Bot API (core.telegram.org/bots/api) with what a webhook bot uses:
 * - `POST /bot<token>/setWebhook` {url, secret_token} and `pushUpdate(update)`, which POSTs the Update as JSON to
 *   that URL with `X-Telegram-Bot-Api-Secret-Token`, as Telegram does, returning the HTTP status it got;
 * - `POST /bot<token>/sendMessage` {chat_id, text} → `{ok:true, result: Message}`; errors in Telegram's shape
 *   `{ok:false, error_code, description[, parameters.retry_after]}`: 401 for a wrong token, 400 "chat not found" /
 *   "message text is empty", 429 "Too Many Requests: retry after N" when a rate limit is programmed.
 */
import { startRecorder, type RecordedRequest } from '../helpers/http-recorder.js';

export interface SentTelegramMessage {
  chat_id: number | string;
  text: string;
  message_id: number;
}

export async function startTelegramApi(opts: { token: string; knownChats: Array<number | string> }) {
  const sent: SentTelegramMessage[] = [];
  const webhook: { url?: string; secretToken?: string } = {};
  let nextMessageId = 1000;
  let rateLimitNext = 0;

  const server = await startRecorder((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.statusCode = status;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(body));
    };
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(req.url.split('?')[0]!);
    if (!match) return reply(404, { ok: false, error_code: 404, description: 'Not Found' });
    const [, token, method] = match;
    if (token !== opts.token) return reply(401, { ok: false, error_code: 401, description: 'Unauthorized' });
    const params = readParams(req);
    if (method === 'setWebhook') {
      webhook.url = String(params.url ?? '');
      if (params.secret_token !== undefined) webhook.secretToken = String(params.secret_token);
      return reply(200, { ok: true, result: true, description: 'Webhook was set' });
    }
    if (method === 'sendMessage') {
      if (rateLimitNext > 0) {
        rateLimitNext--;
        return reply(429, { ok: false, error_code: 429, description: 'Too Many Requests: retry after 1', parameters: { retry_after: 1 } });
      }
      if (params.chat_id === undefined || !opts.knownChats.map(String).includes(String(params.chat_id))) {
        return reply(400, { ok: false, error_code: 400, description: 'Bad Request: chat not found' });
      }
      if (typeof params.text !== 'string' || params.text.trim() === '') {
        return reply(400, { ok: false, error_code: 400, description: 'Bad Request: message text is empty' });
      }
      const message_id = nextMessageId++;
      sent.push({ chat_id: params.chat_id as number | string, text: params.text, message_id });
      return reply(200, {
        ok: true,
        result: { message_id, date: Math.floor(Date.now() / 1000), chat: { id: params.chat_id }, text: params.text, from: { id: 1, is_bot: true } },
      });
    }
    return reply(404, { ok: false, error_code: 404, description: 'Not Found: method not found' });
  });

  return {
    url: server.url,
    requests: server.requests,
    sent,
    webhook,
    /** The next `n` sendMessage calls answer 429 with parameters.retry_after. */
    rateLimit(n: number) {
      rateLimitNext = n;
    },
    /** Delivers an Update to the registered webhook the way Telegram does. */
    async pushUpdate(update: unknown, overrideSecret?: string): Promise<Response> {
      if (!webhook.url) throw new Error('no webhook set');
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      const secret = overrideSecret ?? webhook.secretToken;
      if (secret !== undefined) headers['x-telegram-bot-api-secret-token'] = secret;
      return fetch(webhook.url, { method: 'POST', headers, body: JSON.stringify(update) });
    },
    close: () => server.close(),
  };
}

/** Bot API methods accept query string, form (urlencoded) or JSON parameters. */
function readParams(req: RecordedRequest): Record<string, unknown> {
  const params: Record<string, unknown> = Object.fromEntries(new URL(req.url, 'http://x').searchParams);
  const type = String(req.headers['content-type'] ?? '');
  if (type.includes('application/json') && req.body.length) Object.assign(params, req.json());
  else if (type.includes('application/x-www-form-urlencoded')) Object.assign(params, Object.fromEntries(new URLSearchParams(req.text)));
  return params;
}
