import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';

const KEY_A = 'key-a-0123456789abcdef';
const KEY_B = 'key-b-0123456789abcdef';

describe('REST API rate limit per key (rate-limiter-flexible on Redis)', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  before(async () => {
    redis = await startTestRedis();
    gw = await startTestGateway(
      {
        api: {
          keys: [
            { id: 'a', key: KEY_A, scopes: ['read'] },
            { id: 'b', key: KEY_B, scopes: ['read'] },
          ],
          rateLimit: { points: 3, durationSeconds: 60 },
        },
      },
      redis.url,
    );
  });
  after(async () => {
    await gw?.stop();
    await redis?.stop();
  });

  const list = (key: string) => fetch(`${gw.url}/v1/conversations`, { headers: { authorization: `Bearer ${key}` } });

  it('answers 429 with Retry-After once a key is over its limit, without touching other keys', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await list(KEY_A)).status, 200, `request ${i + 1} is within the limit`);
    const limited = await list(KEY_A);
    assert.equal(limited.status, 429);
    const body = (await limited.json()) as { error: string; message: string };
    assert.equal(body.error, 'rate_limited');
    assert.ok(Number(limited.headers.get('retry-after')) > 0, 'Retry-After says when to come back');
    assert.equal((await list(KEY_B)).status, 200, 'another key has its own budget');
    assert.ok(gw.logs.some((l) => l.msg === 'request refused' && l.error === 'rate_limited'));
  });
});
