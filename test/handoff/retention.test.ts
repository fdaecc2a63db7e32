/** Conversations are kept as long as their transcript, not forever (Redis runs with noeviction). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { ConversationStore } from '../../gateway/conversations.js';
import { createMessage } from '../../gateway/message.js';
import { Transcripts } from '../../gateway/transcript.js';
import { eventually } from '../helpers/gateway.js';
import { redisClientForTests } from '../helpers/redis.js';

const DAY = 24 * 3600;

describe('conversation retention', () => {
  const test = redisClientForTests();

  /** A customer message reaching conversation `id` of a store with the given retention. */
  async function receive(store: ConversationStore, transcripts: Transcripts, id: string, at = Date.now()) {
    const reference: ConversationReference = { conversationId: id, channel: 'app', channelType: 'app', peerId: 'u', context: {}, updatedAt: at };
    const message = createMessage({
      channel: 'app', channelType: 'app', direction: 'in', conversationId: id,
      channelMessageId: `m-${id}-${at}`, sender: { id: 'u', role: 'customer' }, content: { type: 'text', text: 'hello' },
    });
    return store.receive(reference, message, 60_000, transcripts.entry(message));
  }

  it('renews the expiry of a conversation and its history with each customer message and state change', async () => {
    const redis = test.client;
    const store = new ConversationStore(redis, 'r1', 30 * DAY);
    const transcripts = new Transcripts(redis, 'r1', 500, 30 * DAY);
    await receive(store, transcripts, 'app.c1');
    const ttl = await redis.ttl(store.key('app.c1'));
    assert.ok(ttl > 30 * DAY - 10 && ttl <= 30 * DAY, `conversation TTL ${ttl}`);
    assert.ok((await redis.ttl('r1:conv:{app.c1}:transcript')) > 30 * DAY - 10, 'the transcript expires with it');

    await redis.expire(store.key('app.c1'), 100);
    await store.transition('app.c1', 'handoff_pending', 'bot', 'asked');
    assert.ok((await redis.ttl(store.key('app.c1'))) > 30 * DAY - 10, 'a state change renews it');
    assert.ok((await redis.ttl('r1:conv:{app.c1}:history')) > 30 * DAY - 10, 'and its history expires with it');

    await redis.expire(store.key('app.c1'), 100);
    await receive(store, transcripts, 'app.c1');
    assert.ok((await redis.ttl(store.key('app.c1'))) > 30 * DAY - 10, 'a customer message renews it');
    assert.equal(await store.state('app.c1'), 'handoff_pending', 'renewing keeps the state');
  });

  it('forgets a conversation past its retention, and the activity index drops it', async () => {
    const redis = test.client;
    const store = new ConversationStore(redis, 'r2', 1);
    const transcripts = new Transcripts(redis, 'r2', 500, 1);
    const old = Date.now() - 5_000;
    await redis.zadd(store.indexKey, old, 'app.gone');
    await receive(store, transcripts, 'app.c2');
    // A message starts the trim (in the background, at most once a minute per process).
    await eventually(async () => (await redis.zrange(store.indexKey, '0', '-1')).join() === 'app.c2', 'entries past the retention leave the index');
    assert.ok(await store.get('app.c2'));
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(await store.get('app.c2'), null, 'expired with its transcript');
    assert.equal(await redis.exists(store.key('app.c2'), 'r2:conv:{app.c2}:transcript'), 0);
  });

  it('deletes conversations kept from before they expired, but never one active since the index was read', async () => {
    const redis = test.client;
    const store = new ConversationStore(redis, 'r3', 30 * DAY);
    const longAgo = Date.now() - 40 * DAY * 1000;
    // Written by a version without expiry: no TTL, last active 40 days ago.
    await redis.hset(store.key('app.legacy'), { state: 'bot', updatedAt: longAgo, turns: 3 });
    await redis.lpush('r3:conv:{app.legacy}:history', '{}');
    await redis.zadd(store.indexKey, longAgo, 'app.legacy');
    // Its index entry is as old, but a customer wrote after the index was read (the hash says so).
    const justNow = Date.now();
    await redis.hset(store.key('app.busy'), { state: 'agent', updatedAt: justNow, turns: 9 });
    await redis.zadd(store.indexKey, longAgo, 'app.busy');

    await store.trimIndex();
    assert.equal(await redis.exists(store.key('app.legacy'), 'r3:conv:{app.legacy}:history'), 0, 'the old conversation is gone');
    assert.equal(await store.state('app.busy'), 'agent', 'the active one is kept');
    assert.deepEqual(await redis.zrange(store.indexKey, '0', '-1', 'WITHSCORES'), ['app.busy', String(justNow)], 'and stays in the index');
  });
});
