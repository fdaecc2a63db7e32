import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signedHeaders } from '../../adapters/app/signature.js';
import { attemptDelivery } from '../../gateway/webhooks/sender.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startRecorder } from '../helpers/http-recorder.js';
import { startTestRedis } from '../helpers/redis.js';
import { api, newSecret, startWebhookReceiver } from './helpers.js';

const APP_SECRET = 'app-secret-0123456789abcdef';
const ADMIN_KEY = 'admin-key-0123456789abcdef';
const SECRET = newSecret();

describe('outbound webhooks: retries, order per conversation, delivery log, dead letters, 410', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let callback: Awaited<ReturnType<typeof startRecorder>>;
  let admin: ReturnType<typeof api>;

  before(async () => {
    redis = await startTestRedis();
    receiver = await startWebhookReceiver(SECRET);
    callback = await startRecorder();
    gw = await startTestGateway(
      {
        channels: [{ id: 'app', type: 'app', options: { apps: [{ id: 'shop', secret: APP_SECRET, callbackUrl: `${callback.url}/replies` }] } }],
        bot: { rules: [{ id: 'human', match: { keywords: ['human'] }, reply: 'One moment', handoff: { team: 'care' } }], fallback: 'ok' },
        webhooks: {
          endpoints: [
            {
              id: 'desk',
              url: `${receiver.url}/hook`,
              secret: SECRET,
              events: ['conversation.handoff_requested', 'conversation.state_changed', 'message.created'],
            },
          ],
          backoffBaseMs: 40,
          backoffMaxMs: 150,
        },
        api: { keys: [{ id: 'ops', key: ADMIN_KEY, scopes: ['admin'] }] },
      },
      redis.url,
    );
    admin = api(gw.url, ADMIN_KEY);
  });
  after(async () => {
    await gw?.stop();
    await receiver?.close();
    await callback?.close();
    await redis?.stop();
  });

  async function say(userId: string, messageId: string, text: string): Promise<string> {
    const body = JSON.stringify({ userId, messageId, text });
    const res = await fetch(`${gw.url}/webhooks/app/messages`, { method: 'POST', body, headers: signedHeaders('shop', APP_SECRET, body) });
    assert.equal(res.status, 202);
    return ((await res.json()) as { conversationId: string }).conversationId;
  }
  const verifiedFor = (conversationId: string) => receiver.verified.filter((e) => e.data.conversationId === conversationId);

  it('a receiver failing with 503s (honouring Retry-After) then recovering gets every event once, in order', async () => {
    let failures = 0;
    receiver.answerWith(() => {
      if (failures < 4) {
        failures++;
        return failures === 1 ? { status: 503, headers: { 'retry-after': '1' } } : { status: 503 };
      }
      return { status: 200 };
    });
    const conversationId = await say('w-1', 'w-1-0', 'I want a human');
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'handoff_pending', 'hand-off');
    for (let i = 1; i <= 6; i++) await say('w-1', `w-1-${i}`, `message ${i}`);

    await eventually(() => verifiedFor(conversationId).length === 8, '8 events delivered', 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const got = verifiedFor(conversationId);
    assert.equal(got.length, 8, 'nothing delivered twice');
    assert.equal(new Set(got.map((e) => e.webhookId)).size, 8);
    assert.deepEqual(
      got.map((e) => (e.type === 'message.created' ? e.data.message.content.text : e.type)),
      ['conversation.state_changed', 'conversation.handoff_requested', 'message 1', 'message 2', 'message 3', 'message 4', 'message 5', 'message 6'],
    );
    assert.ok(receiver.requests.every((r) => !r.json().type.startsWith('message.delivered')), 'the event filter holds');

    // The first event was attempted five times under one webhook-id; each attempt signed afresh.
    const first = got[0]!.webhookId;
    const attempts = receiver.requests.filter((r) => r.headers['webhook-id'] === first);
    assert.equal(attempts.length, 5);
    const stamps = attempts.map((r) => Number(r.headers['webhook-timestamp']));
    assert.ok(stamps[1]! > stamps[0]!, 'Retry-After: 1 was honoured before the second attempt');
    assert.equal(new Set(attempts.map((r) => r.headers['webhook-signature'])).size, new Set(stamps).size, 'a new signature for every new timestamp');

    // The delivery log shows every attempt with its status code and latency.
    const log = await admin('GET', '/v1/webhooks/endpoints/desk/deliveries?limit=50');
    assert.equal(log.status, 200);
    const record = log.body.items.find((d: any) => d.eventId === first);
    assert.equal(record.status, 'delivered');
    assert.deepEqual(record.attempts.map((a: any) => a.status), [503, 503, 503, 503, 200]);
    assert.ok(record.attempts.every((a: any) => typeof a.latencyMs === 'number'));
    assert.ok(record.attempts[0].nextAttemptAt >= record.attempts[0].at + 1000, 'the next attempt was scheduled after Retry-After');
  });

  it('retries every 5xx, 408 and 425 like a 503, and dead-letters only the other 4xx', async () => {
    const statuses = [500, 501, 502, 503, 504, 505, 507, 408, 425, 429, 400, 401, 403, 404, 409, 413, 422];
    const retried: number[] = [];
    for (const status of statuses) {
      receiver.answerWith(() => ({ status }));
      const body = JSON.stringify({ type: 'test.event', data: {} });
      const outcome = await attemptDelivery(`${receiver.url}/hook`, SECRET, `msg_status_${status}`, body, 5_000);
      assert.equal(outcome.kind === 'retry' || outcome.kind === 'rejected', true, `HTTP ${status}: ${outcome.kind}`);
      if (outcome.kind === 'retry') retried.push(status);
    }
    assert.deepEqual(retried, [500, 501, 502, 503, 504, 505, 507, 408, 425, 429]);

    // End to end: a receiver answering 500 once gets the event on the next attempt, not in the dead letters.
    let failed = false;
    receiver.answerWith((req) => (!failed && req.json().type === 'conversation.handoff_requested' ? ((failed = true), { status: 500 }) : { status: 204 }));
    const conversationId = await say('w-500', 'w-500-0', 'human please');
    await eventually(() => verifiedFor(conversationId).find((e) => e.type === 'conversation.handoff_requested'), 'delivered after the 500');
    const log = await admin('GET', '/v1/webhooks/endpoints/desk/deliveries?limit=50');
    const record = log.body.items.find((d: any) => d.conversationId === conversationId && d.type === 'conversation.handoff_requested');
    assert.equal(record.status, 'delivered');
    assert.deepEqual(record.attempts.map((a: any) => a.status), [500, 204]);
  });

  it('dead-letters a rejected event without blocking the rest of the conversation, and replays it by hand', async () => {
    let reject = true;
    receiver.answerWith((req) => (reject && req.json().type === 'conversation.handoff_requested' ? { status: 400 } : { status: 204 }));
    const conversationId = await say('w-2', 'w-2-0', 'human please');
    await say('w-2', 'w-2-1', 'still there?');
    await eventually(() => verifiedFor(conversationId).some((e) => e.type === 'message.created'), 'later event delivered past the dead one');

    const dead = await eventually(async () => (await admin('GET', '/v1/webhooks/dead-letters')).body.items.find((d: any) => d.conversationId === conversationId), 'dead letter');
    assert.equal(dead.type, 'conversation.handoff_requested');
    assert.match(dead.deadReason, /HTTP 400/);
    assert.equal(dead.attempts.length, 1, 'a 400 is not retried');

    reject = false;
    const replay = await admin('POST', `/v1/webhooks/deliveries/${dead.id}/replay`);
    assert.equal(replay.status, 202);
    const replayed = await eventually(() => verifiedFor(conversationId).find((e) => e.type === 'conversation.handoff_requested'), 'replayed event');
    assert.equal(replayed.webhookId, dead.eventId, 'same webhook-id on replay');
    assert.equal((await admin('POST', `/v1/webhooks/deliveries/${dead.id}/replay`)).status, 409, 'only dead deliveries replay');
  });

  it('disables an endpoint that answers 410, keeps its backlog, and resumes it in order when re-enabled', async () => {
    receiver.answerWith((req) => (req.json().type === 'conversation.handoff_requested' && req.json().data.message?.sender?.id === 'w-3' ? { status: 410 } : { status: 204 }));
    const conversationId = await say('w-3', 'w-3-0', 'human');
    await eventually(async () => (await admin('GET', '/v1/webhooks/endpoints')).body.items.find((e: any) => e.id === 'desk' && !e.enabled), 'endpoint disabled');
    const endpoints = (await admin('GET', '/v1/webhooks/endpoints')).body.items;
    assert.match(endpoints[0].disabledReason, /410/);
    assert.equal(endpoints[0].secret, undefined, 'secrets are never returned');

    const before = verifiedFor(conversationId).length;
    await say('w-3', 'w-3-1', 'after gone 1');
    await say('w-3', 'w-3-2', 'after gone 2');
    await eventually(async () => (await gw.gateway.transcripts.list(conversationId)).filter((m) => m.direction === 'in').length === 3, 'messages processed');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(verifiedFor(conversationId).length, before, 'nothing is sent to a disabled endpoint');

    receiver.answerWith(() => ({ status: 204 }));
    assert.equal((await admin('POST', '/v1/webhooks/endpoints/desk/enable')).status, 200);
    // Events held while disabled flow in order once enabled again.
    const resumed = await eventually(() => {
      const texts = verifiedFor(conversationId).filter((e) => e.type === 'message.created').map((e) => e.data.message.content.text);
      return texts.length === 2 && texts;
    }, 'backlog resumed');
    assert.deepEqual(resumed, ['after gone 1', 'after gone 2']);
    const dead = (await admin('GET', '/v1/webhooks/dead-letters')).body.items.find((d: any) => d.conversationId === conversationId);
    assert.match(dead.deadReason, /410/);
  });

  it('manages API-created subscriptions', async () => {
    const extra = await startWebhookReceiver(SECRET);
    try {
      const created = await admin('POST', '/v1/webhooks/endpoints', { id: 'crm', url: `${extra.url}/in`, secret: SECRET, events: ['message.created'] });
      assert.equal(created.status, 201);
      assert.equal(created.body.source, 'api');
      const conversationId = await say('w-4', 'w-4-0', 'human');
      await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'handoff_pending', 'hand-off');
      await say('w-4', 'w-4-1', 'for the crm');
      const got = await eventually(() => extra.verified.find((e) => e.data.message?.content?.text === 'for the crm'), 'crm received its event');
      assert.equal(got.type, 'message.created');
      assert.ok(extra.verified.every((e) => e.type === 'message.created'));
      assert.equal((await admin('DELETE', '/v1/webhooks/endpoints/crm')).status, 204);
      assert.equal((await admin('DELETE', '/v1/webhooks/endpoints/desk')).status, 409, 'config endpoints are not deleted over the API');
    } finally {
      await extra.close();
    }
  });
});
