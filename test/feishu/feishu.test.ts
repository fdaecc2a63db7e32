/**
 * Feishu end to end: the real gateway + Redis, Feishu replaced by a loopback Open Platform that encrypts and signs
 * events and serves the token, bot-info and message APIs as documented.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { conversationIdFor } from '../../gateway/message.js';
import { startFeishuApi } from '../fakes/feishu-api.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';

const APP = { appId: 'cli_a1b2c3d4e5f6', appSecret: 'app-secret-value', encryptKey: 'test key', verificationToken: 'verification-token-1' };
const BOT_OPEN_ID = 'ou_bot_0001';
const enqueued = (logs: Array<Record<string, unknown>>) => logs.filter((l) => l.msg === 'enqueued').length;

describe('feishu channel end to end', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let feishu: Awaited<ReturnType<typeof startFeishuApi>>;
  let gw: TestGateway;

  before(async () => {
    redis = await startTestRedis();
    feishu = await startFeishuApi({ ...APP, botOpenId: BOT_OPEN_ID, chats: ['oc_p2p_1', 'oc_p2p_2', 'oc_p2p_3', 'oc_p2p_4', 'oc_p2p_5', 'oc_group_1'] });
    gw = await startTestGateway(
      {
        server: { bodyLimitBytes: 16_384 },
        channels: [
          { id: 'feishu', type: 'feishu', options: { ...APP, apiBaseUrl: feishu.url } },
          // The node SDK's encrypted challenge vector, on a channel configured with its key and token.
          { id: 'feishu-sdk', type: 'feishu', options: { appId: 'cli_x', appSecret: 's', encryptKey: 'mazhe.nerd', verificationToken: 'iRdCP2WwXNBXRM3mGLqhrgch3cn0gbT6', apiBaseUrl: feishu.url } },
        ],
        bot: {
          rules: [
            { id: 'hi', match: { regex: '^(hi|hello)' }, reply: 'Hello from the bot' },
            { id: 'refund', match: { keywords: ['refund'] }, reply: 'Refunds take 3 days' },
          ],
          fallback: 'fallback',
        },
      },
      redis.url,
    );
  });
  after(async () => {
    await gw?.stop();
    await feishu?.close();
    await redis?.stop();
  });

  it('answers the encrypted URL verification', async () => {
    const answer = await feishu.verifyRequestUrl(`${gw.url}/webhooks/feishu`);
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, { challenge: answer.challenge });
  });

  it("answers the node SDK's encrypted challenge vector", async () => {
    const res = await fetch(`${gw.url}/webhooks/feishu-sdk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        encrypt:
          'tT1xP+ovuc0T3b/rnZX3ax76exqAn0ANQ6/U45GcciC0mgNBc8JtvqOJGNAPMKpgRs2dVU1NYk9VDeqS8T4SYtU0hzNU54aS84WnxvZ3VFfDcy/RyABlNqlUiGyLDzFI0yxdCMT4KR/YEQXlt6nZi50KwRlZ+A75r645KesZuLMljezYyY8VeeXEVjPw35+e',
      }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { challenge: '5634b122-c042-4634-bc7f-b07a3c3e77ad' });
  });

  it('replies to an encrypted, signed p2p message in the same chat with a tenant token', async () => {
    const res = await feishu.push(feishu.envelope('im.message.receive_v1', feishu.textMessage({ chatId: 'oc_p2p_1', chatType: 'p2p', openId: 'ou_ann', text: 'hello' })));
    assert.equal(res.status, 200);
    const sent = await eventually(() => feishu.sent.find((m) => m.receiveId === 'oc_p2p_1'), 'reply in oc_p2p_1');
    assert.equal(sent.text, 'Hello from the bot');
    assert.equal(sent.receiveIdType, 'chat_id');
    assert.equal(sent.msgType, 'text');
    assert.equal(sent.uuid?.length, 26, 'the gateway message id is the send uuid (idempotent retries)');
    assert.equal(feishu.stats.tokenRequests, 1);
    const reference = await gw.gateway.conversations.reference(conversationIdFor('feishu', 'oc_p2p_1'));
    assert.equal(reference?.peerId, 'ou_ann');
  });

  it('refuses a forged signature, an unsigned event and a wrong verification token, queueing nothing', async () => {
    const before = enqueued(gw.logs);
    const payload = feishu.envelope('im.message.receive_v1', feishu.textMessage({ chatId: 'oc_p2p_2', chatType: 'p2p', openId: 'ou_eve', text: 'hello' }));
    const forged = await feishu.push(payload, { signature: 'a'.repeat(64) });
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: string }).error, 'bad_signature');
    const unsigned = await feishu.push(payload, { unsigned: true });
    assert.equal(unsigned.status, 401);
    assert.equal(((await unsigned.json()) as { error: string }).error, 'missing_signature');
    const wrongToken = await feishu.push({ ...payload, header: { ...payload.header, token: 'guess' } });
    assert.equal(wrongToken.status, 401);
    assert.equal(enqueued(gw.logs), before);
    assert.equal(feishu.sent.filter((m) => m.receiveId === 'oc_p2p_2').length, 0);
  });

  it('refuses a correctly signed event whose timestamp is older (or later) than the accepted window', async () => {
    const before = enqueued(gw.logs);
    const payload = feishu.envelope('im.message.receive_v1', feishu.textMessage({ chatId: 'oc_p2p_2', chatType: 'p2p', openId: 'ou_eve', text: 'hello' }));
    const now = Math.floor(Date.now() / 1000);
    for (const timestamp of [now - 30 * 86_400, now + 2 * 86_400]) {
      const replayed = await feishu.push(payload, { timestamp });
      assert.equal(replayed.status, 401);
      assert.equal(((await replayed.json()) as { error: string }).error, 'stale_timestamp');
    }
    assert.ok(gw.logs.some((l) => l.msg === 'Feishu event refused: X-Lark-Request-Timestamp outside the accepted window'));
    assert.equal(enqueued(gw.logs), before);
    // Feishu's own retries (up to 6 h later in the documented schedule) still pass.
    assert.equal((await feishu.push(payload, { timestamp: now - 7 * 3600 })).status, 200);
  });

  it('replies once when Feishu pushes the same event again', async () => {
    const payload = feishu.envelope('im.message.receive_v1', feishu.textMessage({ chatId: 'oc_p2p_3', chatType: 'p2p', openId: 'ou_bo', text: 'hi' }));
    assert.equal((await feishu.push(payload)).status, 200);
    assert.equal((await feishu.push(payload)).status, 200);
    await feishu.push(feishu.envelope('im.message.receive_v1', feishu.textMessage({ chatId: 'oc_p2p_3', chatType: 'p2p', openId: 'ou_bo', text: 'refund' })));
    await eventually(() => feishu.sent.some((m) => m.receiveId === 'oc_p2p_3' && m.text === 'Refunds take 3 days'), 'second reply');
    assert.equal(feishu.sent.filter((m) => m.receiveId === 'oc_p2p_3' && m.text === 'Hello from the bot').length, 1);
  });

  it('in a group, answers only when the bot is @-mentioned (bot id from /bot/v3/info)', async () => {
    const before = enqueued(gw.logs);
    const plain = feishu.textMessage({ chatId: 'oc_group_1', chatType: 'group', openId: 'ou_cy', text: 'hello all' });
    assert.equal((await feishu.push(feishu.envelope('im.message.receive_v1', plain))).status, 200);
    assert.equal(enqueued(gw.logs), before, 'an un-mentioned group message is acknowledged, not queued');
    const mentioned = feishu.textMessage({
      chatId: 'oc_group_1',
      chatType: 'group',
      openId: 'ou_cy',
      text: '@_user_1 hello',
      mentions: [{ key: '@_user_1', openId: BOT_OPEN_ID, name: 'Support bot' }],
    });
    assert.equal((await feishu.push(feishu.envelope('im.message.receive_v1', mentioned))).status, 200);
    const sent = await eventually(() => feishu.sent.find((m) => m.receiveId === 'oc_group_1'), 'group reply');
    assert.equal(sent.text, 'Hello from the bot', 'the @_user_1 placeholder was stripped before the bot saw it');
    assert.ok(feishu.requests.some((r) => r.url === '/open-apis/bot/v3/info'), 'the bot open_id was fetched, not configured');
  });

  it('refreshes an expired tenant_access_token once and retries the send', async () => {
    const tokensBefore = feishu.stats.tokenRequests;
    feishu.expireTokens();
    await feishu.push(feishu.envelope('im.message.receive_v1', feishu.textMessage({ chatId: 'oc_p2p_4', chatType: 'p2p', openId: 'ou_di', text: 'hello' })));
    const sent = await eventually(() => feishu.sent.find((m) => m.receiveId === 'oc_p2p_4'), 'reply after refresh');
    assert.equal(feishu.stats.tokenRequests, tokensBefore + 1, 'exactly one refresh');
    assert.equal(feishu.stats.rejectedTokens, 1, 'one refused call, then the retry with the new token');
    assert.notEqual(sent.token, feishu.sent[0]!.token);
    assert.ok(!gw.logs.some((l) => l.msg === 'delivery failed' && l.code === 99991663), 'the retry happened inside the same attempt');
  });

  it('pauses on 99991400 (frequency limit) and then delivers', async () => {
    feishu.rateLimit(1);
    await feishu.push(feishu.envelope('im.message.receive_v1', feishu.textMessage({ chatId: 'oc_p2p_5', chatType: 'p2p', openId: 'ou_ed', text: 'hello' })));
    await eventually(() => feishu.sent.find((m) => m.receiveId === 'oc_p2p_5'), 'reply after the rate limit');
    assert.ok(gw.logs.some((l) => l.msg === 'delivery failed' && l.code === 99991400));
  });

  it('dead-letters a send Feishu refuses for good (bot not in the chat)', async () => {
    await feishu.push(feishu.envelope('im.message.receive_v1', feishu.textMessage({ chatId: 'oc_gone', chatType: 'p2p', openId: 'ou_fay', text: 'hello' })));
    const failure = await eventually(() => gw.logs.find((l) => l.msg === 'delivery failed' && l.code === 230002), 'failure');
    assert.equal(failure.attempt, 1);
  });

  it('acknowledges other event types and messages from apps without queueing', async () => {
    const before = enqueued(gw.logs);
    assert.equal((await feishu.push(feishu.envelope('im.chat.member.bot.added_v1', { chat_id: 'oc_x' }))).status, 200);
    const fromApp = feishu.textMessage({ chatId: 'oc_p2p_1', chatType: 'p2p', openId: 'ou_app', text: 'hello', senderType: 'app' });
    assert.equal((await feishu.push(feishu.envelope('im.message.receive_v1', fromApp))).status, 200);
    assert.equal(enqueued(gw.logs), before);
  });

  it('rejects malformed, undecryptable, unknown and oversized bodies with 4xx', async () => {
    const malformed = await feishu.push(null, { rawBody: '{"encrypt": ' });
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { error: string }).error, 'malformed_json');
    const garbage = await feishu.push(null, { rawBody: JSON.stringify({ encrypt: Buffer.alloc(48, 7).toString('base64') }) });
    assert.equal(garbage.status, 400);
    const unknown = await feishu.push({ hello: 'world' });
    assert.equal(unknown.status, 400);
    const invalid = await feishu.push(feishu.envelope('im.message.receive_v1', { sender: {} }));
    assert.equal(invalid.status, 400);
    const huge = await feishu.push(feishu.envelope('im.message.receive_v1', feishu.textMessage({ chatId: 'oc_p2p_1', chatType: 'p2p', openId: 'ou_ann', text: 'x'.repeat(20_000) })));
    assert.equal(huge.status, 413);
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  });
});
