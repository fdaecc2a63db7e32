/**
 * ioredis's `Pipeline` constructor defines `length` on every instance as an accessor with a getter closure of its own
 * (`Object.defineProperty(this, "length", { get: function () { return _this._queue.length; } })`). Objects given an
 * accessor with a fresh closure survive V8's young-generation collections (the scavenger) and are promoted, with all
 * they reference — a pipeline's commands, their argument strings and promises — so only a full collection frees them.
 * In a bare loop of auto-pipelined `SET`s ≈ 20 % of all it allocated survived each scavenge, whatever the young
 * generation's size (2–32 MB), and went to the old generation; plain commands without a pipeline, ≈ 0 %; plain
 * objects with such an accessor ≈ 15 %, with one shared getter 0 %. The gateway
 * builds a pipeline per auto-pipelined event-loop tick and per ingest `MULTI`, so its processes' old generations filled
 * with dead pipelines between full collections (bench/README.md).
 *
 * Here every pipeline is built as ioredis builds it, except that `length` is one getter on the prototype. Pipelines
 * are made in one place (ioredis's transaction.js: `pipeline()` and `multi()`, auto-pipelining included), which reads
 * the module's `default` export at each call, so replacing that export is enough. test/ioredis-pipeline.test.ts checks
 * that a pipeline built here has exactly the fields ioredis's own constructor gives it, so an ioredis upgrade that
 * changes the constructor fails the suite instead of passing unnoticed.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface PipelineLike {
  _queue: unknown[];
}
type PipelineConstructor = new (redis: unknown) => PipelineLike;

const pipelineModule = require('ioredis/built/Pipeline.js') as { default: PipelineConstructor };
const commanderModule = require('ioredis/built/utils/Commander.js') as { default: new () => object };

/** ioredis's own Pipeline class, as it ships. */
export const IoredisPipeline: PipelineConstructor = (pipelineModule as { original?: PipelineConstructor }).original ?? pipelineModule.default;

interface RedisLike {
  constructor: { name: string };
  isCluster?: boolean;
  options: unknown;
  scriptsSet: Record<string, { sha: string }>;
  addedBuiltinSet: Set<string>;
  [name: string]: unknown;
}

/** The body of ioredis's Pipeline constructor (ioredis/built/Pipeline.js), without the per-instance `length`. */
function LeanPipeline(this: unknown, redis: RedisLike): PipelineLike {
  // Runs Commander's constructor (the base class) with this function's prototype, as `super()` would.
  const pipeline = Reflect.construct(commanderModule.default, [], LeanPipeline) as Record<string, unknown>;
  pipeline.redis = redis;
  pipeline.isPipeline = true;
  pipeline.replyPending = 0;
  pipeline._queue = [];
  pipeline._result = [];
  pipeline._transactions = 0;
  const shaToScript: Record<string, unknown> = {};
  pipeline._shaToScript = shaToScript;
  pipeline.isCluster = redis.constructor.name === 'Cluster' || redis.isCluster;
  pipeline.options = redis.options;
  for (const name of Object.keys(redis.scriptsSet)) {
    const script = redis.scriptsSet[name]!;
    shaToScript[script.sha] = script;
    pipeline[name] = redis[name];
    pipeline[`${name}Buffer`] = redis[`${name}Buffer`];
  }
  for (const name of redis.addedBuiltinSet) {
    pipeline[name] = redis[name];
    pipeline[`${name}Buffer`] = redis[`${name}Buffer`];
  }
  pipeline.promise = new Promise((resolve, reject) => {
    pipeline.resolve = resolve;
    pipeline.reject = reject;
  });
  return pipeline as unknown as PipelineLike;
}

/** Replaces ioredis's Pipeline constructor (once per process; later calls do nothing). */
export function installLeanPipeline(): void {
  const mod = pipelineModule as { default: PipelineConstructor; original?: PipelineConstructor };
  if (mod.original) return;
  mod.original = mod.default;
  LeanPipeline.prototype = mod.default.prototype;
  Object.defineProperty(mod.default.prototype, 'length', {
    configurable: true,
    get(this: PipelineLike) {
      return this._queue.length;
    },
  });
  mod.default = LeanPipeline as unknown as PipelineConstructor;
}
