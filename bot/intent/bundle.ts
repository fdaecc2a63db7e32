/**
 * One loaded model: ONNX session + manifest (labels, thresholds) as a single immutable bundle. A bundle only exists
 * once it has been validated — it loads, its output is a probability distribution over the labels, an `ngrams`
 * graph takes every vocabulary column, and every manifest sample (one per label at least) predicts its declared
 * label — so swapping bundles can never expose a half-loaded or untested model.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type * as Ort from 'onnxruntime-node';
import { argmax } from './linear-model.js';
import { Manifest, type CellInputNames } from './manifest.js';
import { RunBatcher } from './run-batcher.js';
import type { IntentPrediction, IntentScore } from './types.js';
import { NgramVectorizer, type SparseVector } from './vectorizer.js';

/**
 * onnxruntime-node, loaded with the first model: its native library costs a process ≈ 8 MB of RSS, and an ingress
 * process (which holds the idle widget sockets) never loads a model unless its admin API is used.
 */
let runtime: Promise<typeof Ort> | undefined;
const onnxruntime = () => (runtime ??= import('onnxruntime-node'));

export class ModelValidationError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ModelValidationError';
  }
}

export interface ModelFiles {
  onnx: Uint8Array;
  manifest: Uint8Array;
}

export async function readModelFolder(dir: string): Promise<ModelFiles> {
  const read = async (name: string) => {
    try {
      return await readFile(join(dir, name));
    } catch (err) {
      throw new ModelValidationError('model_files_missing', `cannot read ${join(dir, name)}: ${(err as Error).message}`);
    }
  };
  return { onnx: await read('model.onnx'), manifest: await read('model.json') };
}

/** Content id of a bundle: the same two files always give the same id, whatever their path. */
export function bundleId(files: ModelFiles): string {
  return createHash('sha256').update(files.manifest).update('\0').update(files.onnx).digest('hex').slice(0, 24);
}

/** Predictions kept per bundle for texts seen again ("hi", "where is my order"): a pure function of text and model. */
export const PREDICTION_CACHE_SIZE = 10_000;

/** Most texts in one run of a graph that takes several (its input's first dimension is symbolic). */
export const MAX_RUN_BATCH = 32;

export class ModelBundle {
  private inflight = 0;
  private retired = false;
  private released = false;
  /**
   * Least recently used out (lru-cache). A Map evicting through `keys().next()` scanned the holes its own deletions
   * left at the front of its table on every eviction: ≈ 5 µs per new text once full, and in the benchmark, whose texts
   * never repeat, every message is a new text.
   */
  private readonly cache: LRUCache<string, IntentPrediction> | undefined;
  private readonly cacheStats = { hits: 0, misses: 0 };
  /** Set when the graph takes several texts per run: concurrent predictions then share runs. */
  private readonly batcher: RunBatcher | undefined;
  /** onnxruntime runs and the texts they scored, since the bundle loaded. */
  private readonly runStats = { runs: 0, texts: 0 };
  /** A batch of texts as the graph's inputs (manifest `input.kind`). */
  private readonly feeds: (texts: string[]) => Ort.InferenceSession.FeedsType;

  private constructor(
    readonly id: string,
    readonly files: ModelFiles,
    readonly manifest: Manifest,
    private readonly session: Ort.InferenceSession,
    private readonly ort: typeof Ort,
    cacheSize: number,
  ) {
    this.cache = cacheSize > 0 ? new LRUCache({ max: cacheSize }) : undefined;
    const input = manifest.input;
    let batchable: boolean;
    if (input.kind === 'text') {
      const meta = session.inputMetadata.find((m) => m.name === input.name);
      batchable = meta?.isTensor === true && typeof meta.shape[0] === 'string';
      this.feeds = (texts) => ({ [input.name]: new ort.Tensor('string', texts, [texts.length]) });
    } else {
      // The cells of any number of texts make one run.
      batchable = true;
      const vectorizer = new NgramVectorizer(input.vocabulary, Float32Array.from(input.idf), input.features);
      this.feeds = (texts) => cellFeeds(ort, texts.map((text) => vectorizer.vectorize(text)), input.names);
    }
    this.batcher = batchable ? new RunBatcher((texts) => this.run(texts), MAX_RUN_BATCH) : undefined;
  }

  /** Whether concurrent predictions share onnxruntime runs (the graph's batch size is left open). */
  get batched(): boolean {
    return this.batcher !== undefined;
  }

