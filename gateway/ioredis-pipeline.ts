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
 * Here every pipeline is built as ioredis builds it, except that `length` is one getter on the prototype and the
 * client's scripts come from a prototype per client instead of being copied onto each pipeline. Pipelines are made in
 * one place (ioredis's transaction.js: `pipeline()` and `multi()`, auto-pipelining included), which reads the module's
 * `default` export at each call, so replacing that export is enough. test/ioredis-pipeline.test.ts checks that a
 * pipeline built here reads the same value for every field ioredis's own constructor gives it, so an ioredis upgrade
 * that changes the constructor fails the suite instead of passing unnoticed.
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

/**
 * What every pipeline of one client shares: the client's scripts and added built-ins (ioredis copies ≈ 10 of the
 * gateway's own scripts, or BullMQ's ≈ 50, onto each pipeline as own properties, two each, plus a sha → script map),
 * kept on a prototype between the pipeline and Pipeline.prototype. Copying them made every pipeline a dictionary-mode
 * object and cost ≈ 3 % of a worker's CPU. Rebuilt when the client defines a command (see installLeanPipeline).
 */
const sharedParts = new WeakMap<RedisLike, { prototype: object; shaToScript: Record<string, unknown> }>();

function sharedPartsOf(redis: RedisLike, pipelinePrototype: object) {
  let parts = sharedParts.get(redis);
  if (parts) return parts;
  const prototype: Record<string, unknown> = Object.create(pipelinePrototype);
  const shaToScript: Record<string, unknown> = {};
  for (const name of Object.keys(redis.scriptsSet)) {
    const script = redis.scriptsSet[name]!;
    shaToScript[script.sha] = script;
    prototype[name] = redis[name];
    prototype[`${name}Buffer`] = redis[`${name}Buffer`];
  }
  for (const name of redis.addedBuiltinSet) {
    prototype[name] = redis[name];
    prototype[`${name}Buffer`] = redis[`${name}Buffer`];
  }
  parts = { prototype, shaToScript };
  sharedParts.set(redis, parts);
  return parts;
}

/** The body of ioredis's Pipeline constructor (ioredis/built/Pipeline.js), without the per-instance `length` and with
 *  the client's scripts inherited instead of copied. */
function LeanPipeline(this: unknown, redis: RedisLike): PipelineLike {
  const parts = sharedPartsOf(redis, LeanPipeline.prototype);
  // Object.create, not Reflect.construct(Commander, [], F) with F.prototype = parts.prototype: V8 gave every object
  // built that way a hidden class of its own, so each pipeline cost ≈ 15 µs to build and ioredis's pipeline code met a
  // new hidden class with every one. Commander's constructor (the base class) sets these three fields, and
  // Pipeline's replaces `options` with the client's; test/ioredis-pipeline.test.ts compares every field.
  const pipeline = Object.create(parts.prototype) as Record<string, unknown>;
  pipeline.options = redis.options;
  pipeline.scriptsSet = {};
  pipeline.addedBuiltinSet = new Set();
  pipeline.redis = redis;
  pipeline.isPipeline = true;
  pipeline.replyPending = 0;
  pipeline._queue = [];
  pipeline._result = [];
  pipeline._transactions = 0;
  // ioredis 6 fills this map in the constructor and never touches it again, so all of a client's pipelines share one.
  pipeline._shaToScript = parts.shaToScript;
  pipeline.isCluster = redis.constructor.name === 'Cluster' || redis.isCluster;
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
  // A client's pipelines inherit its scripts from a prototype built once; a command defined later rebuilds it.
  const commander = commanderModule.default.prototype as Record<string, (this: RedisLike, ...args: unknown[]) => unknown>;
  for (const method of ['defineCommand', 'addBuiltinCommand']) {
    const original = commander[method]!;
    commander[method] = function (this: RedisLike, ...args: unknown[]) {
      sharedParts.delete(this);
      return original.apply(this, args);
    };
  }
}
