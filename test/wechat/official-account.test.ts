/**
 * WeChat official account end to end through the real gateway, Redis and BullMQ, against the loopback WeChat API:
 * handshake, official and self-encrypted safe-mode pushes, forged/replayed (old signed timestamp)/malformed/oversized/XXE input, token
 * refresh + one retry, rate limit, 48 h window fail-fast into the dead-letter view, 5xx retries, media both ways.
 */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { Bot } from '../../bot/types.js';
import type { GatewayEventMap } from '../../gateway/events.js';
import { conversationIdFor, type UnifiedMessage } from '../../gateway/message.js';
import { buildXml } from '../../adapters/shared/xml.js';
import type { WebhookRequest } from '../../adapters/http.js';
import { startFakeWechatApi, type FakeWechatApi } from '../fakes/wechat-api.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import type { WechatChannelAdapter } from '../../adapters/shared/wechat-channel.js';
import { atSampleTime, encryptedPush, nextMsgId, now, signedQuery } from './push-helpers.js';

const vectors = JSON.parse(readFileSync(new URL('../fixtures/wechat/vectors.json', import.meta.url), 'utf8'));
const official = vectors.wechat_official_account.find((v: any) => v.id === 'oa_tencent_sample_python_decrypt');

const APP = { token: official.inputs.token, encodingAESKey: official.inputs.encoding_aes_key, appId: official.inputs.appid };
const SECRET = '0123456789abcdef0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from('fake png body '.repeat(40))]);

const seen: UnifiedMessage[] = [];
const bot: Bot = {
  async decide({ message }) {
    seen.push(message);
    const c = message.content;
    if (c.type === 'text') return { replies: [{ type: 'text', text: `echo:${c.text}` }], trace: { stage: 'rule' } };
    if (c.type === 'image') return { replies: [{ type: 'image', url: c.url! }], trace: { stage: 'rule' } };
    return { replies: [], trace: { stage: 'rule' } };
  },
};

