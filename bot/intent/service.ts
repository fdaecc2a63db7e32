/**
 * The intent model as a service for every gateway process: predicts with the live bundle, swaps bundles at runtime
 * and keeps all processes on the same model.
 *
 * Swap protocol (Redis is the source of truth, so it works across hosts without a shared disk):
 *   1. the process that receives `PUT /admin/models/intent` loads and validates the new bundle (bundle.ts) — a bad
 *      model is rejected with a 4xx and nothing changes anywhere;
 *   2. it stores both files under `<prefix>:intent:model:<id>`, pushes the id onto `<prefix>:intent:history`
 *      (head = current; the entries below are what rollback returns to), sets `<prefix>:intent:current`, switches
 *      its own live bundle and publishes on `<prefix>:intent:swap`;
 *   3. every other process, on the announcement (and at start, for processes started later), reads `current`,
 *      loads and validates the same bytes itself and switches in one assignment; one that fails keeps answering
 *      with its old bundle and reports the failure through `health()` (→ /readyz).
 */
import express, { type Router } from 'express';
import type { Redis } from 'ioredis';
import type { RedisClient } from '../../adapters/types.js';
import { HttpError, badRequest, notFound } from '../../gateway/errors.js';
import type { Logger } from '../../gateway/logger.js';
import { ModelBundle, ModelValidationError, readModelFolder, type ModelFiles } from './bundle.js';
import { filesFromTar } from './tar.js';
import type { IntentClassifier, IntentPrediction } from './types.js';

export interface IntentServiceOptions {
  /** Folder with model.onnx + model.json used when no swap has been announced yet. */
  modelDir: string;
  redis: RedisClient;
  /** Redis key prefix of the gateway (config.redis.prefix). */
  prefix: string;
  log: Logger;
  /** Largest accepted upload, bytes. */
  maxUploadBytes?: number;
  /** How many earlier versions stay available for rollback. */
  keepVersions?: number;
}

interface CurrentPointer {
  id: string;
  version: string;
  at: string;
}

export class IntentService implements IntentClassifier {
  private live: ModelBundle | undefined;
  private failure: string | undefined;
  private subscriber: Redis | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private closed = false;
  /** Resolves once a first model is live (or rejects when none can be loaded). */
  readonly ready: Promise<void>;

  constructor(private readonly opts: IntentServiceOptions) {
    this.ready = this.start();
    this.ready.catch(() => undefined); // surfaced through predict()/health(), not as an unhandled rejection
  }

  static async create(opts: IntentServiceOptions): Promise<IntentService> {
    const service = new IntentService(opts);
    await service.ready;
    return service;
  }

  private key(name: string): string {
    return `${this.opts.prefix}:intent:${name}`;
  }

  private async start(): Promise<void> {
    // A subscribed connection can do nothing else, hence its own; a Cluster duplicates the same way.
    this.subscriber = (this.opts.redis as Redis).duplicate();
    this.subscriber.on('message', () => {
      this.syncing = this.syncing
        .then(() => this.syncFromRedis())
        .then(
          () => undefined,
          (err) => this.opts.log.error({ err }, 'intent model sync failed'),
        );
    });
    this.subscriber.on('error', (err) => this.opts.log.warn({ err }, 'intent model subscriber error'));
    await this.subscriber.subscribe(this.key('swap'));

    const announced = await this.syncFromRedis();
    if (this.live) return;
    // Nothing announced (or the announced model failed here): the configured folder.
    try {
      this.switchTo(await ModelBundle.load(await readModelFolder(this.opts.modelDir)), 'configured');
      if (announced === 'failed') this.opts.log.warn({ model: this.live!.version }, 'serving the configured intent model instead of the announced one');
    } catch (err) {
      this.opts.log.error({ err, modelDir: this.opts.modelDir }, 'no intent model could be loaded');
      throw err;
    }
  }

  /** Brings this process to the model `current` points at; returns what happened. */
  private async syncFromRedis(): Promise<'none' | 'same' | 'switched' | 'failed'> {
    if (this.closed) return 'none';
    const raw = await this.opts.redis.get(this.key('current'));
    if (!raw) return 'none';
    const pointer = JSON.parse(raw) as CurrentPointer;
    if (this.live?.id === pointer.id) {
      this.failure = undefined;
      return 'same';
    }
    try {
      const files = await this.fetchFiles(pointer.id);
      this.switchTo(await ModelBundle.load(files), 'announced');
      this.failure = undefined;
      return 'switched';
    } catch (err) {
      this.failure = `announced intent model ${pointer.version} (${pointer.id}) failed to load here: ${(err as Error).message}; still serving ${this.live?.version ?? 'no model'}`;
      this.opts.log.error({ err, announced: pointer }, 'announced intent model failed to load; keeping the old one');
      return 'failed';
    }
  }

  private async fetchFiles(id: string): Promise<ModelFiles> {
    const [onnx, manifest] = await this.opts.redis.hmgetBuffer(this.key(`model:${id}`), 'onnx', 'manifest');
    if (!onnx || !manifest) throw new ModelValidationError('model_files_missing', `model ${id} is not stored in Redis`);
    return { onnx, manifest };
  }

  /** The one place the live model changes: a single assignment, so a prediction sees the old or the new bundle whole. */
  private switchTo(bundle: ModelBundle, how: string): void {
    const old = this.live;
    this.live = bundle;
    if (old && old !== bundle) old.retire();
    this.opts.log.info({ model: bundle.version, id: bundle.id, previous: old?.version, how }, 'intent model live');
  }

  async predict(text: string): Promise<IntentPrediction> {
    if (!this.live) await this.ready;
    return this.live!.predict(text);
  }

