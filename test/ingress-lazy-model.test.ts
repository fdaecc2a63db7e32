/** An ingress-only process serves the model-swap API but loads the intent model only when that API is used. */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startTestRedis } from './helpers/redis.js';

const ADMIN = 'admin-key-0123456789abcdef';
/** Whether this process has loaded onnxruntime-node (its native library costs RSS a socket-holding process needs). */
const runtimeLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/onnxruntime-node/'));

describe('intent model in an ingress-only process', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let ingress: TestGateway;
  before(async () => {
    redis = await startTestRedis();
    ingress = await startTestGateway(
      { server: { adminKey: ADMIN }, channels: [{ id: 'web', type: 'web', options: {} }], bot: { intent: { enabled: true, model: 'models/support' } } },
      redis.url,
      { role: 'ingress' },
    );
  });
  after(async () => {
    await ingress?.stop();
    await redis?.stop();
  });

  it('does not load the model at start, and loads it on the first model-admin request', async () => {
    const loaded = () => ingress.logs.filter((l) => l.msg === 'intent model loaded').length;
    assert.equal(loaded(), 0, 'no ONNX session held by a process that never runs the bot');
    assert.equal(runtimeLoaded(), false, 'not even onnxruntime-node itself');
    assert.equal((await fetch(`${ingress.url}/readyz`)).status, 200);
    const auth = { authorization: `Bearer ${ADMIN}` };
    const [first, second] = await Promise.all([
      fetch(`${ingress.url}/admin/models/intent`, { headers: auth }),
      fetch(`${ingress.url}/admin/models/intent`, { headers: auth }),
    ]);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    const status = (await first.json()) as Record<string, unknown>;
    assert.match(JSON.stringify(status), /support/);
    await eventually(() => loaded() === 1, 'loaded once');
    assert.equal(loaded(), 1, 'concurrent first requests share one load');
    assert.equal(runtimeLoaded(), true);
    assert.equal((await fetch(`${ingress.url}/admin/models/intent`)).status, 401, 'still behind the admin key');
  });
});
