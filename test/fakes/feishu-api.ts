/**
 * A loopback Feishu/Lark Open Platform following open.feishu.cn's server docs:
 * - POST /open-apis/auth/v3/tenant_access_token/internal {app_id, app_secret} → {code:0, msg:"ok",
 *   tenant_access_token:"t-…", expire:7200}; a wrong secret → {code:10014, msg:"app secret invalid"};
 * - GET /open-apis/bot/v3/info → {code:0, bot:{open_id, app_name, activate_status}};
 * - POST /open-apis/im/v1/messages?receive_id_type=… and POST /open-apis/im/v1/messages/:message_id/reply with
 *   `Authorization: Bearer <tenant_access_token>`: `content` must be a JSON string; `uuid` dedupes a repeated send;
 *   errors as {code, msg}: 99991661 missing token, 99991663 invalid/expired token, 99991400 frequency limit (HTTP 429,
 *   x-ogw-ratelimit-reset), 230002 bot not in the chat, 230001 invalid parameter;
 * - the event side: `push()` POSTs a schema 2.0 event the way Feishu does — encrypted with the Encrypt Key
 *   (AES-256-CBC, key SHA-256(key), random IV) and signed with X-Lark-Request-Timestamp/-Nonce/-Signature.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { encrypt, signature } from '../../adapters/feishu/crypto.js';
import { startRecorder } from '../helpers/http-recorder.js';

export interface FeishuSentMessage {
  path: string;
  receiveIdType?: string;
  receiveId?: string;
  replyTo?: string;
  msgType: string;
  text: string;
  uuid?: string;
  messageId: string;
  token: string;
}

export interface FeishuFakeOptions {
  appId: string;
  appSecret: string;
  encryptKey?: string;
  verificationToken: string;
  botOpenId: string;
  /** chat_ids the bot is a member of. */
  chats: string[];
}

