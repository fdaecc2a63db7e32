/**
 * A loopback WeChat API server (api.weixin.qq.com) for the endpoints the WeChat channels call, checking requests the
 * way the platform does:
 * - GET  /cgi-bin/token?grant_type=client_credential&appid=&secret=          → {access_token, expires_in}
 * - POST /cgi-bin/stable_token {grant_type, appid, secret, force_refresh}     → {access_token, expires_in}
 *   (getStableAccessToken doc: normal mode returns the current token while it is valid; force mode invalidates it
 *   and issues a new one, at most 20 times a day and not within 30 s of the previous force — then nothing changes)
 * - POST /cgi-bin/message/custom/send?access_token=  JSON {touser, msgtype, <msgtype>: {...}} → {errcode:0,errmsg:"ok"}
 * - POST /cgi-bin/media/upload?access_token=&type=   multipart field "media"  → {type, media_id, created_at}
 * - GET  /cgi-bin/media/get?access_token=&media_id=                           → the file, or {errcode, errmsg}
 * Unknown/expired tokens answer 40001/42001, a wrong secret 40125, and the next answers of an endpoint can be
 * scripted (`fail('send', {errcode: 45015})`, `{status: 500}`) to exercise refresh, retry, rate limit and fail-fast.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Endpoint = 'token' | 'send' | 'upload' | 'media';
export type Scripted = { errcode: number; errmsg?: string } | { status: number };

export interface SentMessage {
  touser: string;
  msgtype: string;
  [field: string]: unknown;
}

const SEND_FIELDS: Record<string, string[]> = {
  text: ['content'],
  image: ['media_id'],
  link: ['title', 'description', 'url', 'thumb_url'],
  miniprogrampage: ['title', 'pagepath', 'thumb_media_id'],
  news: ['articles'],
};

export async function startFakeWechatApi(app: { appId: string; appSecret: string }) {
  const tokens = new Set<string>();
  const expired = new Set<string>();
  const media = new Map<string, { data: Buffer; type: string; name: string }>();
  const script: Record<Endpoint, Scripted[]> = { token: [], send: [], upload: [], media: [] };
  const sent: SentMessage[] = [];
  const uploads: Array<{ type: string; name: string; contentType: string; size: number; mediaId: string }> = [];
  const calls: Array<{ endpoint: Endpoint; token?: string }> = [];
  let tokenRequests = 0;
  let stableForceRefreshes = 0;
  let current: string | undefined;
  /** Tokens the APIs refuse although stable_token (normal mode) still hands them out: what force mode is for. */
  const refusedButCurrent = new Set<string>();
  /** Times (ms) of the force refreshes that took effect, for the 30 s spacing and the 20-a-day limit. */
  const forcedAt: number[] = [];
  let clockSkewMs = 0;
  const now = () => Date.now() + clockSkewMs;

  const json = (res: ServerResponse, body: unknown, status = 200) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  };
  /** Answers a scripted failure if one is queued for the endpoint; true when it did. */
  const scripted = (endpoint: Endpoint, res: ServerResponse): boolean => {
    const next = script[endpoint].shift();
    if (!next) return false;
    if ('status' in next) json(res, { error: 'scripted' }, next.status);
    else json(res, { errcode: next.errcode, errmsg: next.errmsg ?? `scripted ${next.errcode}` });
    return true;
  };
  const issue = () => {
    current = `TOKEN_${randomBytes(24).toString('base64url')}`;
    tokens.add(current);
    return { access_token: current, expires_in: 7200 };
  };
  /** The platform's token check: 41001 missing, 42001 expired, 40001 unknown. */
  const tokenError = (token: string | null) => {
    if (!token) return { errcode: 41001, errmsg: 'access_token missing' };
    if (expired.has(token)) return { errcode: 42001, errmsg: 'access_token expired' };
    if (!tokens.has(token) || refusedButCurrent.has(token)) return { errcode: 40001, errmsg: 'invalid credential, access_token is invalid or not latest' };
    return undefined;
  };

  async function handle(req: IncomingMessage, res: ServerResponse, body: Buffer) {
    const url = new URL(req.url ?? '/', 'http://fake');
    const q = url.searchParams;
    if (url.pathname === '/cgi-bin/token' && req.method === 'GET') {
      tokenRequests++;
      if (scripted('token', res)) return;
      if (q.get('grant_type') !== 'client_credential') return json(res, { errcode: 40002, errmsg: 'invalid grant_type' });
      if (q.get('appid') !== app.appId) return json(res, { errcode: 40013, errmsg: 'invalid appid' });
      if (q.get('secret') !== app.appSecret) return json(res, { errcode: 40125, errmsg: 'invalid appsecret' });
      // The classic endpoint invalidates the previous token.
      if (current) tokens.delete(current);
      return json(res, issue());
    }
    if (url.pathname === '/cgi-bin/stable_token' && req.method === 'POST') {
      tokenRequests++;
      if (scripted('token', res)) return;
      let b: any;
      try {
        b = JSON.parse(body.toString('utf8'));
      } catch {
        return json(res, { errcode: 47001, errmsg: 'data format error' });
      }
      if (b.grant_type !== 'client_credential') return json(res, { errcode: 40002, errmsg: 'invalid grant_type' });
      if (b.appid !== app.appId) return json(res, { errcode: 40013, errmsg: 'invalid appid' });
      if (b.secret !== app.appSecret) return json(res, { errcode: 40125, errmsg: 'invalid appsecret' });
      if (b.force_refresh !== undefined && typeof b.force_refresh !== 'boolean') return json(res, { errcode: 47001, errmsg: 'data format error' });
      const valid = current !== undefined && tokens.has(current) && !expired.has(current);
      if (!b.force_refresh) return json(res, valid ? { access_token: current, expires_in: 7200 } : issue());
      // Force mode: limited to 20 a day, and within 30 s of the previous force nothing is refreshed.
      const today = forcedAt.filter((t) => now() - t < 24 * 3600 * 1000);
      if (today.length >= 20) return json(res, { errcode: 45009, errmsg: 'reach max api daily quota limit' });
      if (valid && today.length > 0 && now() - today.at(-1)! < 30_000) return json(res, { access_token: current, expires_in: 7200 });
      stableForceRefreshes++;
      forcedAt.push(now());
      // The previous token stops working at once.
      if (current) tokens.delete(current);
      return json(res, issue());
    }
    if (url.pathname === '/cgi-bin/message/custom/send' && req.method === 'POST') {
      const token = q.get('access_token');
      calls.push({ endpoint: 'send', ...(token && { token }) });
      const bad = tokenError(token);
      if (bad) return json(res, bad);
      if (scripted('send', res)) return;
      let msg: SentMessage;
      try {
        msg = JSON.parse(body.toString('utf8'));
      } catch {
        return json(res, { errcode: 47001, errmsg: 'data format error' });
      }
      if (typeof msg.touser !== 'string' || !msg.touser) return json(res, { errcode: 40003, errmsg: 'invalid openid' });
      const fields = SEND_FIELDS[msg.msgtype];
      const inner = msg[msg.msgtype] as Record<string, unknown> | undefined;
      if (!fields || !inner || typeof inner !== 'object') return json(res, { errcode: 40008, errmsg: 'invalid message type' });
      for (const f of fields) if (inner[f] === undefined) return json(res, { errcode: 47001, errmsg: `data format error: ${msg.msgtype}.${f} missing` });
      if (msg.msgtype === 'image' && !media.has(String(inner.media_id))) return json(res, { errcode: 40007, errmsg: 'invalid media_id' });
      sent.push(msg);
      return json(res, { errcode: 0, errmsg: 'ok' });
    }
    if (url.pathname === '/cgi-bin/media/upload' && req.method === 'POST') {
      const token = q.get('access_token');
      calls.push({ endpoint: 'upload', ...(token && { token }) });
      const bad = tokenError(token);
      if (bad) return json(res, bad);
      if (scripted('upload', res)) return;
      const type = q.get('type') ?? '';
      if (!['image', 'voice', 'video', 'thumb'].includes(type)) return json(res, { errcode: 40004, errmsg: 'invalid media type' });
      let form: FormData;
      try {
        form = await new Response(new Uint8Array(body), { headers: { 'content-type': String(req.headers['content-type']) } }).formData();
      } catch {
        return json(res, { errcode: 41005, errmsg: 'media data missing' });
      }
      const file = form.get('media');
      if (!(file instanceof File)) return json(res, { errcode: 41005, errmsg: 'media data missing' });
      if (type === 'image' && !/\.(jpe?g|png|gif|bmp)$/i.test(file.name)) return json(res, { errcode: 40005, errmsg: 'invalid file type' });
      const mediaId = `MEDIA_${randomBytes(16).toString('base64url')}`;
      const data = Buffer.from(await file.arrayBuffer());
      media.set(mediaId, { data, type: file.type, name: file.name });
      uploads.push({ type, name: file.name, contentType: file.type, size: data.length, mediaId });
      return json(res, { type, media_id: mediaId, created_at: Math.floor(Date.now() / 1000) });
    }
    if (url.pathname === '/cgi-bin/media/get' && req.method === 'GET') {
      const token = q.get('access_token');
      calls.push({ endpoint: 'media', ...(token && { token }) });
      const bad = tokenError(token);
      if (bad) return json(res, bad);
      if (scripted('media', res)) return;
      const file = media.get(q.get('media_id') ?? '');
      if (!file) return json(res, { errcode: 40007, errmsg: 'invalid media_id' });
      res.writeHead(200, { 'content-type': file.type, 'content-disposition': `attachment; filename="${file.name}"`, 'content-length': file.data.length });
      return void res.end(file.data);
    }
    json(res, { errcode: 40066, errmsg: 'invalid url' }, 404);
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void handle(req, res, Buffer.concat(chunks)).catch((err) => json(res, { error: String(err) }, 500)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    sent,
    uploads,
    calls,
    get tokenRequests() {
      return tokenRequests;
    },
    get stableForceRefreshes() {
      return stableForceRefreshes;
    },
    /** Queue scripted answers for the next calls of an endpoint. */
    fail(endpoint: Endpoint, ...answers: Scripted[]) {
      script[endpoint].push(...answers);
    },
    /** Make the current token expired (42001) as if its 7200 s had passed. */
    expireToken() {
      if (current) expired.add(current);
    },
    /** Make every issued token unknown (40001), as after someone else fetched a classic token. */
    revokeTokens() {
      tokens.clear();
    },
    /** The current token is refused by the APIs (40001) while normal-mode stable_token still returns it. */
    refuseCurrentToken() {
      if (current) refusedButCurrent.add(current);
    },
    /** Moves the fake's clock (force-refresh spacing and daily limit). */
    advanceClock(ms: number) {
      clockSkewMs += ms;
    },
    /** Puts a file in the platform's media store, as if a user had sent it; returns its media_id. */
    addMedia(data: Buffer, type: string, name: string): string {
      const mediaId = `MEDIA_${randomBytes(16).toString('base64url')}`;
      media.set(mediaId, { data, type, name });
      return mediaId;
    },
    mediaData(mediaId: string) {
      return media.get(mediaId)?.data;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
export type FakeWechatApi = Awaited<ReturnType<typeof startFakeWechatApi>>;
