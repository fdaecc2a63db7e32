/**
 * What a failure inside the inbound stage may and may not do: a retried message keeps its conversation's order, a
 * message the bot answered is never answered twice, a customer message for the helpdesk is never dropped, and a
 * message that cannot be delivered is reported. Failures are injected by making one call fail once (a Redis error
 * as ioredis would raise it); everything else is real: Redis, BullMQ, the HTTP callbacks and the webhooks.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { signedHeaders } from '../adapters/app/signature.js';
import type { Bot } from '../bot/types.js';
import { eventually, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startRecorder } from './helpers/http-recorder.js';
import { startTestRedis } from './helpers/redis.js';

const SECRET = 'app-secret-0123456789abcdef';
const API_KEY = 'api-key-0123456789abcdef';

/** Replaces `obj[name]` with a version whose first call rejects with `message`. */
function failOnce<T extends object>(obj: T, name: keyof T & string, message: string): { calls: () => number } {
  const original = (obj[name] as (...args: unknown[]) => Promise<unknown>).bind(obj);
  let calls = 0;
  (obj as Record<string, unknown>)[name] = (...args: unknown[]) => (calls++ === 0 ? Promise.reject(new Error(message)) : original(...args));
  return { calls: () => calls };
}

describe('pipeline recovery: order, no double answers, nothing lost for the helpdesk', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let callback: Awaited<ReturnType<typeof startRecorder>>;
  let helpdesk: Awaited<ReturnType<typeof startRecorder>>;
  const gateways: TestGateway[] = [];
  let prefixes = 0;

  before(async () => {
    redis = await startTestRedis();
    callback = await startRecorder();
    helpdesk = await startRecorder();
  });
  after(async () => {
    for (const gw of gateways) await gw.stop();
    await callback.close();
    await helpdesk.close();
    await redis.stop();
  });

  async function start(bot: Bot, extra: Record<string, unknown> = {}): Promise<TestGateway> {
    const gw = await startTestGateway(
      {
        pipeline: { shards: 1, inboundAttempts: 3, deliveryBackoffMs: 100 },
        api: { keys: [{ id: 'desk', key: API_KEY, scopes: ['reply', 'read'] }] },
        webhooks: {
          endpoints: [
            {
              id: 'desk',
              url: `${helpdesk.url}/hook`,
              secret: `whsec_${randomBytes(32).toString('base64')}`,
              events: ['message.created', 'conversation.handoff_requested', 'conversation.state_changed', 'message.delivery_failed'],
            },
          ],
        },
        channels: [{ id: 'app', type: 'app', options: { apps: [{ id: 'shop', secret: SECRET, callbackUrl: `${callback.url}/cb` }] } }],
        ...extra,
      },
      redis.url,
      { bot, prefix: `rec${prefixes++}` },
    );
    gateways.push(gw);
    return gw;
  }

  async function send(gw: TestGateway, userId: string, messageId: string, text: string): Promise<{ conversationId: string }> {
    const body = JSON.stringify({ userId, messageId, text });
    const res = await fetch(`${gw.url}/webhooks/app/messages`, { method: 'POST', body, headers: signedHeaders('shop', SECRET, body) });
    assert.equal(res.status, 202);
    return (await res.json()) as { conversationId: string };
  }

  const repliesTo = (userId: string) =>
    callback.requests.map((r) => r.json() as { userId: string; message: { content: { text: string } } }).filter((b) => b.userId === userId).map((b) => b.message.content.text);
  const helpdeskGot = (type: string, conversationId: string) =>
    helpdesk.requests.map((r) => r.json() as { type: string; data: Record<string, any> }).filter((e) => e.type === type && e.data.conversationId === conversationId);

  it('a message that fails in the bot is tried again before the conversation’s next message, counted once', async () => {
    let crashed = false;
    const bot: Bot = {
      async decide({ message }) {
        const text = message.content.type === 'text' ? message.content.text : '';
        if (text === 'A' && !crashed) {
          crashed = true;
          throw new Error('model crashed once');
        }
        return { replies: [{ type: 'text', text: `echo:${text}` }], trace: { stage: 'rule' } };
      },
    };
    const gw = await start(bot);
    const { conversationId } = await send(gw, 'order-1', 'm-a', 'A');
    await eventually(() => crashed, 'the first attempt failed');
    await send(gw, 'order-1', 'm-b', 'B'); // arrives while A waits for its retry
    await eventually(() => repliesTo('order-1').length === 2, 'both replies');
    assert.deepEqual(repliesTo('order-1'), ['echo:A', 'echo:B']);
    const conversation = await gw.gateway.conversations.get(conversationId);
    assert.equal(conversation?.turns, 2, 'the retried message is one turn');
    const transcript = await gw.gateway.transcripts.list(conversationId);
    assert.deepEqual(
      transcript.map((m) => `${m.direction}:${m.content.type === 'text' ? m.content.text : ''}`),
      ['in:A', 'out:echo:A', 'in:B', 'out:echo:B'],
    );
  });

  it('a failure after the bot answered does not answer again; the hand-off it asked for is still made', async () => {
    let decides = 0;
    const bot: Bot = {
      async decide() {
        decides++;
        return { replies: [{ type: 'text', text: 'One moment, a human will take over' }], handoff: { reason: 'asked' }, trace: { stage: 'rule' } };
      },
    };
    const gw = await start(bot);
    const transition = failOnce(gw.gateway.conversations, 'transition', 'Connection is closed.');
    const { conversationId } = await send(gw, 'dup-1', 'm-1', 'human please');
    await eventually(() => helpdeskGot('conversation.handoff_requested', conversationId).length === 1, 'the hand-off webhook');
    assert.equal(await gw.gateway.conversations.state(conversationId), 'handoff_pending');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(transition.calls(), 2, 'the hand-off was tried again');
    assert.equal(decides, 1, 'the bot ran once');
    assert.deepEqual(repliesTo('dup-1'), ['One moment, a human will take over']);
    const conversation = await gw.gateway.conversations.get(conversationId);
    assert.equal(conversation?.turns, 1);
  });

  it('a hand-off whose state_changed event was not stored tells it on the retry', async () => {
    const bot: Bot = { async decide() { return { replies: [{ type: 'text', text: 'a human will take over' }], handoff: { reason: 'asked' }, trace: { stage: 'rule' } }; } };
    const gw = await start(bot);
    failOnce(gw.gateway.handoff.store, 'saveEvent', 'Connection is closed.'); // right after the state change
    const { conversationId } = await send(gw, 'changed-1', 'm-1', 'human please');
    await eventually(() => helpdeskGot('conversation.handoff_requested', conversationId).length === 1, 'handoff_requested');
    const [changed] = await eventually(() => (helpdeskGot('conversation.state_changed', conversationId).length > 0 ? helpdeskGot('conversation.state_changed', conversationId) : undefined), 'state_changed');
    assert.equal(changed!.data.change.to, 'handoff_pending');
    assert.equal(changed!.data.change.by, 'bot');
    assert.deepEqual(repliesTo('changed-1'), ['a human will take over']);
  });

  it('a customer message for a human reaches the helpdesk although storing its event failed once', async () => {
    const bot: Bot = { async decide() { return { replies: [{ type: 'text', text: 'hi' }], trace: { stage: 'rule' } }; } };
    const gw = await start(bot);
    const { conversationId } = await send(gw, 'lost-1', 'm-0', 'hello');
    await eventually(() => repliesTo('lost-1').length === 1, 'the bot answered');
    await gw.gateway.conversations.transition(conversationId, 'agent', 'agent:ann', 'picked up');
    failOnce(gw.gateway.handoff.store, 'saveEvent', 'READONLY You can\'t write against a read only replica.');
    await send(gw, 'lost-1', 'm-1', 'my order never arrived');
    await send(gw, 'lost-1', 'm-2', 'hello??');
    await eventually(() => helpdeskGot('message.created', conversationId).length === 2, 'both messages at the helpdesk');
    assert.deepEqual(
      helpdeskGot('message.created', conversationId).map((e) => e.data.message.content.text),
      ['my order never arrived', 'hello??'],
    );
    assert.equal(await gw.gateway.pipeline.queueAt('in', 0).getFailedCount(), 0);
  });

  it('a bot reply longer than a message holds is cut and delivered, not dead-lettered', async () => {
    const bot: Bot = { async decide({ message }) { return { replies: [{ type: 'text', text: `You said: ${message.content.type === 'text' ? message.content.text : ''}` }], trace: { stage: 'rule' } }; } };
    const gw = await start(bot);
    // The reply is "You said: " (10 units) + 19,989 + the emoji's two: 20,001 units, cut inside the surrogate pair.
    await send(gw, 'long-1', 'm-1', '长'.repeat(19_989) + '😀');
    const [reply] = await eventually(() => (repliesTo('long-1').length === 1 ? repliesTo('long-1') : undefined), 'the reply');
    assert.equal(reply!.length, 19_999, 'cut at 20,000 units, the orphaned half of the pair dropped');
    assert.ok(reply!.startsWith('You said: 长'));
    assert.equal(await gw.gateway.pipeline.queueAt('in', 0).getFailedCount(), 0);
  });

  it('an agent reply an outbound hook blocks is reported as failed, to the API and the helpdesk', async () => {
    const bot: Bot = { async decide() { return { replies: [], handoff: { reason: 'asked' }, trace: { stage: 'rule' } }; } };
    const gw = await start(bot);
    gw.gateway.hooks.use({
      name: 'no-swearing',
      beforeSend: (message) => (message.content.type === 'text' && message.content.text.includes('damn') ? { blocked: 'listed word' } : { message }),
    });
    const { conversationId } = await send(gw, 'blocked-1', 'm-1', 'human');
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'handoff_pending', 'hand-off');
    const res = await fetch(`${gw.url}/v1/conversations/${conversationId}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: { name: 'Ann' }, content: { type: 'text', text: 'damn printer, sorry for the wait' } }),
    });
    assert.equal(res.status, 202);
    const { statusUrl } = (await res.json()) as { statusUrl: string };
    const failed = await eventually(() => helpdeskGot('message.delivery_failed', conversationId)[0], 'the delivery_failed webhook');
    assert.match(failed.data.error, /blocked by/);
    const status = await eventually(async () => {
      const body = (await (await fetch(`${gw.url}${statusUrl}`, { headers: { authorization: `Bearer ${API_KEY}` } })).json()) as { status: string };
      return body.status === 'failed' ? body : undefined;
    }, 'the status says failed');
    assert.equal(status.status, 'failed');
  });
});
