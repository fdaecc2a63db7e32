import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import express, { type ErrorRequestHandler } from 'express';
import { Redis } from 'ioredis';
import { buildModel, writeModel } from '../../bot/intent/build.js';
import { readExamples } from '../../bot/intent/data.js';
import { IntentService } from '../../bot/intent/service.js';
import { HttpError } from '../../gateway/errors.js';
import { createLogger } from '../../gateway/logger.js';
import { startTestRedis } from '../helpers/redis.js';

const log = createLogger('silent');

/** Retries an assertion until it holds (cross-process delivery is asynchronous); the last failure if it never does. */
async function eventually(check: () => unknown, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
const { examples, sha256 } = readExamples('data/intents/support/utterances.csv');

/**
 * Two genuinely different good models (different seeds/epochs, so different bytes and versions). Linear ones: the
 * swap is what is under test here, and they are small and quick to train.
 */
function makeModel(dir: string, version: string, seed: number): string {
  const out = join(dir, version);
  writeModel(out, buildModel({ name: 'support', version, examples, dataSha256: sha256, classifier: 'linear', seed, epochs: 6 + seed }));
  return out;
}

/** A copy of a good model with one thing broken. */
function broken(dir: string, from: string, name: string, edit: (files: { onnx: Buffer; manifest: any }) => void): string {
  const out = join(dir, name);
  const files = { onnx: readFileSync(join(from, 'model.onnx')), manifest: JSON.parse(readFileSync(join(from, 'model.json'), 'utf8')) };
  edit(files);
  execFileSync('mkdir', ['-p', out]);
  writeFileSync(join(out, 'model.onnx'), files.onnx);
  writeFileSync(join(out, 'model.json'), JSON.stringify(files.manifest));
  return out;
}

const errors: ErrorRequestHandler = (err, _req, res, _next) => {
  const status = err instanceof HttpError ? err.status : (err.status ?? 500);
  res.status(status).json({ error: err.code ?? 'internal', message: err.message });
};

describe('intent model hot swap over real Redis', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let dir: string;
  let v1: string;
  let v2: string;
  let a: IntentService;
  let b: IntentService;
  const clients: Redis[] = [];
  let base: string;
  let server: ReturnType<express.Express['listen']>;

  const client = () => {
    const r = new Redis(redis.url);
    clients.push(r);
    return r;
  };
  const put = (body: BodyInit, type: string) =>
    fetch(`${base}/admin/models/intent`, { method: 'PUT', headers: { 'content-type': type }, body });

  before(async () => {
    redis = await startTestRedis();
    dir = mkdtempSync(join(tmpdir(), 'intent-models-'));
    v1 = makeModel(dir, 'v1', 1);
    v2 = makeModel(dir, 'v2', 2);
    a = await IntentService.create({ modelDir: v1, redis: client(), prefix: 'test', log });
    const app = express();
    const router = express.Router();
    a.adminRoutes(router);
    app.use('/admin', router);
    app.use(errors);
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.close();
    await a?.close();
    await b?.close();
    for (const c of clients) c.disconnect();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts on the configured model', async () => {
    const p = await a.predict('where is my order');
    assert.equal(p.modelVersion, 'support@v1');
    assert.equal(p.label, 'order_status');
    assert.deepEqual(a.health(), { ok: true, detail: 'support@v1' });
  });

  it('accepts a good model by path and switches to it', async () => {
    const res = await put(JSON.stringify({ path: v2 }), 'application/json');
    assert.equal(res.status, 200, await res.clone().text());
    const body = await res.json();
    assert.equal(body.version, 'support@v2');
    assert.equal(body.previous, 'support@v1');
    assert.equal((await a.predict('我要开发票')).modelVersion, 'support@v2');
  });

  it('a process started later loads the announced model, not its configured folder', async () => {
    b = await IntentService.create({ modelDir: v1, redis: client(), prefix: 'test', log });
    assert.equal((await b.predict('hello')).modelVersion, 'support@v2');
  });

  const rejects = [
    ['a corrupt model.onnx', 'onnx_invalid', (f: { onnx: Buffer }) => (f.onnx = f.onnx.subarray(0, 1000))],
    ['labels that do not match the output', 'label_mismatch', (f: { manifest: any }) => {
      f.manifest.labels.push('extra_label');
      f.manifest.samples.push({ text: 'something extra', label: 'extra_label' });
    }],
    ['samples that predict another label', 'samples_failed', (f: { manifest: any }) => {
      f.manifest.samples.push({ text: 'where is my order', label: 'thanks' });
    }],
    ['a manifest without a sample for every label', 'manifest_invalid', (f: { manifest: any }) => {
      f.manifest.samples = f.manifest.samples.filter((s: { label: string }) => s.label !== 'thanks');
    }],
    ['a vocabulary with more n-grams than the graph has columns', 'vocabulary_mismatch', (f: { manifest: any }) => {
      f.manifest.input.vocabulary.push('w\u0001warranty');
      f.manifest.input.idf.push(5);
    }],
    ['a manifest that breaks the contract', 'manifest_invalid', (f: { manifest: any }) => delete f.manifest.thresholds],
    ['an IDF list that does not match the vocabulary', 'manifest_invalid', (f: { manifest: any }) => f.manifest.input.idf.pop()],
    ['a character n-gram whose token is two characters', 'manifest_invalid', (f: { manifest: any }) => {
      const at = f.manifest.input.vocabulary.findIndex((key: string) => key.startsWith('b'));
      f.manifest.input.vocabulary[at] += 'x';
    }],
    ['a manifest naming inputs the graph does not have', 'input_mismatch', (f: { manifest: any }) => (f.manifest.input.names.rows = 'rows')],
  ] as const;
  for (const [what, code, edit] of rejects) {
    it(`rejects ${what} with a 4xx and keeps the old model live`, async () => {
      const bad = broken(dir, v1, `bad-${code}`, edit as (f: { onnx: Buffer; manifest: any }) => void);
      const res = await put(JSON.stringify({ path: bad }), 'application/json');
      assert.equal(res.status, 422);
      const body = await res.json();
      assert.equal(body.error, code);
      assert.match(body.message, /support@v2 stays live/);
      const p = await a.predict('where is my order');
      assert.equal(p.modelVersion, 'support@v2');
      assert.equal(p.label, 'order_status');
    });
  }

  it('answers 404 for a missing folder and 400 for a body without a path', async () => {
    assert.equal((await put(JSON.stringify({ path: join(dir, 'nope') }), 'application/json')).status, 404);
    const res = await put(JSON.stringify({}), 'application/json');
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error, 'missing_path');
  });

  it('rolls back to the previous version, on every process', async () => {
    const res = await fetch(`${base}/admin/models/intent/rollback`, { method: 'POST' });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).version, 'support@v1');
    assert.equal((await a.predict('hello')).modelVersion, 'support@v1');
    await eventually(async () => assert.equal((await b.predict('hello')).modelVersion, 'support@v1'));
    const again = await fetch(`${base}/admin/models/intent/rollback`, { method: 'POST' });
    assert.equal(again.status, 409, 'nothing older than the first model');
  });

  it('accepts a gzipped tar upload and the swap reaches the second process through Redis', async () => {
    const tgz = execFileSync('tar', ['-czf', '-', '-C', v2, '.']);
    const res = await put(tgz, 'application/gzip');
    assert.equal(res.status, 200, await res.clone().text());
    await eventually(async () => assert.equal((await b.predict('退款')).modelVersion, 'support@v2'));
    assert.deepEqual(b.health(), { ok: true, detail: 'support@v2' });
  });

  it('a process that cannot load an announced model keeps its old one and reports it in health()', async () => {
    // Announce a model whose stored bytes are broken (as if corrupted in transit): b must not switch.
    const r = clients[0]!;
    await r.hset('test:intent:model:deadbeef', { onnx: Buffer.from('not onnx'), manifest: readFileSync(join(v1, 'model.json')) });
    await r.set('test:intent:current', JSON.stringify({ id: 'deadbeef', version: 'support@broken', at: new Date().toISOString() }));
    await r.publish('test:intent:swap', '{}');
    await eventually(() => assert.equal(b.health().ok, false));
    assert.match(b.health().detail!, /support@broken .* failed to load here/);
    assert.equal((await b.predict('hello')).modelVersion, 'support@v2');
  });
});
