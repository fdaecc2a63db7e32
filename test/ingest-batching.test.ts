import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeAppMessage } from '../adapters/app/decode.js';
import type { Bot } from '../bot/types.js';
import type { InboundJob } from '../gateway/ingest-batcher.js';
import { eventually, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startRecorder } from './helpers/http-recorder.js';
import { startTestRedis } from './helpers/redis.js';

const SECRET = 'app-secret-0123456789abcdef';
const channel = { id: 'app', type: 'app' };

/** Echoes; "boom" fails the first time it is seen, so its job is retried. */
function flakyEchoBot(): Bot & { seen: string[] } {
  const seen: string[] = [];
  let boomed = false;
  return {
    seen,
    async decide({ message }) {
      const text = message.content.type === 'text' ? message.content.text : '';
      seen.push(text);
      if (text === 'boom' && !boomed) {
        boomed = true;
        throw new Error('model crashed');
      }
      return { replies: [{ type: 'text', text: `echo:${text}` }], trace: { stage: 'rule' } };
    },
  };
}

describe('ingest group commit: messages that arrive together share one queue job', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let callback: Awaited<ReturnType<typeof startRecorder>>;
  const gateways: TestGateway[] = [];
  const config = (extra: Record<string, unknown> = {}) => ({
    pipeline: { shards: 1, deliveryBackoffMs: 20, inboundAttempts: 3 },
    channels: [{ id: 'app', type: 'app', options: { apps: [{ id: 'shop', secret: SECRET, callbackUrl: `${callback.url}/cb` }] } }],
    ...extra,
  });

  before(async () => {
    redis = await startTestRedis();
    callback = await startRecorder();
  });
  after(async () => {
    for (const gw of gateways) await gw.stop();
    await callback?.close();
    await redis?.stop();
  });

  async function start(cfg: Record<string, unknown>, bot?: Bot): Promise<TestGateway> {
    const gw = await startTestGateway(cfg, redis.url, { prefix: `p${gateways.length}`, ...(bot && { bot }) });
    gateways.push(gw);
    return gw;
  }
  /** Ingests app messages in one turn of the event loop, as a burst of webhooks under load would arrive. */
  const ingestTogether = (gw: TestGateway, items: { user: string; id: string; text: string }[]) =>
    Promise.all(
      items.map(({ user, id, text }) =>
        gw.gateway.pipeline.ingest(decodeAppMessage({ userId: user, messageId: id, text }, channel, 'shop'), { peerId: user, context: { appId: 'shop' } }),
      ),
    );
  const inboundJobs = async (gw: TestGateway) =>
    (await gw.gateway.pipeline.queueAt('in', 0).getJobs(['waiting', 'active', 'completed', 'failed', 'delayed'])).filter(Boolean);
  const repliesTo = (user: string) => callback.requests.filter((r) => r.json().userId === user).map((r) => r.json().message.content.text as string);

  it('writes one job for a burst, drops a platform retry inside it, and answers every message once, in order', async () => {
    const gw = await start(config(), flakyEchoBot());
    const results = await ingestTogether(gw, [
      { user: 'b-1', id: 'm1', text: 'one' },
      { user: 'b-2', id: 'm4', text: 'uno' },
      { user: 'b-1', id: 'm2', text: 'two' },
      { user: 'b-1', id: 'm1', text: 'one' }, // the platform retried m1 of b-1
      { user: 'b-2', id: 'm5', text: 'dos' },
      { user: 'b-1', id: 'm3', text: 'three' },
    ]);
    assert.deepEqual(results.map((r) => r.duplicate), [false, false, false, true, false, false]);
    assert.equal(results[3]!.messageId, results[0]!.messageId, 'the retry names the message it repeats');

    await eventually(() => repliesTo('b-1').length === 3 && repliesTo('b-2').length === 2, 'all replies');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(repliesTo('b-1'), ['echo:one', 'echo:two', 'echo:three']);
    assert.deepEqual(repliesTo('b-2'), ['echo:uno', 'echo:dos']);
    const jobs = await inboundJobs(gw);
    assert.equal(jobs.length, 1, 'one group commit, one job');
    assert.equal((jobs[0]!.data as InboundJob).entries.length, 6);

    // A retry that arrives after the job finished is still recognised by its dedupe mark.
    const [late] = await ingestTogether(gw, [{ user: 'b-2', id: 'm5', text: 'dos' }]);
    assert.equal(late!.duplicate, true);
    assert.equal(late!.messageId, results[4]!.messageId);
    // It still rides in a job of its own (the write cannot branch); reaching its conversation, it is dropped.
    await eventually(async () => (await inboundJobs(gw)).length === 2 && (await inboundJobs(gw)).every((j) => j.finishedOn), 'the late job done');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(repliesTo('b-2'), ['echo:uno', 'echo:dos'], 'no second answer');
    const conversation = decodeAppMessage({ userId: 'b-2', messageId: 'x', text: 'x' }, channel, 'shop').conversationId;
    const transcript = await gw.gateway.transcripts.list(conversation);
    assert.equal(transcript.filter((m) => m.direction === 'in').length, 2, 'no transcript line for the retry');
  });

  it('after a failure retries only what is left: no message is answered twice, a conversation keeps its order', async () => {
    const bot = flakyEchoBot();
    const gw = await start(config(), bot);
    await ingestTogether(gw, [
      { user: 'f-1', id: 'a', text: 'first' },
      { user: 'f-2', id: 'd', text: 'other' },
      { user: 'f-1', id: 'b', text: 'boom' },
      { user: 'f-1', id: 'c', text: 'after boom' },
      { user: 'f-2', id: 'e', text: 'other again' },
    ]);
    await eventually(() => repliesTo('f-1').length === 3, 'f-1 answered after the retry');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(repliesTo('f-1'), ['echo:first', 'echo:boom', 'echo:after boom']);
    assert.deepEqual(repliesTo('f-2'), ['echo:other', 'echo:other again']);
    // The bot saw "boom" twice (failure + retry), and nothing that had succeeded a second time.
    assert.deepEqual(bot.seen.filter((t) => t !== 'boom').sort(), ['after boom', 'first', 'other', 'other again']);
    // The failing message was tried again inside the job, which held its shard meanwhile (a job set aside for a
    // backoff would let a later job of the same conversation overtake it).
    const [job] = await inboundJobs(gw);
    assert.equal(job!.attemptsMade, 1, 'one attempt of the job, two of the message inside it');
    assert.equal(await job!.isCompleted(), true);
  });

  it('while the consumer is behind, joins later messages to the waiting job: fewer jobs, same order, retries dropped, kept through a failure', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const bot = flakyEchoBot();
    const gated: Bot = {
      async decide(input) {
        const text = input.message.content.type === 'text' ? input.message.content.text : '';
        if (text === 'hold') await held;
        return bot.decide(input);
      },
    };
    const gw = await start(config(), gated);
    // A failed assertion must not leave the job hanging, or stopping the gateway would wait for it.
    setTimeout(release, 15_000).unref();
    const [first] = await ingestTogether(gw, [{ user: 'j-1', id: 'j1', text: 'hold' }]);
    await eventually(() => bot.seen.length === 0 && gw.gateway.pipeline.queueAt('in', 0).getActiveCount().then((n) => n === 1), 'first job running');
    await ingestTogether(gw, [{ user: 'j-2', id: 'j2', text: 'second' }]); // nothing waits: a new job
    const [third] = await ingestTogether(gw, [{ user: 'j-1', id: 'j3', text: 'boom' }]); // joins it (and fails once)
    const [retry] = await ingestTogether(gw, [{ user: 'j-2', id: 'j2', text: 'second' }]);
    assert.equal(third!.duplicate, false);
    assert.equal(retry!.duplicate, true, 'a platform retry joining a waiting job is still recognised');

    const jobs = await inboundJobs(gw);
    assert.equal(jobs.length, 2, 'the later messages joined the waiting job');
    // The bot's burst window sees a message that joined a waiting job.
    const conversation = decodeAppMessage({ userId: 'j-1', messageId: 'x', text: 'x' }, channel, 'shop').conversationId;
    assert.deepEqual((await gw.gateway.pipeline.pendingInbound(conversation)).map((m) => m.content.type === 'text' && m.content.text), ['hold', 'boom']);

    release();
    await eventually(() => repliesTo('j-1').length === 2 && repliesTo('j-2').length === 1, 'all replies');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(repliesTo('j-1'), ['echo:hold', 'echo:boom']);
    assert.deepEqual(repliesTo('j-2'), ['echo:second'], 'answered once, not again on the retry');
    // The joined entries are in the job's own data (what its retry, the dead-letter view and a replay read); the
    // failing message was tried again inside the job's one attempt.
    const later = (await inboundJobs(gw)).find((j) => j.id !== first!.messageId)!;
    const data = later.data as InboundJob;
    assert.deepEqual(data.entries.map((e) => e.message.content.type === 'text' && e.message.content.text), ['second', 'boom', 'second']);
    assert.equal(later.attemptsMade, 1);
    assert.equal(await later.isCompleted(), true);
  });

  it('still handles a job queued before group commit (one message per job)', async () => {
    const gw = await start(config(), flakyEchoBot());
    const message = decodeAppMessage({ userId: 'l-1', messageId: 'l1', text: 'from before the upgrade' }, channel, 'shop');
    await gw.gateway.pipeline.queueAt('in', 0).add('inbound', { message, reference: { peerId: 'l-1', context: { appId: 'shop' } } }, { jobId: message.id });
    await eventually(() => repliesTo('l-1').length === 1, 'the reply');
    assert.deepEqual(repliesTo('l-1'), ['echo:from before the upgrade']);
  });

  it('refuses for good a job written by a gateway of another message schema version', async () => {
    const gw = await start(config(), flakyEchoBot());
    const message = { ...decodeAppMessage({ userId: 'v-1', messageId: 'v1', text: 'from the future' }, channel, 'shop'), schemaVersion: 99 };
    const job = await gw.gateway.pipeline.queueAt('in', 0).add('inbound', { entries: [{ message: message as never, reference: { peerId: 'v-1', context: {} } }] }, { attempts: 3 });
    await eventually(async () => (await job.isFailed()) || undefined, 'the job failed');
    const failed = (await gw.gateway.pipeline.queueAt('in', 0).getJob(job.id!))!;
    assert.equal(failed.attemptsMade, 1, 'not retried');
    assert.match(failed.failedReason, /schemaVersion 99/);
    assert.deepEqual(repliesTo('v-1'), []);
  });

  it("answers a burst inside one job as one turn: the bot's burst window sees the job's later messages", async () => {
    const gw = await start(
      config({ bot: { fallback: 'got: {{text}}', policy: { burstWindowMs: { app: 300 }, handoffAfterUnanswered: 0 } } }),
    );
    await ingestTogether(gw, [
      { user: 'w-1', id: 'a', text: 'my order' },
      { user: 'w-1', id: 'b', text: 'never arrived' },
    ]);
    await eventually(() => repliesTo('w-1').length === 1, 'one reply to the burst');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(repliesTo('w-1'), ['got: my order\nnever arrived']);
  });

  it("keeps BullMQ's scripts off the command client and the write connection (ioredis copies a client's scripts into every pipeline)", async () => {
    const gw = await start(config(), flakyEchoBot());
    await ingestTogether(gw, [{ user: 's-1', id: 's1', text: 'hi' }]);
    await eventually(() => repliesTo('s-1').length === 1, 'the reply');
    const scripts = (client: unknown) => Object.keys((client as { scriptsSet: Record<string, unknown> }).scriptsSet);
    const queueClient = await gw.gateway.pipeline.queueAt('in', 0).backend.client;
    assert.ok(scripts(queueClient).length > 20, "the queues' connection has all of BullMQ's scripts");
    // The connection ingest writes its MULTI on: only BullMQ's add scripts, which the write runs.
    const writes = scripts(await gw.gateway.pipeline.ingestConnection());
    assert.ok(writes.some((name) => name.startsWith('addStandardJob:')), "the write connection has BullMQ's add script");
    assert.ok(writes.length <= 8 && writes.every((name) => /^add\w*Job:/.test(name)), `only add scripts: ${writes.join(', ')}`);
    const own = scripts(gw.gateway.redis);
    assert.ok(own.includes('gwConvReceive'), "the command client has the gateway's scripts");
    assert.deepEqual(own.filter((name) => name.includes(':')), [], 'and none of BullMQ\'s (named "<script>:<version>")');
  });
});
