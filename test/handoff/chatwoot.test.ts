import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { TestSocket } from '../helpers/ws-client.js';
import { startFakeChatwoot } from '../fakes/chatwoot-api.js';

const TOKEN = 'cw-access-token-0123456789';
const HOOK_TOKEN = 'cw-webhook-token-0123456789';

describe('Chatwoot connector: hand-off into an API inbox, agent replies back to the customer, resolve hands back', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let chatwoot: Awaited<ReturnType<typeof startFakeChatwoot>>;

  before(async () => {
    redis = await startTestRedis();
    chatwoot = await startFakeChatwoot({ accountId: 3, inboxId: 9, token: TOKEN });
    gw = await startTestGateway(
      {
        channels: [{ id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789' } }],
        bot: {
          rules: [
            { id: 'human', match: { keywords: ['human'] }, reply: 'Passing you to our team', handoff: { team: 'support', priority: 'urgent' } },
            { id: 'hello', match: { regex: '^hello' }, reply: 'Hi there!' },
          ],
        },
        handoff: { chatwoot: { baseUrl: chatwoot.url, accountId: 3, inboxId: 9, apiAccessToken: TOKEN, webhookToken: HOOK_TOKEN, onResolve: 'handback' } },
        webhooks: { backoffBaseMs: 40, backoffMaxMs: 150 },
      },
      redis.url,
    );
    chatwoot.setWebhookUrl(`${gw.url}/v1/chatwoot/webhook/${HOOK_TOKEN}`);
  });
  after(async () => {
    await gw?.stop();
    await chatwoot?.close();
    await redis?.stop();
  });

  it('round trip through Chatwoot', async () => {
    const socket = await TestSocket.open(gw.url.replace('http', 'ws') + '/webhooks/web/ws');
    await socket.next((f) => f.type === 'session');
    socket.send({ type: 'message', clientMessageId: 'a', text: 'hello' });
    const first = await socket.next((f) => f.type === 'message');
    const conversationId: string = first.message.conversationId;
    socket.send({ type: 'message', clientMessageId: 'b', text: 'I want a human' });
    await socket.next((f) => f.type === 'message');

    // Contact and conversation created in the API inbox, transcript posted.
    const conversation = await eventually(() => chatwoot.conversations.find((c) => c.messages.some((m) => m.content === 'I want a human')), 'Chatwoot conversation with the transcript');
    assert.equal(conversation.inbox_id, 9);
    assert.equal(conversation.custom_attributes.gateway_conversation_id, conversationId);
    const contact = chatwoot.contacts.find((c) => c.id === conversation.contact_id)!;
    assert.match(contact.identifier, /^web:/);
    assert.ok(chatwoot.calls.some((c) => c.method === 'GET' && c.path.startsWith('/api/v1/accounts/3/contacts/search?q=')), 'looked the contact up first');
    await eventually(() => conversation.messages.some((m) => m.private && /\[bot\] Passing you to our team/.test(m.content)) || undefined, 'bot reply as private note');
    const incoming = conversation.messages.filter((m) => m.message_type === 'incoming').map((m) => m.content);
    assert.deepEqual(incoming, ['hello', 'I want a human']);
    const note = conversation.messages.find((m) => m.private && m.content.startsWith('Hand-off'))!;
    assert.match(note.content, /priority urgent, team support/);

    // The agent answers in Chatwoot: the customer gets it on the widget.
    const { status } = await chatwoot.agentReplies(conversation.id, 'Hi, Chen from support');
    assert.equal(status, 200);
    const agentFrame = await socket.next((f) => f.type === 'message');
    assert.equal(agentFrame.message.content.text, 'Hi, Chen from support');
    assert.equal(agentFrame.message.sender.role, 'agent');
    assert.equal(agentFrame.message.sender.name, 'Chen');
    assert.equal(await gw.gateway.conversations.state(conversationId), 'agent');

    // The customer's next message lands in Chatwoot as incoming, not with the bot.
    socket.send({ type: 'message', clientMessageId: 'c', text: 'my order is 4711' });
    await eventually(() => conversation.messages.some((m) => m.message_type === 'incoming' && m.content === 'my order is 4711') || undefined, 'customer message in Chatwoot');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(socket.frames.filter((f) => f.type === 'message').length, 0, 'no bot reply while with the agent, no echo of gateway-posted notes');

    // A wrong webhook token is refused.
    const forged = await fetch(`${gw.url}/v1/chatwoot/webhook/wrong-token-0123456789`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"event":"message_created"}' });
    assert.equal(forged.status, 401);

    // Resolving in Chatwoot hands the conversation back to the bot.
    assert.equal(await chatwoot.resolve(conversation.id), 200);
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'bot', 'handed back');
    const history = await gw.gateway.conversations.history(conversationId);
    assert.equal(history.at(-1)!.by, 'chatwoot');
    socket.send({ type: 'message', clientMessageId: 'd', text: 'hello again' });
    assert.equal((await socket.next((f) => f.type === 'message')).message.content.text, 'Hi there!');
    await socket.close();
  });

  it('never writes the webhook token to the log, and checks it before reading the body', async () => {
    const hook = `${gw.url}/v1/chatwoot/webhook/${HOOK_TOKEN}`;
    const logged = gw.logs.length;
    const malformed = await fetch(hook, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    assert.equal(malformed.status, 400);
    const noEvent = await fetch(`${hook}?debug=1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"no_event":1}' });
    assert.equal(noEvent.status, 400);
    const refused = gw.logs.slice(logged).filter((l) => l.msg === 'request refused' && String(l.url).includes('/chatwoot/webhook/'));
    assert.equal(refused.length, 2, 'both refusals are logged');
    assert.deepEqual(refused.map((l) => l.url), ['/v1/chatwoot/webhook/:token', '/v1/chatwoot/webhook/:token']);
    // Nor when no route matches (the wrong method, an extra segment): neither the 404's log line nor its message.
    const wrongMethod = await fetch(hook);
    assert.equal(wrongMethod.status, 404);
    assert.doesNotMatch(await wrongMethod.text(), new RegExp(HOOK_TOKEN));
    assert.equal((await fetch(`${hook}/extra`, { method: 'POST', body: '{}' })).status, 404);
    assert.ok(!gw.logs.some((l) => JSON.stringify(l).includes(HOOK_TOKEN)), 'the token is in no log line');

    // A wrong token is refused as such even when the body would not parse.
    const forged = await fetch(`${gw.url}/v1/chatwoot/webhook/wrong-token-0123456789`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: string }).error, 'invalid_webhook_token');
  });
});
