/**
 * WeChat mini-program customer service end to end: the documented handshake and plaintext-JSON vectors, the official
 * safe-mode JSON push, self-encrypted JSON and XML pushes, replays, forged/malformed/oversized input, classic
 * /cgi-bin/token with refresh + one retry, mini-program card and link sends, 45047 fail-fast.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Bot } from '../../bot/types.js';
import type { GatewayEventMap } from '../../gateway/events.js';
import type { UnifiedMessage } from '../../gateway/message.js';
import { buildXml } from '../../adapters/shared/xml.js';
import { startFakeWechatApi, type FakeWechatApi } from '../fakes/wechat-api.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startRecorder } from '../helpers/http-recorder.js';
import { startTestRedis } from '../helpers/redis.js';
import type { WechatChannelAdapter } from '../../adapters/shared/wechat-channel.js';
import { atSampleTime, encryptedPush, nextMsgId, now, signedQuery } from './push-helpers.js';

const vectors = JSON.parse(readFileSync(new URL('../fixtures/wechat/vectors.json', import.meta.url), 'utf8'));
const mp = Object.fromEntries(vectors.wechat_miniprogram.map((v: any) => [v.id, v]));
const safeVector = mp.mp_safe_mode_json_push_decrypt;

const APP = { token: safeVector.inputs.token, encodingAESKey: safeVector.inputs.encoding_aes_key, appId: safeVector.inputs.appid };
const SECRET = 'fedcba9876543210fedcba9876543210';
const THUMB = Buffer.concat([Buffer.from('ffd8ffe0', 'hex'), Buffer.from('jpeg thumb '.repeat(20))]);

const seen: UnifiedMessage[] = [];
let thumbUrl = '';
const bot: Bot = {
  async decide({ message }) {
    seen.push(message);
    const c = message.content;
    if (c.type === 'text' && c.text === 'card') {
      return { replies: [{ type: 'link', title: 'Your order', pagePath: 'pages/order/index?id=7', thumbUrl }], trace: { stage: 'rule' } };
    }
    if (c.type === 'text' && c.text === 'link') {
      return { replies: [{ type: 'link', title: 'Help', description: 'FAQ', url: 'https://example.com/faq', thumbUrl: 'https://example.com/t.jpg' }], trace: { stage: 'rule' } };
    }
    if (c.type === 'text') return { replies: [{ type: 'text', text: `echo:${c.text}` }], trace: { stage: 'rule' } };
    if (c.type === 'event' && c.event === 'enter_session') return { replies: [{ type: 'text', text: `welcome from ${c.key}` }], trace: { stage: 'rule' } };
    return { replies: [], trace: { stage: 'rule' } };
  },
};

describe('wechat-miniprogram channel', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let api: FakeWechatApi;
  let images: Awaited<ReturnType<typeof startRecorder>>;
  let mediaDir: string;
  const failures: Array<GatewayEventMap['message.delivery_failed']> = [];

  before(async () => {
    redis = await startTestRedis();
    api = await startFakeWechatApi({ appId: APP.appId, appSecret: SECRET });
    images = await startRecorder((_req, res) => {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(THUMB);
    });
    thumbUrl = `${images.url}/thumb.jpg`;
    mediaDir = await mkdtemp(join(tmpdir(), 'wechat-media-'));
    const common = { appId: APP.appId, appSecret: SECRET, token: APP.token, apiBaseUrl: api.url, tokenEndpoint: 'classic' as const };
    gw = await startTestGateway(
      {
        // The thumbnail server is a loopback one, which outbound media may only reach when allowed.
        server: { mediaDir, mediaAllowPrivateNetworks: ['127.0.0.1'] },
        pipeline: { deliveryAttempts: 3, deliveryBackoffMs: 20 },
        channels: [
          { id: 'mp', type: 'wechat-miniprogram', options: { ...common, encodingAESKey: APP.encodingAESKey, messageMode: 'safe' } },
          { id: 'mp-plain', type: 'wechat-miniprogram', options: { ...common, messageMode: 'plain', dataFormat: 'json' } },
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
    await images?.close();
    await redis?.stop();
    await rm(mediaDir, { recursive: true, force: true });
  });

  const timestamps = (channel: string) => (gw.gateway.adapters.get(channel) as WechatChannelAdapter).endpoint.timestamps;
  const post = (channel: string, query: URLSearchParams, body: string, type = 'application/json') =>
    fetch(`${gw.url}/webhooks/${channel}?${query}`, { method: 'POST', body, headers: { 'content-type': type } });
  async function push(fields: Record<string, string | number>, format: 'json' | 'xml' = 'json') {
    const all = { ToUserName: 'gh_97417a04a28d', ...fields };
    const inner = format === 'json' ? JSON.stringify(all).replace(/"MsgId":"(\d+)"/, '"MsgId":$1') : buildXml(all);
    const { query, body } = encryptedPush(APP, inner, format);
    const res = await post('mp', query, body, format === 'json' ? 'application/json' : 'text/xml');
    assert.equal(res.status, 200, await res.clone().text());
    assert.equal(await res.text(), 'success');
  }
  const sentTo = (openid: string) => api.sent.filter((m) => m.touser === openid);

  it('answers the documented URL-verification vector', async () => {
    const v = mp.mp_get_url_verification;
    const q = new URLSearchParams({ signature: v.expected.signature, timestamp: v.inputs.timestamp, nonce: v.inputs.nonce, echostr: v.inputs.echostr });
    const res = await atSampleTime(timestamps('mp'), v.inputs.timestamp, () => fetch(`${gw.url}/webhooks/mp?${q}`));
    assert.equal(await res.text(), v.expected.response_body);
    q.set('signature', 'f'.repeat(40));
    assert.equal((await atSampleTime(timestamps('mp'), v.inputs.timestamp, () => fetch(`${gw.url}/webhooks/mp?${q}`))).status, 401);
  });

  it('accepts the documented plaintext JSON push (plain mode) and keeps the unknown debug_demo event', async () => {
    const v = mp.mp_plaintext_json_push_signature;
    const q = new URLSearchParams({ signature: v.expected.signature, timestamp: v.inputs.timestamp, nonce: v.inputs.nonce });
    const res = await atSampleTime(timestamps('mp-plain'), v.inputs.timestamp, () => post('mp-plain', q, JSON.stringify(v.inputs.body_json)));
    assert.equal(await res.text(), 'success');
    const msg = await eventually(() => seen.find((m) => m.channel === 'mp-plain'), 'debug_demo reached the bot');
    assert.equal(msg.content.type, 'event');
    assert.equal((msg.content as any).event, 'debug_demo');
    assert.equal((msg.content as any).data.debug_str, 'hello world');
    q.set('signature', v.expected.signature.replace(/^8/, '9'));
    assert.equal((await atSampleTime(timestamps('mp-plain'), v.inputs.timestamp, () => post('mp-plain', q, JSON.stringify(v.inputs.body_json)))).status, 401);
  });

  it('decrypts the documented safe-mode JSON push', async () => {
    const q = signedQuery(APP, safeVector.inputs.timestamp, safeVector.inputs.nonce, safeVector.inputs.body_json.Encrypt);
    assert.equal(q.get('msg_signature'), safeVector.expected.msg_signature);
    assert.equal(q.get('signature'), safeVector.expected.signature_url_param);
    const res = await atSampleTime(timestamps('mp'), safeVector.inputs.timestamp, () => post('mp', q, JSON.stringify(safeVector.inputs.body_json)));
    assert.equal(await res.text(), 'success');
    const msg = await eventually(() => seen.find((m) => m.channel === 'mp' && m.timestamp === 1714112445000), 'vector reached the bot');
    assert.equal(msg.sender.id, safeVector.inputs.openid);
    assert.equal((msg.content as any).event, 'debug_demo');
  });

  it('replies to self-encrypted JSON and XML pushes, once per retried MsgId, with the 64-bit MsgId intact', async () => {
    const id = nextMsgId();
    const fields = { FromUserName: 'o-mp-1', CreateTime: now(), MsgType: 'text', Content: 'hi', MsgId: id };
    await push(fields);
    await push(fields);
    await eventually(() => sentTo('o-mp-1').length === 1, 'json reply');
    assert.ok(seen.some((m) => m.channelMessageId === id), 'MsgId kept exactly');
    await push({ FromUserName: 'o-mp-1', CreateTime: now(), MsgType: 'text', Content: 'xml too', MsgId: nextMsgId() }, 'xml');
    await eventually(() => sentTo('o-mp-1').length === 2, 'xml reply');
    assert.deepEqual(sentTo('o-mp-1').map((m) => m.text), [{ content: 'echo:hi' }, { content: 'echo:xml too' }]);
  });

  it('greets on user_enter_tempsession and dedupes the event by FromUserName+CreateTime', async () => {
    const ev = { FromUserName: 'o-mp-2', CreateTime: now(), MsgType: 'event', Event: 'user_enter_tempsession', SessionFrom: 'order-page' };
    await push(ev);
    await push(ev);
    await eventually(() => sentTo('o-mp-2').length === 1, 'welcome');
    await push({ FromUserName: 'o-mp-2', CreateTime: now(), MsgType: 'text', Content: 'marker', MsgId: nextMsgId() });
    await eventually(() => sentTo('o-mp-2').length === 2, 'marker');
    assert.deepEqual(sentTo('o-mp-2').map((m) => m.text), [{ content: 'welcome from order-page' }, { content: 'echo:marker' }]);
  });

  it('sends a mini-program card with an uploaded thumbnail, and a link card', async () => {
    await push({ FromUserName: 'o-mp-3', CreateTime: now(), MsgType: 'text', Content: 'card', MsgId: nextMsgId() });
    await eventually(() => sentTo('o-mp-3').length === 1, 'card');
    const card = sentTo('o-mp-3')[0]!;
    assert.equal(card.msgtype, 'miniprogrampage');
    const page = card.miniprogrampage as any;
    assert.equal(page.title, 'Your order');
    assert.equal(page.pagepath, 'pages/order/index?id=7');
    assert.deepEqual(api.mediaData(page.thumb_media_id), THUMB);
    await push({ FromUserName: 'o-mp-3', CreateTime: now(), MsgType: 'text', Content: 'link', MsgId: nextMsgId() });
    await eventually(() => sentTo('o-mp-3').length === 2, 'link');
    assert.deepEqual(sentTo('o-mp-3')[1], {
      touser: 'o-mp-3',
      msgtype: 'link',
      link: { title: 'Help', description: 'FAQ', url: 'https://example.com/faq', thumb_url: 'https://example.com/t.jpg' },
    });
  });

  it('refreshes a revoked classic token once and retries; fails 45047 fast', async () => {
    const before = api.tokenRequests;
    api.revokeTokens();
    await push({ FromUserName: 'o-mp-4', CreateTime: now(), MsgType: 'text', Content: 'x', MsgId: nextMsgId() });
    await eventually(() => sentTo('o-mp-4').length === 1, 'reply after refresh');
    assert.equal(api.tokenRequests, before + 1);
    api.fail('send', { errcode: 45047, errmsg: 'out of response count limit' });
    await push({ FromUserName: 'o-mp-4', CreateTime: now(), MsgType: 'text', Content: 'y', MsgId: nextMsgId() });
    const failed = await eventually(() => failures.find((f) => f.code === 45047), 'quota failure');
    assert.equal(failed.reason, 'quota_exhausted');
    assert.equal(sentTo('o-mp-4').length, 1);
  });

  it('refuses forged, malformed and oversized JSON without queuing or crashing', async () => {
    const forged = encryptedPush(APP, JSON.stringify({ FromUserName: 'o-x', CreateTime: now(), MsgType: 'text', Content: 'f', MsgId: 1 }), 'json');
    forged.query.set('timestamp', '1');
    assert.equal((await post('mp', forged.query, forged.body)).status, 401);
    const malformed = await post('mp', signedQuery(APP, '1', '2'), '{"ToUserName": "gh", "Encrypt": ');
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as any).error, 'malformed_json');
    const badInner = encryptedPush(APP, '{not json', 'json');
    assert.equal((await post('mp', badInner.query, badInner.body)).status, 400);
    const huge = JSON.stringify({ ToUserName: 'gh', Encrypt: 'A'.repeat(300_000) });
    assert.equal((await post('mp', signedQuery(APP, '1', '2'), huge)).status, 413);
    assert.equal((await post('mp-plain', signedQuery(APP, '1', '2'), '[1,2]')).status, 400);
    assert.ok(!seen.some((m) => m.sender.id === 'o-x'));
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  });
});
