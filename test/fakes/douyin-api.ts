/**
 * A loopback Douyin OpenAPI (open.douyin.com) for tests, following the official docs for what the douyin channel
 * calls: `POST /oauth/refresh_token/` (form-urlencoded client_key + grant_type=refresh_token + refresh_token; the
 * refresh_token keeps its lifetime, answered as refresh_expires_in), `POST /oauth/renew_refresh_token/`
 * (form-urlencoded client_key + refresh_token → a new refresh_token valid 30 days, the old one invalid at once; at
 * most 5 renewals, then 10020; 10010 for an expired one — developer.open-douyin.com
 * dop/develop/openapi/account-permission/refresh-token) and `POST /im/send/msg/?open_id=` (header `access-token`, JSON msg_id / conversation_id / to_user_id / scene / content).
 * It checks token validity, expiry and ownership, the form and JSON fields, and answers Douyin's error codes; tests
 * can queue failures (`failNext`) and expire tokens.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Answer = { status?: number; error_code?: number; description?: string; pass?: true };

const REFRESH_TOKEN_LIFE_SECONDS = 30 * 86_400;
const MAX_RENEWALS = 5;

export async function startFakeDouyin(options: { clientKey: string; refreshToken: string; openId: string; refreshTokenLifeSeconds?: number }) {
  const tokens = new Map<string, { expiresAt: number; openId: string }>();
  /** Valid refresh tokens: when each lapses, and how many renewals led to it. */
  const refreshTokens = new Map<string, { expiresAt: number; renewals: number }>();
  const issueRefreshToken = (token: string, lifeSeconds = REFRESH_TOKEN_LIFE_SECONDS, renewals = 0) =>
    void refreshTokens.set(token, { expiresAt: Date.now() + lifeSeconds * 1000, renewals });
  issueRefreshToken(options.refreshToken, options.refreshTokenLifeSeconds);
  const liveRefreshToken = (token: string | null) => {
    const entry = token ? refreshTokens.get(token) : undefined;
    return entry && entry.expiresAt > Date.now() ? entry : undefined;
  };
  const failures = new Map<string, Answer[]>();
  const sent: Array<{ query: Record<string, string>; body: Record<string, any> }> = [];
  const counters = { refresh: 0, renew: 0 };
  const logid = () => randomBytes(10).toString('hex');

  const reply = (res: ServerResponse, data: Record<string, unknown>, code = 0, description = '') =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({ data: { ...data, error_code: code, description }, extra: { error_code: code, description, sub_error_code: 0, sub_description: '', logid: logid(), now: Date.now() } }),
    );

  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://fake');
    const answer = failures.get(url.pathname)?.shift();
    if (answer && !answer.pass) {
      if (answer.status) return void res.writeHead(answer.status).end('fake failure');
      return reply(res, {}, answer.error_code ?? 2100004, answer.description ?? 'fake failure');
    }

    if (url.pathname === '/oauth/refresh_token/' && req.method === 'POST') {
      counters.refresh++;
      if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) return reply(res, {}, 10005, 'form body expected');
      const form = new URLSearchParams(raw);
      if (form.get('client_key') !== options.clientKey) return reply(res, {}, 10003, 'client_key not found');
      if (form.get('grant_type') !== 'refresh_token') return reply(res, {}, 10005, 'grant_type must be refresh_token');
      const refreshToken = form.get('refresh_token');
      const live = liveRefreshToken(refreshToken);
      if (!live) return reply(res, {}, 10010, 'refresh_token expired');
      const token = `act.${randomBytes(16).toString('hex')}`;
      tokens.set(token, { expiresAt: Date.now() + 1296000_000, openId: options.openId });
      const refreshExpiresIn = Math.floor((live.expiresAt - Date.now()) / 1000);
      return reply(res, { access_token: token, expires_in: 1296000, refresh_expires_in: refreshExpiresIn, refresh_token: refreshToken, open_id: options.openId, scope: 'im.direct_message' });
    }

    if (url.pathname === '/oauth/renew_refresh_token/' && req.method === 'POST') {
      counters.renew++;
      if (!String(req.headers['content-type']).startsWith('application/x-www-form-urlencoded')) return reply(res, {}, 10005, 'form body expected');
      const form = new URLSearchParams(raw);
      const refreshToken = form.get('refresh_token');
      if (!form.get('client_key') || !refreshToken) return reply(res, {}, 10005, 'missing parameter');
      if (form.get('client_key') !== options.clientKey) return reply(res, {}, 10003, 'client_key not found');
      const live = liveRefreshToken(refreshToken);
      if (!live) return reply(res, {}, 10010, 'refresh_token expired');
      if (live.renewals >= MAX_RENEWALS) return reply(res, {}, 10020, 'renewal limit reached');
      refreshTokens.delete(refreshToken!);
      const renewed = `rft.${randomBytes(16).toString('hex')}`;
      issueRefreshToken(renewed, REFRESH_TOKEN_LIFE_SECONDS, live.renewals + 1);
      // The documented sample answers expires_in as a string.
      return reply(res, { refresh_token: renewed, expires_in: String(REFRESH_TOKEN_LIFE_SECONDS) });
    }

    if (url.pathname === '/im/send/msg/' && req.method === 'POST') {
      const token = String(req.headers['access-token'] ?? '');
      const entry = tokens.get(token);
      if (!entry) return reply(res, {}, 28001003, 'access_token is invalid');
      if (entry.expiresAt <= Date.now()) return reply(res, {}, 28001008, 'access_token is expired');
      if (url.searchParams.get('open_id') !== entry.openId) return reply(res, {}, 2190015, 'access_token and open_id do not match');
      if (!String(req.headers['content-type']).startsWith('application/json')) return reply(res, {}, 2100005, 'json body expected');
      let body: Record<string, any>;
      try {
        body = JSON.parse(raw);
      } catch {
        return reply(res, {}, 2100005, 'invalid json');
      }
      for (const f of ['msg_id', 'conversation_id', 'to_user_id']) if (typeof body[f] !== 'string' || body[f] === '') return reply(res, {}, 2100005, `${f} required`);
      if (body.scene !== 'im_reply_msg') return reply(res, {}, 2100005, 'invalid scene');
      const c = body.content;
      if (!c || c.msg_type !== 1 || typeof c.text?.text !== 'string' || c.text.text === '') return reply(res, {}, 2100005, 'invalid content');
      sent.push({ query: Object.fromEntries(url.searchParams), body });
      return reply(res, { msg_id: `@${randomBytes(12).toString('base64url')}` });
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent,
    counters,
    failNext(path: string, ...answers: Answer[]) {
      failures.set(path, [...(failures.get(path) ?? []), ...answers]);
    },
    /** The account authorised the app again: a fresh refresh_token (optionally short-lived). */
    issueRefreshToken,
    /** Makes a refresh_token lapse in `seconds` (0: now). */
    setRefreshTokenLife(token: string, seconds: number) {
      const entry = refreshTokens.get(token);
      if (entry) entry.expiresAt = Date.now() + seconds * 1000;
    },
    /** The refresh tokens that still work. */
    liveRefreshTokens: () => [...refreshTokens.keys()].filter((t) => liveRefreshToken(t)),
    expireTokens() {
      for (const t of tokens.values()) t.expiresAt = Date.now() - 1;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
export type FakeDouyin = Awaited<ReturnType<typeof startFakeDouyin>>;
