import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { connectRedis } from '../gateway/redis.js';
import { IoredisPipeline } from '../gateway/ioredis-pipeline.js';
import { startTestRedis } from './helpers/redis.js';

/** Own property names of an object, sorted. */
const fields = (object: object) => Object.getOwnPropertyNames(object).sort();

/** A pipeline built here against one built by ioredis's own constructor for the same client: the same fields (its own
 *  or its client's shared prototype's), holding the same values. */
function assertSameFields(lean: object, original: object) {
  const expected = fields(original).filter((name) => name !== 'length');
  assert.deepEqual([...fields(lean), ...fields(Object.getPrototypeOf(lean))].sort(), expected);
  const a = lean as Record<string, unknown>;
  const b = original as Record<string, unknown>;
  for (const name of expected) {
    if (typeof b[name] === 'function' && name !== 'resolve' && name !== 'reject') assert.equal(a[name], b[name], name);
    else if (b[name] instanceof Promise || name === 'resolve' || name === 'reject') assert.equal(typeof a[name], typeof b[name], name);
    else assert.deepEqual(a[name], b[name], name);
  }
}

describe('ioredis pipelines without a per-instance length accessor (gateway/ioredis-pipeline.ts)', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('builds pipelines with the fields ioredis gives them, the client\'s scripts and length on prototypes', () => {
    // connectRedis (gateway/redis.ts) installed the lean constructor when it was imported.
    const client = new Redis({ lazyConnect: true });
    client.defineCommand('gwProbe', { numberOfKeys: 1, lua: "return redis.call('GET', KEYS[1])" });
    try {
      const lean = client.pipeline();
      const original = new IoredisPipeline(client) as object;
      assert.equal(Object.getOwnPropertyDescriptor(lean, 'length'), undefined, 'no accessor of its own');
      assertSameFields(lean, original);
      assert.ok(lean instanceof IoredisPipeline);
      assert.equal(typeof (lean as unknown as Record<string, unknown>).gwProbe, 'function', 'the script is there as ioredis copies it');
      assert.equal(Object.getPrototypeOf(client.pipeline()), Object.getPrototypeOf(lean), "one prototype for the client's pipelines");
      // A command defined later reaches the pipelines built after it.
      client.defineCommand('gwLater', { numberOfKeys: 0, lua: 'return 1' });
      assertSameFields(client.pipeline(), new IoredisPipeline(client) as object);
      lean.set('a', '1').get('a');
      assert.equal(lean.length, 2);
    } finally {
      client.disconnect();
    }
  });

  it("gives a client's pipelines one hidden class (building one is then cheap)", () => {
    // V8's own answer (natives syntax, enabled for the functions compiled below): built with Reflect.construct and a
    // function whose prototype was assigned, every pipeline had a hidden class of its own (≈ 15 µs to build each).
    v8.setFlagsFromString('--allow-natives-syntax');
    const sameHiddenClass = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
    const client = new Redis({ lazyConnect: true });
    client.defineCommand('gwProbe', { numberOfKeys: 1, lua: 'return 1' });
    try {
      assert.equal(sameHiddenClass(client.pipeline(), client.pipeline()), true);
      assert.equal(sameHiddenClass(client.multi(), client.multi()), true);
    } finally {
      client.disconnect();
    }
  });

  it('pipelines, transactions and auto-pipelined commands still work against Redis', async () => {
    const client = connectRedis(redis.url);
    try {
      client.defineCommand('gwEcho', { numberOfKeys: 1, lua: "return {KEYS[1], ARGV[1]}" });
      assert.deepEqual(await client.multi().set('k', 'v').get('k').exec(), [
        [null, 'OK'],
        [null, 'v'],
      ]);
      const pipeline = client.pipeline().incr('n').incr('n');
      assert.equal(pipeline.length, 2);
      assert.deepEqual(await pipeline.exec(), [
        [null, 1],
        [null, 2],
      ]);
      const script = client as unknown as { gwEcho(key: string, arg: string): Promise<string[]> };
      // Issued in one tick: one auto-pipeline carries them all.
      const [a, b, c] = await Promise.all([client.get('k'), script.gwEcho('x', 'y'), client.incr('n')]);
      assert.deepEqual([a, b, c], ['v', ['x', 'y'], 3]);
    } finally {
      client.disconnect();
    }
  });
});
