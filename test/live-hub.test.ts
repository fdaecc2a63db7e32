import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../gateway/logger.js';
import { LiveHub, livePayload, readLivePayload } from '../gateway/live.js';
import { createMessage, type UnifiedMessage } from '../gateway/message.js';
import { connectRedis } from '../gateway/redis.js';
import type { RedisClient } from '../adapters/types.js';
import { eventually } from './helpers/gateway.js';
import { startTestRedis } from './helpers/redis.js';

const reply = (conversationId: string, text: string): UnifiedMessage =>
  createMessage({ channel: 'web', channelType: 'web', direction: 'out', conversationId, sender: { id: 'bot', role: 'bot' }, content: { type: 'text', text } });

describe('live hub payload', () => {
  it('puts the conversation id in front of the message, readable without parsing it', () => {
    for (const id of ['web:v1', 'app:shop:user:with:colons', '微信:用户😀', '']) {
      const json = JSON.stringify(reply(id || 'x', 'hi'));
      assert.deepEqual(readLivePayload(livePayload(id, json)), { conversationId: id, json });
    }
  });

  it('reads a bare JSON message (published by a process before the id went in front) as one for every subscriber', () => {
    const json = JSON.stringify(reply('web:v1', 'hi'));
    assert.deepEqual(readLivePayload(json), { json });
  });

  it('refuses broken framing', () => {
    for (const payload of ['', 'web:v1{}', '99:short{}', '-1:x{}', '1234567:x', ':x{}', 'x']) assert.equal(readLivePayload(payload), undefined, payload);
  });
});

describe('live hub across processes (real Redis pub/sub)', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  const clients: RedisClient[] = [];
  const connect = () => {
    const client = connectRedis(redis.url, { autoPipelining: false });
    clients.push(client);
    return client;
  };
  const errors: Array<Record<string, unknown>> = [];
  const hub = () => {
    const log = createLogger('error', { write: (line: string) => void errors.push(JSON.parse(line)) } as never);
    return new LiveHub(connect(), connect, 'gw', 10, 60, log);
  };
  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => {
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  it("gives each ingress process the replies of the conversations it holds, and reads no other process's", async () => {
    const [worker, ingressA, ingressB] = [hub(), hub(), hub()];
    const gotA: UnifiedMessage[] = [];
    const gotB: UnifiedMessage[] = [];
    const everything: UnifiedMessage[] = [];
    await ingressA.subscribe('web', (m) => gotA.push(m), (id) => id === 'web:a');
    await ingressB.subscribe('web', (m) => gotB.push(m), (id) => id === 'web:b');
    await ingressB.subscribe('web', (m) => everything.push(m));

    await worker.publish(reply('web:a', 'for a'));
    await worker.publish(reply('web:b', 'for b'));
    await eventually(() => gotA.length === 1 && gotB.length === 1 && everything.length === 2, 'replies delivered');
    assert.equal(gotA[0]!.content.type === 'text' && gotA[0]!.content.text, 'for a');
    assert.equal(gotB[0]!.content.type === 'text' && gotB[0]!.content.text, 'for b');
    assert.deepEqual((await worker.missed('web:a', undefined)).map((m) => m.id), [gotA[0]!.id], 'kept in the outbox too');

    // A payload nobody holds is dropped before its message is read: an unreadable one logs nothing.
    await Promise.all([ingressA.close(), ingressB.close()]);
    errors.length = 0;
    const other = hub();
    const dropped: UnifiedMessage[] = [];
    await other.subscribe('web', (m) => dropped.push(m), (id) => id === 'web:a');
    const publisher = connect();
    await publisher.publish('gw:live:web', livePayload('web:zzz', '{not json'));
    await publisher.publish('gw:live:web', livePayload('web:a', '{not json'));
    await eventually(() => errors.some((e) => e.msg === 'dropping an unreadable live message'), 'the held conversation is read');
    assert.equal(errors.length, 1, 'only the payload of a held conversation was parsed');
    assert.equal(dropped.length, 0);

    // A bare JSON message from a process not yet upgraded still reaches its sockets.
    const legacy = reply('web:a', 'old format');
    await publisher.publish('gw:live:web', JSON.stringify(legacy));
    await eventually(() => dropped.some((m) => m.id === legacy.id), 'bare JSON delivered');
    await Promise.all([worker.close(), other.close()]);
  });

  it('after its subscriber connection comes back, hands on the replies published meanwhile to the conversations it holds, once each', async () => {
    const hub_ = hub();
    const got: string[] = [];
    await hub_.subscribe('web', (m) => got.push((m.content as { text: string }).text), (id) => id === 'web:gap');
    // A socket of the conversation connected: it asked for what it missed (nothing yet).
    assert.deepEqual(await hub_.missed('web:gap', undefined), []);
    await hub_.publish(reply('web:gap', 'before'));
    await eventually(() => got.length === 1, 'the first reply');
    await connect().call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await hub_.publish(reply('web:gap', 'during the reconnect'));
    await hub_.publish(reply('web:elsewhere', 'not held here'));
    await eventually(() => got.length === 2, 'the reply published while reconnecting', 5000);
    await hub_.publish(reply('web:gap', 'after'));
    await eventually(() => got.length === 3, 'the next live reply');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(got, ['before', 'during the reconnect', 'after']);
  });
});
