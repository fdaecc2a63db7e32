/**
 * A loopback WeCom server API (qyapi.weixin.qq.com) for tests, following the official docs for the endpoints the
 * wecom-app and wecom-kf channels call:
 *
 *   GET  /cgi-bin/gettoken?corpid&corpsecret                  (path 91039)
 *   POST /cgi-bin/message/send?access_token                    (path 90236)
 *   POST /cgi-bin/media/upload?access_token&type   multipart "media" (path 90253)
 *   GET  /cgi-bin/media/get?access_token&media_id              (path 90254)
 *   POST /cgi-bin/kf/sync_msg?access_token                     (path 94670: cursor, token, limit, has_more, next_cursor)
 *   POST /cgi-bin/kf/send_msg?access_token                     (path 94677: session state 0/1, 48 h, 5 messages)
 *   POST /cgi-bin/kf/send_msg_on_event?access_token            (path 95122/96428: welcome_code once, within 20 s,
 *                                                               text or msgmenu only)
 *   POST /cgi-bin/kf/service_state/get | service_state/trans  (path 94669)
 *
 * It checks what a real server checks (token validity and expiry, corp secret, agentid, JSON field types, msgtype
 * payloads) and answers with WeCom's errcodes; tests can queue failures (`failNext`) and expire tokens.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KfMessage {
  msgid: string;
  open_kfid: string;
  external_userid?: string;
  send_time: number;
  origin: number;
  msgtype: string;
  [field: string]: unknown;
}

export interface SentMessage {
  path: string;
  body: Record<string, any>;
  token: string;
}

/** A queued answer: an errcode body, an HTTP failure `{status}`, or `{pass: true}` to let one call through. */
type Answer = { status?: number; body?: string; pass?: true; errcode?: number; errmsg?: string };

export interface FakeWecomOptions {
  corpId: string;
  /** secret → agentid (0 for the kf app). */
  secrets: Record<string, number>;
}

const WEEK_S = 7 * 24 * 3600;

