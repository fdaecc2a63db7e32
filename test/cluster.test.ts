/** The end-to-end flows against a 3-master Redis Cluster instead of a single server. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { Cluster } from 'ioredis';
import { decodeAppMessage } from '../adapters/app/decode.js';
import { IngestBatcher, type InboundJob } from '../gateway/ingest-batcher.js';
import { queueName } from '../gateway/queues.js';
import { clusterNodes, connectRedis } from '../gateway/redis.js';
import { signedHeaders } from '../adapters/app/signature.js';
import { eventually, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startRecorder } from './helpers/http-recorder.js';
import { startLocalCluster, type LocalCluster } from '../gateway/redis-cluster-server.js';
import { TestSocket } from './helpers/ws-client.js';

const SECRET = 'app-secret-0123456789abcdef';

describe('end to end on a Redis Cluster', () => {
  let cluster: LocalCluster;
  let gw: TestGateway;
  let worker: TestGateway;
  let callback: Awaited<ReturnType<typeof startRecorder>>;

  before(async () => {
    cluster = await startLocalCluster();
    callback = await startRecorder();
    const config = {
      redis: { cluster: cluster.nodes },
      pipeline: { shards: 6 },
      channels: [
        { id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789' } },
        { id: 'app', type: 'app', options: { apps: [{ id: 'shop', secret: SECRET, callbackUrl: `${callback.url}/cb` }] } },
      ],
      bot: { rules: [{ id: 'hello', match: { regex: '^hello' }, reply: 'Hi there!' }], fallback: 'fallback' },
    };
    // The deployed layout: an ingress process and a separate worker process.
    gw = await startTestGateway(config, '', { role: 'ingress' });
    worker = await startTestGateway(config, '', { role: 'worker' });
  });
  after(async () => {
    await gw?.stop();
    await worker?.stop();
    await callback?.close();
    await cluster?.stop();
  });

  it('spreads the shard queues over the masters', async () => {
    const client = new Cluster(cluster.nodes.map((n) => ({ host: '127.0.0.1', port: Number(n.split(':')[1]) })));
    const slots = (await client.cluster("SLOTS")) as unknown as Array<[number, number, [string, number]]>;
    client.disconnect();
    const { calculateSlot } = await import('./helpers/slot.js');
    const owners = new Set(
      [0, 1, 2, 3, 4, 5].map((i) => {
        const slot = calculateSlot(`gw:{in-${i}}:wait`);
        return slots.find(([from, to]) => slot >= from && slot <= to)![2][1];
      }),
    );
    assert.ok(owners.size >= 2, `queues live on ${owners.size} masters`);
  });

  it('web widget: message in, rule reply out, duplicates dropped', async () => {
    const socket = await TestSocket.open(`${gw.url.replace('http', 'ws')}/webhooks/web/ws`);
    await socket.next((f) => f.type === 'session');
    socket.send({ type: 'message', clientMessageId: 'c1', text: 'hello cluster' });
    socket.send({ type: 'message', clientMessageId: 'c1', text: 'hello cluster' });
    const acks = [await socket.next((f) => f.type === 'ack'), await socket.next((f) => f.type === 'ack')];
    assert.deepEqual(acks.map((a) => a.duplicate).sort(), [false, true]);
    const reply = await socket.next((f) => f.type === 'message');
    assert.equal(reply.message.content.text, 'Hi there!');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(socket.frames.filter((f) => f.type === 'message').length, 0);
    await socket.close();
  });

  it('app channel: per-conversation order across shards on different masters', async () => {
    const send = async (userId: string, messageId: string, text: string) => {
      const body = JSON.stringify({ userId, messageId, text });
      const res = await fetch(`${gw.url}/webhooks/app/messages`, { method: 'POST', body, headers: signedHeaders('shop', SECRET, body) });
      return (await res.json()) as { id: string };
    };
    const users = ['c-1', 'c-2', 'c-3', 'c-4'];
    const accepted = await Promise.all(users.flatMap((u) => Array.from({ length: 8 }, (_, i) => send(u, `${u}-${i}`, `hello ${u} ${i}`).then((r) => ({ ...r, u })))));
    for (const u of users) {
      const expected = accepted.filter((a) => a.u === u).map((a) => a.id).sort();
      const replies = () => callback.requests.filter((r) => r.json().userId === u).map((r) => r.json().message.replyTo as string);
      await eventually(() => replies().length === 8, `8 replies for ${u}`);
      assert.deepEqual(replies(), expected);
    }
  });

  it('group commit on a cluster: one MULTI per write, later writes join the waiting job, duplicates recognised', async () => {
    // A prefix no worker consumes, so the first job stays waiting and the later writes join it.
    const client = connectRedis({ cluster: clusterNodes(cluster.nodes) });
    const queues = new Map<number, Queue>();
    const queueAt = (shard: number) => {
      if (!queues.has(shard)) queues.set(shard, new Queue(queueName('in', shard), { connection: client as never, prefix: 'gc' }));
      return queues.get(shard)!;
    };
    const connect = () => connectRedis({ cluster: clusterNodes(cluster.nodes) });
    const batcher = new IngestBatcher({ redis: client, queueAt, jobOptions: {}, dedupeWindowMs: 60_000, maxBatch: 64, connect });
    const entry = (messageId: string) => ({
      message: decodeAppMessage({ userId: 'g-1', messageId, text: messageId }, { id: 'app', type: 'app' }, 'shop'),
      reference: { peerId: 'g-1', context: {} },
    });
    try {
      for (const shard of [0, 1, 2, 3, 4, 5]) {
        assert.deepEqual(await Promise.all([batcher.add(shard, entry(`${shard}-a`)), batcher.add(shard, entry(`${shard}-b`))]), [undefined, undefined]);
        // Nothing consumes: the next write finds its job behind another one, so the write after it joins.
        assert.equal(await batcher.add(shard, entry(`${shard}-c`)), undefined);
        assert.equal(await batcher.add(shard, entry(`${shard}-d`)), undefined);
        const again = await batcher.add(shard, entry(`${shard}-a`));
        assert.ok(again, 'the repeated platform id names the message it repeats');
        const jobs = await queueAt(shard).getWaiting();
        assert.equal(jobs.length, 2, `shard ${shard}: two jobs`);
        // The later writes joined the newest waiting job's own data (the repeated one too: it is dropped when it
        // reaches its conversation).
        const ids = jobs.map((j) => (j.data as InboundJob).entries.map((e) => e.message.channelMessageId)).sort((x, y) => x.length - y.length);
        assert.deepEqual(ids, [
          [`shop/${shard}-a`, `shop/${shard}-b`],
          [`shop/${shard}-c`, `shop/${shard}-d`, `shop/${shard}-a`],
        ]);
      }
    } finally {
      for (const q of queues.values()) await q.close();
      await batcher.close();
      client.disconnect();
    }
  });
});
