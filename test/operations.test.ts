import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Bot } from '../bot/types.js';
import { eventually, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startTestRedis } from './helpers/redis.js';
import { TestSocket } from './helpers/ws-client.js';

const ADMIN = 'admin-key-0123456789abcdef';

describe('operations: health, readiness, metrics, admin dashboard, graceful shutdown', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let release: () => void = () => {};
  let botStarted: () => void = () => {};
  const slowBot: Bot = {
    async decide({ message }) {
      const text = message.content.type === 'text' ? message.content.text : '';
      if (text === 'slow') {
        botStarted();
        await new Promise<void>((r) => (release = r));
      }
      return { replies: [{ type: 'text', text: `re:${text}` }], trace: { stage: 'rule' } };
    },
  };
  before(async () => {
    redis = await startTestRedis();
    gw = await startTestGateway(
      { server: { adminKey: ADMIN }, channels: [{ id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789' } }] },
      redis.url,
      { bot: slowBot },
    );
  });
  after(async () => {
    await redis?.stop();
  });

  it('reports liveness and readiness with per-part checks', async () => {
    assert.deepEqual(await (await fetch(`${gw.url}/healthz`)).json(), { ok: true });
    const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as any;
    assert.equal(ready.ok, true);
    assert.equal(ready.checks.redis.ok, true);
    assert.equal(ready.checks['channel:web'].ok, true);
    assert.match(ready.checks.workers.detail, /shards 0,1,2,3$/);
  });

  it('exposes Prometheus metrics with per-channel counters and stage latencies', async () => {
    const socket = await TestSocket.open(`${gw.url.replace('http', 'ws')}/webhooks/web/ws`);
    socket.send({ type: 'message', clientMessageId: 'm1', text: 'count me' });
    await socket.next((f) => f.type === 'message');
    await socket.close();
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(text, /gw_messages_in_total\{channel="web",duplicate="false"\} 1/);
    assert.match(text, /gw_messages_out_total\{channel="web",result="delivered"\} 1/);
    assert.match(text, /gw_stage_seconds_count\{stage="end_to_end"\} 1/);
    assert.match(text, /gw_stage_seconds_bucket\{le="[^"]+",stage="bot"\}/);
    assert.match(text, /gw_queue_jobs\{stage="in",state="waiting"\} 0/);
    assert.match(text, /gw_queue_jobs\{stage="out",state="failed"\} 0/);
  });

  it('serves the queue dashboard only with the admin key', async () => {
    assert.equal((await fetch(`${gw.url}/admin/queues`)).status, 401);
    assert.equal((await fetch(`${gw.url}/admin/queues`, { headers: { authorization: 'Bearer wrong-key-0123456789abcd' } })).status, 401);
    // A key of the same length in characters but not in bytes is refused like any other wrong key.
    const nonAscii = await fetch(`${gw.url}/admin/queues`, { headers: { authorization: `Basic ${Buffer.from(`admin:${'é'.repeat(ADMIN.length)}`).toString('base64')}` } });
    assert.equal(nonAscii.status, 401);
    const ok = await fetch(`${gw.url}/admin/queues`, { headers: { authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /<html/i);
    const api = await fetch(`${gw.url}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const body = (await api.json()) as { queues: Array<{ name: string }> };
    assert.ok(body.queues.some((q) => q.name === '{in-0}'));
  });

  it('drains the job in flight before it stops', async () => {
    const socket = await TestSocket.open(`${gw.url.replace('http', 'ws')}/webhooks/web/ws`);
    const session = await socket.next((f) => f.type === 'session');
    const started = new Promise<void>((r) => (botStarted = r));
    socket.send({ type: 'message', clientMessageId: 'slow-1', text: 'slow' });
    await started;
    await socket.close();
    const stopping = gw.stop();
    setTimeout(() => release(), 300);
    await stopping;
    // The reply was produced and delivered (kept in the outbox) before the gateway let go.
    const { conversationIdFor } = await import('../gateway/message.js');
    const { Redis } = await import('ioredis');
    const client = new Redis(redis.url);
    const outbox = await client.lrange(`gw:outbox:{${conversationIdFor('web', session.visitorId)}}`, 0, -1);
    client.disconnect();
    assert.equal(outbox.length, 1);
    assert.equal(JSON.parse(outbox[0]!).content.text, 're:slow');
    await eventually(() => gw.logs.some((l) => l.msg === 'gateway stopped'), 'stop logged');
  });
});