export async function startFakeWecom(options: FakeWecomOptions) {
  const tokens = new Map<string, { expiresAt: number; secret: string }>();
  const failures = new Map<string, Answer[]>();
  const sent: SentMessage[] = [];
  const uploads: Array<{ type: string; filename: string; contentType: string; size: number; mediaId: string }> = [];
  const media = new Map<string, { bytes: Buffer; type: string; filename: string }>();
  const kfLog = new Map<string, KfMessage[]>();
  const kfState = new Map<string, { state: number; servicer?: string; lastCustomerAt: number; sinceCustomer: number }>();
  const welcomeCodes = new Map<string, { used: boolean; issuedAt: number }>();
  const syncTokens = new Set<string>();
  const syncRequests: Array<Record<string, unknown>> = [];
  const counters = { gettoken: 0 };
  let syncPageSize = 1000;
  /** sync_msg answers wait this long, so overlapping pulls of one open_kfid would be visible in `syncConcurrency`. */
  let syncDelayMs = 0;
  const syncConcurrency = { inFlight: 0, max: 0 };
  /** Seconds added to the fake's clock (reply-window tests). */
  let clockSkewS = 0;
  const now = () => Math.floor(Date.now() / 1000) + clockSkewS;

  const json = (res: ServerResponse, body: unknown, status = 200) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(body));
  };
  const err = (res: ServerResponse, errcode: number, errmsg: string) => json(res, { errcode, errmsg: `${errmsg}, hint: [fake]` });

  function checkToken(url: URL, res: ServerResponse): string | undefined {
    const token = url.searchParams.get('access_token');
    if (!token) return void err(res, 41001, 'access_token missing');
    const entry = tokens.get(token);
    if (!entry) return void err(res, 40014, 'invalid access_token');
    if (entry.expiresAt <= now()) return void err(res, 42001, 'access_token expired');
    return token;
  }

  function queued(path: string, res: ServerResponse): boolean {
    const answer = failures.get(path)?.shift();
    if (!answer || answer.pass === true) return false;
    if (typeof answer.status === 'number' && !('errcode' in answer)) res.writeHead(answer.status).end(String(answer.body ?? 'fake failure'));
    else json(res, answer);
    return true;
  }

  async function readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  function parseJson(raw: Buffer, res: ServerResponse): Record<string, any> | undefined {
    try {
      const v = JSON.parse(raw.toString('utf8'));
      if (v && typeof v === 'object' && !Array.isArray(v)) return v;
    } catch {
      // fall through
    }
    return void err(res, 47001, 'data format error');
  }

  function kfKey(openKfid: string, user: string) {
    return `${openKfid}|${user}`;
  }
  function kfSession(openKfid: string, user: string) {
    let s = kfState.get(kfKey(openKfid, user));
    if (!s) kfState.set(kfKey(openKfid, user), (s = { state: 0, lastCustomerAt: 0, sinceCustomer: 0 }));
    return s;
  }

  const fail = (res: ServerResponse, errcode: number, errmsg: string): false => {
    err(res, errcode, errmsg);
    return false;
  };

  function checkMessagePayload(body: Record<string, any>, res: ServerResponse): boolean {
    const type = body.msgtype;
    const payload = body[type];
    if (typeof type !== 'string' || !payload || typeof payload !== 'object') return fail(res, 40008, 'invalid message type');
    if (type === 'text' && (typeof payload.content !== 'string' || payload.content === '' || Buffer.byteLength(payload.content) > 2048)) {
      return fail(res, 44004, 'empty content or content too long');
    }
    if (type === 'image' && (typeof payload.media_id !== 'string' || !media.has(payload.media_id))) return fail(res, 40007, 'invalid media_id');
    if (type === 'news' && (!Array.isArray(payload.articles) || payload.articles.length < 1 || payload.articles.some((a: any) => typeof a.title !== 'string'))) {
      return fail(res, 40058, 'articles invalid');
    }
    return true;
  }

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname.replace(/^\/cgi-bin\//, '');
    const raw = await readBody(req);
    if (queued(path, res)) return;

    if (path === 'gettoken' && req.method === 'GET') {
      counters.gettoken++;
      if (url.searchParams.get('corpid') !== options.corpId) return err(res, 40013, 'invalid corpid');
      const secret = url.searchParams.get('corpsecret') ?? '';
      if (!(secret in options.secrets)) return err(res, 40001, 'invalid secret');
      const token = randomBytes(24).toString('base64url');
      tokens.set(token, { expiresAt: now() + 7200, secret });
      return json(res, { errcode: 0, errmsg: 'ok', access_token: token, expires_in: 7200 });
    }

    if (path === 'media/get' && req.method === 'GET') {
      if (!checkToken(url, res)) return;
      const m = media.get(url.searchParams.get('media_id') ?? '');
      if (!m) return err(res, 40007, 'invalid media_id');
      res.writeHead(200, { 'content-type': m.type, 'content-disposition': `attachment; filename="${m.filename}"`, 'content-length': m.bytes.length });
      return void res.end(m.bytes);
    }

    if (req.method !== 'POST') return err(res, 43002, 'require POST method');
    const token = checkToken(url, res);
    if (!token) return;
    const agent = options.secrets[tokens.get(token)!.secret];

    if (path === 'media/upload') {
      const type = url.searchParams.get('type') ?? '';
      if (!['image', 'voice', 'video', 'file'].includes(type)) return err(res, 40004, 'invalid media type');
      const part = parseMultipart(raw, String(req.headers['content-type'] ?? ''));
      if (!part || part.name !== 'media' || !part.filename) return err(res, 41005, 'media data missing');
      if (type === 'image' && !/\.(jpg|jpeg|png)$/i.test(part.filename)) return err(res, 40005, 'invalid file type');
      const mediaId = `3${randomBytes(20).toString('base64url')}`;
      media.set(mediaId, { bytes: part.data, type: part.contentType, filename: part.filename });
      uploads.push({ type, filename: part.filename, contentType: part.contentType, size: part.data.length, mediaId });
      return json(res, { errcode: 0, errmsg: 'ok', type, media_id: mediaId, created_at: String(now()) });
    }

    const body = parseJson(raw, res);
    if (!body) return;

    if (path === 'message/send') {
      if (typeof body.touser !== 'string' || body.touser === '') return err(res, 40003, 'invalid userid');
      if (body.agentid !== agent) return err(res, 40056, 'invalid agentid');
      if (!checkMessagePayload(body, res)) return;
      const msgid = randomBytes(12).toString('hex');
      sent.push({ path, body, token });
      return json(res, { errcode: 0, errmsg: 'ok', invaliduser: '', invalidparty: '', invalidtag: '', unlicenseduser: '', msgid, response_code: '' });
    }

    if (path === 'kf/sync_msg') {
      syncRequests.push(body);
      syncConcurrency.inFlight++;
      syncConcurrency.max = Math.max(syncConcurrency.max, syncConcurrency.inFlight);
      await new Promise((r) => setTimeout(r, syncDelayMs));
      syncConcurrency.inFlight--;
      const openKfid = body.open_kfid;
      if (typeof openKfid !== 'string' || !kfLog.has(openKfid)) return err(res, 95000, 'invalid open_kfid');
      if (body.token !== undefined && (typeof body.token !== 'string' || !syncTokens.has(body.token))) return err(res, 95007, 'invalid msg token');
      if (body.cursor !== undefined && (typeof body.cursor !== 'string' || body.cursor.length > 64)) return err(res, 40058, 'invalid cursor');
      const limit = Math.min(Number(body.limit ?? 1000), 1000, syncPageSize);
      const log = kfLog.get(openKfid)!;
      const start = body.cursor ? Number(Buffer.from(body.cursor, 'base64url').toString('utf8').replace('pos:', '')) : 0;
      if (!Number.isInteger(start) || start < 0 || start > log.length) return err(res, 40058, 'invalid cursor');
      const page = log.slice(start, start + limit);
      const next = start + page.length;
      return json(res, {
        errcode: 0,
        errmsg: 'ok',
        next_cursor: Buffer.from(`pos:${next}`).toString('base64url'),
        has_more: next < log.length ? 1 : 0,
        msg_list: page,
      });
    }

    if (path === 'kf/send_msg') {
      if (typeof body.touser !== 'string' || typeof body.open_kfid !== 'string') return err(res, 40003, 'invalid external_userid');
      if (!kfLog.has(body.open_kfid)) return err(res, 95000, 'invalid open_kfid');
      if (body.msgid !== undefined && !/^[0-9a-zA-Z_-]{1,32}$/.test(String(body.msgid))) return err(res, 40058, 'invalid msgid');
      const s = kfSession(body.open_kfid, body.touser);
      if (s.state !== 0 && s.state !== 1) return err(res, 95018, 'session state does not allow API messages');
      if (now() - s.lastCustomerAt > 48 * 3600) return err(res, 95002, 'send msg time exceeds limit (48 h)');
      if (s.sinceCustomer >= 5) return err(res, 95001, 'send msg count exceeds limit (5)');
      if (!checkMessagePayload(body, res)) return;
      s.sinceCustomer++;
      sent.push({ path, body, token });
      return json(res, { errcode: 0, errmsg: 'ok', msgid: body.msgid ?? randomBytes(8).toString('hex') });
    }

    if (path === 'kf/send_msg_on_event') {
      const code = welcomeCodes.get(String(body.code));
      if (!code || code.used || now() - code.issuedAt > 20) return err(res, 95016, 'invalid or used welcome code');
      // path 96428: the enter_session welcome accepts only text and msgmenu; 40008 is the global "invalid msgtype".
      if (body.msgtype !== 'text' && body.msgtype !== 'msgmenu') return err(res, 40008, `invalid msgtype ${String(body.msgtype)} for an event message`);
      if (!checkMessagePayload(body, res)) return;
      code.used = true;
      sent.push({ path, body, token });
      return json(res, { errcode: 0, errmsg: 'ok', msgid: randomBytes(8).toString('hex') });
    }

    if (path === 'kf/service_state/get') {
      const s = kfSession(String(body.open_kfid), String(body.external_userid));
      return json(res, { errcode: 0, errmsg: 'ok', service_state: s.state, ...(s.state === 3 && { servicer_userid: s.servicer }) });
    }

    if (path === 'kf/service_state/trans') {
      const s = kfSession(String(body.open_kfid), String(body.external_userid));
      const to = body.service_state;
      const allowed: Record<number, number[]> = { 0: [1, 2, 3, 4], 1: [2, 3, 4], 2: [3, 4], 3: [3, 4], 4: [] };
      if (typeof to !== 'number' || !(allowed[s.state] ?? []).includes(to)) return err(res, 95013, `cannot change session state ${s.state} → ${String(to)}`);
      if (to === 3 && typeof body.servicer_userid !== 'string') return err(res, 95014, 'servicer_userid required');
      s.state = to;
      if (to === 3) s.servicer = body.servicer_userid;
      sent.push({ path, body, token });
      return json(res, { errcode: 0, errmsg: 'ok', msg_code: randomBytes(6).toString('hex') });
    }

    return err(res, 40066, `unknown api ${path}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    sent,
    uploads,
    counters,
    syncRequests,
    /** Queue answers for the next calls to `path` (e.g. "message/send"): an errcode body or `{status: 500}`. */
    failNext(path: string, ...answers: Answer[]) {
      failures.set(path, [...(failures.get(path) ?? []), ...answers]);
    },
    /** Every issued token is expired from now on (42001). */
    expireTokens() {
      for (const t of tokens.values()) t.expiresAt = now() - 1;
    },
    addMedia(bytes: Buffer, type: string, filename: string): string {
      const id = `2${randomBytes(20).toString('base64url')}`;
      media.set(id, { bytes, type, filename });
      return id;
    },
    mediaBytes: (id: string) => media.get(id)?.bytes,
    /** A kf account with an (initially empty) message log. */
    addKfAccount(openKfid: string) {
      if (!kfLog.has(openKfid)) kfLog.set(openKfid, []);
    },
    /** Appends messages to the kf log (what sync_msg returns); customer messages reset the 48 h / 5 window. */
    pushKf(message: Omit<KfMessage, 'send_time'> & { send_time?: number }) {
      const full = { send_time: now(), ...message } as KfMessage;
      kfLog.get(full.open_kfid)!.push(full);
      if (full.origin === 3 && full.external_userid) {
        const s = kfSession(full.open_kfid, full.external_userid);
        s.lastCustomerAt = full.send_time;
        s.sinceCustomer = 0;
        if (s.state === 4) s.state = 0;
      }
      const welcome = (full.event as { welcome_code?: string } | undefined)?.welcome_code;
      if (welcome) welcomeCodes.set(welcome, { used: false, issuedAt: now() });
      return full;
    },
    /** The Token a kf callback carries (valid for sync_msg). */
    issueSyncToken(): string {
      const t = `ENC${randomBytes(16).toString('hex')}`;
      syncTokens.add(t);
      return t;
    },
    syncConcurrency,
    setSyncDelay(ms: number) {
      syncDelayMs = ms;
    },
    setSyncPageSize(n: number) {
      syncPageSize = n;
    },
    skewClock(seconds: number) {
      clockSkewS = seconds;
    },
    session: (openKfid: string, user: string) => kfSession(openKfid, user),
    weekSeconds: WEEK_S,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
export type FakeWecom = Awaited<ReturnType<typeof startFakeWecom>>;

/** Minimal multipart/form-data reader for the single "media" part WeCom expects. */
function parseMultipart(raw: Buffer, contentType: string): { name: string; filename: string; contentType: string; data: Buffer } | undefined {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  const start = raw.indexOf(delimiter);
  if (start < 0) return undefined;
  const headerStart = start + delimiter.length + 2;
  const headerEnd = raw.indexOf('\r\n\r\n', headerStart);
  const end = raw.indexOf(delimiter, headerEnd);
  if (headerEnd < 0 || end < 0) return undefined;
  const headers = raw.subarray(headerStart, headerEnd).toString('utf8');
  const name = /name="([^"]*)"/.exec(headers)?.[1] ?? '';
  const filename = /filename="([^"]*)"/.exec(headers)?.[1] ?? '';
  const type = /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1] ?? 'application/octet-stream';
  return { name, filename, contentType: type.trim(), data: raw.subarray(headerEnd + 4, end - 2) };
}
