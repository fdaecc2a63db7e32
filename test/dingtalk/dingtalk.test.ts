/**
 * DingTalk robot: the sign vector from vectors.json, the decoder, and end to end through the real gateway + Redis
 * against a loopback DingTalk (signed callbacks, session webhooks, OpenAPI with access tokens).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { GROUP_MSG_PARAM_MAX_BYTES, sampleTextParam } from '../../adapters/dingtalk/api.js';
import { decodeRobotCallback, decodeRobotContent, RobotCallback } from '../../adapters/dingtalk/decode.js';
import { ConversationReference } from '../../gateway/conversation-reference.js';
import { conversationIdFor } from '../../gateway/message.js';
import { robotSign, verifyRobotSign } from '../../adapters/dingtalk/sign.js';
import { startDingTalkApi } from '../fakes/dingtalk-api.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';

const APP = { appKey: 'dingappkey0001', appSecret: 'testAppSecret', robotCode: 'dingrobot0001' };
const enqueued = (logs: Array<Record<string, unknown>>) => logs.filter((l) => l.msg === 'enqueued').length;

describe('DingTalk callback sign', () => {
  it('matches the vector (timestamp 1700000000000, secret testAppSecret)', () => {
    assert.equal(robotSign('1700000000000', 'testAppSecret'), '6eme9OZpsZ0xT14aKlxRPyaQRga1PwA6MpSWONOX6mQ=');
    const sign = '6eme9OZpsZ0xT14aKlxRPyaQRga1PwA6MpSWONOX6mQ=';
    assert.deepEqual(verifyRobotSign('1700000000000', sign, 'testAppSecret', 3600, 1700000000000 + 3_599_000), { ok: true });
    assert.deepEqual(verifyRobotSign('1700000000000', sign, 'testAppSecret', 3600, 1700000000000 + 3_601_000), { ok: false, reason: 'stale_timestamp' });
    assert.deepEqual(verifyRobotSign('1700000000000', sign, 'otherSecret', 3600, 1700000000000), { ok: false, reason: 'bad_signature' });
    assert.deepEqual(verifyRobotSign(undefined, sign, 'testAppSecret', 3600), { ok: false, reason: 'missing_signature' });
  });
});

describe('DingTalk payload decoding', () => {
  const base = { msgId: 'm', conversationId: 'cid', conversationType: '1' as const, senderId: 's' };
  it('maps every msgtype', () => {
    assert.deepEqual(decodeRobotContent(RobotCallback.parse({ ...base, msgtype: 'text', text: { content: ' hi ' } })), { type: 'text', text: 'hi' });
    assert.deepEqual(
      decodeRobotContent(RobotCallback.parse({ ...base, msgtype: 'richText', content: { richText: [{ text: 'order ' }, { pictureDownloadCode: 'p', downloadCode: 'd', type: 'picture' }, { text: ' 42' }] } })),
      { type: 'text', text: 'order [image] 42' },
    );
    assert.deepEqual(decodeRobotContent(RobotCallback.parse({ ...base, msgtype: 'picture', content: { downloadCode: 'dc1', pictureDownloadCode: 'pc1' } })), { type: 'image', mediaId: 'dc1' });
    assert.deepEqual(decodeRobotContent(RobotCallback.parse({ ...base, msgtype: 'audio', content: { duration: 4000, downloadCode: 'dc2', recognition: '你好' } })), {
      type: 'audio',
      mediaId: 'dc2',
      durationMs: 4000,
      transcript: '你好',
    });
    assert.deepEqual(decodeRobotContent(RobotCallback.parse({ ...base, msgtype: 'file', content: { downloadCode: 'dc3', fileName: 'a.pdf' } })), { type: 'file', mediaId: 'dc3', name: 'a.pdf' });
    assert.equal(decodeRobotContent(RobotCallback.parse({ ...base, msgtype: 'unknownType', content: {} })).type, 'event');
  });

  it('skips richText entries that are not objects, and floors fractional times instead of refusing the message', () => {
    const rich = RobotCallback.parse({ ...base, msgtype: 'richText', content: { richText: [{ text: 'a' }, null, 'b', 3, [1], { text: 'c' }] } });
    assert.deepEqual(decodeRobotContent(rich), { type: 'text', text: 'ac' });
    assert.deepEqual(decodeRobotContent(RobotCallback.parse({ ...base, msgtype: 'richText', content: { richText: 'not a list' } })), { type: 'text', text: '[richText]' });
    const body = RobotCallback.parse({
      ...base,
      msgtype: 'text',
      text: { content: 'x' },
      createAt: 1700000000000.5,
      sessionWebhook: 'https://oapi.dingtalk.com/robot/sendBySession?session=s',
      sessionWebhookExpiredTime: 1700000900000.25,
    });
    const { message, reference } = decodeRobotCallback(body, { id: 'dingtalk', type: 'dingtalk' }, { robotCode: 'r', webhookAllowed: () => true }, 1700000000100);
    assert.equal(message.timestamp, 1700000000000);
    assert.equal(reference.replyWindowUntil, 1700000900000);
    assert.ok(ConversationReference.safeParse({ ...reference, conversationId: message.conversationId, channel: 'dingtalk', channelType: 'dingtalk', updatedAt: 1 }).success);
  });
});

describe('DingTalk payload decoding: the official documentation example (test/fixtures/dingtalk)', () => {
  const official = JSON.parse(readFileSync(new URL('../fixtures/dingtalk/robot-text-group.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  const channel = { id: 'dingtalk', type: 'dingtalk' };
  const decode = (body: unknown) =>
    decodeRobotCallback(RobotCallback.parse(body), channel, { robotCode: 'dingrobot0001', webhookAllowed: (url) => url.startsWith('https://oapi.dingtalk.com/') }, 1613630300000);

  it('decodes the group text callback into a message and a reference with its session webhook', () => {
    const { message, reference, webhookRefused } = decode(official);
    assert.equal(webhookRefused, false);
    assert.equal(message.channelMessageId, 'msg0xxxxx');
    assert.equal(message.conversationId, conversationIdFor('dingtalk', 'xxx'));
    assert.deepEqual(message.sender, { id: 'user123', role: 'customer', name: '杨xx' });
    assert.equal(message.timestamp, 1613630252678);
    assert.deepEqual(message.content, { type: 'text', text: '你好' });
    assert.deepEqual(message.metadata, { conversationType: 'group' });
    assert.deepEqual(reference, {
      peerId: 'user123',
      peerName: '杨xx',
      threadId: 'xxx',
      replyWindowUntil: 1613635652738,
      context: { conversationType: '2', robotCode: 'dingrobot0001', staffId: 'user123', sessionWebhook: 'https://oapi.dingtalk.com/robot/sendBySession?session=xxxxx' },
    });
  });

  it('accepts createAt as the string the field table documents', () => {
    assert.equal(decode({ ...official, createAt: '1613630252678' }).message.timestamp, 1613630252678);
    assert.equal(decode({ ...official, createAt: 'soon' }).message.timestamp, 1613630300000, 'not a time: the arrival time');
  });
});

describe('DingTalk sampleText msgParam', () => {
  it('is the JSON string {"content": text}, untouched when it fits', () => {
    assert.equal(sampleTextParam('hi "there"\n'), '{"content":"hi \\"there\\"\\n"}');
    assert.equal(sampleTextParam('short', GROUP_MSG_PARAM_MAX_BYTES), '{"content":"short"}');
  });
  it('stays within the byte limit even when JSON escaping grows the text', () => {
    const param = sampleTextParam('"\n'.repeat(10_000), GROUP_MSG_PARAM_MAX_BYTES);
    assert.ok(Buffer.byteLength(param) <= GROUP_MSG_PARAM_MAX_BYTES);
    assert.ok((JSON.parse(param) as { content: string }).content.endsWith('...'));
  });
});

describe('dingtalk channel end to end', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let ding: Awaited<ReturnType<typeof startDingTalkApi>>;
  let gw: TestGateway;

  before(async () => {
    redis = await startTestRedis();
    ding = await startDingTalkApi({ ...APP, staff: ['staff-ann', 'staff-bo', 'staff-cy', 'staff-di', 'staff-ed'] });
    gw = await startTestGateway(
      {
        server: { bodyLimitBytes: 16_384 },
        channels: [{ id: 'dingtalk', type: 'dingtalk', options: { ...APP, apiBaseUrl: ding.url, sessionWebhookOrigins: [ding.url] } }],
        bot: {
          rules: [
            { id: 'hi', match: { regex: '^(hi|hello)' }, reply: 'Hello from the bot' },
            { id: 'refund', match: { keywords: ['refund'] }, reply: 'Refunds take 3 days' },
            // 18,000 UTF-8 bytes: over the 15,000-byte msgParam limit of groupMessages/send.
            { id: 'manual', match: { keywords: ['manual'] }, reply: '钉'.repeat(6000) },
          ],
          fallback: 'fallback',
        },
      },
      redis.url,
    );
    ding.callback.url = `${gw.url}/webhooks/dingtalk`;
  });
  after(async () => {
    await gw?.stop();
    await ding?.close();
    await redis?.stop();
  });

  it('answers a single chat through its session webhook, with no token needed', async () => {
    const res = await ding.push(ding.textCallback({ conversationId: 'cid-single-1', staffId: 'staff-ann', text: 'hello' }));
    assert.equal(res.status, 200);
    const reply = await eventually(() => ding.delivered.find((d) => d.to === 'cid-single-1'), 'webhook reply');
    assert.deepEqual(reply, { via: 'sessionWebhook', to: 'cid-single-1', text: 'Hello from the bot' });
    assert.equal(ding.stats.tokenRequests, 0);
  });

  it('answers a group @-mention through the session webhook, mentioning the sender', async () => {
    await ding.push(ding.textCallback({ conversationId: 'cid-group-1', group: true, staffId: 'staff-bo', text: 'hello' }));
    const reply = await eventually(() => ding.delivered.find((d) => d.to === 'cid-group-1'), 'group reply');
    assert.equal(reply.text, 'Hello from the bot');
    assert.deepEqual(reply.at, ['staff-bo']);
  });

  it('refuses a forged sign and a stale timestamp with 401, queueing nothing', async () => {
    const before = enqueued(gw.logs);
    const payload = ding.textCallback({ conversationId: 'cid-forged', staffId: 'staff-ann', text: 'hello' });
    const forged = await ding.push(payload, { sign: robotSign(String(Date.now()), 'not-the-secret') });
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: string }).error, 'bad_signature');
    const old = String(Date.now() - 2 * 3600_000);
    const stale = await ding.push(payload, { timestamp: old, sign: robotSign(old, APP.appSecret) });
    assert.equal(stale.status, 401);
    assert.equal(((await stale.json()) as { error: string }).error, 'stale_timestamp');
    const unsigned = await fetch(ding.callback.url!, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
    assert.equal(unsigned.status, 401);
    assert.equal(enqueued(gw.logs), before);
    assert.equal(ding.delivered.filter((d) => d.to === 'cid-forged').length, 0);
  });

  it('replies once to a replayed callback (same msgId)', async () => {
    const payload = ding.textCallback({ conversationId: 'cid-replay', staffId: 'staff-cy', text: 'hi' });
    assert.equal((await ding.push(payload)).status, 200);
    assert.equal((await ding.push(payload)).status, 200);
    await ding.push(ding.textCallback({ conversationId: 'cid-replay', staffId: 'staff-cy', text: 'refund' }));
    await eventually(() => ding.delivered.some((d) => d.to === 'cid-replay' && d.text === 'Refunds take 3 days'), 'later reply');
    assert.equal(ding.delivered.filter((d) => d.to === 'cid-replay' && d.text === 'Hello from the bot').length, 1);
  });

  it('uses the OpenAPI once the session webhook has expired: batchSend for a single chat, group send for a group', async () => {
    await ding.push(ding.textCallback({ conversationId: 'cid-single-2', staffId: 'staff-di', text: 'hello', sessionTtlMs: 1000 }));
    const single = await eventually(() => ding.delivered.find((d) => d.to === 'staff-di'), 'batchSend');
    assert.equal(single.via, 'batchSend');
    assert.equal(single.text, 'Hello from the bot');
    await ding.push(ding.textCallback({ conversationId: 'cid-group-2', group: true, staffId: 'staff-di', text: 'hello', sessionTtlMs: 1000 }));
    const group = await eventually(() => ding.delivered.find((d) => d.to === 'cid-group-2'), 'group send');
    assert.equal(group.via, 'groupSend');
    assert.equal(ding.stats.tokenRequests, 1, 'one token, cached in Redis, served both sends');
  });

  it('shortens a group reply to the documented 15,000-byte msgParam limit instead of losing it', async () => {
    await ding.push(ding.textCallback({ conversationId: 'cid-group-long', group: true, staffId: 'staff-di', text: 'manual', sessionTtlMs: 1000 }));
    const sent = await eventually(() => ding.delivered.find((d) => d.to === 'cid-group-long'), 'long group send');
    assert.equal(sent.via, 'groupSend');
    assert.ok(sent.text.endsWith('...'));
    assert.ok(sent.text.startsWith('钉钉钉'));
    const param = JSON.stringify({ content: sent.text });
    assert.ok(Buffer.byteLength(param) <= 15_000, `msgParam is ${Buffer.byteLength(param)} bytes`);
    assert.ok(Buffer.byteLength(param) > 14_900, 'cut at the limit, not far below it');
    assert.ok(!sent.text.includes('\uFFFD'), 'no broken character at the cut');
  });

  it('refreshes a refused access token once and retries', async () => {
    const before = ding.stats.tokenRequests;
    ding.expireTokens();
    await ding.push(ding.textCallback({ conversationId: 'cid-single-3', staffId: 'staff-ed', text: 'hello', sessionTtlMs: 1000 }));
    const sent = await eventually(() => ding.delivered.find((d) => d.to === 'staff-ed'), 'send after refresh');
    assert.equal(ding.stats.tokenRequests, before + 1);
    assert.equal(ding.stats.rejectedTokens, 1);
    assert.notEqual(sent.token, ding.delivered.find((d) => d.to === 'staff-di')!.token);
  });

  it('ignores a session webhook outside the allowed origins and replies through the OpenAPI', async () => {
    const payload = { ...ding.textCallback({ conversationId: 'cid-evil', staffId: 'staff-ann', text: 'hello' }), sessionWebhook: 'https://attacker.example/collect' };
    assert.equal((await ding.push(payload)).status, 200);
    const sent = await eventually(() => ding.delivered.find((d) => d.via === 'batchSend' && d.to === 'staff-ann'), 'OpenAPI reply');
    assert.equal(sent.text, 'Hello from the bot');
    assert.ok(gw.logs.some((l) => String(l.msg).startsWith('sessionWebhook outside sessionWebhookOrigins')));
  });

  it('dead-letters a reply to an unknown staffId after the webhook expired', async () => {
    await ding.push(ding.textCallback({ conversationId: 'cid-unknown', staffId: 'staff-gone', text: 'hello', sessionTtlMs: 1000 }));
    const failure = await eventually(() => gw.logs.find((l) => l.msg === 'delivery failed' && l.code === 'invalid_staff_id'), 'failure');
    assert.equal(failure.attempt, 1);
  });

  it('rejects malformed, incomplete and oversized bodies with 4xx', async () => {
    const malformed = await ding.push(null, { rawBody: '{"msgId": ' });
    assert.equal(malformed.status, 400);
    const incomplete = await ding.push({ msgtype: 'text', text: { content: 'x' } });
    assert.equal(incomplete.status, 400);
    assert.equal(((await incomplete.json()) as { error: string }).error, 'invalid_callback');
    const huge = await ding.push(ding.textCallback({ conversationId: 'cid-huge', staffId: 'staff-ann', text: 'x'.repeat(20_000) }));
    assert.equal(huge.status, 413);
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  });
});