  health(): { ok: boolean; detail?: string } {
    if (!this.live) return { ok: false, detail: this.failure ?? 'intent model not loaded yet' };
    if (this.failure) return { ok: false, detail: this.failure };
    return { ok: true, detail: this.live.version };
  }

  /** What is live here, for the admin API. */
  status() {
    const m = this.live?.manifest;
    return {
      version: this.live?.version,
      id: this.live?.id,
      labels: m?.labels,
      thresholds: m?.thresholds,
      languages: m?.languages,
      evaluation: m?.evaluation,
      health: this.health(),
    };
  }

  /**
   * Validates and publishes a new model. Throws ModelValidationError when it is unusable; then nothing changed.
   */
  async swap(files: ModelFiles): Promise<{ version: string; id: string; previous: string | undefined }> {
    const bundle = await ModelBundle.load(files);
    const previous = this.live;
    const history = this.key('history');
    // The first swap also stores the model this process started with, so rollback can return to it.
    if (previous && (await this.opts.redis.llen(history)) === 0) await this.store(previous.files, previous.id);
    await this.store(files, bundle.id);
    await this.setCurrent(bundle);
    this.switchTo(bundle, 'swap');
    this.failure = undefined;
    await this.trimHistory();
    return { version: bundle.version, id: bundle.id, previous: previous?.version };
  }

  /** Returns to the version before the current one. */
  async rollback(): Promise<{ version: string; id: string; rolledBackFrom: string | undefined }> {
    const history = this.key('history');
    const ids = await this.opts.redis.lrange(history, 0, 1);
    if (ids.length < 2) throw new HttpError(409, 'no_previous_model', 'there is no earlier intent model version to roll back to');
    const bundle = await ModelBundle.load(await this.fetchFiles(ids[1]!));
    const from = this.live;
    await this.opts.redis.lpop(history);
    await this.setCurrent(bundle);
    this.switchTo(bundle, 'rollback');
    this.failure = undefined;
    return { version: bundle.version, id: bundle.id, rolledBackFrom: from?.version };
  }

  private async store(files: ModelFiles, id: string): Promise<void> {
    await this.opts.redis.hset(this.key(`model:${id}`), { onnx: Buffer.from(files.onnx), manifest: Buffer.from(files.manifest) });
    const head = await this.opts.redis.lindex(this.key('history'), 0);
    if (head !== id) await this.opts.redis.lpush(this.key('history'), id);
  }

  private async setCurrent(bundle: ModelBundle): Promise<void> {
    const pointer: CurrentPointer = { id: bundle.id, version: bundle.version, at: new Date().toISOString() };
    await this.opts.redis.set(this.key('current'), JSON.stringify(pointer));
    await this.opts.redis.publish(this.key('swap'), JSON.stringify(pointer));
  }

  /** Drops stored versions beyond `keepVersions` (unless still referenced further up the history). */
  private async trimHistory(): Promise<void> {
    const keep = this.opts.keepVersions ?? 5;
    const history = this.key('history');
    const all = await this.opts.redis.lrange(history, 0, -1);
    if (all.length <= keep) return;
    const kept = new Set(all.slice(0, keep));
    await this.opts.redis.ltrim(history, 0, keep - 1);
    for (const id of new Set(all.slice(keep))) if (!kept.has(id)) await this.opts.redis.del(this.key(`model:${id}`));
  }

  /** Mounts `PUT /models/intent`, `POST /models/intent/rollback` and `GET /models/intent` (router is behind the admin key). */
  adminRoutes(router: Router): void {
    const body = express.raw({ type: () => true, limit: this.opts.maxUploadBytes ?? 64 * 1024 * 1024 });
    router.get('/models/intent', (_req, res) => {
      res.json(this.status());
    });
    router.put('/models/intent', body, async (req, res) => {
      const files = await this.filesFromRequest(req.get('content-type') ?? '', req.body as Buffer | undefined);
      try {
        const result = await this.swap(files);
        this.opts.log.info(result, 'intent model swapped');
        res.json(result);
      } catch (err) {
        if (err instanceof ModelValidationError) {
          this.opts.log.warn({ code: err.code, reason: err.message }, 'intent model rejected');
          throw new HttpError(422, err.code, `model rejected, ${this.live?.version ?? 'the old model'} stays live: ${err.message}`);
        }
        throw err;
      }
    });
    router.post('/models/intent/rollback', async (_req, res) => {
      const result = await this.rollback();
      this.opts.log.info(result, 'intent model rolled back');
      res.json(result);
    });
  }

  private async filesFromRequest(contentType: string, raw: Buffer | undefined): Promise<ModelFiles> {
    if (!raw || raw.length === 0) throw badRequest('empty_body', 'send JSON {"path": "<model folder>"} or a tar archive of the model folder');
    try {
      if (contentType.includes('json')) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw.toString('utf8'));
        } catch (err) {
          throw badRequest('malformed_json', `the request body is not valid JSON: ${(err as Error).message}`);
        }
        const path = (parsed as { path?: unknown })?.path;
        if (typeof path !== 'string' || !path) throw badRequest('missing_path', 'the JSON body needs "path": the folder holding model.onnx and model.json');
        try {
          return await readModelFolder(path);
        } catch (err) {
          throw notFound('model_not_found', (err as Error).message);
        }
      }
      return filesFromTar(raw);
    } catch (err) {
      if (err instanceof ModelValidationError) throw new HttpError(422, err.code, err.message);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.syncing.catch(() => undefined);
    this.subscriber?.disconnect();
    this.live?.retire();
  }
}
