import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startTestRedis } from './helpers/redis.js';
import { TestSocket } from './helpers/ws-client.js';

const config = {
  channels: [{ id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789' } }],
  bot: {
    rules: [
      { id: 'hello', match: { regex: '^hello' }, reply: 'Hi there!' },
      { id: 'order', match: { keywords: ['order', '订单'] }, reply: 'Order lookup' },
    ],
    fallback: 'fallback',
  },
};

describe('web widget channel, end to end over real Redis', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let wsUrl: string;
  before(async () => {
    redis = await startTestRedis();
    gw = await startTestGateway(config, redis.url);
    wsUrl = gw.url.replace('http', 'ws') + '/webhooks/web/ws';
  });
  after(async () => {
    await gw?.stop();
    await redis?.stop();
  });

  it('issues a visitor session, acks after enqueue, and delivers the rule reply', async () => {
    const socket = await TestSocket.open(wsUrl);
    const session = await socket.next((f) => f.type === 'session');
    assert.match(session.token, /^v1\./);
    socket.send({ type: 'message', clientMessageId: 'c1', text: 'hello bot' });
    const ack = await socket.next((f) => f.type === 'ack');
    assert.equal(ack.clientMessageId, 'c1');
    assert.equal(ack.duplicate, false);
    const reply = await socket.next((f) => f.type === 'message');
    assert.deepEqual(reply.message.content, { type: 'text', text: 'Hi there!' });
    assert.equal(reply.message.sender.role, 'bot');
    assert.equal(reply.message.replyTo, ack.id);
    await socket.close();
  });

  it('keeps the visitor across reconnects and replays the replies missed while away', async () => {
    const first = await TestSocket.open(wsUrl);
    const { token, visitorId } = await first.next((f) => f.type === 'session');
    first.send({ type: 'message', clientMessageId: 'a', text: 'hello' });
    const firstReply = await first.next((f) => f.type === 'message');
    // Send, then drop the connection before the reply can arrive.
    first.send({ type: 'message', clientMessageId: 'b', text: 'my order' });
    await first.next((f) => f.type === 'ack');
    await first.close();

    const conversationId = firstReply.message.conversationId;
    // Wait until the reply has been delivered (it is in the transcript) while nobody is connected.
    for (let i = 0; i < 200; i++) {
      const transcript = await gw.gateway.transcripts.list(conversationId);
      if (transcript.some((m) => m.direction === 'out' && m.content.type === 'text' && m.content.text === 'Order lookup')) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const again = await TestSocket.open(`${wsUrl}?token=${encodeURIComponent(token)}&after=${firstReply.message.id}`);
    const session = await again.next((f) => f.type === 'session');
    assert.equal(session.visitorId, visitorId, 'same visitor after reconnect');
    const missed = await again.next((f) => f.type === 'message');
    assert.equal(missed.message.content.text, 'Order lookup');
    assert.equal(missed.message.conversationId, conversationId);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(again.frames.filter((f) => f.type === 'message').length, 0, 'nothing older than `after` is replayed');
    await again.close();
  });

  it('answers a resent message (same clientMessageId) only once', async () => {
    const socket = await TestSocket.open(wsUrl);
    await socket.next((f) => f.type === 'session');
    socket.send({ type: 'message', clientMessageId: 'dup', text: 'hello' });
    socket.send({ type: 'message', clientMessageId: 'dup', text: 'hello' });
    const acks = [await socket.next((f) => f.type === 'ack'), await socket.next((f) => f.type === 'ack')];
    assert.deepEqual(acks.map((a) => a.duplicate).sort(), [false, true]);
    await socket.next((f) => f.type === 'message');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(socket.frames.filter((f) => f.type === 'message').length, 0, 'exactly one reply');
    await socket.close();
  });

  it('refuses a forged or expired visitor token with an error frame and close code 4401, which a browser can see', async () => {
    const refused = async (token: string) => {
      const socket = await TestSocket.open(`${wsUrl}?token=${token}`);
      const code = await new Promise<number>((resolve) => socket.ws.once('close', (c) => resolve(c)));
      assert.equal(code, 4401);
      assert.equal(socket.frames.filter((f) => f.type === 'session').length, 0, 'no session for a refused token');
      return (await socket.next((f) => f.type === 'error')).error;
    };
    assert.equal(await refused('v1.abcdefghijkl.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'), 'invalid_token');
    const { issueVisitorToken } = await import('../adapters/web/visitor-token.js');
    assert.equal(await refused(issueVisitorToken('web-test-secret-0123456789', 'abcdefghijkl', 10, Date.now() - 60_000)), 'expired_token');
    assert.ok(gw.logs.some((l) => l.msg === 'visitor token refused' && l.reason === 'expired_token'));
  });

  it('answers an invalid frame with an error frame and keeps the socket open', async () => {
    const socket = await TestSocket.open(wsUrl);
    await socket.next((f) => f.type === 'session');
    socket.ws.send('{not json');
    const err = await socket.next((f) => f.type === 'error');
    assert.equal(err.error, 'invalid_frame');
    socket.send({ type: 'ping' });
    await socket.next((f) => f.type === 'pong');
    await socket.close();
  });

  it('closes sockets whose client stops answering heartbeat pings, keeps live ones', async () => {
    const { default: WebSocket } = await import('ws');
    const hb = await startTestGateway({ channels: [{ id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789', heartbeatSeconds: 1 } }] }, redis.url, { prefix: 'hb' });
    try {
      const url = hb.url.replace('http', 'ws') + '/webhooks/web/ws';
      const silent = new WebSocket(url, { autoPong: false });
      const live = new WebSocket(url);
      await Promise.all([silent, live].map((ws) => new Promise((r) => ws.once('open', r))));
      const closed = await new Promise<number>((resolve) => silent.once('close', (code) => resolve(code)));
      assert.equal(closed, 1006, 'the silent client was terminated');
      assert.equal(live.readyState, WebSocket.OPEN, 'the answering client is still connected');
      live.close();
    } finally {
      await hb.stop();
    }
  });

  it('limits the frames of one socket: the surplus is answered rate_limited, not queued, and a flood closes the socket', async () => {
    const rateLimit = { burst: 5, perSecond: 1, maxInFlight: 10, closeAfterRefused: 10 };
    const rl = await startTestGateway({ channels: [{ id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789', rateLimit } }] }, redis.url, { prefix: 'rl' });
    try {
      const url = rl.url.replace('http', 'ws') + '/webhooks/web/ws';
      const socket = await TestSocket.open(url);
      await socket.next((f) => f.type === 'session');
      for (let i = 0; i < 8; i++) socket.send({ type: 'message', clientMessageId: `f${i}`, text: 'x'.repeat(3000) });
      const answers = await Promise.all([...Array(8)].map(() => socket.next((f) => f.type === 'ack' || f.type === 'error')));
      assert.equal(answers.filter((f) => f.type === 'ack').length, 5, 'the burst is queued');
      const refused = answers.filter((f) => f.type === 'error');
      assert.deepEqual(refused.map((f) => f.error), ['rate_limited', 'rate_limited', 'rate_limited']);
      assert.ok(refused.every((f) => typeof f.clientMessageId === 'string'), 'the client learns which message to send again');
      for (let i = 8; i < 20; i++) socket.send({ type: 'message', clientMessageId: `f${i}`, text: 'x' });
      const code = await new Promise<number>((resolve) => socket.ws.once('close', (c) => resolve(c)));
      assert.equal(code, 1008);
      assert.ok(rl.logs.some((l) => l.msg === 'web widget socket closed: too many frames'));

      const oneAtATime = await startTestGateway(
        { channels: [{ id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789', rateLimit: { ...rateLimit, maxInFlight: 1 } } }] },
        redis.url,
        { prefix: 'rl1' },
      );
      try {
        const single = await TestSocket.open(oneAtATime.url.replace('http', 'ws') + '/webhooks/web/ws');
        await single.next((f) => f.type === 'session');
        // One write, so the gateway reads all three before the first is queued.
        single.ws.send(JSON.stringify({ type: 'message', clientMessageId: 's0', text: 'a' }));
        single.ws.send(JSON.stringify({ type: 'message', clientMessageId: 's1', text: 'b' }));
        single.ws.send(JSON.stringify({ type: 'message', clientMessageId: 's2', text: 'c' }));
        const replies = await Promise.all([0, 1, 2].map(() => single.next((f) => f.type === 'ack' || f.type === 'error')));
        assert.ok(replies.some((f) => f.type === 'ack'));
        assert.ok(replies.some((f) => f.type === 'error' && f.error === 'rate_limited'), 'messages over the in-flight cap are refused');
        await single.close();
      } finally {
        await oneAtATime.stop();
      }
    } finally {
      await rl.stop();
    }
  });

  it('serves the widget script, and a 304 without the body when the page already has it', async () => {
    const res = await fetch(`${gw.url}/webhooks/web/widget.js`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /javascript/);
    assert.match(res.headers.get('cache-control') ?? '', /max-age=300/);
    assert.match(await res.text(), /new WebSocket/);
    const etag = res.headers.get('etag');
    assert.ok(etag);
    const again = await fetch(`${gw.url}/webhooks/web/widget.js`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(await again.text(), '');
    const stale = await fetch(`${gw.url}/webhooks/web/widget.js`, { headers: { 'if-none-match': '"older"' } });
    assert.equal(stale.status, 200);
  });
});
