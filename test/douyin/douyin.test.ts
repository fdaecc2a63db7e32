import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { decodeDouyinEvent, douyinConversationId } from '../../adapters/douyin/decode.js';
import { douyinSignature, verifyDouyinSignature } from '../../adapters/douyin/signature.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { startFakeDouyin, type FakeDouyin } from '../fakes/douyin-api.js';
import { inboundJobCount, testBot } from '../wecom/helpers.js';

const vectors = JSON.parse(readFileSync(new URL('../fixtures/wechat/vectors.json', import.meta.url), 'utf8')) as {
  douyin: Array<{ id: string; inputs: Record<string, string>; expected: Record<string, string> }>;
};
const CLIENT_KEY = 'awtestclient01';
const CLIENT_SECRET = 'douyin-client-secret-0123456789';
const ACCOUNT = 'enterprise-open-id-0001';
const REFRESH = 'rft.refresh-token-0001';
const channel = { id: 'douyin', type: 'douyin' };

/** An im_receive_msg webhook as documented (content as a JSON string, the form most samples show). */
function receive(user: string, text: string, serverMessageId: string, opts: { contentAsObject?: boolean } = {}) {
  const content = {
    conversation_short_id: `conv-${user}`,
    server_message_id: serverMessageId,
    conversation_type: 1,
    message_type: 'text',
    text,
    source: '',
    create_time: 1700000000123,
    user_infos: [{ open_id: user, nick_name: 'Xiao Ming', avatar: 'https://p.douyinpic.com/a.png' }],
  };
  return {
    event: 'im_receive_msg',
    client_key: CLIENT_KEY,
    from_user_id: user,
    to_user_id: ACCOUNT,
    log_id: `log-${serverMessageId}`,
    content: opts.contentAsObject ? content : JSON.stringify(content),
  };
}

describe('douyin signature and decode (pure)', () => {
  it('matches the X-Douyin-Signature vector', () => {
    const v = vectors.douyin.find((x) => x.id === 'douyin_webhook_signature_self_generated')!;
    assert.equal(douyinSignature(v.inputs.client_secret!, v.inputs.raw_body!), v.expected.x_douyin_signature);
    assert.ok(verifyDouyinSignature(v.inputs.client_secret!, Buffer.from(v.inputs.raw_body!), v.expected.x_douyin_signature));
    assert.ok(!verifyDouyinSignature(v.inputs.client_secret!, Buffer.from(v.inputs.raw_body! + ' '), v.expected.x_douyin_signature));
  });

  it('decodes content given as a string or an object, keyed by event + server_message_id', () => {
    for (const contentAsObject of [false, true]) {
      const d = decodeDouyinEvent(receive('user-1', '你好', 'srv-1', { contentAsObject }), channel, { clientKey: CLIENT_KEY }, 1);
      assert.ok(d.kind === 'message');
      assert.deepEqual(d.message.content, { type: 'text', text: '你好' });
      assert.equal(d.message.channelMessageId, 'im_receive_msg:srv-1');
      assert.equal(d.message.sender.name, 'Xiao Ming');
      assert.equal(d.message.timestamp, 1700000000123);
      assert.equal(d.conversationShortId, 'conv-user-1');
    }
  });

  it('maps received image and card messages, and never feeds sent messages back', () => {
    const image = decodeDouyinEvent({ ...receive('u', '', 's2'), content: { message_type: 'image', server_message_id: 's2' } }, channel, { clientKey: CLIENT_KEY }, 1);
    assert.ok(image.kind === 'message' && image.message.content.type === 'image');
    const card = decodeDouyinEvent({ ...receive('u', '', 's3'), content: { message_type: 'retain_consult_card', server_message_id: 's3', card_id: 'x' } }, channel, { clientKey: CLIENT_KEY }, 1);
    assert.ok(card.kind === 'message');
    assert.deepEqual(card.message.content, { type: 'event', event: 'retain_consult_card', data: { message_type: 'retain_consult_card', server_message_id: 's3', card_id: 'x' } });
    const own = decodeDouyinEvent({ event: 'im_send_msg', from_user_id: ACCOUNT, to_user_id: 'u', content: { source: CLIENT_KEY } }, channel, { clientKey: CLIENT_KEY }, 1);
    assert.equal(own.kind, 'skip');
  });

  it('ingests only received messages: enter, recall, authorisation and other events carry nothing to answer', () => {
    const events = [
      { event: 'im_enter_direct_msg', from_user_id: 'u', to_user_id: ACCOUNT, log_id: 'l1', content: '{"conversation_short_id":"c"}' },
      { event: 'im_recall_msg', from_user_id: 'u', to_user_id: ACCOUNT, log_id: 'l2', content: '{"server_message_id":"s1"}' },
      { event: 'authorize', from_user_id: 'u', log_id: 'l3', content: { scopes: 'im.direct_message' } },
      { event: 'unauthorize', from_user_id: 'u', log_id: 'l4', content: { scopes: 'im.direct_message' } },
      { event: 'contract_authorize', from_user_id: 'u', log_id: 'l5', content: {} },
      { event: 'im_group_receive_msg', from_user_id: 'u', to_user_id: ACCOUNT, log_id: 'l6', content: { server_message_id: 's9', message_type: 'text', text: 'hi' } },
    ];
    for (const event of events) {
      const decoded = decodeDouyinEvent(event, channel, { clientKey: CLIENT_KEY }, 1);
      assert.equal(decoded.kind, 'skip', event.event);
    }
    const unauthorize = decodeDouyinEvent(events[3]!, channel, { clientKey: CLIENT_KEY }, 1);
    assert.ok(unauthorize.kind === 'skip' && unauthorize.level === 'warn');
  });

  it('cuts a text longer than 20,000 characters instead of refusing the message', () => {
    const d = decodeDouyinEvent(receive('u', 'x'.repeat(25_000), 's4'), channel, { clientKey: CLIENT_KEY }, 1);
    assert.ok(d.kind === 'message' && d.message.content.type === 'text');
    assert.equal(d.message.content.text.length, 20_000);
  });
});

