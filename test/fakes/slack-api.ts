/**
 * A loopback Slack: the Web API method a bot replies with and the Events API side that calls the app.
 * - `POST /api/chat.postMessage` with `Authorization: Bearer xoxb-…` and a JSON body {channel, text}: HTTP 200
 *   `{ok:true, channel, ts, message}`, or HTTP 200 `{ok:false, error}` with Slack's codes (`not_authed`,
 *   `invalid_auth`, `channel_not_found`, `no_text`); HTTP 429 with `Retry-After` when a rate limit is programmed.
 * - Events: `deliver(payload)` POSTs JSON signed as Slack does (X-Slack-Request-Timestamp, X-Slack-Signature =
 *   "v0=" + hex HMAC-SHA256(signing secret, "v0:<ts>:<body>")), with X-Slack-Retry-Num/-Reason on retries.
 * - Like Slack, a message the bot posts comes back as a `message` event carrying `bot_id` (when echo is on).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { startRecorder } from '../helpers/http-recorder.js';

export function slackSignature(secret: string, timestamp: string, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

export interface PostedSlackMessage {
  channel: string;
  text: string;
  ts: string;
}

export async function startSlackApi(opts: { botToken: string; signingSecret: string; channels: string[]; teamId?: string }) {
  const posted: PostedSlackMessage[] = [];
  const events: { url?: string; echoBotMessages: boolean } = { echoBotMessages: true };
  const teamId = opts.teamId ?? 'T0001';
  let rateLimitNext = 0;
  let seq = 0;

  const server = await startRecorder(async (req, res) => {
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url.split('?')[0] !== '/api/chat.postMessage') return reply(404, { ok: false, error: 'unknown_method' });
    if (rateLimitNext > 0) {
      rateLimitNext--;
      return reply(429, { ok: false, error: 'ratelimited' }, { 'retry-after': '1' });
    }
    const auth = String(req.headers.authorization ?? '');
    if (!auth) return reply(200, { ok: false, error: 'not_authed' });
    if (auth !== `Bearer ${opts.botToken}`) return reply(200, { ok: false, error: 'invalid_auth' });
    let body: { channel?: string; text?: string };
    try {
      body = req.json();
    } catch {
      return reply(200, { ok: false, error: 'invalid_json' });
    }
    if (!body.channel || !opts.channels.includes(body.channel)) return reply(200, { ok: false, error: 'channel_not_found' });
    if (!body.text) return reply(200, { ok: false, error: 'no_text' });
    const ts = `${Math.floor(Date.now() / 1000)}.${String(++seq).padStart(6, '0')}`;
    posted.push({ channel: body.channel, text: body.text, ts });
    reply(200, { ok: true, channel: body.channel, ts, message: { type: 'message', text: body.text, bot_id: 'B0BOT', ts } });
    if (events.echoBotMessages && events.url) {
      // Slack reports the bot's own post to the app as an event; the app must not answer it.
      void api.deliver(eventCallback({ type: 'message', channel: body.channel, text: body.text, ts, bot_id: 'B0BOT', app_id: 'A0APP', channel_type: 'im' })).catch(() => undefined);
    }
  });

  function eventCallback(event: Record<string, unknown>, eventId = `Ev${randomBytes(5).toString('hex').toUpperCase()}`) {
    return { token: 'legacy-verification-token', team_id: teamId, api_app_id: 'A0APP', event, type: 'event_callback', event_id: eventId, event_time: Math.floor(Date.now() / 1000) };
  }

  const api = {
    url: server.url,
    requests: server.requests,
    posted,
    events,
    rateLimit(n: number) {
      rateLimitNext = n;
    },
    eventCallback,
    /** A user's direct message to the bot, as the Events API wraps it. */
    userMessage(user: string, channel: string, text: string, eventId?: string) {
      const ts = `${(Date.now() / 1000).toFixed(6)}`;
      return eventCallback({ type: 'message', channel, user, text, ts, event_ts: ts, channel_type: 'im' }, eventId);
    },
    /** POSTs a payload to the Request URL, signed; `timestamp`/`signature` override for forgery tests. */
    async deliver(payload: unknown, o: { retryNum?: number; timestamp?: string; signature?: string; rawBody?: string } = {}): Promise<Response> {
      if (!events.url) throw new Error('no Request URL set');
      const body = o.rawBody ?? JSON.stringify(payload);
      const timestamp = o.timestamp ?? String(Math.floor(Date.now() / 1000));
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'x-slack-request-timestamp': timestamp,
        'x-slack-signature': o.signature ?? slackSignature(opts.signingSecret, timestamp, body),
      };
      if (o.retryNum !== undefined) {
        headers['x-slack-retry-num'] = String(o.retryNum);
        headers['x-slack-retry-reason'] = 'http_timeout';
      }
      return fetch(events.url, { method: 'POST', headers, body });
    },
    /** What Slack does when the Request URL is entered: a signed url_verification; resolves to the answer. */
    async verifyRequestUrl(url: string): Promise<{ status: number; body: string; challenge: string }> {
      events.url = url;
      const challenge = randomBytes(24).toString('base64url');
      const res = await api.deliver({ token: 'legacy-verification-token', challenge, type: 'url_verification' });
      return { status: res.status, body: await res.text(), challenge };
    },
    close: () => server.close(),
  };
  return api;
}
