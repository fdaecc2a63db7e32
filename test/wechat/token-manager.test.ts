/** The shared access-token manager on a real Redis: one refresh across "processes", margin, invalidate, one retry. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { TokenManager } from '../../adapters/shared/token-manager.js';
import { startTestRedis } from '../helpers/redis.js';

let redis: Awaited<ReturnType<typeof startTestRedis>>;
const clients: Redis[] = [];
const log = pino({ level: 'silent' });
before(async () => {
  redis = await startTestRedis();
});
after(async () => {
  for (const c of clients) c.disconnect();
  await redis?.stop();
});
const client = () => {
  const c = new Redis(redis.url);
  clients.push(c);
  return c;
};

test('many callers on several processes cause exactly one fetch', async () => {
  const managers = [new TokenManager(client(), 't1:', log), new TokenManager(client(), 't1:', log), new TokenManager(client(), 't1:', log)];
  let fetches = 0;
  const fetch = async () => {
    fetches++;
    await new Promise((r) => setTimeout(r, 100));
    return { token: `tok-${fetches}`, expiresInSeconds: 7200 };
  };
  const tokens = await Promise.all(managers.flatMap((m) => Array.from({ length: 5 }, () => m.get('app', fetch))));
  assert.equal(fetches, 1);
  assert.ok(tokens.every((t) => t === 'tok-1'));
  assert.equal(await managers[2]!.get('app', fetch), 'tok-1', 'served from Redis');
});

test('a token inside the expiry margin is refreshed', async () => {
  const m = new TokenManager(client(), 't2:', log, { marginSeconds: 300 });
  let n = 0;
  const fetch = async () => ({ token: `short-${++n}`, expiresInSeconds: n === 1 ? 0.2 : 7200 });
  assert.equal(await m.get('app', fetch), 'short-1');
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(await m.get('app', fetch), 'short-2');
});

test('invalidate drops only the bad token; callWithToken refreshes and retries exactly once', async () => {
  const m = new TokenManager(client(), 't3:', log);
  let n = 0;
  const fetch = async () => ({ token: `v${++n}`, expiresInSeconds: 7200 });
  assert.equal(await m.get('app', fetch), 'v1');
  await m.invalidate('app', 'stale-other');
  assert.equal(await m.get('app', fetch), 'v1', 'a newer token survives an old invalidation');

  const used: string[] = [];
  const result = await m.callWithToken('app', fetch, async (t) => (used.push(t), t === 'v1' ? { errcode: 42001 } : { errcode: 0 }), (r: any) => r?.errcode === 42001);
  assert.deepEqual(used, ['v1', 'v2']);
  assert.deepEqual(result, { errcode: 0 });

  const always: string[] = [];
  const final = await m.callWithToken('app', fetch, async (t) => (always.push(t), { errcode: 40001 }), (r: any) => r?.errcode === 40001);
  assert.equal(always.length, 2, 'one retry only');
  assert.deepEqual(final, { errcode: 40001 });
});

test('a failed fetch releases the lock and the next caller tries again', async () => {
  const m = new TokenManager(client(), 't4:', log);
  await assert.rejects(m.get('app', async () => Promise.reject(new Error('platform down'))), /platform down/);
  assert.equal(await m.get('app', async () => ({ token: 'ok', expiresInSeconds: 7200 })), 'ok');
});

test('a process reuses the token it read for memoMs: one Redis read for a burst, another process refresh seen after', async () => {
  const reader = client();
  const m = new TokenManager(reader, 't5:', log, { memoMs: 300 });
  const other = new TokenManager(client(), 't5:', log);
  let n = 0;
  const fetch = async () => ({ token: `m${++n}`, expiresInSeconds: 7200 });
  assert.equal(await other.get('app', fetch), 'm1');

  const gets = async () => Number(/cmdstat_get:calls=(\d+)/.exec(await reader.info('commandstats'))?.[1] ?? 0);
  const before = await gets();
  const tokens = [];
  for (let i = 0; i < 50; i++) tokens.push(await m.get('app', fetch));
  assert.ok(tokens.every((t) => t === 'm1'));
  assert.equal((await gets()) - before, 1, 'fifty sends, one read of the shared cache');

  // Another process replaces the token (here by hand, as a refresh after the platform refused it would).
  await other.invalidate('app', 'm1');
  assert.equal(await other.get('app', fetch), 'm2');
  assert.equal(await m.get('app', fetch), 'm1', 'still the remembered token within memoMs');
  await new Promise((r) => setTimeout(r, 350));
  assert.equal(await m.get('app', fetch), 'm2', 'the refreshed token after memoMs');

  // The platform refusing the remembered token drops it at once.
  await other.invalidate('app', 'm2');
  assert.equal(await other.get('app', fetch), 'm3');
  assert.equal(await m.callWithToken('app', fetch, async (t) => t, (t) => t === 'm2'), 'm3');
});

test('a cache read in flight when the platform refused the token does not bring the refused token back for the retry', async () => {
  const redisClient = client();
  await redisClient.set('t6:token:app', JSON.stringify({ token: 'T1', useUntil: Date.now() + 3600_000 }));
  let fetches = 0;
  const fetch = async () => ({ token: `T${++fetches + 1}`, expiresInSeconds: 7200 });
  const m = new TokenManager(redisClient, 't6:', log, { memoMs: 20 });
  const used: string[] = [];
  const result = await m.callWithToken(
    'app',
    fetch,
    (token) =>
      new Promise<string>((resolve) => {
        used.push(token);
        setTimeout(() => {
          // Another request of this process reads the cache just as the platform's refusal comes back.
          if (used.length === 1) void m.get('app', fetch);
          resolve(token === 'T1' ? 'refused' : 'ok');
        }, 30);
      }),
    (outcome) => outcome === 'refused',
  );
  assert.deepEqual(used, ['T1', 'T2'], 'the retry uses a new token');
  assert.equal(result, 'ok');
  assert.equal(fetches, 1);
});
