import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { signedHeaders } from '../adapters/app/signature.js';
import type { Bot } from '../bot/types.js';
import { queueName } from '../gateway/queues.js';
import { eventually, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startRecorder } from './helpers/http-recorder.js';
import { startTestRedis } from './helpers/redis.js';

const SECRET = 'app-secret-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';

/**
 * Echoes the text back; a slow first message would expose any reordering. "count" and "silent" count turns in the
 * bot's state; "silent" answers nothing.
 */
const echoBot: Bot = {
  async decide({ message, state }) {
    const text = message.content.type === 'text' ? message.content.text : '';
    if (text.endsWith('#slow')) await new Promise((r) => setTimeout(r, 50));
    const counted = String(Number(state ?? '0') + 1);
    if (text === 'count') return { replies: [{ type: 'text', text: `count:${counted} (was ${state})` }], trace: { stage: 'rule' }, state: counted };
    if (text === 'silent') return { replies: [], trace: { stage: 'rule' }, state: counted };
    if (text.startsWith('handoff')) return { replies: [{ type: 'text', text: 'one moment' }], handoff: { reason: 'asked' }, trace: { stage: 'rule' } };
    return { replies: [{ type: 'text', text: `echo:${text}` }], trace: { stage: 'rule' } };
  },
};

describe('pipeline: order, retries, dead letters, state checks, shard ownership', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let callback: Awaited<ReturnType<typeof startRecorder>>;
  const config = () => ({
    server: { adminKey: ADMIN },
    pipeline: { shards: 4, deliveryAttempts: 3, deliveryBackoffMs: 20 },
    channels: [{ id: 'app', type: 'app', options: { apps: [{ id: 'shop', secret: SECRET, callbackUrl: `${callback.url}/cb` }] } }],
  });

  before(async () => {
    redis = await startTestRedis();
    callback = await startRecorder();
    gw = await startTestGateway(config(), redis.url, { bot: echoBot });
  });
  after(async () => {
    await gw?.stop();
    await callback?.close();
    await redis?.stop();
  });

  async function send(userId: string, messageId: string, text: string) {
    const body = JSON.stringify({ userId, messageId, text });
    const res = await fetch(`${gw.url}/webhooks/app/messages`, { method: 'POST', body, headers: signedHeaders('shop', SECRET, body) });
    assert.equal(res.status, 202);
    return (await res.json()) as { id: string; conversationId: string };
  }
  const repliesTo = (userId: string) => callback.requests.filter((r) => r.json().userId === userId).map((r) => r.json().message.content.text as string);

  it('keeps the order of each conversation while conversations run in parallel', async () => {
    const users = ['o-1', 'o-2', 'o-3', 'o-4', 'o-5'];
    const accepted = await Promise.all(
      users.flatMap((u) => Array.from({ length: 12 }, (_, i) => send(u, `${u}-${i}`, `${u}-${i}${i % 4 === 0 ? '#slow' : ''}`).then((r) => ({ ...r, u, i })))),
    );
    for (const u of users) {
      // Acceptance order = ULID order of the ids the gateway gave the messages when it queued them.
      const expected = accepted.filter((a) => a.u === u).sort((a, b) => (a.id < b.id ? -1 : 1)).map((a) => `echo:${u}-${a.i}${a.i % 4 === 0 ? '#slow' : ''}`);
      await eventually(() => repliesTo(u).length === 12, `12 replies for ${u}`);
      assert.deepEqual(repliesTo(u), expected, `replies of ${u} in the order the messages were queued`);
    }
  });

  it('retries a failing delivery with backoff and delivers once', async () => {
    let calls = 0;
    callback.setHandler((req, res) => {
      if (req.json().userId === 'r-1' && ++calls <= 2) {
        res.statusCode = 503;
        return void res.end('busy');
      }
      res.end('ok');
    });
    await send('r-1', 'r-1-a', 'retry me');
    await eventually(() => calls === 3, 'third attempt');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(callback.requests.filter((r) => r.json().userId === 'r-1').length, 3, 'two failures, one success, no more');
  });

  it('never sends a delivered message again when an after-send hook fails: logged, not retried', async () => {
    callback.setHandler((_req, res) => void res.end('ok'));
    let failures = 0;
    gw.gateway.hooks.use({
      name: 'flaky-archive',
      afterSend: (message) => {
        if (message.conversationId === conversation && failures++ === 0) throw new Error('archive unavailable');
      },
    });
    let conversation = '';
    ({ conversationId: conversation } = await send('ah-1', 'ah-1-a', 'archive me'));
    await send('ah-1', 'ah-1-b', 'and me');
    await eventually(() => repliesTo('ah-1').length === 2, 'both replies');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(repliesTo('ah-1'), ['echo:archive me', 'echo:and me'], 'each reply sent once, in order');
    assert.equal(failures, 2, 'the hook ran for both');
    assert.ok(gw.logs.some((l) => l.msg === 'after-send work failed (the message was delivered)'), 'the failure is logged');
    const transcript = await gw.gateway.transcripts.list(conversation);
    assert.equal(transcript.filter((m) => m.direction === 'out').length, 2, "both replies recorded in the transcript, whatever a hook does");
  });

  it("never calls an app back twice when its delivery record (transcript, live fan-out) fails after the callback: logged, not retried", async () => {
    callback.setHandler((_req, res) => void res.end('ok'));
    const conversations = gw.gateway.conversations;
    const delivered = conversations.delivered;
    let conversation = '';
    conversations.delivered = (id, ...rest) => (id === conversation ? Promise.reject(new Error('redis write lost')) : delivered.call(conversations, id, ...rest));
    try {
      ({ conversationId: conversation } = await send('lf-1', 'lf-1-a', 'fan me out'));
      await eventually(() => repliesTo('lf-1').length === 1, 'the reply');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(repliesTo('lf-1'), ['echo:fan me out'], 'called back once');
      assert.ok(gw.logs.some((l) => l.msg === 'after-send work failed (the message was delivered)' && JSON.stringify(l).includes('redis write lost')), 'the failure is logged');
    } finally {
      conversations.delivered = delivered;
    }
  });

  it("records a delivered app reply: transcript line, outbox and live publish, and the bot's turn", async () => {
    callback.setHandler((_req, res) => void res.end('ok'));
    const subscriber = (gw.gateway.redis as Redis).duplicate();
    const published: string[] = [];
    subscriber.on('message', (_topic: string, payload: string) => published.push(payload));
    await subscriber.subscribe('gw:live:app');
    try {
      const { conversationId } = await send('rec-1', 'rec-1-a', 'record me');
      await eventually(() => repliesTo('rec-1').length === 1, 'the reply');
      const reply = (await gw.gateway.transcripts.list(conversationId)).filter((m) => m.direction === 'out');
      assert.deepEqual(reply.map((m) => m.content), [{ type: 'text', text: 'echo:record me' }], 'the transcript has the reply');
      await eventually(() => published.some((p) => p.includes(reply[0]!.id)), 'the reply published live');
      assert.ok(published.find((p) => p.includes(reply[0]!.id))!.startsWith(`${conversationId.length}:${conversationId}{`), 'framed with its conversation');
      const outbox = await gw.gateway.redis.lrange(`gw:outbox:{${conversationId}}`, 0, -1);
      assert.deepEqual(outbox.map((json) => JSON.parse(json).id), [reply[0]!.id], 'kept in the outbox for a reconnecting socket');
      const inbound = (await gw.gateway.transcripts.list(conversationId)).find((m) => m.direction === 'in')!;
      assert.equal(await gw.gateway.redis.hget(gw.gateway.conversations.key(conversationId), 'answered'), inbound.id, "the bot's turn recorded");
    } finally {
      subscriber.disconnect();
    }
  });

  it('delivers a reply on its first attempt inside the inbound job: one queue job per message', async () => {
    callback.setHandler((_req, res) => void res.end('ok'));
    const { conversationId } = await send('f-1', 'f-1-a', 'first try');
    await eventually(() => repliesTo('f-1').length === 1, 'reply');
    const outbound = gw.gateway.pipeline.allQueues().filter((q) => q.name.startsWith('{out-'));
    const all = (await Promise.all(outbound.map((q) => q.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed'])))).flat();
    const jobs = all.filter((j) => j?.data.message.conversationId === conversationId).length;
    assert.equal(jobs, 0, 'a reply that went out at once never becomes an outbound job');
  });

  it('keeps a conversation in order while its earlier reply waits for a retry', async () => {
    let failures = 0;
    const accepted: string[] = [];
    callback.setHandler((req, res) => {
      const body = req.json();
      if (body.userId !== 'q-1') return void res.end('ok');
      // The reply to the first message fails twice (first attempt inside the inbound job, then one queued retry).
      if (body.message.content.text === 'echo:first' && ++failures <= 2) {
        res.statusCode = 503;
        return void res.end('busy');
      }
      accepted.push(body.message.content.text);
      res.end('ok');
    });
    await send('q-1', 'q-1-a', 'first');
    await eventually(() => failures >= 1, 'first attempt failed');
    // Sent while "echo:first" waits for its backoff: without the queue check they would go out before it.
    await send('q-1', 'q-1-b', 'second');
    await send('q-1', 'q-1-c', 'third');
    await eventually(() => accepted.length === 3, 'all delivered', 15_000);
    assert.deepEqual(accepted, ['echo:first', 'echo:second', 'echo:third']);
  });

  it('dead-letters what retrying cannot fix, lists it for the admin, and replays it', async () => {
    let refuse = true;
    callback.setHandler((req, res) => {
      if (req.json().userId === 'd-1' && refuse) {
        res.statusCode = 400;
        return void res.end('bad');
      }
      res.end('ok');
    });
    await send('d-1', 'd-1-a', 'dead letter me');
    const unauth = await fetch(`${gw.url}/admin/dead-letters`);
    assert.equal(unauth.status, 401);
    const auth = { authorization: `Bearer ${ADMIN}` };
    const item = await eventually(async () => {
      const list = (await (await fetch(`${gw.url}/admin/dead-letters`, { headers: auth })).json()) as { items: any[] };
      return list.items.find((i) => i.channel === 'app' && /HTTP 400/.test(i.failedReason));
    }, 'dead letter listed');
    assert.equal(item.attemptsMade, 1, 'a 4xx is not retried');
    assert.equal(callback.requests.filter((r) => r.json().userId === 'd-1').length, 1);
    // A nonsensical limit is bounded, not taken as BullMQ's "to the end of the set".
    for (const limit of ['-1', '0', 'x']) {
      const bounded = (await (await fetch(`${gw.url}/admin/dead-letters?limit=${limit}`, { headers: auth })).json()) as { items: any[] };
      assert.ok(bounded.items.length >= 1, `limit=${limit} lists`);
    }
    const one = (await (await fetch(`${gw.url}/admin/dead-letters?limit=-1`, { headers: auth })).json()) as { items: any[] };
    assert.ok(one.items.length <= 1, 'limit=-1 reads at most one job, not the whole failed set');
    refuse = false;
    const replay = await fetch(`${gw.url}/admin/dead-letters/${encodeURIComponent(item.queue)}/${item.jobId}/replay`, { method: 'POST', headers: auth });
    assert.equal(replay.status, 202);
    await eventually(() => callback.requests.filter((r) => r.json().userId === 'd-1').length === 2, 'replayed delivery');
  });

  it('honours a platform rate limit (429 + Retry-After) without losing the message', async () => {
    let limited = false;
    callback.setHandler((req, res) => {
      if (req.json().userId === 'l-1' && !limited) {
        limited = true;
        res.statusCode = 429;
        res.setHeader('retry-after', '1');
        return void res.end('slow down');
      }
      res.end('ok');
    });
    await send('l-1', 'l-1-a', 'limited');
    await eventually(() => callback.requests.filter((r) => r.json().userId === 'l-1').length === 2, 'delivered after the pause', 15_000);
  });

  it('keeps a channel under its configured send quota without dropping a reply', async () => {
    const limited = await startTestGateway(
      {
        pipeline: { shards: 1 },
        channels: [{ id: 'app', type: 'app', rateLimit: { messages: 2, perSeconds: 1 }, options: { apps: [{ id: 'shop', secret: SECRET, callbackUrl: `${callback.url}/quota` }] } }],
      },
      redis.url,
      { bot: echoBot, prefix: 'quota' },
    );
    try {
      callback.setHandler((_req, res) => void res.end('ok'));
      for (let i = 0; i < 5; i++) {
        const body = JSON.stringify({ userId: `q-${i}`, messageId: `q-${i}`, text: `quota ${i}` });
        const res = await fetch(`${limited.url}/webhooks/app/messages`, { method: 'POST', body, headers: signedHeaders('shop', SECRET, body) });
        assert.equal(res.status, 202);
      }
      const arrivals = () => callback.requests.filter((r) => r.url === '/quota');
      await eventually(() => arrivals().length === 5, 'all five replies', 15_000);
      const at = arrivals().map((r) => r.receivedAt);
      // Never more than two deliveries within any one-second window.
      for (let i = 2; i < at.length; i++) assert.ok(at[i]! - at[i - 2]! >= 900, `deliveries ${i - 2} and ${i} are ${at[i]! - at[i - 2]!} ms apart`);
      const metrics = await (await fetch(`${limited.url}/metrics`)).text();
      assert.match(metrics, /gw_messages_out_total\{channel="app",result="rate_limited"\} [1-9]/);
    } finally {
      await limited.stop();
    }
  });

  it("keeps the bot's state with the conversation: saved after each turn, replies or not, and handed back with the next message", async () => {
    callback.setHandler((_req, res) => void res.end('ok'));
    const { conversationId } = await send('st-1', 'st-1-a', 'count');
    await send('st-1', 'st-1-b', 'silent');
    await send('st-1', 'st-1-c', 'count');
    await eventually(() => repliesTo('st-1').length === 2, 'two replies');
    assert.deepEqual(repliesTo('st-1'), ['count:1 (was undefined)', 'count:3 (was 2)'], 'a turn without a reply saved its state too');
    await eventually(async () => (await gw.gateway.redis.hget(gw.gateway.conversations.key(conversationId), 'bot')) === '3', 'the state in the conversation hash');
    const keys = await gw.gateway.redis.keys(`*{${conversationId}}*`);
    assert.ok(!keys.some((k) => k.includes(':bot')), `no key of the bot's own: ${keys.join(', ')}`);
  });

  it('never runs the bot for a conversation handed to a human', async () => {
    callback.setHandler((_req, res) => void res.end('ok'));
    const created: string[] = [];
    const off = gw.gateway.events.on('message.created', (e) => created.push(e.message.content.type === 'text' ? e.message.content.text : ''));
    const first = await send('h-1', 'h-1-a', 'handoff please');
    await eventually(async () => (await gw.gateway.conversations.state(first.conversationId)) === 'handoff_pending', 'handoff_pending');
    await send('h-1', 'h-1-b', 'are you there?');
    await eventually(() => created.includes('are you there?'), 'message forwarded to the helpdesk event');
    off();
    assert.deepEqual(repliesTo('h-1'), ['one moment'], 'no bot reply after the hand-off');
    const history = await gw.gateway.conversations.history(first.conversationId);
    assert.deepEqual(history.map((h) => [h.from, h.to, h.by]), [['bot', 'handoff_pending', 'bot']]);
  });

  it('refuses to start workers with fewer shards while the queues they would abandon hold jobs', async () => {
    const prefix = 'shrink';
    const withShards = (shards: number) => ({ ...config(), pipeline: { ...config().pipeline, shards } });
    const first = await startTestGateway(withShards(4), redis.url, { bot: echoBot, prefix, role: 'worker' });
    await first.stop();
    // A job left behind in the last of the four shards, as a retry waiting there would be.
    const connection = new Redis(redis.url);
    const leftover = new Queue(queueName('in', 3), { connection, prefix });
    try {
      await leftover.add('inbound', { entries: [] }, { delay: 60_000 });
      await assert.rejects(startTestGateway(withShards(2), redis.url, { bot: echoBot, prefix, role: 'worker' }), (err: Error) => {
        assert.equal(err.name, 'ShardCountError');
        assert.match(err.message, /pipeline\.shards is 2, but queue \{in-3\} \(written while it was 4\) still holds 1 unfinished job/);
        return true;
      });
      // An ingress writing with another count than the workers read says so.
      const ingress = await startTestGateway(withShards(2), redis.url, { bot: echoBot, prefix, role: 'ingress' });
      await ingress.stop();
      assert.ok(ingress.logs.some((l) => l.workerShards === 4 && l.shards === 2), 'ingress warns about the shard count');
      // Once the old queues are empty the lower count is taken, and recorded.
      await leftover.obliterate({ force: true });
      const second = await startTestGateway(withShards(2), redis.url, { bot: echoBot, prefix, role: 'worker' });
      await second.stop();
      assert.equal(await connection.get(`${prefix}:pipeline:shards`), '2');
    } finally {
      await leftover.close();
      connection.disconnect();
    }
  });

  it('splits shards between worker processes and never lets two consume one shard', async () => {
    const second = await startTestGateway(config(), redis.url, { bot: echoBot, role: 'worker' });
    try {
      await eventually(() => second.gateway.pipeline.ownedShards.length === 2 && gw.gateway.pipeline.ownedShards.length === 2, 'a 2/2 split', 15_000);
      const all = [...gw.gateway.pipeline.ownedShards, ...second.gateway.pipeline.ownedShards].sort();
      assert.deepEqual(all, [0, 1, 2, 3]);
      const users = ['s-1', 's-2', 's-3', 's-4', 's-5', 's-6'];
      await Promise.all(users.map((u) => send(u, `${u}-x`, `${u} hello`)));
      for (const u of users) await eventually(() => repliesTo(u).length === 1, `reply for ${u}`);
    } finally {
      await second.stop();
    }
    await eventually(() => gw.gateway.pipeline.ownedShards.length === 4, 'the survivor takes all shards back', 15_000);
  });
});
