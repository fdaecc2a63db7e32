/** The conversations' activity index (the REST API lists from it, retention trims it) is written once per turn. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { ConversationStore } from '../../gateway/conversations.js';
import { createMessage } from '../../gateway/message.js';
import { Transcripts } from '../../gateway/transcript.js';
import { redisClientForTests } from '../helpers/redis.js';

const DAY = 24 * 3600;

describe('conversation activity index', () => {
  const test = redisClientForTests();

  function receive(store: ConversationStore, transcripts: Transcripts, id: string, at: number) {
    const reference: ConversationReference = { conversationId: id, channel: 'app', channelType: 'app', peerId: 'u', context: {}, updatedAt: at };
    const message = createMessage({
      channel: 'app', channelType: 'app', direction: 'in', conversationId: id,
      channelMessageId: `m-${id}-${at}`, sender: { id: 'u', role: 'customer' }, content: { type: 'text', text: 'hello' },
    });
    return store.receive(reference, message, 60_000, transcripts.entry(message));
  }

  /** ZADD calls Redis has served so far (INFO commandstats; this file has its own redis-server). */
  async function zaddCalls(): Promise<number> {
    const stats = await test.client.info('commandstats');
    return Number(/cmdstat_zadd:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }

  it('indexes the conversations of one turn (a queue job) with one ZADD, each at its own time', async () => {
    const redis = test.client;
    const store = new ConversationStore(redis, 'ix1', 30 * DAY);
    const transcripts = new Transcripts(redis, 'ix1', 500, 30 * DAY);
    const t0 = Date.now();
    const before = await zaddCalls();
    const received = await Promise.all(Array.from({ length: 20 }, (_, i) => receive(store, transcripts, `app.c${i}`, t0 + i)));
    assert.equal((await zaddCalls()) - before, 1, 'one ZADD for the twenty conversations');
    assert.ok(received.every((r) => r.duplicateOf === undefined && r.state === 'bot'));
    const index = await redis.zrange(store.indexKey, '0', '-1', 'WITHSCORES');
    assert.equal(index.length, 40);
    for (let i = 0; i < 20; i++) assert.equal(await redis.zscore(store.indexKey, `app.c${i}`), String(t0 + i));

    // A later turn writes again; where one conversation comes twice in a turn, its later activity stays.
    await Promise.all([receive(store, transcripts, 'app.c3', t0 + 100), receive(store, transcripts, 'app.c3', t0 + 200)]);
    assert.equal((await zaddCalls()) - before, 2);
    assert.equal(await redis.zscore(store.indexKey, 'app.c3'), String(t0 + 200));
  });

  it('fails the receives of a turn whose index write fails, and writes the next turn afresh', async () => {
    const redis = test.client;
    const store = new ConversationStore(redis, 'ix2', 30 * DAY);
    const transcripts = new Transcripts(redis, 'ix2', 500, 30 * DAY);
    await redis.set(store.indexKey, 'not a sorted set'); // ZADD now answers WRONGTYPE
    const failed = await Promise.allSettled([receive(store, transcripts, 'app.a', 1), receive(store, transcripts, 'app.b', 2)]);
    assert.deepEqual(failed.map((r) => r.status), ['rejected', 'rejected'], 'a receive resolves only once its activity is indexed');
    assert.match(String((failed[0] as PromiseRejectedResult).reason), /WRONGTYPE/);
    await redis.del(store.indexKey);
    await receive(store, transcripts, 'app.a', 3);
    assert.deepEqual(await redis.zrange(store.indexKey, '0', '-1'), ['app.a']);
  });
});