export async function startFeishuApi(opts: FeishuFakeOptions) {
  const validTokens = new Set<string>();
  const sent: FeishuSentMessage[] = [];
  const byUuid = new Map<string, FeishuSentMessage>();
  const stats = { tokenRequests: 0, rejectedTokens: 0 };
  let rateLimitNext = 0;
  let seq = 0;
  const events: { url?: string } = {};

  const server = await startRecorder((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'POST' && url.pathname === '/open-apis/auth/v3/tenant_access_token/internal') {
      stats.tokenRequests++;
      const body = safeJson(req.text) as { app_id?: string; app_secret?: string };
      if (body.app_id !== opts.appId) return json(res, 400, { code: 10003, msg: 'invalid param' });
      if (body.app_secret !== opts.appSecret) return json(res, 400, { code: 10014, msg: 'app secret invalid' });
      const token = `t-${randomBytes(12).toString('hex')}`;
      validTokens.add(token);
      return json(res, 200, { code: 0, msg: 'ok', tenant_access_token: token, expire: 7200 });
    }
    // Everything else needs the tenant token.
    const auth = String(req.headers.authorization ?? '');
    if (!auth.startsWith('Bearer ')) {
      return json(res, 400, { code: 99991661, msg: 'Missing access token for authorization. Please make a request with token attached.' });
    }
    const token = auth.slice('Bearer '.length);
    if (!validTokens.has(token)) {
      stats.rejectedTokens++;
      return json(res, 400, { code: 99991663, msg: 'Invalid access token for authorization. Please make a request with token attached.' });
    }
    if (req.method === 'GET' && url.pathname === '/open-apis/bot/v3/info') {
      return json(res, 200, { code: 0, msg: 'ok', bot: { activate_status: 2, app_name: 'Support bot', avatar_url: '', ip_white_list: [], open_id: opts.botOpenId } });
    }
    const reply = /^\/open-apis\/im\/v1\/messages\/([^/]+)\/reply$/.exec(url.pathname);
    if (req.method === 'POST' && (url.pathname === '/open-apis/im/v1/messages' || reply)) {
      if (rateLimitNext > 0) {
        rateLimitNext--;
        res.setHeader('x-ogw-ratelimit-limit', '50');
        res.setHeader('x-ogw-ratelimit-reset', '1');
        return json(res, 429, { code: 99991400, msg: 'request trigger frequency limit' });
      }
      const body = safeJson(req.text) as { receive_id?: string; msg_type?: string; content?: unknown; uuid?: string };
      if (body.uuid && byUuid.has(body.uuid)) return json(res, 200, okMessage(byUuid.get(body.uuid)!));
      const receiveIdType = url.searchParams.get('receive_id_type') ?? undefined;
      if (!reply) {
        if (!['open_id', 'user_id', 'union_id', 'email', 'chat_id'].includes(receiveIdType ?? '')) {
          return json(res, 400, { code: 99992402, msg: 'field validation failed: receive_id_type' });
        }
        if (receiveIdType === 'chat_id' && !opts.chats.includes(body.receive_id ?? '')) {
          return json(res, 400, { code: 230002, msg: 'Bot/User can NOT be out of the chat.' });
        }
      }
      const text = typeof body.content === 'string' ? (safeJson(body.content) as { text?: unknown }).text : undefined;
      if (body.msg_type !== 'text' || typeof text !== 'string' || !text) {
        return json(res, 400, { code: 230001, msg: "Your request contains an invalid request parameter, ext=invalid content: content must be a JSON string with 'text'." });
      }
      const message: FeishuSentMessage = {
        path: url.pathname,
        ...(receiveIdType !== undefined && { receiveIdType }),
        ...(body.receive_id !== undefined && { receiveId: body.receive_id }),
        ...(reply && { replyTo: decodeURIComponent(reply[1]!) }),
        msgType: body.msg_type,
        text,
        ...(body.uuid !== undefined && { uuid: body.uuid }),
        messageId: `om_${(++seq).toString().padStart(8, '0')}${randomBytes(4).toString('hex')}`,
        token,
      };
      sent.push(message);
      if (body.uuid) byUuid.set(body.uuid, message);
      return json(res, 200, okMessage(message));
    }
    return json(res, 404, { code: 404, msg: '404 page not found' });
  });

  function okMessage(m: FeishuSentMessage) {
    const now = String(Date.now());
    return {
      code: 0,
      msg: 'success',
      data: {
        message_id: m.messageId,
        msg_type: m.msgType,
        create_time: now,
        update_time: now,
        deleted: false,
        updated: false,
        chat_id: m.receiveId,
        sender: { id: opts.appId, id_type: 'app_id', sender_type: 'app', tenant_key: 'tenant-1' },
        body: { content: JSON.stringify({ text: m.text }) },
      },
    };
  }

  const fake = {
    url: server.url,
    requests: server.requests,
    sent,
    stats,
    events,
    /** Revokes every issued token: the next API call gets 99991663, as after expiry. */
    expireTokens() {
      validTokens.clear();
    },
    rateLimit(n: number) {
      rateLimitNext = n;
    },
    /** A schema 2.0 envelope around an event. */
    envelope(eventType: string, event: unknown, eventId = randomBytes(16).toString('hex')) {
      return {
        schema: '2.0',
        header: { event_id: eventId, token: opts.verificationToken, create_time: String(Date.now()), event_type: eventType, tenant_key: 'tenant-1', app_id: opts.appId },
        event,
      };
    },
    /** `im.message.receive_v1` for a text message (mentions are `@_user_N` placeholders in the text). */
    textMessage(o: { chatId: string; chatType: 'p2p' | 'group'; openId: string; text: string; messageId?: string; mentions?: Array<{ key: string; openId: string; name: string }>; senderType?: string }) {
      return {
        sender: { sender_id: { open_id: o.openId, union_id: `on_${o.openId}`, user_id: `u_${o.openId}` }, sender_type: o.senderType ?? 'user', tenant_key: 'tenant-1' },
        message: {
          message_id: o.messageId ?? `om_in_${randomBytes(8).toString('hex')}`,
          create_time: String(Date.now()),
          chat_id: o.chatId,
          chat_type: o.chatType,
          message_type: 'text',
          content: JSON.stringify({ text: o.text }),
          mentions: (o.mentions ?? []).map((m) => ({ key: m.key, id: { open_id: m.openId, union_id: `on_${m.openId}`, user_id: '' }, name: m.name, tenant_key: 'tenant-1' })),
        },
      };
    },
    /**
     * POSTs a payload to the Request URL like Feishu: encrypted and signed when an Encrypt Key is set (unless
     * `plain`), with optional forged headers; `timestamp` (Unix seconds) replays a request signed at that time.
     * Returns the response.
     */
    async push(payload: unknown, o: { plain?: boolean; signature?: string; unsigned?: boolean; rawBody?: string; timestamp?: number } = {}): Promise<Response> {
      if (!events.url) throw new Error('no Request URL set');
      const plaintext = JSON.stringify(payload);
      const body = o.rawBody ?? (opts.encryptKey && !o.plain ? JSON.stringify({ encrypt: encrypt(opts.encryptKey, plaintext) }) : plaintext);
      const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'user-agent': 'Go-http-client/1.1' };
      if (opts.encryptKey && !o.unsigned) {
        const timestamp = String(o.timestamp ?? Math.floor(Date.now() / 1000));
        const nonce = randomBytes(8).toString('hex');
        headers['x-lark-request-timestamp'] = timestamp;
        headers['x-lark-request-nonce'] = nonce;
        headers['x-lark-signature'] = o.signature ?? signature(timestamp, nonce, opts.encryptKey, body);
      }
      return fetch(events.url, { method: 'POST', headers, body });
    },
    /** What Feishu does when the Request URL is saved: an (encrypted, unsigned) url_verification. */
    async verifyRequestUrl(url: string) {
      events.url = url;
      const challenge = randomBytes(16).toString('hex');
      const res = await fake.push({ challenge, token: opts.verificationToken, type: 'url_verification' }, { unsigned: true });
      return { status: res.status, body: (await res.json()) as unknown, challenge };
    },
    close: () => server.close(),
  };
  return fake;
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) ?? {};
  } catch {
    return {};
  }
}
