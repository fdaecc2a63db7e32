/** The pure WeChat decoders against recorded push fixtures (field layouts as in the official message docs). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { decodeMiniProgramPush, replyWindowMs as mpReplyWindowMs } from '../../adapters/wechat-miniprogram/decode.js';
import { decodeOfficialAccountPush, replyWindowMs as oaReplyWindowMs } from '../../adapters/wechat-official-account/decode.js';
import { parseBody } from '../../adapters/shared/wechat-webhook.js';
import { conversationIdFor } from '../../gateway/message.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/wechat/pushes/${name}`, import.meta.url), 'utf8');
const ctx = (type: string, format: string) => ({
  channel: { id: 'ch', type },
  format,
  mediaUrl: (id: string) => `https://gw.example/media/${id}`,
  now: 1_800_000_000_000,
});
const oa = (name: string) => decodeOfficialAccountPush(parseBody(fixture(name), 'xml', 1 << 16), ctx('wechat-official-account', 'xml'));
const mp = (name: string) => {
  const format = name.endsWith('.json') ? 'json' : 'xml';
  return decodeMiniProgramPush(parseBody(fixture(name), format, 1 << 16), ctx('wechat-miniprogram', format));
};

test('official account: every message type', () => {
  const text = oa('oa-text.xml');
  assert.deepEqual(text.content, { type: 'text', text: 'hello 你好' });
  assert.equal(text.channelMessageId, '24542143462987431');
  assert.equal(text.sender.id, 'oUser123');
  assert.equal(text.conversationId, conversationIdFor('ch', 'oUser123'));
  assert.equal(text.timestamp, 1714112445000);
  assert.equal(text.metadata.toUserName, 'gh_10f6c3c3ac5a');
  assert.equal(text.raw?.format, 'wechat-official-account/xml');
  assert.deepEqual(oa('oa-image.xml').content, { type: 'image', mediaId: 'media_img_1', url: 'https://gw.example/media/media_img_1' });
  assert.deepEqual(oa('oa-voice.xml').content, {
    type: 'audio',
    mediaId: 'media_voice_1',
    url: 'https://gw.example/media/media_voice_1',
    mimeType: 'audio/amr',
    transcript: '腾讯微信团队',
  });
  for (const name of ['oa-video.xml', 'oa-shortvideo.xml']) {
    const c = oa(name).content as any;
    assert.equal(c.type, 'video');
    assert.match(c.thumbUrl, /media_thumb_/);
  }
  assert.deepEqual(oa('oa-location.xml').content, { type: 'location', latitude: 23.134521, longitude: 113.358803, label: '广州市天河区' });
  assert.deepEqual(oa('oa-link.xml').content, { type: 'link', title: '公众平台官网链接', description: '公众平台官网链接', url: 'https://mp.weixin.qq.com' });
});

test('official account: events, with FromUserName+CreateTime dedupe keys, and unknown ones kept raw', () => {
  const sub = oa('oa-subscribe-scan.xml');
  assert.deepEqual(sub.content, { type: 'event', event: 'subscribe', key: 'qrscene_123123', data: { ticket: 'TICKET', scene: '123123' } });
  assert.equal(sub.channelMessageId, 'oUser123:1714112445:subscribe');
  assert.deepEqual(oa('oa-unsubscribe.xml').content, { type: 'event', event: 'unsubscribe' });
  assert.deepEqual(oa('oa-scan.xml').content, { type: 'event', event: 'scan', key: 'SCENE_VALUE', data: { ticket: 'TICKET' } });
  assert.deepEqual(oa('oa-location-event.xml').content, {
    type: 'event',
    event: 'location_report',
    data: { latitude: 23.137466, longitude: 113.352425, precision: 119.38504 },
  });
  assert.deepEqual(oa('oa-click.xml').content, { type: 'event', event: 'menu_click', key: 'V1001_TODAY_MUSIC' });
  assert.deepEqual(oa('oa-view.xml').content, { type: 'event', event: 'menu_view', key: 'http://www.qq.com/', data: { menuId: '123' } });
  const unknown = oa('oa-template-finish.xml');
  assert.equal(unknown.content.type, 'event');
  assert.equal((unknown.content as any).event, 'TEMPLATESENDJOBFINISH');
  assert.equal((unknown.content as any).data.Status, 'success');
  assert.equal(unknown.channelMessageId, '200163836');
});

test('mini-program: JSON and XML pushes, 64-bit MsgId exact, cards and enter-session', () => {
  const text = mp('mp-text.json');
  assert.deepEqual(text.content, { type: 'text', text: 'this is a test' });
  assert.equal(text.channelMessageId, '1234567890123456789', 'not rounded to a double');
  assert.equal(text.raw?.format, 'wechat-miniprogram/json');
  assert.equal((mp('mp-image.json').content as any).mediaId, 'media_id');
  const card = { type: 'link', title: 'title', appId: 'wxba5fad812f8e6fb9', pagePath: 'pages/index/index', thumbUrl: 'https://mmbiz.qpic.cn/thumb' };
  assert.deepEqual(mp('mp-miniprogrampage.json').content, card);
  assert.deepEqual(mp('mp-miniprogrampage.xml').content, card);
  const enter = mp('mp-enter-session.json');
  assert.deepEqual(enter.content, { type: 'event', event: 'enter_session', key: 'sessionFrom' });
  assert.equal(enter.channelMessageId, 'oMpUser:1482048670:user_enter_tempsession');
});

test('a push without FromUserName is a 400, an unknown MsgType an event', () => {
  assert.throws(() => decodeOfficialAccountPush({ MsgType: 'text', Content: 'x' }, ctx('wechat-official-account', 'xml')), (e: any) => e.status === 400);
  const odd = decodeMiniProgramPush({ FromUserName: 'o', CreateTime: '1', MsgType: 'hologram', MsgId: '9' }, ctx('wechat-miniprogram', 'json'));
  assert.deepEqual(odd.content, { type: 'event', event: 'hologram', data: { FromUserName: 'o', CreateTime: '1', MsgType: 'hologram', MsgId: '9' } });
});

test('text longer than a UnifiedMessage holds is cut to 20,000 characters, not refused', () => {
  const long = `${'x'.repeat(19_999)}😀 and more`;
  for (const decode of [decodeOfficialAccountPush, decodeMiniProgramPush]) {
    const message = decode({ FromUserName: 'o', CreateTime: '1', MsgType: 'text', Content: long, MsgId: '7' }, ctx('wechat-official-account', 'xml'));
    assert.equal(message.content.type, 'text');
    // The emoji's surrogate pair would straddle the limit: its orphaned half is dropped.
    assert.equal((message.content as { text: string }).text, 'x'.repeat(19_999));
  }
});

test('reply windows per push: 48 h for messages, 1 minute for the user events the quota tables name, none for notices', () => {
  const H48 = 48 * 3600 * 1000;
  assert.equal(oaReplyWindowMs(oa('oa-text.xml')), H48);
  assert.equal(oaReplyWindowMs(oa('oa-click.xml')), 60_000);
  assert.equal(oaReplyWindowMs(oa('oa-subscribe-scan.xml')), 60_000);
  assert.equal(oaReplyWindowMs(oa('oa-scan.xml')), 60_000);
  for (const notice of ['oa-template-finish.xml', 'oa-location-event.xml', 'oa-view.xml']) assert.equal(oaReplyWindowMs(oa(notice)), 0, notice);
  assert.equal(mpReplyWindowMs(mp('mp-text.json')), H48);
  assert.equal(mpReplyWindowMs(mp('mp-enter-session.json')), 60_000);
});
