import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signedHeaders } from '../../adapters/app/signature.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startRecorder } from '../helpers/http-recorder.js';
import { startTestRedis } from '../helpers/redis.js';
import { TestSocket } from '../helpers/ws-client.js';
import { api, newSecret, startWebhookReceiver } from './helpers.js';

const APP_SECRET = 'app-secret-0123456789abcdef';
const DESK_KEY = 'desk-key-0123456789abcdef';
const READ_KEY = 'read-key-0123456789abcdef';
const WH_SECRET = newSecret();

describe('hand-off end to end: bot → hand-off → signed webhook → agent reply over REST → hand back → bot', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  let callback: Awaited<ReturnType<typeof startRecorder>>;
  let desk: ReturnType<typeof api>;

  before(async () => {
    redis = await startTestRedis();
    receiver = await startWebhookReceiver(WH_SECRET);
    callback = await startRecorder();
    gw = await startTestGateway(
      {
        channels: [
          { id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789' } },
          { id: 'app', type: 'app', options: { apps: [{ id: 'shop', secret: APP_SECRET, callbackUrl: `${callback.url}/replies` }] } },
        ],
        bot: {
          rules: [
            { id: 'human', match: { keywords: ['human', 'agent'] }, reply: 'Connecting you to a person', handoff: { team: 'billing', priority: 'high' } },
            { id: 'hello', match: { regex: '^hello' }, reply: 'Hi there!' },
          ],
        },
        webhooks: { endpoints: [{ id: 'helpdesk', url: `${receiver.url}/hook`, secret: WH_SECRET }], backoffBaseMs: 50, backoffMaxMs: 200 },
        api: {
          keys: [
            { id: 'desk', key: DESK_KEY, scopes: ['read', 'reply'] },
            { id: 'reader', key: READ_KEY, scopes: ['read'] },
          ],
        },
      },
      redis.url,
    );
    desk = api(gw.url, DESK_KEY);
  });
  after(async () => {
    await gw?.stop();
    await receiver?.close();
    await callback?.close();
    await redis?.stop();
  });

  const eventsOf = (conversationId: string, type?: string) =>
    receiver.verified.filter((e) => e.data.conversationId === conversationId && (type === undefined || e.type === type));

  it('web widget customer: hand-off webhook is signed and complete, the agent reply arrives on the socket, hand back brings the bot back', async () => {
    const socket = await TestSocket.open(gw.url.replace('http', 'ws') + '/webhooks/web/ws');
    await socket.next((f) => f.type === 'session');
    socket.send({ type: 'message', clientMessageId: 'c1', text: 'hello' });
    const first = await socket.next((f) => f.type === 'message');
    assert.equal(first.message.content.text, 'Hi there!');
    const conversationId: string = first.message.conversationId;

    socket.send({ type: 'message', clientMessageId: 'c2', text: 'I need a human please' });
    assert.equal((await socket.next((f) => f.type === 'message')).message.content.text, 'Connecting you to a person');

    const handoff = await eventually(() => eventsOf(conversationId, 'conversation.handoff_requested')[0], 'hand-off webhook');
    assert.equal(receiver.invalid.length, 0, 'every webhook verified with the standardwebhooks library');
    assert.match(handoff.webhookId, /^msg_/);
    assert.equal(handoff.data.team, 'billing');
    assert.equal(handoff.data.priority, 'high');
    assert.equal(handoff.data.reason, 'rule human');
    assert.deepEqual(handoff.data.channel, { id: 'web', type: 'web' });
    assert.ok(handoff.data.customer.id, 'customer id');
    assert.equal(handoff.data.message.content.text, 'I need a human please');
    const texts = handoff.data.transcript.map((m: any) => `${m.direction}:${m.content.text}`);
    assert.ok(texts.includes('in:hello') && texts.includes('out:Hi there!') && texts.includes('in:I need a human please'), texts.join(' | '));
    assert.equal(handoff.data.transcript.find((m: any) => m.content.text === 'Hi there!').trace.ruleId, 'hello', 'bot replies carry their trace');
    const changed = await eventually(() => eventsOf(conversationId, 'conversation.state_changed')[0], 'state_changed webhook');
    assert.deepEqual([changed.data.change.from, changed.data.change.to], ['bot', 'handoff_pending']);

    // The agent answers over REST: the customer gets it on the widget socket.
    const reply = await desk('POST', `/v1/conversations/${conversationId}/messages`, { agent: { name: 'Alice' }, content: { type: 'text', text: 'Hello, Alice here' } });
    assert.equal(reply.status, 202, JSON.stringify(reply.body));
    assert.equal(reply.body.status, 'queued');
    const agentFrame = await socket.next((f) => f.type === 'message');
    assert.equal(agentFrame.message.content.text, 'Hello, Alice here');
    assert.equal(agentFrame.message.sender.role, 'agent');
    assert.equal(agentFrame.message.id, reply.body.id);
    assert.equal(await gw.gateway.conversations.state(conversationId), 'agent', 'an agent reply picks the conversation up');
    const status = await eventually(async () => {
      const s = await desk('GET', reply.body.statusUrl);
      return s.body.status === 'delivered' && s.body;
    }, 'delivered status');
    assert.equal(status.id, reply.body.id);
    await eventually(() => eventsOf(conversationId, 'message.delivered').find((e) => e.data.message.id === reply.body.id), 'message.delivered webhook');

    // While with the agent, customer messages skip the bot and reach the helpdesk.
    socket.send({ type: 'message', clientMessageId: 'c3', text: 'thanks, my invoice is wrong' });
    const created = await eventually(() => eventsOf(conversationId, 'message.created').find((e) => e.data.message.content.text === 'thanks, my invoice is wrong'), 'message.created webhook');
    assert.equal(created.data.message.direction, 'in');

    // Transcript and conversation over the API.
    const conv = await desk('GET', `/v1/conversations/${conversationId}`);
    assert.equal(conv.body.state, 'agent');
    assert.equal(conv.body.handoff.team, 'billing');
    assert.equal(conv.body.handoff.agent, 'Alice');
    assert.deepEqual(conv.body.history.map((h: any) => h.to), ['handoff_pending', 'agent']);
    const transcript = await desk('GET', `/v1/conversations/${conversationId}/messages`);
    assert.ok(transcript.body.items.some((m: any) => m.sender.role === 'agent' && m.content.text === 'Hello, Alice here'));

    const handback = await desk('POST', `/v1/conversations/${conversationId}/handback`, { reason: 'solved' });
    assert.equal(handback.status, 200, JSON.stringify(handback.body));
    assert.equal(handback.body.conversation.state, 'bot');
    assert.equal(handback.body.change.by, 'api:desk');
    socket.send({ type: 'message', clientMessageId: 'c4', text: 'hello again' });
    assert.equal((await socket.next((f) => f.type === 'message')).message.content.text, 'Hi there!', 'the bot answers again');

    await eventually(() => eventsOf(conversationId, 'conversation.state_changed').length === 3, 'the hand-back webhook');
    const order = eventsOf(conversationId).map((e) => e.type === 'conversation.state_changed' ? `state:${e.data.change.to}` : e.type);
    assert.deepEqual(
      order.filter((t) => t.startsWith('state:') || t === 'conversation.handoff_requested' || t === 'message.created'),
      ['state:handoff_pending', 'conversation.handoff_requested', 'state:agent', 'message.created', 'state:bot'],
    );
    await socket.close();
  });

  it('app customer: the agent reply reaches the app callback once, even when the request is retried with the same Idempotency-Key', async () => {
    const body = JSON.stringify({ userId: 'u-77', userName: 'Bo', messageId: 'm-1', text: 'talk to an agent' });
    const res = await fetch(`${gw.url}/webhooks/app/messages`, { method: 'POST', body, headers: signedHeaders('shop', APP_SECRET, body) });
    const { conversationId } = (await res.json()) as { conversationId: string };
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'handoff_pending', 'handoff_pending');

    const request = { agent: { name: 'Bob', id: 'agent-9' }, content: { type: 'text', text: 'Bob from support here' } };
    const headers = { 'idempotency-key': 'reply-123' };
    const [a, b] = await Promise.all([
      desk('POST', `/v1/conversations/${conversationId}/messages`, request, headers),
      new Promise((r) => setTimeout(r, 30)).then(() => desk('POST', `/v1/conversations/${conversationId}/messages`, request, headers)),
    ]);
    const statuses = [a.status, b.status].sort();
    // The retry either replays the stored answer (202, same id) or finds the first still running (409).
    assert.ok(statuses[0] === 202 && (statuses[1] === 202 || statuses[1] === 409), `statuses ${statuses}`);
    const again = await desk('POST', `/v1/conversations/${conversationId}/messages`, request, headers);
    assert.equal(again.status, 202);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(again.body.id, (a.status === 202 ? a : b).body.id, 'the replayed answer names the same message');

    const delivered = await eventually(() => callback.requests.find((r) => r.json().message.sender.role === 'agent' && r.json().userId === 'u-77'), 'agent reply at the app callback');
    assert.equal(delivered.json().message.content.text, 'Bob from support here');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(callback.requests.filter((r) => r.json().message.sender.role === 'agent' && r.json().userId === 'u-77').length, 1, 'delivered once');

    const reused = await desk('POST', `/v1/conversations/${conversationId}/messages`, { ...request, content: { type: 'text', text: 'different' } }, headers);
    assert.equal(reused.status, 422);
    assert.equal(reused.body.error, 'idempotency_key_reused');

    const closed = await desk('POST', `/v1/conversations/${conversationId}/close`, {});
    assert.equal(closed.body.conversation.state, 'closed');
    await eventually(() => eventsOf(conversationId, 'conversation.closed')[0], 'conversation.closed webhook');
    const late = await desk('POST', `/v1/conversations/${conversationId}/messages`, { ...request, content: { type: 'text', text: 'late' } });
    assert.equal(late.status, 409);
    assert.equal(late.body.error, 'conversation_closed');
  });

  it('refuses a wrong key with 401 and a missing scope with 403, in one error shape', async () => {
    const none = await api(gw.url, undefined)('GET', '/v1/conversations');
    assert.equal(none.status, 401);
    assert.equal(none.body.error, 'invalid_api_key');
    assert.equal(typeof none.body.message, 'string');
    const wrong = await api(gw.url, 'not-a-key-0123456789')('GET', '/v1/conversations');
    assert.equal(wrong.status, 401);
    const reader = api(gw.url, READ_KEY);
    const list = await reader('GET', '/v1/conversations?limit=1');
    assert.equal(list.status, 200);
    assert.equal(list.body.items.length, 1);
    const next = await reader('GET', `/v1/conversations?limit=1&cursor=${list.body.nextCursor}`);
    assert.equal(next.status, 200);
    assert.notEqual(next.body.items[0].id, list.body.items[0].id, 'the cursor moves on');
    const forbidden = await reader('POST', `/v1/conversations/${list.body.items[0].id}/handoff`, {});
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error, 'insufficient_scope');
    const admin = await desk('GET', '/v1/webhooks/endpoints');
    assert.equal(admin.status, 403, 'webhook administration needs the admin scope');
    const invalid = await desk('POST', `/v1/conversations/${list.body.items[0].id}/messages`, { agent: { name: 'x' }, content: { type: 'image' } });
    assert.equal(invalid.status, 400);
    assert.equal(invalid.body.error, 'invalid_request');
    const filtered = await reader('GET', '/v1/conversations?channel=app&state=closed');
    assert.ok(filtered.body.items.length >= 1 && filtered.body.items.every((c: any) => c.channel.id === 'app' && c.state === 'closed'));
  });

  it('serves an OpenAPI 3.1 document generated from the handlers\' schemas and the docs page', async () => {
    const doc = (await api(gw.url, undefined)('GET', '/v1/openapi.json')).body;
    assert.equal(doc.openapi, '3.1.0');
    const reply = doc.paths['/v1/conversations/{id}/messages'].post;
    assert.equal(reply['x-required-scope'], 'reply');
    assert.deepEqual(doc.components.schemas.AgentReply.required.sort(), ['agent', 'content']);
    for (const path of ['/v1/conversations', '/v1/conversations/{id}', '/v1/conversations/{id}/handoff', '/v1/conversations/{id}/handback', '/v1/conversations/{id}/close']) {
      assert.ok(doc.paths[path], path);
    }
    const docs = await fetch(`${gw.url}/docs/`);
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /swagger-ui/i);
  });
});
