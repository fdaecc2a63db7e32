import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RedisClient } from '../../adapters/types.js';
import { Idempotency } from '../../gateway/api/idempotency.js';
import type { RouteResult } from '../../gateway/api/route.js';
import { redisClientForTests } from '../helpers/redis.js';

const DAY = 24 * 3600;
const request = { method: 'post', path: '/conversations/app.c1/messages', body: { text: 'hello' } };
const accepted: RouteResult = { status: 202, body: { id: 'm-1' } };

describe('Idempotency-Key', () => {
  const test = redisClientForTests();

  it('holds a request in progress only briefly, so a process dying mid-request does not block its key for a day', async () => {
    const redis = test.client as unknown as RedisClient;
    const idempotency = new Idempotency(redis, 'idem-1', DAY, 1);
    let release: () => void = () => {};
    // The first request never finishes, as in a process that died while running it.
    const first = idempotency.run('ops', 'k-1', request, () => new Promise<RouteResult>((resolve) => (release = () => resolve(accepted))));
    const [key] = await test.client.keys('idem-1:idem:*');
    const ttl = await test.client.ttl(key!);
    assert.ok(ttl > 0 && ttl <= 1, `the in-progress mark expires soon (TTL ${ttl})`);
    await assert.rejects(idempotency.run('ops', 'k-1', request, async () => accepted), (err: Error & { status?: number }) => err.status === 409);

    await new Promise((r) => setTimeout(r, 1_200));
    const retried = await idempotency.run('ops', 'k-1', request, async () => ({ status: 202, body: { id: 'm-2' } }));
    assert.deepEqual(retried.body, { id: 'm-2' }, 'a retry once the mark expired runs the request');
    // The first run, finishing late, does not overwrite what the retry stored.
    release();
    await first;
    const replayed = await idempotency.run('ops', 'k-1', request, async () => accepted);
    assert.deepEqual(replayed.body, { id: 'm-2' });
    assert.equal(replayed.headers?.['Idempotent-Replayed'], 'true');
  });

  it('stores a run that outlived its in-progress mark when no other run took the key over', async () => {
    const redis = test.client as unknown as RedisClient;
    const idempotency = new Idempotency(redis, 'idem-3', DAY, 1);
    let acts = 0;
    await idempotency.run('ops', 'k-3', request, async () => {
      acts++;
      await new Promise((r) => setTimeout(r, 1_500));
      return accepted;
    });
    const [key] = await test.client.keys('idem-3:idem:*');
    const ttl = await test.client.ttl(key!);
    assert.ok(ttl > DAY - 10, `the finished record is kept a day (TTL ${ttl})`);
    const replayed = await idempotency.run('ops', 'k-3', request, async () => {
      acts++;
      return { status: 202, body: { id: 'm-2' } };
    });
    assert.equal(acts, 1, 'the retry does not act again');
    assert.deepEqual(replayed.body, { id: 'm-1' });
    assert.equal(replayed.headers?.['Idempotent-Replayed'], 'true');
  });

  it('stores nothing for a failed run whose mark expired, so the request can be retried', async () => {
    const redis = test.client as unknown as RedisClient;
    const idempotency = new Idempotency(redis, 'idem-4', DAY, 1);
    await assert.rejects(
      idempotency.run('ops', 'k-4', request, async () => {
        await new Promise((r) => setTimeout(r, 1_200));
        throw new Error('helpdesk down');
      }),
      /helpdesk down/,
    );
    assert.deepEqual(await test.client.keys('idem-4:idem:*'), []);
    const retried = await idempotency.run('ops', 'k-4', request, async () => accepted);
    assert.deepEqual(retried.body, { id: 'm-1' });
    assert.equal(retried.headers?.['Idempotent-Replayed'], undefined);
  });

  it('keeps a finished request for the full TTL and replays it', async () => {
    const redis = test.client as unknown as RedisClient;
    const idempotency = new Idempotency(redis, 'idem-2', DAY, 60);
    await idempotency.run('ops', 'k-2', request, async () => accepted);
    const [key] = await test.client.keys('idem-2:idem:*');
    const ttl = await test.client.ttl(key!);
    assert.ok(ttl > DAY - 10, `the finished record is kept a day (TTL ${ttl})`);
    const replayed = await idempotency.run('ops', 'k-2', request, async () => ({ status: 202, body: { id: 'other' } }));
    assert.deepEqual(replayed.body, { id: 'm-1' });
    assert.equal(replayed.headers?.['Idempotent-Replayed'], 'true');
  });
});
