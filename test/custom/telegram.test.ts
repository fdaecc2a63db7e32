/**
 * config/examples/telegram.yaml, end to end: the real gateway and Redis, Telegram replaced by a loopback Bot API
 * that delivers Updates to the webhook and accepts sendMessage as documented.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { conversationIdFor } from '../../gateway/message.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { startTelegramApi } from '../fakes/telegram-api.js';
import { enqueuedCount, loadExample } from './example-config.js';

const BOT_TOKEN = '123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11';
const SECRET = 'webhook_secret-0123456789';

let updateId = 500_000;
const textUpdate = (chatId: number, text: string, from = { id: chatId, is_bot: false, first_name: 'Ann', last_name: 'Lee' }) => ({
  update_id: ++updateId,
  message: { message_id: updateId, from, chat: { id: chatId, type: 'private', first_name: 'Ann' }, date: Math.floor(Date.now() / 1000), text },
});

describe('custom channel: config/examples/telegram.yaml against a Telegram Bot API fake', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let telegram: Awaited<ReturnType<typeof startTelegramApi>>;
  let gw: TestGateway;
  const failures: Array<{ conversationId: string; code?: string | number; reason?: string }> = [];
  const postTo = (channel: string, update: unknown) =>
    fetch(`${gw.url}/webhooks/${channel}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': SECRET }, body: JSON.stringify(update) });

  before(async () => {
    redis = await startTestRedis();
    telegram = await startTelegramApi({ token: BOT_TOKEN, knownChats: [42, 43, 44, 45, 46, 47, 48, 49, -1001] });
    const config = loadExample('telegram', {
      TELEGRAM_API_BASE_URL: telegram.url,
      TELEGRAM_BOT_TOKEN: BOT_TOKEN,
      TELEGRAM_WEBHOOK_SECRET: SECRET,
    });
    // The same example as a second channel, with a reply window and a messageId expression that fails on
    // Telegram's numeric message_id ($substring wants a string).
    const example = (config.channels as Array<{ id: string; options: Record<string, any> }>)[0]!;
    const variant = {
      ...example,
      id: 'telegram-variant',
      options: {
        ...example.options,
        mapping: { ...example.options.mapping, replyWindowSeconds: 3600 },
        send: { ...example.options.send, messageId: '$substring(result.message_id, 0, 3)' },
      },
    };
    gw = await startTestGateway({ ...config, channels: [example, variant] as typeof config.channels, server: { bodyLimitBytes: 8192 } }, redis.url);
    gw.gateway.events.on('message.delivery_failed', (e) => failures.push({ conversationId: e.conversationId, code: e.code, reason: e.reason }));
    // What an operator does once: setWebhook with the secret token.
    const set = await fetch(`${telegram.url}/bot${BOT_TOKEN}/setWebhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${gw.url}/webhooks/telegram`, secret_token: SECRET }),
    });
    assert.equal(set.status, 200);
  });
  after(async () => {
    await gw?.stop();
    await telegram?.close();
    await redis?.stop();
  });

  it('answers a private text message with sendMessage to the same chat', async () => {
    const res = await telegram.pushUpdate(textUpdate(42, 'hello bot'));
    assert.equal(res.status, 200);
    const sent = await eventually(() => telegram.sent.find((m) => String(m.chat_id) === '42'), 'sendMessage to chat 42');
    assert.match(sent.text, /^Hello! Ask me about your order/);
    const request = telegram.requests.find((r) => r.url === `/bot${BOT_TOKEN}/sendMessage`)!;
    assert.equal(request.method, 'POST');
    assert.match(String(request.headers['content-type']), /application\/json/);
  });

  it('refuses an update without the right secret token header, and queues nothing', async () => {
    const before = enqueuedCount(gw.logs);
    const forged = await telegram.pushUpdate(textUpdate(43, 'hello'), 'not-the-secret');
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: string }).error, 'bad_signature');
    const missing = await fetch(`${gw.url}/webhooks/telegram`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(textUpdate(43, 'hello')) });
    assert.equal(missing.status, 401);
    assert.equal(enqueuedCount(gw.logs), before);
    assert.equal(telegram.sent.filter((m) => String(m.chat_id) === '43').length, 0);
  });

  it('replies once to an update Telegram delivers twice', async () => {
    const update = textUpdate(44, 'hi');
    assert.equal((await telegram.pushUpdate(update)).status, 200);
    assert.equal((await telegram.pushUpdate(update)).status, 200);
    // A later message in the same chat is handled after the first (one shard per conversation): when its reply is
    // there, a duplicate reply would be too.
    await telegram.pushUpdate(textUpdate(44, 'refund please'));
    await eventually(() => telegram.sent.some((m) => String(m.chat_id) === '44' && /Returns are free/.test(m.text)), 'second reply');
    assert.equal(telegram.sent.filter((m) => String(m.chat_id) === '44' && /^Hello!/.test(m.text)).length, 1);
  });

  it('acknowledges updates that are not customer messages without queueing them', async () => {
    const before = enqueuedCount(gw.logs);
    const edited = { update_id: ++updateId, edited_message: { message_id: 1, chat: { id: 45, type: 'private' }, date: 1, edit_date: 2, text: 'x' } };
    assert.equal((await telegram.pushUpdate(edited)).status, 200);
    const fromBot = textUpdate(45, 'hi', { id: 999, is_bot: true, first_name: 'OtherBot', last_name: '' });
    assert.equal((await telegram.pushUpdate(fromBot)).status, 200);
    assert.equal(enqueuedCount(gw.logs), before);
  });

  it('maps a photo to image content and still answers', async () => {
    const update = {
      update_id: ++updateId,
      message: {
        message_id: 7,
        from: { id: 46, is_bot: false, first_name: 'Bo' },
        chat: { id: 46, type: 'private' },
        date: Math.floor(Date.now() / 1000),
        photo: [
          { file_id: 'small-id', file_unique_id: 's', width: 90, height: 90 },
          { file_id: 'large-id', file_unique_id: 'l', width: 1280, height: 1280 },
        ],
        caption: 'my parcel',
      },
    };
    assert.equal((await telegram.pushUpdate(update)).status, 200);
    await eventually(() => telegram.sent.some((m) => String(m.chat_id) === '46'), 'reply to the photo');
    const conversationId = conversationIdFor('telegram', '46');
    const [inbound] = await gw.gateway.transcripts.list(conversationId);
    assert.deepEqual(inbound!.content, { type: 'image', mediaId: 'large-id', caption: 'my parcel' });
    assert.deepEqual(inbound!.sender, { id: '46', name: 'Bo', role: 'customer' });
    const reference = await gw.gateway.conversations.reference(conversationId);
    assert.equal(reference?.threadId, '46');
    assert.equal(reference?.context.chatType, 'private');
  });

  it('answers a rate limit (429 + retry_after) by waiting and delivering once', async () => {
    telegram.rateLimit(1);
    await telegram.pushUpdate(textUpdate(-1001, 'human'));
    const sent = await eventually(() => telegram.sent.find((m) => String(m.chat_id) === '-1001'), 'delivery after the rate limit');
    assert.match(sent.text, /connecting you with a colleague/);
    assert.ok(gw.logs.some((l) => l.msg === 'delivery failed' && l.code === '429 Too Many Requests: retry after 1'));
  });

  it('rejects malformed and oversized bodies with 4xx', async () => {
    const headers = { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': SECRET };
    const malformed = await fetch(`${gw.url}/webhooks/telegram`, { method: 'POST', headers, body: '{"update_id": 1, "message": ' });
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { error: string }).error, 'malformed_json');
    const huge = await fetch(`${gw.url}/webhooks/telegram`, { method: 'POST', headers, body: JSON.stringify(textUpdate(42, 'x'.repeat(20_000))) });
    assert.equal(huge.status, 413);
    const notObject = await fetch(`${gw.url}/webhooks/telegram`, { method: 'POST', headers, body: '[1,2]' });
    assert.equal(notObject.status, 400);
    // Still alive.
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  });

  it('refuses with 422 naming the field an update on which a mapping expression fails, and keeps serving', async () => {
    const before = enqueuedCount(gw.logs);
    const update = textUpdate(47, 'hello');
    const res = await telegram.pushUpdate({ ...update, message: { ...update.message, date: '1700000000x' } });
    assert.equal(res.status, 422);
    const answer = (await res.json()) as { error: string; message: string };
    assert.equal(answer.error, 'expression_failed');
    assert.match(answer.message, /^mapping\.timestamp: message\.date \* 1000 failed: /);
    assert.ok(gw.logs.some((l) => l.field === 'mapping.timestamp' && l.level === 40));
    assert.equal(enqueuedCount(gw.logs), before);
    assert.equal((await telegram.pushUpdate(textUpdate(47, 'hello'))).status, 200);
  });

  it('sends once when an expression fails on the answer of a request that went out', async () => {
    assert.equal((await postTo('telegram-variant', textUpdate(48, 'hello'))).status, 200);
    await eventually(() => gw.logs.some((l) => l.field === 'send.messageId'), 'the failing messageId logged');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(telegram.sent.filter((m) => String(m.chat_id) === '48').length, 1);
    assert.ok(!failures.some((f) => f.conversationId === conversationIdFor('telegram-variant', '48')));
  });

  it('refuses replies once mapping.replyWindowSeconds has passed since the customer wrote', async () => {
    const update = textUpdate(49, 'hello');
    // Written two hours ago (delivered late): the one-hour window is closed.
    assert.equal((await postTo('telegram-variant', { ...update, message: { ...update.message, date: update.message.date - 7200 } })).status, 200);
    const failure = await eventually(() => failures.find((f) => f.conversationId === conversationIdFor('telegram-variant', '49')), 'delivery failure');
    assert.equal(failure.reason, 'reply_window_expired');
    assert.equal(failure.code, 'reply_window_expired');
    assert.equal(telegram.sent.filter((m) => String(m.chat_id) === '49').length, 0);
  });
});
