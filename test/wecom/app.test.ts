import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeWecomAppMessage } from '../../adapters/wecom-app/decode.js';
import { WecomAppOptions } from '../../adapters/wecom-app/index.js';
import { parseWechatXml } from '../../adapters/shared/xml.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { startFakeWecom, type FakeWecom } from '../fakes/wecom-api.js';
import { createWechatCrypto } from '../../adapters/shared/wechat-crypto.js';
import type { TimestampWindow } from '../../adapters/shared/wechat-webhook.js';
import { atSampleTime } from '../wechat/push-helpers.js';
import { inboundJobCount, OFFICIAL, postEncrypted, postRaw, testBot, textXml, wecomCrypto } from './helpers.js';

const vectors = JSON.parse(readFileSync(new URL('../fixtures/wechat/vectors.json', import.meta.url), 'utf8')) as {
  wecom_app: Array<{ id: string; inputs: Record<string, string>; expected: Record<string, string> }>;
};
const vector = (id: string) => vectors.wecom_app.find((v) => v.id === id)!;
const channel = { id: 'wecom', type: 'wecom-app' };
const SECRET = 'wecom-app-secret-0123456789';
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(64, 7)]);

describe('wecom-app decode (pure, recorded fixtures)', () => {
  it('decodes the official encrypted POST sample into a text message keyed by MsgId', () => {
    const v = vector('wecom_official_decrypt_post');
    const crypto = wecomCrypto();
    assert.ok(crypto.verify(v.expected.msg_signature, v.inputs.timestamp, v.inputs.nonce, v.inputs.encrypt));
    const fields = parseWechatXml(crypto.decrypt(v.inputs.encrypt!).message);
    const { message, userId, agentId } = decodeWecomAppMessage(fields, channel, 1);
    assert.equal(userId, 'mycreate');
    assert.equal(agentId, '218');
    assert.deepEqual(message.content, { type: 'text', text: 'hello' });
    assert.equal(message.channelMessageId, 'msg:4561255354251345929', 'the 64-bit MsgId survives intact');
    assert.equal(message.timestamp, 1409659813000);
  });

  const decode = (xml: string) => decodeWecomAppMessage(parseWechatXml(xml), channel, 1).message;
  const wrap = (inner: string) => `<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1348831860</CreateTime>${inner}<AgentID>1</AgentID></xml>`;

  it('maps image, voice, video, location and link messages', () => {
    assert.deepEqual(decode(wrap('<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[https://p.qpic.cn/x]]></PicUrl><MediaId><![CDATA[m-img]]></MediaId><MsgId>1</MsgId>')).content, {
      type: 'image',
      mediaId: 'm-img',
      url: 'https://p.qpic.cn/x',
    });
    assert.deepEqual(decode(wrap('<MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[m-v]]></MediaId><Format><![CDATA[amr]]></Format><MsgId>2</MsgId>')).content, {
      type: 'audio',
      mediaId: 'm-v',
      mimeType: 'audio/amr',
    });
    assert.deepEqual(decode(wrap('<MsgType><![CDATA[video]]></MsgType><MediaId><![CDATA[m-vid]]></MediaId><ThumbMediaId><![CDATA[t]]></ThumbMediaId><MsgId>3</MsgId>')).content, {
      type: 'video',
      mediaId: 'm-vid',
    });
    assert.deepEqual(
      decode(wrap('<MsgType><![CDATA[location]]></MsgType><Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[Guangzhou]]></Label><MsgId>4</MsgId>')).content,
      { type: 'location', latitude: 23.134521, longitude: 113.358803, label: 'Guangzhou' },
    );
    assert.deepEqual(
      decode(wrap('<MsgType><![CDATA[link]]></MsgType><Title><![CDATA[WeCom]]></Title><Description><![CDATA[d]]></Description><Url><![CDATA[https://work.weixin.qq.com]]></Url><PicUrl><![CDATA[https://p/x.png]]></PicUrl><MsgId>5</MsgId>')).content,
      { type: 'link', title: 'WeCom', url: 'https://work.weixin.qq.com', description: 'd', thumbUrl: 'https://p/x.png' },
    );
  });

  it('keeps events and unknown types as events with their fields, keyed by user + CreateTime', () => {
    const enter = decode(wrap('<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[enter_agent]]></Event><EventKey><![CDATA[]]></EventKey>'));
    assert.deepEqual(enter.content, { type: 'event', event: 'enter_agent' });
    assert.equal(enter.channelMessageId, 'evt:zhangsan:1348831860:enter_agent:');
    const click = decode(wrap('<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[click]]></Event><EventKey><![CDATA[MENU_1]]></EventKey>'));
    assert.deepEqual(click.content, { type: 'event', event: 'click', key: 'MENU_1' });
    const loc = decode(wrap('<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event><Latitude>23.1</Latitude><Longitude>113.3</Longitude><Precision>119</Precision>'));
    assert.deepEqual(loc.content, { type: 'event', event: 'LOCATION', data: { Latitude: '23.1', Longitude: '113.3', Precision: '119' } });
    const unknown = decode(wrap('<MsgType><![CDATA[hologram]]></MsgType><Beam><![CDATA[x]]></Beam><MsgId>9</MsgId>'));
    assert.deepEqual(unknown.content, { type: 'event', event: 'hologram', data: { Beam: 'x' } });
    assert.equal(unknown.raw?.format, 'wecom-app/xml');
    const sys = decode('<xml><ToUserName>ww1</ToUserName><FromUserName>sys</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_contact</Event><ChangeType>create_user</ChangeType></xml>');
    assert.equal(sys.sender.role, 'system');
  });

  it('cuts text longer than a UnifiedMessage holds to 20,000 characters instead of refusing the callback', () => {
    const long = decode(wrap(`<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[${'y'.repeat(20_001)}]]></Content><MsgId>11</MsgId>`));
    assert.deepEqual(long.content, { type: 'text', text: 'y'.repeat(20_000) });
  });
});