describe('wechat-official-account channel', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let api: FakeWechatApi;
  let mediaDir: string;
  const failures: Array<GatewayEventMap['message.delivery_failed']> = [];

  before(async () => {
    redis = await startTestRedis();
    api = await startFakeWechatApi({ appId: APP.appId, appSecret: SECRET });
    mediaDir = await mkdtemp(join(tmpdir(), 'wechat-media-'));
    gw = await startTestGateway(
      {
        server: { adminKey: ADMIN, mediaDir },
        pipeline: { deliveryAttempts: 3, deliveryBackoffMs: 20 },
        channels: [
          {
            id: 'oa',
            type: 'wechat-official-account',
            options: { appId: APP.appId, appSecret: SECRET, token: APP.token, encodingAESKey: APP.encodingAESKey, messageMode: 'safe', apiBaseUrl: api.url, rateLimitBackoffMs: 100 },
          },
        ],
      },
      redis.url,
      { bot },
    );
    gw.gateway.events.on('message.delivery_failed', (e) => failures.push(e));
  });
  after(async () => {
    await gw?.stop();
    await api?.close();
    await redis?.stop();
    await rm(mediaDir, { recursive: true, force: true });
  });

  const post = (query: URLSearchParams, body: string) =>
    fetch(`${gw.url}/webhooks/oa?${query}`, { method: 'POST', body, headers: { 'content-type': 'text/xml' } });

  async function push(fields: Record<string, string | number>) {
    const { query, body } = encryptedPush(APP, buildXml({ ToUserName: 'gh_10f6c3c3ac5a', ...fields }), 'xml');
    const res = await post(query, body);
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(await res.text(), 'success');
  }
  const text = (openid: string, content: string, msgId = nextMsgId()) =>
    ({ FromUserName: openid, CreateTime: now(), MsgType: 'text', Content: content, MsgId: msgId });
  const sentTo = (openid: string) => api.sent.filter((m) => m.touser === openid);
  const timestamps = () => (gw.gateway.adapters.get('oa') as WechatChannelAdapter).endpoint.timestamps;

  it('answers the URL-verification handshake only with a valid signature', async () => {
    const q = signedQuery(APP, '1409735669', '1320562132');
    q.set('echostr', '4375120948345356249');
    const ok = await atSampleTime(timestamps(), '1409735669', () => fetch(`${gw.url}/webhooks/oa?${q}`));
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), '4375120948345356249');
    q.set('nonce', '1');
    const bad = await atSampleTime(timestamps(), '1409735669', () => fetch(`${gw.url}/webhooks/oa?${q}`));
    assert.equal(bad.status, 401);
    assert.equal(((await bad.json()) as any).error, 'bad_signature');
  });

  it('accepts the official encrypted sample and fails its (2014) reply fast: the 48 h window is long closed', async () => {
    const q = signedQuery(APP, official.inputs.timestamp, official.inputs.nonce, official.inputs.encrypt);
    assert.equal(q.get('msg_signature'), official.expected.msg_signature);
    const body = `<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[${official.inputs.encrypt}]]></Encrypt></xml>`;
    const res = await atSampleTime(timestamps(), official.inputs.timestamp, () => post(q, body));
    assert.equal(await res.text(), 'success');
    const msg = await eventually(() => seen.find((m) => m.channelMessageId === '6054768590064713728'), 'official sample reached the bot');
    assert.deepEqual(msg.content, { type: 'text', text: 'abcdteT' });
    assert.equal(msg.sender.id, 'oyORnuP8q7ou2gfYjqLzSIWZf0rs');
    const failed = await eventually(() => failures.find((f) => f.message.conversationId === msg.conversationId), 'window failure');
    assert.equal(failed.reason, 'reply_window_expired');
    assert.equal(sentTo('oyORnuP8q7ou2gfYjqLzSIWZf0rs').length, 0);
  });

  it('decrypts a push, acks "success", and the bot reply reaches the customer-service send API', async () => {
    await push(text('o-alice', 'hello 你好'));
    await eventually(() => sentTo('o-alice').length === 1, 'reply sent');
    const [reply] = sentTo('o-alice');
    assert.deepEqual(reply, { touser: 'o-alice', msgtype: 'text', text: { content: 'echo:hello 你好' } });
    assert.ok(api.tokenRequests >= 1);
  });

  it('delivers one reply for a push the platform retried', async () => {
    const id = nextMsgId();
    await push(text('o-bob', 'once', id));
    await push(text('o-bob', 'once', id));
    await push(text('o-bob', 'once', id));
    await eventually(() => sentTo('o-bob').length === 1, 'one reply');
    await push(text('o-bob', 'marker'));
    await eventually(() => sentTo('o-bob').length === 2, 'marker reply');
    assert.deepEqual(sentTo('o-bob').map((m) => (m.text as any).content), ['echo:once', 'echo:marker']);
  });

  it('refuses forged, unencrypted, malformed, oversized and XXE pushes with a 4xx and queues nothing', async () => {
    const before = await countInbound(gw);
    const { query, body } = encryptedPush(APP, buildXml(text('o-eve', 'forged')), 'xml');
    query.set('msg_signature', '0'.repeat(40));
    assert.equal((await post(query, body)).status, 401);
    // Encrypted with another app's key/appid: the receiveId check refuses it even with a valid signature.
    const other = encryptedPush({ ...APP, appId: 'wx0000000000000000' }, buildXml(text('o-eve', 'x')), 'xml');
    assert.equal((await post(other.query, other.body)).status, 401);
    // Safe mode: a plaintext body is refused even when correctly signed.
    const plainQ = signedQuery(APP, String(now()), '42');
    assert.equal((await post(plainQ, buildXml(text('o-eve', 'plain')))).status, 400);
    const broken = encryptedPush(APP, '<xml><FromUserName>o-eve</FromUserName>', 'xml');
    const res = await post(broken.query, broken.body);
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as any).error, 'malformed_xml');
    assert.equal((await post(signedQuery(APP, '1', '2'), '<xml><Encrypt>')).status, 400);
    const huge = `<xml><ToUserName>gh</ToUserName><Encrypt>${'A'.repeat(200_000)}</Encrypt></xml>`;
    assert.equal((await post(signedQuery(APP, '1', '2'), huge)).status, 413);

    const secretFile = join(mediaDir, 'secret.txt');
    await writeFile(secretFile, 'TOP-SECRET-CONTENT');
    const xxe = `<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file://${secretFile}">]><xml><ToUserName>gh</ToUserName><FromUserName>o-eve</FromUserName><CreateTime>${now()}</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content><MsgId>${nextMsgId()}</MsgId></xml>`;
    const inner = encryptedPush(APP, xxe, 'xml');
    const xxeRes = await post(inner.query, inner.body);
    assert.equal(xxeRes.status, 400);
    assert.doesNotMatch(await xxeRes.text(), /TOP-SECRET/);
    const outer = xxe.replace('<ToUserName>gh</ToUserName>', '<ToUserName>gh</ToUserName><Encrypt>x</Encrypt>');
    assert.equal((await post(signedQuery(APP, '1', '2'), outer)).status, 400);

    assert.equal(await countInbound(gw), before, 'nothing was queued');
    assert.ok(!seen.some((m) => JSON.stringify(m).includes('TOP-SECRET')));
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  });

  it('refuses a captured push replayed later (signed timestamp outside the window) with 401 and queues nothing', async () => {
    const capture = encryptedPush(APP, buildXml({ ToUserName: 'gh_10f6c3c3ac5a', ...text('o-replay', 'pay me twice') }), 'xml');
    const res = await post(capture.query, capture.body);
    assert.equal(await res.text(), 'success');
    await eventually(() => sentTo('o-replay').length === 1, 'the original is answered');
    const before = await countInbound(gw);
    // Replayed an hour later, after any retry of the platform and with a still-valid signature.
    const sentAt = Number(capture.query.get('timestamp'));
    const replayed = await atSampleTime(timestamps(), sentAt + 3600, () => post(capture.query, capture.body));
    assert.equal(replayed.status, 401);
    assert.equal(((await replayed.json()) as any).error, 'stale_timestamp');
    // A push signed with a timestamp from the future (clock far ahead) is refused the same way.
    assert.equal((await atSampleTime(timestamps(), sentAt - 3600, () => post(capture.query, capture.body))).status, 401);
    // The plain handshake is checked too.
    const q = signedQuery(APP, String(now() - 3600), '1320562132');
    q.set('echostr', 'e');
    assert.equal((await fetch(`${gw.url}/webhooks/oa?${q}`)).status, 401);
    assert.equal(await countInbound(gw), before, 'nothing was queued');
    assert.ok(gw.logs.some((l) => l.msg === 'signed request outside the timestamp window refused (replay or clock skew)'));
  });

  it('opens a 48 h window for a message, 1 minute for a menu click, none for a platform notice; a shorter one never cuts a longer', async () => {
    const windowOf = async (openid: string, minUpdatedAt: number) => {
      const ref = await eventually(async () => {
        const r = await gw.gateway.conversations.reference(conversationIdFor('oa', openid));
        return r && r.updatedAt >= minUpdatedAt ? r : undefined;
      }, `reference of ${openid}`);
      return ref.replyWindowUntil;
    };
    const event = (openid: string, name: string, extra: Record<string, string> = {}) => ({ FromUserName: openid, CreateTime: now(), MsgType: 'event', Event: name, ...extra });
    let t = Date.now();
    await push(event('o-notice', 'TEMPLATESENDJOBFINISH', { MsgID: nextMsgId(), Status: 'success' }));
    assert.ok((await windowOf('o-notice', t))! <= Date.now(), 'a template-send result opens no window');
    t = Date.now();
    const click = event('o-click', 'CLICK', { EventKey: 'MENU_1' });
    await push(click);
    assert.equal(await windowOf('o-click', t), click.CreateTime * 1000 + 60_000, 'a menu click: 1 minute');
    t = Date.now();
    const message = text('o-long', 'hello');
    await push(message);
    const long = message.CreateTime * 1000 + 48 * 3600 * 1000;
    assert.equal(await windowOf('o-long', t), long);
    for (const later of [event('o-long', 'LOCATION', { Latitude: '23.1', Longitude: '113.3', Precision: '10' }), { ...event('o-long', 'CLICK', { EventKey: 'MENU_2' }), CreateTime: now() + 1 }]) {
      t = Date.now();
      await push(later);
      assert.equal(await windowOf('o-long', t), long, `${later.Event} keeps the 48 h window`);
    }
  });

  it('keeps the 48 h window when a message and a menu click arrive at the same moment, in one Redis round trip per push', async () => {
    const handler = (gw.gateway.adapters.get('oa') as WechatChannelAdapter).routes().find((r) => r.method === 'POST')!;
    const requestOf = (fields: Record<string, string | number>): WebhookRequest => {
      const { query, body } = encryptedPush(APP, buildXml({ ToUserName: 'gh_10f6c3c3ac5a', ...fields }), 'xml');
      return {
        method: 'POST',
        path: '/',
        rawQuery: query.toString(),
        query: Object.fromEntries(query),
        headers: { 'content-type': 'text/xml' },
        header: (name) => (name.toLowerCase() === 'content-type' ? 'text/xml' : undefined),
        body: Buffer.from(body),
      };
    };
    const message = text('o-race', 'question');
    const click = { FromUserName: 'o-race', CreateTime: message.CreateTime, MsgType: 'event', Event: 'CLICK', EventKey: 'MENU_1' };
    const long = message.CreateTime * 1000 + 48 * 3600 * 1000;
    // Both pushes are handled in one tick, so their Redis commands interleave on the shared connection: the click's
    // window is worked out while the message's is being stored.
    await Promise.all([handler.handle(requestOf(message)), handler.handle(requestOf(click))]);
    const windowKey = `gw:ch:oa:wechat:window:${conversationIdFor('oa', 'o-race')}`;
    assert.equal(await gw.gateway.redis.get(windowKey), String(long), 'the 1-minute click did not cut the 48 h window');
    assert.ok((await gw.gateway.redis.pttl(windowKey)) > 47 * 3600 * 1000);
    await eventually(() => seen.filter((m) => m.sender.id === 'o-race').length === 2, 'both pushes processed');
    assert.equal((await gw.gateway.conversations.reference(conversationIdFor('oa', 'o-race')))?.replyWindowUntil, long);

    const monitorClient = new Redis(redis.url);
    const monitor = await monitorClient.monitor();
    const windowCommands: string[] = [];
    // Commands a script runs are listed too (source "lua"); only those sent over the network count.
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && args.some((arg) => arg.includes(':wechat:window:'))) windowCommands.push(args[0]!.toLowerCase());
    });
    try {
      await new Promise((r) => setTimeout(r, 50));
      await push(text('o-race', 'again'));
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(windowCommands, ['evalsha'], 'one atomic script call per push');
    } finally {
      monitor.disconnect();
      monitorClient.disconnect();
    }
  });

  it('refreshes an expired (42001) or revoked (40001) token at once and retries the send once', async () => {
    const before = api.tokenRequests;
    api.expireToken();
    await push(text('o-carol', 'after expiry'));
    await eventually(() => sentTo('o-carol').length === 1, 'reply after refresh');
    assert.equal(api.tokenRequests, before + 1, 'exactly one refresh');
    assert.equal(api.stableForceRefreshes, 0, 'an expired token is renewed in normal mode (force mode would invalidate it for every process)');
    api.revokeTokens();
    await push(text('o-carol', 'after revoke'));
    await eventually(() => sentTo('o-carol').length === 2, 'reply after second refresh');
    assert.equal(api.tokenRequests, before + 2);
  });

  it('pauses on 45009 and retries 5xx until delivered', async () => {
    api.fail('send', { errcode: 45009, errmsg: 'reach max api daily quota limit' }, { status: 502 });
    await push(text('o-dave', 'busy'));
    await eventually(() => sentTo('o-dave').length === 1, 'delivered after rate limit and 502');
    assert.ok(gw.logs.some((l) => l.msg === 'delivery failed' && l.code === 45009));
    assert.ok(gw.logs.some((l) => l.msg === 'delivery failed' && l.code === 502));
  });

  it('fails 45015 fast into the dead-letter view with the platform code, and tells the hand-off layer', async () => {
    api.fail('send', { errcode: 45015, errmsg: 'response out of time limit or subscription is canceled' });
    await push(text('o-erin', 'too late'));
    const failed = await eventually(() => failures.find((f) => f.code === 45015), 'delivery_failed event');
    assert.equal(failed.reason, 'reply_window_expired');
    assert.equal(failed.final, true);
    const item = await eventually(async () => {
      const list = (await (await fetch(`${gw.url}/admin/dead-letters`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { items: any[] };
      return list.items.find((i) => i.channel === 'oa' && /45015/.test(i.failedReason));
    }, 'dead letter listed');
    assert.equal(item.attemptsMade, 1, 'not retried');
    assert.equal(sentTo('o-erin').length, 0);
  });

  it('serves inbound media at /media/<id> and uploads outbound images through the media API', async () => {
    const mediaId = api.addMedia(PNG, 'image/png', 'photo.png');
    await push({ FromUserName: 'o-frank', CreateTime: now(), MsgType: 'image', PicUrl: 'http://mmbiz.example/pic', MediaId: mediaId, MsgId: nextMsgId() });
    const inbound = await eventually(() => seen.find((m) => m.sender.id === 'o-frank'), 'image reached the bot');
    assert.equal(inbound.content.type, 'image');
    const url = (inbound.content as { url: string }).url;
    assert.match(url, new RegExp(`^${gw.url}/media/oa\\.`));
    assert.ok(!url.includes(mediaId), 'the platform media id is not exposed');
    const got = await fetch(url);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), PNG);
    await eventually(() => sentTo('o-frank').length === 1, 'image reply sent');
    const [sent] = sentTo('o-frank');
    assert.equal(sent!.msgtype, 'image');
    const upload = api.uploads.find((u) => u.mediaId === (sent!.image as any).media_id)!;
    assert.equal(upload.type, 'image');
    assert.match(upload.name, /\.png$/);
    assert.deepEqual(api.mediaData(upload.mediaId), PNG);
    assert.equal((await fetch(`${gw.url}/media/oa.${'x'.repeat(32)}`)).status, 404);
  });

  it('serves the thumbnail of an inbound video as well as the video', async () => {
    const video = api.addMedia(Buffer.from('fake mp4 bytes'), 'video/mp4', 'clip.mp4');
    const thumb = api.addMedia(PNG, 'image/jpeg', 'thumb.jpg');
    await push({ FromUserName: 'o-gina', CreateTime: now(), MsgType: 'video', MediaId: video, ThumbMediaId: thumb, MsgId: nextMsgId() });
    const inbound = await eventually(() => seen.find((m) => m.sender.id === 'o-gina'), 'video reached the bot');
    const content = inbound.content as { type: string; url: string; thumbUrl: string };
    assert.equal(content.type, 'video');
    const thumbnail = await fetch(content.thumbUrl);
    assert.equal(thumbnail.status, 200);
    assert.deepEqual(Buffer.from(await thumbnail.arrayBuffer()), PNG);
    assert.equal((await fetch(content.url)).status, 200);
  });
});

async function countInbound(gw: TestGateway): Promise<number> {
  let n = 0;
  for (const q of gw.gateway.pipeline.allQueues().filter((q) => q.name.startsWith('{in-'))) {
    const counts = await q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
    n += Object.values(counts).reduce((a, b) => a + b, 0);
  }
  return n;
}
