/**
 * A loopback DingTalk following open.dingtalk.com:
 * - POST /v1.0/oauth2/accessToken {appKey, appSecret} → {accessToken, expireIn:7200};
 * - POST /v1.0/robot/oToMessages/batchSend and /v1.0/robot/groupMessages/send with `x-acs-dingtalk-access-token`
 *   (msgKey sampleText, msgParam a JSON string) → {processQueryKey[, invalidStaffIdList, flowControlledStaffIdList]};
 *   a refused token → HTTP 400 {code:"InvalidAuthentication", message:"不合法的access_token", requestid};
 *   batchSend takes at most 20 userIds and groupMessages/send a msgParam of at most 15,000 bytes (both limits from
 *   the official API reference; the error code DingTalk answers for breaking them is not documented, so the fake uses
 *   its generic invalidParameter.* form);
 * - session webhooks POST /robot/sendBySession?session=… {msgtype:"text", text:{content}, at?} → {errcode:0,
 *   errmsg:"ok"} while the session lives;
 * - `push()` delivers a robot callback the way DingTalk's HTTP mode does: JSON with headers `timestamp` (ms) and
 *   `sign` = base64(HmacSHA256(appSecret, timestamp + "\n" + appSecret)).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { robotSign } from '../../adapters/dingtalk/sign.js';
import { startRecorder } from '../helpers/http-recorder.js';

export interface DingTalkDelivery {
  via: 'sessionWebhook' | 'batchSend' | 'groupSend';
  to: string;
  text: string;
  at?: string[];
  token?: string;
}

export async function startDingTalkApi(opts: { appKey: string; appSecret: string; robotCode: string; staff: string[] }) {
  const validTokens = new Set<string>();
  const sessions = new Map<string, { conversationId: string; expiresAt: number }>();
  const delivered: DingTalkDelivery[] = [];
  const stats = { tokenRequests: 0, rejectedTokens: 0 };
  const callback: { url?: string } = {};

  const server = await startRecorder((req, res) => {
    const url = new URL(req.url, 'http://x');
    const body = safeJson(req.text) as Record<string, any>;
    if (req.method === 'POST' && url.pathname === '/v1.0/oauth2/accessToken') {
      stats.tokenRequests++;
      if (body.appKey !== opts.appKey || body.appSecret !== opts.appSecret) {
        return json(res, 400, { code: 'invalidClientIdOrSecret', requestid: randomUUID(), message: '无效的clientId或者clientSecret' });
      }
      const token = randomBytes(16).toString('hex');
      validTokens.add(token);
      return json(res, 200, { accessToken: token, expireIn: 7200 });
    }
    if (req.method === 'POST' && url.pathname === '/robot/sendBySession') {
      const session = sessions.get(url.searchParams.get('session') ?? '');
      if (!session || session.expiresAt < Date.now()) return json(res, 200, { errcode: 300001, errmsg: 'session expired or invalid' });
      if (body.msgtype !== 'text' || typeof body.text?.content !== 'string') return json(res, 200, { errcode: 40035, errmsg: '缺少参数 text' });
      delivered.push({ via: 'sessionWebhook', to: session.conversationId, text: body.text.content, ...(body.at?.atUserIds && { at: body.at.atUserIds }) });
      return json(res, 200, { errcode: 0, errmsg: 'ok' });
    }
    if (req.method === 'POST' && url.pathname.startsWith('/v1.0/robot/')) {
      const token = String(req.headers['x-acs-dingtalk-access-token'] ?? '');
      if (!validTokens.has(token)) {
        stats.rejectedTokens++;
        return json(res, 400, { code: 'InvalidAuthentication', requestid: randomUUID(), message: '不合法的access_token' });
      }
      if (body.robotCode !== opts.robotCode) return json(res, 400, { code: 'invalidParameter.robotCode', requestid: randomUUID(), message: 'robotCode 不合法' });
      if (body.msgKey !== 'sampleText') return json(res, 400, { code: 'invalidParameter.msgKey', requestid: randomUUID(), message: 'msgKey 不合法' });
      const text = (safeJson(String(body.msgParam ?? '')) as { content?: unknown }).content;
      if (typeof text !== 'string') return json(res, 400, { code: 'invalidParameter.msgParam', requestid: randomUUID(), message: 'msgParam 不合法' });
      const processQueryKey = randomBytes(12).toString('base64');
      if (url.pathname === '/v1.0/robot/oToMessages/batchSend') {
        const userIds: string[] = Array.isArray(body.userIds) ? body.userIds : [];
        if (userIds.length === 0 || userIds.length > 20) return json(res, 400, { code: 'invalidParameter.userIds', requestid: randomUUID(), message: 'userIds 最多20个' });
        const invalid = userIds.filter((u) => !opts.staff.includes(u));
        for (const u of userIds.filter((u) => opts.staff.includes(u))) delivered.push({ via: 'batchSend', to: u, text, token });
        return json(res, 200, { processQueryKey, invalidStaffIdList: invalid, flowControlledStaffIdList: [] });
      }
      if (url.pathname === '/v1.0/robot/groupMessages/send') {
        if (typeof body.openConversationId !== 'string') return json(res, 400, { code: 'invalidParameter.openConversationId', requestid: randomUUID(), message: 'openConversationId 不合法' });
        if (Buffer.byteLength(String(body.msgParam)) > 15_000) return json(res, 400, { code: 'invalidParameter.msgParam', requestid: randomUUID(), message: 'msgParam 长度不能超过15000字节' });
        delivered.push({ via: 'groupSend', to: body.openConversationId, text, token });
        return json(res, 200, { processQueryKey });
      }
    }
    return json(res, 404, { code: 'NotFound', message: 'not found' });
  });

  const fake = {
    url: server.url,
    requests: server.requests,
    delivered,
    stats,
    callback,
    expireTokens() {
      validTokens.clear();
    },
    /** A robot callback payload, with a live (or already expired) session webhook on this fake. */
    textCallback(o: { conversationId: string; group?: boolean; staffId?: string; senderId?: string; nick?: string; text: string; msgId?: string; sessionTtlMs?: number }) {
      const session = randomBytes(12).toString('hex');
      const expiresAt = Date.now() + (o.sessionTtlMs ?? 90 * 60_000);
      sessions.set(session, { conversationId: o.conversationId, expiresAt });
      return {
        conversationId: o.conversationId,
        atUsers: o.group ? [{ dingtalkId: '$:LWCP_v1:$robot' }] : [],
        chatbotCorpId: 'dingcorp',
        chatbotUserId: '$:LWCP_v1:$robot',
        msgId: o.msgId ?? `msg${randomBytes(10).toString('base64')}`,
        senderNick: o.nick ?? 'Ann',
        isAdmin: false,
        senderStaffId: o.staffId ?? '',
        sessionWebhookExpiredTime: expiresAt,
        createAt: Date.now(),
        senderCorpId: 'dingcorp',
        conversationType: o.group ? '2' : '1',
        senderId: o.senderId ?? `$:LWCP_v1:$${randomBytes(6).toString('hex')}`,
        ...(o.group && { conversationTitle: 'Support group', isInAtList: true }),
        sessionWebhook: `${server.url}/robot/sendBySession?session=${session}`,
        text: { content: o.group ? ` ${o.text}` : o.text },
        robotCode: opts.robotCode,
        msgtype: 'text',
      };
    },
    async push(payload: unknown, o: { timestamp?: string; sign?: string; rawBody?: string } = {}): Promise<Response> {
      if (!callback.url) throw new Error('no callback URL set');
      const timestamp = o.timestamp ?? String(Date.now());
      return fetch(callback.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8', timestamp, sign: o.sign ?? robotSign(timestamp, opts.appSecret) },
        body: o.rawBody ?? JSON.stringify(payload),
      });
    },
    close: () => server.close(),
  };
  return fake;
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json;charset=utf-8' });
  res.end(JSON.stringify(body));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) ?? {};
  } catch {
    return {};
  }
}