describe('wecom-app options', () => {
  it('rejects bad options at start-up with errors that say what to fix', () => {
    const result = WecomAppOptions.safeParse({ corpId: 'acme', token: 'x', encodingAESKey: 'short', corpSecret: 's', agentId: 0 });
    assert.equal(result.success, false);
    const text = result.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    assert.match(text, /corpId: .*企业ID/);
    assert.match(text, /token: .*3–32/);
    assert.match(text, /encodingAESKey: .*43 characters/);
    assert.match(text, /corpSecret: .*Secret/);
    assert.match(text, /agentId/);
    const ok = WecomAppOptions.parse({ ...OFFICIAL, corpSecret: SECRET, agentId: 1000002 });
    assert.equal(ok.apiBaseUrl, 'https://qyapi.weixin.qq.com');
  });
});

describe('wecom-app channel end to end (real gateway, Redis, loopback WeCom API)', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let fake: FakeWecom;
  let gw: TestGateway;
  let mediaDir: string;
  let images: ReturnType<typeof createServer>;
  let imageUrl: string;
  const failures: Array<{ code?: string | number; reason?: string }> = [];

  before(async () => {
    redis = await startTestRedis();
    fake = await startFakeWecom({ corpId: OFFICIAL.corpId, secrets: { [SECRET]: 218 } });
    mediaDir = mkdtempSync(join(tmpdir(), 'wecom-media-'));
    images = createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(PNG));
    await new Promise<void>((r) => images.listen(0, '127.0.0.1', () => r()));
    imageUrl = `http://127.0.0.1:${(images.address() as AddressInfo).port}/logo.png`;
    gw = await startTestGateway(
      {
        // The image server is a loopback one, which outbound media may only reach when allowed.
        server: { mediaDir, bodyLimitBytes: 512 * 1024, mediaAllowPrivateNetworks: ['127.0.0.1'] },
        pipeline: { deliveryAttempts: 4 },
        channels: [
          {
            id: 'wecom',
            type: 'wecom-app',
            options: { ...OFFICIAL, corpSecret: SECRET, agentId: 218, apiBaseUrl: fake.url, rateLimitPauseMs: 100 },
          },
        ],
      },
      redis.url,
      { bot: testBot() },
    );
    gw.gateway.events.on('message.delivery_failed', (e) => failures.push({ code: e.code, reason: e.reason }));
  });
  after(async () => {
    await gw?.stop();
    await fake?.close();
    images?.close();
    await redis?.stop();
    rmSync(mediaDir, { recursive: true, force: true });
  });

  const repliesTo = (user: string) => fake.sent.filter((s) => s.path === 'message/send' && s.body.touser === user);
  const timestamps = () => (gw.gateway.adapters.get('wecom') as unknown as { timestamps: TimestampWindow }).timestamps;

  it('answers the URL verification with the official vector', async () => {
    const v = vector('wecom_official_verify_url');
    const q = `msg_signature=${v.inputs.msg_signature}&timestamp=${v.inputs.timestamp}&nonce=${v.inputs.nonce}&echostr=${encodeURIComponent(v.inputs.echostr!)}`;
    const res = await atSampleTime(timestamps(), v.inputs.timestamp!, () => fetch(`${gw.url}/webhooks/wecom?${q}`));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), v.expected.response_body);
    const bad = await atSampleTime(timestamps(), v.inputs.timestamp!, () => fetch(`${gw.url}/webhooks/wecom?${q.replace('nonce=263014780', 'nonce=263014781')}`));
    assert.equal(bad.status, 401);
  });

  it('accepts the official encrypted POST sample and acknowledges with an empty 200', async () => {
    const v = vector('wecom_official_decrypt_post');
    const body = `<xml><ToUserName><![CDATA[${OFFICIAL.corpId}]]></ToUserName><Encrypt><![CDATA[${v.inputs.encrypt}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>`;
    const res = await atSampleTime(timestamps(), v.inputs.timestamp!, () =>
      postRaw(gw, 'wecom', `msg_signature=${v.expected.msg_signature}&timestamp=${v.inputs.timestamp}&nonce=${v.inputs.nonce}`, body),
    );
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
    const reply = await eventually(() => repliesTo('mycreate')[0], 'reply to mycreate');
    assert.deepEqual(reply.body, { touser: 'mycreate', agentid: 218, safe: 0, msgtype: 'text', text: { content: 'echo: hello' } });
  });

  it('delivers a bot reply for a message the test encrypted itself, once even when WeCom retries', async () => {
    const xml = textXml('lisi', '你好 WeCom', '7000000000000000001');
    for (let i = 0; i < 3; i++) assert.equal((await postEncrypted(gw, 'wecom', xml)).status, 200);
    await eventually(() => repliesTo('lisi').length > 0, 'reply to lisi');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(repliesTo('lisi').length, 1, 'three deliveries of one MsgId → one reply');
    assert.equal(repliesTo('lisi')[0]!.body.text.content, 'echo: 你好 WeCom');
  });

  it('refuses a forged signature with 401 and queues nothing', async () => {
    const before = await inboundJobCount(gw);
    const res = await postEncrypted(gw, 'wecom', textXml('mallory', 'hi', '7000000000000000002'), { forge: true });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: string }).error, 'bad_signature');
    assert.equal(await inboundJobCount(gw), before);
    assert.equal(repliesTo('mallory').length, 0);
  });

  it('refuses a correctly signed callback replayed outside the timestamp window (401), and queues nothing', async () => {
    const v = vector('wecom_official_decrypt_post');
    const query = `msg_signature=${v.expected.msg_signature}&timestamp=${v.inputs.timestamp}&nonce=${v.inputs.nonce}`;
    const body = `<xml><ToUserName><![CDATA[${OFFICIAL.corpId}]]></ToUserName><Encrypt><![CDATA[${v.inputs.encrypt}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>`;
    const before = await inboundJobCount(gw);
    const replayed = await postRaw(gw, 'wecom', query, body);
    assert.equal(replayed.status, 401);
    assert.equal(((await replayed.json()) as { error: string }).error, 'stale_timestamp');
    assert.ok(gw.logs.some((l) => l.msg === 'signed request outside the timestamp window refused (replay or clock skew)' && l.timestamp === v.inputs.timestamp));
    // Just inside and just outside the 300 s default.
    assert.equal((await atSampleTime(timestamps(), Number(v.inputs.timestamp) + 298, () => postRaw(gw, 'wecom', query, body))).status, 200);
    assert.equal((await atSampleTime(timestamps(), Number(v.inputs.timestamp) + 301, () => postRaw(gw, 'wecom', query, body))).status, 401);
    const verify = vector('wecom_official_verify_url');
    const oldVerify = await fetch(`${gw.url}/webhooks/wecom?msg_signature=${verify.inputs.msg_signature}&timestamp=${verify.inputs.timestamp}&nonce=${verify.inputs.nonce}&echostr=${encodeURIComponent(verify.inputs.echostr!)}`);
    assert.equal(oldVerify.status, 401, 'the URL verification is checked too');
    assert.equal(await inboundJobCount(gw), before + 1, 'only the request inside the window was queued');
  });

  it('refuses malformed, oversized and XXE XML with a 4xx and keeps serving', async () => {
    const crypto = wecomCrypto();
    const malformed = await postRaw(gw, 'wecom', 'msg_signature=x&timestamp=1&nonce=2', '<xml><Encrypt>abc</xml>');
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { error: string }).error, 'malformed_xml');
    const huge = await postRaw(gw, 'wecom', 'msg_signature=x&timestamp=1&nonce=2', `<xml><Encrypt>${'A'.repeat(100 * 1024)}</Encrypt></xml>`);
    assert.equal(huge.status, 413);
    const xxe = `<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Encrypt>&x;</Encrypt></xml>`;
    const outer = await postRaw(gw, 'wecom', 'msg_signature=x&timestamp=1&nonce=2', xxe);
    assert.equal(outer.status, 400);
    assert.doesNotMatch(await outer.text(), /root:/);
    // The same attack inside a correctly signed and encrypted envelope.
    const inner = await postEncrypted(gw, 'wecom', `<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><FromUserName>eve</FromUserName><MsgType>text</MsgType><Content>&x;</Content><MsgId>1</MsgId></xml>`);
    assert.equal(inner.status, 400);
    assert.doesNotMatch(await inner.text(), /root:/);
    assert.equal(repliesTo('eve').length, 0);
    // Ciphertext that decrypts but is not for our CorpID (same token and key, another corp): refused, not a crash.
    const otherCorp = createWechatCrypto({ token: OFFICIAL.token, encodingAESKey: OFFICIAL.encodingAESKey, receiveId: 'ww0000000000000000' });
    const other = otherCorp.encrypt(textXml('mallory', 'for another corp', '7000000000000000009'));
    const ts = String(Math.floor(Date.now() / 1000));
    const res = await postRaw(gw, 'wecom', `msg_signature=${crypto.signature(ts, '2', other)}&timestamp=${ts}&nonce=2`, `<xml><Encrypt>${other}</Encrypt></xml>`);
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: string }).error, 'receive_id_mismatch');
    // Truncated ciphertext (signed with our token): 400, not a crash.
    const cut = crypto.encrypt('<xml/>').slice(0, 40);
    const truncated = await postRaw(gw, 'wecom', `msg_signature=${crypto.signature(ts, '2', cut)}&timestamp=${ts}&nonce=2`, `<xml><Encrypt>${cut}</Encrypt></xml>`);
    assert.equal(truncated.status, 400);
    assert.equal(repliesTo('mallory').length, 0);
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  });

  it('refreshes an expired access token and retries once', async () => {
    await postEncrypted(gw, 'wecom', textXml('wangwu', 'first', '7000000000000000010'));
    await eventually(() => repliesTo('wangwu').length === 1, 'first reply');
    const fetched = fake.counters.gettoken;
    fake.expireTokens();
    await postEncrypted(gw, 'wecom', textXml('wangwu', 'second', '7000000000000000011'));
    await eventually(() => repliesTo('wangwu').length === 2, 'second reply');
    assert.equal(fake.counters.gettoken, fetched + 1, 'exactly one new token');
  });

  it('pauses on the rate-limit errcode and retries a 5xx, then delivers', async () => {
    fake.failNext('message/send', { errcode: 45009, errmsg: 'api freq out of limit' }, { status: 502 });
    await postEncrypted(gw, 'wecom', textXml('zhaoliu', 'busy', '7000000000000000020'));
    const reply = await eventually(() => repliesTo('zhaoliu')[0], 'reply after rate limit and 5xx');
    assert.equal(reply.body.text.content, 'echo: busy');
    assert.ok(gw.logs.some((l) => l.code === 45009 && l.msg === 'delivery failed'));
  });

  it('fails fast with the platform code when retrying cannot help', async () => {
    fake.failNext('message/send', { errcode: 81013, errmsg: 'user & party & tag all invalid' });
    await postEncrypted(gw, 'wecom', textXml('gone', 'hello?', '7000000000000000030'));
    await eventually(() => failures.some((f) => f.code === 81013), 'delivery_failed event');
    assert.equal(failures.find((f) => f.code === 81013)!.reason, 'recipient_unreachable');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(gw.logs.filter((l) => l.code === 81013 && l.msg === 'delivery failed').length, 1, 'one attempt only');
  });

  it('uploads outbound images through media/upload and sends news cards for links', async () => {
    await postEncrypted(gw, 'wecom', textXml('pic-user', `pic ${imageUrl}`, '7000000000000000040'));
    const image = await eventually(() => repliesTo('pic-user')[0], 'image reply');
    assert.equal(image.body.msgtype, 'image');
    const upload = fake.uploads.find((u) => u.mediaId === image.body.image.media_id);
    assert.ok(upload, 'the media_id comes from our upload');
    assert.equal(upload.type, 'image');
    assert.deepEqual(fake.mediaBytes(upload.mediaId), PNG);
    await postEncrypted(gw, 'wecom', textXml('card-user', 'card', '7000000000000000041'));
    const card = await eventually(() => repliesTo('card-user')[0], 'news reply');
    assert.deepEqual(card.body.news, { articles: [{ title: 'Docs', url: 'https://example.com/docs', description: 'Read me' }] });
  });

  it('fails an image whose URL points into a private network at once, without retrying', async () => {
    const inside = imageUrl.replace('127.0.0.1', '127.0.0.2'); // loopback, but not the allowed address
    await postEncrypted(gw, 'wecom', textXml('inside-user', `pic ${inside}`, '7000000000000000042'));
    const refused = await eventually(() => failures.find((f) => f.code === 'media_refused'), 'refused');
    assert.equal(refused.reason, 'invalid_request');
    assert.equal(repliesTo('inside-user').length, 0);
  });

  it('never writes the app secret or an access token into a log line', () => {
    const all = JSON.stringify(gw.logs);
    assert.ok(!all.includes(SECRET));
    assert.doesNotMatch(all, /access_token=|corpsecret=/);
  });

  it('resolves inbound media ids to a gateway URL serving the bytes', async () => {
    const mediaId = fake.addMedia(PNG, 'image/png', 'photo.png');
    const xml = `<xml><ToUserName>${OFFICIAL.corpId}</ToUserName><FromUserName>photo-user</FromUserName><CreateTime>1</CreateTime><MsgType>image</MsgType><PicUrl>https://p/x</PicUrl><MediaId>${mediaId}</MediaId><MsgId>7000000000000000050</MsgId><AgentID>218</AgentID></xml>`;
    await postEncrypted(gw, 'wecom', xml);
    const reply = await eventually(() => repliesTo('photo-user')[0], 'reply to image');
    const url = /got image (\S+)/.exec(reply.body.text.content)![1]!;
    assert.ok(url.startsWith(`${gw.url}/media/`));
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG);
  });
});
