import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signedHeaders } from '../../adapters/app/signature.js';
import type { Bot } from '../../bot/types.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startRecorder } from '../helpers/http-recorder.js';
import { startTestRedis } from '../helpers/redis.js';
import { newSecret, startWebhookReceiver } from './helpers.js';

const APP_SECRET = 'app-secret-0123456789abcdef';
const SECRET = newSecret();

/** Hands off on "human", throws on "crash", echoes otherwise. */
const bot: Bot = {
  async decide({ message }) {
    const text = message.content.type === 'text' ? message.content.text : '';
    if (text.includes('crash')) throw new Error('model server unreachable');
    if (text.includes('human')) return { replies: [{ type: 'text', text: 'One moment' }], handoff: { reason: 'asked', team: 'care' }, trace: { stage: 'rule' } };
    return { replies: [{ type: 'text', text: `echo:${text}` }], trace: { stage: 'rule' } };
  },
};

describe('conversation lifecycle: pick-up timeout, idle close, bot failure', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let callback: Awaited<ReturnType<typeof startRecorder>>;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;

  before(async () => {
    redis = await startTestRedis();
    callback = await startRecorder();
    receiver = await startWebhookReceiver(SECRET);
    gw = await startTestGateway(
      {
        channels: [{ id: 'app', type: 'app', options: { apps: [{ id: 'shop', secret: APP_SECRET, callbackUrl: `${callback.url}/replies` }] } }],
        handoff: { pickupTimeoutSeconds: 0.5, pickupTimeoutMessage: 'Sorry, everyone is busy', idleCloseSeconds: 1.5, idleSweepSeconds: 0.2 },
        webhooks: { endpoints: [{ id: 'desk', url: `${receiver.url}/hook`, secret: SECRET }], backoffBaseMs: 40, backoffMaxMs: 150 },
      },
      redis.url,
      { bot },
    );
  });
  after(async () => {
    await gw?.stop();
    await callback?.close();
    await receiver?.close();
    await redis?.stop();
  });

  async function say(userId: string, messageId: string, text: string): Promise<string> {
    const body = JSON.stringify({ userId, messageId, text });
    const res = await fetch(`${gw.url}/webhooks/app/messages`, { method: 'POST', body, headers: signedHeaders('shop', APP_SECRET, body) });
    assert.equal(res.status, 202);
    return ((await res.json()) as { conversationId: string }).conversationId;
  }
  const textsTo = (userId: string) => callback.requests.filter((r) => r.json().userId === userId).map((r) => r.json().message.content.text as string);
  const eventsOf = (conversationId: string) => receiver.verified.filter((e) => e.data.conversationId === conversationId);

  it('tells the customer when no agent picks up in time, announces it, then closes the idle conversation', async () => {
    const conversationId = await say('t-1', 't-1-a', 'human please');
    await eventually(() => textsTo('t-1').includes('Sorry, everyone is busy'), 'pick-up timeout message to the customer');
    assert.deepEqual(textsTo('t-1'), ['One moment', 'Sorry, everyone is busy']);
    const timeout = await eventually(() => eventsOf(conversationId).find((e) => e.type === 'conversation.pickup_timeout'), 'pickup_timeout webhook');
    assert.equal(timeout.data.action, 'wait');
    assert.equal(await gw.gateway.conversations.state(conversationId), 'handoff_pending', 'still waiting for an agent');
    assert.ok(gw.logs.some((l) => l.msg === 'no agent picked up the hand-off in time' && l.conv === conversationId));

    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'closed', 'idle conversation closed', 15_000);
    const history = await gw.gateway.conversations.history(conversationId);
    assert.deepEqual(history.at(-1) && [history.at(-1)!.from, history.at(-1)!.to, history.at(-1)!.by], ['handoff_pending', 'closed', 'timeout']);
    await eventually(() => eventsOf(conversationId).find((e) => e.type === 'conversation.closed'), 'conversation.closed webhook');

    // Writing again reopens it with the bot.
    await say('t-1', 't-1-b', 'hi again');
    await eventually(() => textsTo('t-1').includes('echo:hi again'), 'the bot answers the reopened conversation');
  });

  it('does not fire the pick-up timeout when an agent picked up', async () => {
    const conversationId = await say('t-2', 't-2-a', 'human');
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'handoff_pending', 'hand-off');
    await gw.gateway.handoff.service.agentReply(conversationId, { type: 'text', text: 'I am here' }, { id: 'a1', name: 'Ann' }, 'agent:Ann');
    await eventually(() => textsTo('t-2').includes('I am here'), 'agent reply');
    await new Promise((r) => setTimeout(r, 900));
    assert.ok(!textsTo('t-2').includes('Sorry, everyone is busy'));
  });

  it('refuses an agent reply to a conversation closed at the same moment, and sends the customer nothing', async () => {
    const conversationId = await say('t-4', 't-4-a', 'human');
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'handoff_pending', 'hand-off');
    const store = gw.gateway.conversations;
    const transition = store.transition.bind(store);
    // The idle sweep closes the conversation just before the reply's own state change reaches Redis.
    store.transition = async (id, to, ...rest) => {
      if (id === conversationId && to === 'agent') await transition(id, 'closed', 'timeout', 'idle');
      return transition(id, to, ...rest);
    };
    try {
      await assert.rejects(
        gw.gateway.handoff.service.agentReply(conversationId, { type: 'text', text: 'Too late' }, { id: 'a1', name: 'Ann' }, 'agent:Ann'),
        (err: Error & { code?: string }) => err.name === 'ConflictError' && err.code === 'conversation_closed',
      );
    } finally {
      store.transition = transition;
    }
    assert.equal(await store.state(conversationId), 'closed');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!textsTo('t-4').includes('Too late'), 'the reply is not sent');
    await assert.rejects(
      gw.gateway.handoff.service.agentReply('app.nobody', { type: 'text', text: 'Hello?' }, { id: 'a1' }, 'agent:a1'),
      (err: Error & { code?: string }) => err.name === 'ConflictError' && err.code === 'unknown_conversation',
    );
  });

  it('refuses an agent reply whose conversation is closed after the pick-up but before the reply is queued', async () => {
    const conversationId = await say('t-7', 't-7-a', 'human');
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'handoff_pending', 'hand-off');
    const store = gw.gateway.conversations;
    // The pick-up's own announcement is where the close lands: the state is `agent`, the reply not queued yet.
    const off = gw.gateway.events.on('conversation.state_changed', async ({ conversationId: id, change }) => {
      if (id === conversationId && change.to === 'agent') await store.transition(id, 'closed', 'timeout', 'idle');
    });
    try {
      await assert.rejects(
        gw.gateway.handoff.service.agentReply(conversationId, { type: 'text', text: 'Closed under me' }, { id: 'a1', name: 'Ann' }, 'agent:Ann'),
        (err: Error & { code?: string }) => err.name === 'ConflictError' && err.code === 'conversation_closed',
      );
    } finally {
      off();
    }
    assert.equal(await store.state(conversationId), 'closed');
    assert.equal(await store.outboundHead(conversationId), undefined, 'nothing marked as queued');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!textsTo('t-7').includes('Closed under me'), 'the reply is not sent');
  });

  it('keeps the agent name of a conversation answered without a hand-off no longer than the transcript', async () => {
    const conversationId = await say('t-5', 't-5-a', 'hello');
    await eventually(() => textsTo('t-5').includes('echo:hello'), 'bot reply');
    await gw.gateway.handoff.service.agentReply(conversationId, { type: 'text', text: 'Ann here' }, { id: 'a1', name: 'Ann' }, 'agent:Ann');
    assert.equal((await gw.gateway.handoff.service.info(conversationId)).agent, 'Ann');
    const ttl = await gw.gateway.redis.ttl(`gw:conv:{${conversationId}}:handoff`);
    assert.ok(ttl > 0, `the hand-off details expire (TTL ${ttl})`);
    // An agent answering a conversation already with an agent is no state change.
    const changes = (await gw.gateway.conversations.history(conversationId)).length;
    await gw.gateway.handoff.service.agentReply(conversationId, { type: 'text', text: 'Still Ann' }, { id: 'a1', name: 'Ann' }, 'agent:Ann');
    assert.equal((await gw.gateway.conversations.history(conversationId)).length, changes);
    await eventually(() => textsTo('t-5').includes('Still Ann'), 'second agent reply');
  });

  it('an API hand-off whose events cannot be stored fails, and the same request again tells the helpdesk', async () => {
    const conversationId = await say('t-6', 't-6-a', 'hello');
    await eventually(() => textsTo('t-6').includes('echo:hello'), 'bot reply');
    const { service } = gw.gateway.handoff;
    let failures = 1;
    const off = gw.gateway.events.on('conversation.handoff_requested', async () => {
      if (failures-- > 0) throw new Error('webhook outbox unavailable');
    });
    try {
      const request = { reason: 'vip', priority: 'high' as const };
      await assert.rejects(service.requestHandoff(conversationId, request, 'api:desk'), /webhook outbox unavailable/);
      assert.equal(await gw.gateway.conversations.state(conversationId), 'handoff_pending', 'the state changed before the failure');
      const change = await service.requestHandoff(conversationId, request, 'api:desk');
      assert.deepEqual([change.from, change.to, change.by], ['bot', 'handoff_pending', 'api:desk']);
      const told = await eventually(() => eventsOf(conversationId).find((e) => e.type === 'conversation.handoff_requested'), 'hand-off webhook');
      assert.equal(told.data.reason, 'vip');
      assert.equal((await service.info(conversationId)).reason, 'vip');
      assert.equal((await gw.gateway.conversations.history(conversationId)).length, 1, 'the retry made no second change');
      // Anyone else asking for a hand-off of a conversation already waiting for one still gets the conflict.
      await assert.rejects(service.requestHandoff(conversationId, { reason: 'other' }, 'api:desk'), (err: Error) => err.name === 'TransitionError');
    } finally {
      off();
    }
  });

  it('hands the customer to a human, visibly, when the bot fails for good', async () => {
    const conversationId = await say('t-3', 't-3-a', 'please crash');
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'handoff_pending', 'hand-off after the bot failure');
    const handoff = await eventually(() => eventsOf(conversationId).find((e) => e.type === 'conversation.handoff_requested'), 'hand-off webhook');
    assert.equal(handoff.data.reason, 'bot_failed');
    assert.equal(handoff.data.priority, 'high');
    assert.equal(handoff.data.message.content.text, 'please crash');
    const history = await gw.gateway.conversations.history(conversationId);
    assert.equal(history[0]!.by, 'system');
    assert.match(history[0]!.reason, /model server unreachable/);
    assert.ok(gw.logs.some((l) => l.msg === 'bot failed on a customer message: handed to a human' && l.conv === conversationId));
  });
});