describe('douyin channel end to end (real gateway, Redis, loopback Douyin OpenAPI)', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let fake: FakeDouyin;
  let gw: TestGateway;
  const failures: Array<{ code?: string | number; reason?: string }> = [];

  before(async () => {
    redis = await startTestRedis();
    fake = await startFakeDouyin({ clientKey: CLIENT_KEY, refreshToken: REFRESH, openId: ACCOUNT });
    gw = await startTestGateway(
      {
        pipeline: { deliveryAttempts: 3 },
        channels: [{ id: 'douyin', type: 'douyin', options: { clientKey: CLIENT_KEY, clientSecret: CLIENT_SECRET, accountOpenId: ACCOUNT, refreshToken: REFRESH, apiBaseUrl: fake.url } }],
      },
      redis.url,
      { bot: testBot() },
    );
    gw.gateway.events.on('message.delivery_failed', (e) => failures.push({ code: e.code, reason: e.reason }));
  });
  after(async () => {
    await gw?.stop();
    await fake?.close();
    await redis?.stop();
  });

  const post = (body: unknown, opts: { secret?: string; raw?: string; msgId?: string } = {}) => {
    const raw = opts.raw ?? JSON.stringify(body);
    return fetch(`${gw.url}/webhooks/douyin`, {
      method: 'POST',
      body: raw,
      headers: { 'content-type': 'application/json', 'x-douyin-signature': douyinSignature(opts.secret ?? CLIENT_SECRET, raw), ...(opts.msgId && { 'msg-id': opts.msgId }) },
    });
  };
  const repliesTo = (user: string) => fake.sent.filter((s) => s.body.to_user_id === user);

  it('answers the verify_webhook challenge with the same number', async () => {
    const res = await post({ event: 'verify_webhook', client_key: CLIENT_KEY, content: { challenge: 12345 } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '{"challenge":12345}');
  });

  it('replies to a private message through /im/send/msg/ answering that message', async () => {
    const res = await post(receive('user-a', 'hello douyin', 'srv-a1'), { msgId: 'push-1' });
    assert.equal(res.status, 200);
    const sent = await eventually(() => repliesTo('user-a')[0], 'reply');
    assert.deepEqual(sent.query, { open_id: ACCOUNT });
    assert.deepEqual(sent.body, {
      msg_id: 'srv-a1',
      conversation_id: 'conv-user-a',
      to_user_id: 'user-a',
      scene: 'im_reply_msg',
      content: { msg_type: 1, text: { text: 'echo: hello douyin' } },
    });
  });

  it('answers a retried push only once', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await post(receive('user-b', 'again', 'srv-b1'), { msgId: 'push-b' })).status, 200);
    await eventually(() => repliesTo('user-b').length > 0, 'reply');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(repliesTo('user-b').length, 1);
  });

  it('refuses a forged or missing signature with 401 and queues nothing', async () => {
    const before = await inboundJobCount(gw);
    assert.equal((await post(receive('user-x', 'x', 'srv-x'), { secret: 'wrong-secret-0123456789' })).status, 401);
    const unsigned = await fetch(`${gw.url}/webhooks/douyin`, { method: 'POST', body: JSON.stringify(receive('user-x', 'x', 'srv-x')) });
    assert.equal(unsigned.status, 401);
    assert.equal(await inboundJobCount(gw), before);
  });

  it('refuses malformed and oversized JSON with a 4xx and keeps serving', async () => {
    const malformed = await post(undefined, { raw: '{"event": "im_receive_msg", ' });
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { error: string }).error, 'malformed_json');
    const noEvent = await post([1, 2, 3]);
    assert.equal(noEvent.status, 400);
    const huge = await post({ event: 'im_receive_msg', pad: 'x'.repeat(70 * 1024) });
    assert.equal(huge.status, 413);
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  });

  it('ignores its own replies echoed back as im_send_msg', async () => {
    const before = await inboundJobCount(gw);
    const res = await post({ event: 'im_send_msg', client_key: CLIENT_KEY, from_user_id: ACCOUNT, to_user_id: 'user-a', content: JSON.stringify({ source: CLIENT_KEY, server_message_id: 'echo-1' }) });
    assert.equal(res.status, 200);
    assert.equal(await inboundJobCount(gw), before);
  });

  it('refreshes an expired access token once and retries', async () => {
    const refreshes = fake.counters.refresh;
    fake.expireTokens();
    await post(receive('user-c', 'after expiry', 'srv-c1'));
    const sent = await eventually(() => repliesTo('user-c')[0], 'reply after refresh');
    assert.equal(sent.body.content.text.text, 'echo: after expiry');
    assert.equal(fake.counters.refresh, refreshes + 1);
  });

  it('keeps answering the latest message after a recall or an enter event', async () => {
    await post(receive('user-r', 'first', 'srv-r1'));
    await eventually(() => repliesTo('user-r')[0], 'first reply');
    const before = await inboundJobCount(gw);
    const recall = await post({ event: 'im_recall_msg', client_key: CLIENT_KEY, from_user_id: 'user-r', to_user_id: ACCOUNT, log_id: 'l-r2', content: JSON.stringify({ server_message_id: 'srv-r1' }) });
    assert.equal(recall.status, 200);
    const enter = await post({ event: 'im_enter_direct_msg', client_key: CLIENT_KEY, from_user_id: 'user-r', to_user_id: ACCOUNT, log_id: 'l-r3', content: JSON.stringify({ conversation_short_id: 'conv-user-r' }) });
    assert.equal(enter.status, 200);
    assert.equal(await inboundJobCount(gw), before);
    const conversation = douyinConversationId('douyin', ACCOUNT, 'user-r');
    assert.equal((await gw.gateway.conversations.reference(conversation))?.context.replyToMsgId, 'srv-r1');
    await gw.gateway.pipeline.sendToConversation(conversation, { type: 'text', text: 'agent answer' }, { id: 'agent-1', role: 'agent' });
    const answer = await eventually(() => repliesTo('user-r').find((s) => s.body.content.text.text === 'agent answer'), 'agent answer');
    assert.equal(answer.body.msg_id, 'srv-r1');
  });

  it('acknowledges a revoked authorisation without queuing it, and says so in a warning', async () => {
    const before = await inboundJobCount(gw);
    const res = await post({ event: 'unauthorize', client_key: CLIENT_KEY, from_user_id: ACCOUNT, log_id: 'l-u1', content: { scopes: 'im.direct_message' } });
    assert.equal(res.status, 200);
    assert.equal(await inboundJobCount(gw), before);
    assert.ok(gw.logs.some((l) => l.level === 40 && l.event === 'unauthorize'));
  });

  it('never writes the client secret, refresh token or access token into a log line', () => {
    const all = JSON.stringify(gw.logs);
    for (const secret of [CLIENT_SECRET, REFRESH, 'act.']) assert.ok(!all.includes(secret), secret);
  });

  it('retries a 5xx and system-busy answer, fails fast on a parameter error', async () => {
    fake.failNext('/im/send/msg/', { status: 503 }, { error_code: 2100004, description: 'system busy' });
    await post(receive('user-d', 'flaky', 'srv-d1'));
    await eventually(() => repliesTo('user-d')[0], 'reply after retries');
    fake.failNext('/im/send/msg/', { error_code: 2100005, description: 'invalid parameter' });
    await post(receive('user-e', 'bad', 'srv-e1'));
    await eventually(() => failures.some((f) => f.code === 2100005), 'fail fast');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(gw.logs.filter((l) => l.code === 2100005 && l.msg === 'delivery failed').length, 1, 'one attempt only');
  });
});