  /** onnxruntime runs made and texts scored by them since the bundle loaded (validation included). */
  inference(): { runs: number; texts: number } {
    return { ...this.runStats };
  }

  get version(): string {
    return `${this.manifest.name}@${this.manifest.version}`;
  }

  /** Loads and validates; throws ModelValidationError (with a code for the API answer) when the model is unusable. */
  static async load(files: ModelFiles, opts: { predictionCache?: number } = {}): Promise<ModelBundle> {
    let manifest: Manifest;
    try {
      const parsed = Manifest.safeParse(JSON.parse(Buffer.from(files.manifest).toString('utf8')));
      if (!parsed.success) {
        const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
        throw new ModelValidationError('manifest_invalid', `model.json does not follow the model contract: ${issues}`);
      }
      manifest = parsed.data;
    } catch (err) {
      if (err instanceof ModelValidationError) throw err;
      throw new ModelValidationError('manifest_invalid', `model.json is not valid JSON: ${(err as Error).message}`);
    }

    const ort = await onnxruntime();
    let session: Ort.InferenceSession;
    try {
      // One thread: a message is a few dozen n-grams; thread hand-offs would cost more than the arithmetic.
      session = await ort.InferenceSession.create(files.onnx, {
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw new ModelValidationError('onnx_invalid', `model.onnx does not load in onnxruntime: ${(err as Error).message}`);
    }
    const bundle = new ModelBundle(bundleId(files), files, manifest, session, ort, opts.predictionCache ?? PREDICTION_CACHE_SIZE);
    try {
      await bundle.validate();
    } catch (err) {
      await session.release().catch(() => undefined);
      throw err;
    }
    return bundle;
  }

  private async validate(): Promise<void> {
    const { input, labels, samples } = this.manifest;
    for (const name of input.kind === 'text' ? [input.name] : Object.values(input.names)) {
      if (!this.session.inputNames.includes(name)) {
        throw new ModelValidationError('input_mismatch', `the graph has no input "${name}" (it has ${this.session.inputNames.join(', ')})`);
      }
    }
    if (!this.session.outputNames.includes(input.output)) {
      throw new ModelValidationError('output_mismatch', `the graph has no output "${input.output}" (it has ${this.session.outputNames.join(', ')})`);
    }
    await this.probeLastColumn();
    const failures: string[] = [];
    for (const sample of samples) {
      let probs: Float32Array;
      try {
        probs = await this.probabilities(sample.text);
      } catch (err) {
        throw new ModelValidationError('inference_failed', `the graph fails on sample "${sample.text}": ${(err as Error).message}`);
      }
      if (probs.length !== labels.length) {
        throw new ModelValidationError(
          'label_mismatch',
          `the graph outputs ${probs.length} scores but model.json lists ${labels.length} labels`,
        );
      }
      const notProbabilities = probabilityRowProblem(probs);
      if (notProbabilities) {
        throw new ModelValidationError(
          'not_probabilities',
          `the graph's output on sample "${sample.text}" is not a probability per label (${notProbabilities}); thresholds compare probabilities`,
        );
      }
      const got = labels[argmax(probs)]!;
      if (got !== sample.label) failures.push(`"${sample.text}" → ${got} (declared ${sample.label})`);
    }
    if (failures.length) {
      throw new ModelValidationError('samples_failed', `${failures.length}/${samples.length} manifest samples predict another label: ${failures.slice(0, 5).join('; ')}`);
    }
  }

  /**
   * An `ngrams` model's vocabulary is the graph's column order: a manifest with more n-grams than the graph has
   * columns loads, passes the samples that use early columns, and fails later on the first text with a late n-gram.
   * One run with only the last column finds that before the swap.
   */
  private async probeLastColumn(): Promise<void> {
    const { input } = this.manifest;
    if (input.kind !== 'ngrams') return;
    const last = input.vocabulary.length - 1;
    try {
      await this.runFeeds(cellFeeds(this.ort, [{ indices: Int32Array.of(last), values: Float32Array.of(1) }], input.names), 1);
    } catch (err) {
      throw new ModelValidationError(
        'vocabulary_mismatch',
        `the graph fails on the last of the ${input.vocabulary.length} vocabulary n-grams (column ${last}): model.json's vocabulary does not fit this graph: ${(err as Error).message}`,
      );
    }
  }

  private probabilities(text: string): Promise<Float32Array> {
    return this.batcher ? this.batcher.probabilities(text) : this.run([text]).then((rows) => rows[0]!);
  }

  /** One onnxruntime run: a probability row per text. */
  private async run(texts: string[]): Promise<Float32Array[]> {
    this.runStats.runs++;
    this.runStats.texts += texts.length;
    return this.runFeeds(this.feeds(texts), texts.length);
  }

  private async runFeeds(feeds: Ort.InferenceSession.FeedsType, rows: number): Promise<Float32Array[]> {
    const out = await this.session.run(feeds);
    const data = out[this.manifest.input.output]!.data as Float32Array;
    const width = data.length / rows;
    return Array.from({ length: rows }, (_, i) => data.subarray(i * width, (i + 1) * width));
  }

  /** Hits and misses of the prediction cache since the bundle loaded. */
  predictionCache(): { hits: number; misses: number; size: number } {
    return { ...this.cacheStats, size: this.cache?.size ?? 0 };
  }

  /** The intent of a text, NFKC-normalised first: full-width Latin and digits read as their ASCII forms. */
  async predict(rawText: string): Promise<IntentPrediction> {
    const text = rawText.normalize('NFKC');
    const cached = this.cache?.get(text);
    if (cached) {
      this.cacheStats.hits++;
      return cached;
    }
    this.cacheStats.misses++;
    const prediction = await this.infer(text);
    this.cache?.set(text, prediction);
    return prediction;
  }

  private async infer(text: string): Promise<IntentPrediction> {
    this.inflight++;
    try {
      const probs = await this.probabilities(text);
      const { labels, thresholds } = this.manifest;
      const top: IntentScore[] = Array.from(probs, (score, i) => ({ label: labels[i]!, score }))
        .sort((a, b) => b.score - a.score)
        .slice(0, 3);
      const best = top[0]!;
      return {
        label: best.label,
        confidence: best.score,
        top,
        modelVersion: this.version,
        thresholds,
        outOfScope: best.score < thresholds.outOfScope,
      };
    } finally {
      this.inflight--;
      if (this.retired && this.inflight === 0) void this.release();
    }
  }

  /** No longer live: frees the session once the predictions already running on it have finished. */
  retire(): void {
    this.retired = true;
    if (this.inflight === 0) void this.release();
  }

  private async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release().catch(() => undefined);
  }
}

/** How far a probability row may sum from 1 (float32 softmax rounding). */
const PROBABILITY_SUM_TOLERANCE = 1e-3;

/** Why this output row is not a probability distribution, or undefined when it is one. */
export function probabilityRowProblem(row: Float32Array): string | undefined {
  const outside = row.findIndex((p) => !(p >= 0 && p <= 1));
  if (outside >= 0) return `score ${row[outside]} at position ${outside} is outside [0, 1]`;
  const sum = row.reduce((a, p) => a + p, 0);
  if (Math.abs(sum - 1) > PROBABILITY_SUM_TOLERANCE) return `the scores sum to ${sum.toFixed(4)}, not 1`;
  return undefined;
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/**
 * The graph inputs of an `ngrams` model for a batch: every text's cells laid end to end. On a little-endian host the
 * int64 tensors are filled through an Int32Array view of their buffer (low word the value, high word zero), which
 * spares a BigInt per cell.
 */
export function cellFeeds(
  ort: typeof Ort,
  vectors: SparseVector[],
  names: CellInputNames,
): Ort.InferenceSession.FeedsType {
  const cells = vectors.reduce((n, v) => n + v.indices.length, 0);
  const rows = new BigInt64Array(cells);
  const cols = new BigInt64Array(cells);
  const rowWords = new Int32Array(rows.buffer);
  const colWords = new Int32Array(cols.buffer);
  const values = new Float32Array(cells);
  let k = 0;
  vectors.forEach((v, row) => {
    for (let i = 0; i < v.indices.length; i++, k++) {
      if (LITTLE_ENDIAN) {
        rowWords[2 * k] = row;
        colWords[2 * k] = v.indices[i]!;
      } else {
        rows[k] = BigInt(row);
        cols[k] = BigInt(v.indices[i]!);
      }
      values[k] = v.values[i]!;
    }
  });
  return {
    [names.rows]: new ort.Tensor('int64', rows, [cells]),
    [names.cols]: new ort.Tensor('int64', cols, [cells]),
    [names.values]: new ort.Tensor('float32', values, [cells]),
    [names.count]: new ort.Tensor('int64', BigInt64Array.of(BigInt(vectors.length)), [1]),
  };
}
