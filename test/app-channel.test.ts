import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sign, signedHeaders, verify } from '../adapters/app/signature.js';
import { eventually, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startRecorder } from './helpers/http-recorder.js';
import { startTestRedis } from './helpers/redis.js';
import { TestSocket } from './helpers/ws-client.js';

const SECRET = 'app-secret-0123456789abcdef';

describe('app channel: signed REST in, signed callback and WebSocket out', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let callback: Awaited<ReturnType<typeof startRecorder>>;

  before(async () => {
    redis = await startTestRedis();
    callback = await startRecorder();
    gw = await startTestGateway(
      {
        server: { bodyLimitBytes: 4096 },
        channels: [{ id: 'app', type: 'app', options: { apps: [{ id: 'shop', secret: SECRET, callbackUrl: `${callback.url}/replies` }], heartbeatSeconds: 1 } }],
        bot: { rules: [{ id: 'hi', match: { regex: '^hi' }, reply: 'Hello from the bot' }], fallback: 'fallback' },
      },
      redis.url,
    );
  });
  after(async () => {
    await gw?.stop();
    await callback?.close();
    await redis?.stop();
  });

  const post = (body: string, headers: Record<string, string>) =>
    fetch(`${gw.url}/webhooks/app/messages`, { method: 'POST', body, headers });

  it('accepts a signed message and POSTs the signed reply to the callback', async () => {
    const body = JSON.stringify({ userId: 'u-1', userName: 'Ann', messageId: 'm-1', text: 'hi there' });
    const res = await post(body, signedHeaders('shop', SECRET, body));
    assert.equal(res.status, 202);
    const accepted = (await res.json()) as { id: string; duplicate: boolean; conversationId: string };
    assert.equal(accepted.duplicate, false);

    const request = await eventually(() => callback.requests.find((r) => r.json().message.replyTo === accepted.id), 'callback');
    assert.equal(request.url, '/replies');
    const check = verify(SECRET, request.headers['x-gateway-timestamp'] as string, request.headers['x-gateway-signature'] as string, request.body, 300);
    assert.deepEqual(check, { ok: true }, 'the callback carries a valid signature over its exact body');
    assert.equal(request.headers['x-gateway-app'], 'shop');
    const payload = request.json();
    assert.equal(payload.userId, 'u-1');
    assert.deepEqual(payload.message.content, { type: 'text', text: 'Hello from the bot' });
    assert.equal(payload.message.conversationId, accepted.conversationId);
  });

  it('delivers the same platform message only once when the app retries it', async () => {
    const body = JSON.stringify({ userId: 'u-2', messageId: 'm-dup', text: 'hi again' });
    const first = (await (await post(body, signedHeaders('shop', SECRET, body))).json()) as { id: string; duplicate: boolean };
    const second = (await (await post(body, signedHeaders('shop', SECRET, body))).json()) as { id: string; duplicate: boolean };
    assert.equal(first.duplicate, false);
    assert.equal(second.duplicate, true);
    assert.equal(second.id, first.id, 'the duplicate answers with the original message id');
    await eventually(() => callback.requests.some((r) => r.json().message.replyTo === first.id), 'reply');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(callback.requests.filter((r) => r.json().userId === 'u-2').length, 1, 'exactly one reply');
  });

  it('also pushes replies to the app user WebSocket, and replays missed ones', async () => {
    const ts = Math.floor(Date.now() / 1000);
    const wsUrl = `${gw.url.replace('http', 'ws')}/webhooks/app/ws?app=shop&user=u-3&ts=${ts}&sig=${encodeURIComponent(sign(SECRET, ts, 'u-3'))}`;
    const socket = await TestSocket.open(wsUrl);
    const body = JSON.stringify({ userId: 'u-3', messageId: 'm-ws', text: 'hi ws' });
    await post(body, signedHeaders('shop', SECRET, body));
    const frame = await socket.next((f) => f.type === 'message');
    assert.equal(frame.message.content.text, 'Hello from the bot');
    await socket.close();
    const again = await TestSocket.open(wsUrl);
    const missed = await again.next((f) => f.type === 'message');
    assert.equal(missed.message.id, frame.message.id);
    const app = gw.gateway.adapters.get('app')!;
    assert.equal(app.health?.().detail, '1 sockets in 1 conversations');
    await again.close();
    // A conversation whose last socket closed is forgotten, not kept as an empty entry for the life of the process.
    await eventually(() => app.health?.().detail === '0 sockets in 0 conversations', 'socket bookkeeping emptied');
    await assert.rejects(
      TestSocket.open(wsUrl.replace(/sig=[^&]+/, 'sig=v1%3Dbad')),
      (err: any) => err.status === 401 && /bad_signature/.test(err.body),
    );
  });

  const socketUrl = (user: string, after?: string) => {
    const ts = Math.floor(Date.now() / 1000);
    const query = `app=shop&user=${user}&ts=${ts}&sig=${encodeURIComponent(sign(SECRET, ts, user))}${after ? `&after=${after}` : ''}`;
    return `${gw.url.replace('http', 'ws')}/webhooks/app/ws?${query}`;
  };
  const ask = async (user: string, messageId: string, text: string) => {
    const body = JSON.stringify({ userId: user, messageId, text });
    assert.equal((await post(body, signedHeaders('shop', SECRET, body))).status, 202);
  };
  const outboxOf = (conversationId: string) => `gw:outbox:{${conversationId}}`;

  it('replays after `after` in order on reconnect, skipping an outbox entry that no longer reads', async () => {
    const socket = await TestSocket.open(socketUrl('u-4'));
    await ask('u-4', 'r-1', 'hi one');
    const first = await socket.next((f) => f.type === 'message');
    await socket.close();
    await ask('u-4', 'r-2', 'hi two');
    await ask('u-4', 'r-3', 'something else');
    const outbox = outboxOf(first.message.conversationId);
    await eventually(async () => (await gw.gateway.redis.llen(outbox)) === 3, 'both replies in the outbox');
    await gw.gateway.redis.rpush(outbox, '{"not":"a message"}');
    const again = await TestSocket.open(socketUrl('u-4', first.message.id));
    const replayed = [await again.next((f) => f.type === 'message'), await again.next((f) => f.type === 'message')];
    assert.deepEqual(replayed.map((f) => f.message.content.text), ['Hello from the bot', 'fallback']);
    assert.ok(replayed[0]!.message.id < replayed[1]!.message.id);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(again.frames, [], 'nothing at or before `after`, nothing twice');
    assert.ok(gw.logs.some((l) => l.msg === 'skipping an unreadable outbox entry'));
    await again.close();
  });

  it('tells the client and closes with 1011 when its missed replies cannot be read', async () => {
    const socket = await TestSocket.open(socketUrl('u-5'));
    await ask('u-5', 'x-1', 'hi');
    const first = await socket.next((f) => f.type === 'message');
    await socket.close();
    // Not a list any more: reading the outbox fails the way a Redis error does.
    await gw.gateway.redis.set(outboxOf(first.message.conversationId), 'broken');
    const again = await TestSocket.open(socketUrl('u-5', first.message.id));
    const code = await new Promise<number>((resolve) => again.ws.once('close', (c) => resolve(c)));
    assert.equal(code, 1011);
    assert.equal((await again.next((f) => f.type === 'error')).error, 'replay_failed');
    await gw.gateway.redis.del(outboxOf(first.message.conversationId));
  });

  it('closes app sockets whose client stops answering heartbeat pings', async () => {
    const { default: WebSocket } = await import('ws');
    const silent = new WebSocket(socketUrl('u-6'), { autoPong: false });
    await new Promise((r) => silent.once('open', r));
    const live = await TestSocket.open(socketUrl('u-7'));
    const code = await new Promise<number>((resolve) => silent.once('close', (c) => resolve(c)));
    assert.equal(code, 1006, 'the silent client was terminated');
    assert.equal(live.ws.readyState, WebSocket.OPEN, 'the answering client is still connected');
    await live.close();
  });

  it('refuses bad input with a 4xx, a reason and a log line, and queues nothing', async () => {
    const good = JSON.stringify({ userId: 'u-9', messageId: 'm-9', text: 'hi' });
    const cases: Array<[string, Promise<Response>, number, string]> = [
      ['forged signature', post(good, { ...signedHeaders('shop', SECRET, good), 'x-gateway-signature': sign('wrong-secret-0123456789', Math.floor(Date.now() / 1000), good) }), 401, 'bad_signature'],
      ['stale timestamp (replay)', post(good, signedHeaders('shop', SECRET, good, Date.now() - 3600_000)), 401, 'stale_timestamp'],
      ['unknown app', post(good, signedHeaders('nope', SECRET, good)), 401, 'unknown_app'],
      ['no signature', post(good, { 'x-gateway-app': 'shop' }), 401, 'missing_signature'],
      ['malformed JSON', post('{"userId":', signedHeaders('shop', SECRET, '{"userId":')), 400, 'malformed_json'],
      ['schema mismatch', post('{"userId":"x"}', signedHeaders('shop', SECRET, '{"userId":"x"}')), 400, 'invalid_message'],
      ['oversized body', post('x'.repeat(5000), signedHeaders('shop', SECRET, 'x'.repeat(5000))), 413, 'payload_too_large'],
      ['unknown channel', fetch(`${gw.url}/webhooks/nope/messages`, { method: 'POST', body: good }), 404, 'unknown_channel'],
    ];
    const before = await countInboundJobs(gw);
    for (const [name, pending, status, error] of cases) {
      const res = await pending;
      assert.equal(res.status, status, name);
      const json = (await res.json()) as { error: string; message: string };
      assert.equal(json.error, error, name);
      assert.ok(json.message.length > 0, `${name}: has a human-readable message`);
      assert.ok(gw.logs.some((l) => l.msg === 'request refused' && l.error === error), `${name}: logged`);
    }
    assert.equal(await countInboundJobs(gw), before, 'nothing was queued');
    const health = await fetch(`${gw.url}/healthz`);
    assert.equal(health.status, 200, 'still alive');
  });
});

async function countInboundJobs(gw: TestGateway): Promise<number> {
  let n = 0;
  for (const q of gw.gateway.pipeline.allQueues().filter((q) => q.name.startsWith('{in-'))) {
    const counts = await q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
    n += Object.values(counts).reduce((a, b) => a + b, 0);
  }
  return n;
}
