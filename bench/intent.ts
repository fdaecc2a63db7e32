/**
 * Inference latency of an intent model through onnxruntime-node on one thread, one message at a time and eight at
 * once (a worker handles a queue job's conversations concurrently; the model's runs are then shared, see
 * run-batcher.ts), and how much a prediction blocks the event loop — the figure that decides whether inference
 * needs a worker thread. The prediction cache is off for these figures; a separate row measures it on repeated texts.
 *
 *   npm run bench:intent [-- --model models/support --out bench/results/intent-bench.json --runs 5000]
 *
 * Without --model it benchmarks the shipped support model (input kind `ngrams`), the same model as a self-contained
 * `text` graph (trained here with its settings), and, when the public datasets are present, a
 * CLINC150-sized model (150 labels, ~40k n-grams, the trainer's default SVM + 256-unit network ensemble) trained on
 * the spot, since latency grows with the label count and the hidden layer.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ModelBundle, PREDICTION_CACHE_SIZE, readModelFolder, type ModelFiles } from '../bot/intent/bundle.js';
import { buildModel } from '../bot/intent/build.js';
import { readExamples } from '../bot/intent/data.js';
import { DEFAULT_FEATURES } from '../bot/intent/features.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    out: { type: 'string', default: 'bench/results/intent-bench.json' },
    runs: { type: 'string', default: '5000' },
    datasets: { type: 'string' },
  },
});
const runs = Number(values.runs);

/**
 * `predictionCache: 0` measures inference itself; with the cache and texts cycling, repeated texts are hits.
 * `concurrent` predictions are asked for at once; the percentiles are then of the time until all of them answered,
 * and the mean is per message.
 */
async function measure(name: string, files: ModelFiles, texts: string[], predictionCache = 0, concurrent = 1) {
  const bundle = await ModelBundle.load(files, { predictionCache });
  for (let i = 0; i < 2000; i++) await bundle.predict(texts[i % texts.length]!); // warm-up (JIT: the vectoriser too)
  const rounds = Math.ceil(runs / concurrent);
  const times = new Float64Array(rounds);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const started = performance.now();
  for (let r = 0, i = 0; r < rounds; r++) {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrent }, () => bundle.predict(texts[i++ % texts.length]!)));
    times[r] = performance.now() - t0;
  }
  const total = performance.now() - started;
  delay.disable();
  bundle.retire();
  times.sort();
  const q = (p: number) => Number(times[Math.min(rounds - 1, Math.floor(p * rounds))]!.toFixed(4));
  return {
    model: name,
    labels: bundle.manifest.labels.length,
    runs: rounds * concurrent,
    concurrent,
    sharedRuns: bundle.batched,
    meanMs: Number((total / (rounds * concurrent)).toFixed(4)),
    p50Ms: q(0.5),
    p95Ms: q(0.95),
    p99Ms: q(0.99),
    messagesPerSecond: Math.round(((rounds * concurrent) / total) * 1000),
    eventLoopDelayP99Ms: Number((delay.percentile(99) / 1e6).toFixed(3)),
    predictionCache: bundle.predictionCache(),
  };
}

const results = [];
if (values.model) {
  const files = await readModelFolder(values.model);
  const manifest = JSON.parse(Buffer.from(files.manifest).toString('utf8'));
  results.push(await measure(values.model, files, manifest.samples.map((s: { text: string }) => s.text)));
} else {
  const { examples, sha256 } = readExamples('data/intents/support/utterances.csv');
  const support = examples.map((e) => e.text);
  const supportFiles = await readModelFolder('models/support');
  results.push(await measure('models/support', supportFiles, support));
  results.push(await measure('models/support, 8 messages at once (shared runs)', supportFiles, support, 0, 8));
  // Repeated texts (every text comes back once the list is exhausted): what the prediction cache saves.
  results.push(await measure('models/support, repeated texts, prediction cache', supportFiles, support, PREDICTION_CACHE_SIZE));
  // The same model as a self-contained graph (input kind `text`: the featurisation inside onnxruntime), trained here
  // with the shipped model's settings (models/README.md), which give the same weights.
  const asText = buildModel({ name: 'support', version: 'bench', examples, dataSha256: sha256, features: { ...DEFAULT_FEATURES, minDf: 1 }, mlp: { hidden: 32 }, input: 'text' });
  const textFiles = { onnx: asText.onnx, manifest: Buffer.from(JSON.stringify(asText.manifest)) };
  results.push(await measure('models/support as a text graph', textFiles, support));
  results.push(await measure('models/support as a text graph, 8 messages at once (shared runs)', textFiles, support, 0, 8));
  const root = values.datasets ?? [join(process.cwd(), '../shared/datasets'), '/work/shared/datasets'].find(existsSync);
  if (root) {
    const data = JSON.parse(readFileSync(join(root, 'clinc150', 'data_full.json'), 'utf8')) as Record<string, [string, string][]>;
    const rows = data.train!.map(([text, label]) => ({ text, label }));
    console.error('training a CLINC150-sized model for the benchmark…');
    const built = buildModel({ name: 'clinc150', version: 'bench', examples: rows, dataSha256: 'clinc150-train', holdout: 0.1 });
    const files = { onnx: built.onnx, manifest: Buffer.from(JSON.stringify(built.manifest)) };
    results.push(await measure('clinc150 (150 labels)', files, data.test!.map(([t]) => t)));
    results.push(await measure('clinc150 (150 labels), 8 messages at once (shared runs)', files, data.test!.map(([t]) => t), 0, 8));
  }
}

const report = { generatedAt: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, threads: 1, results };
mkdirSync(dirname(values.out!), { recursive: true });
writeFileSync(values.out!, JSON.stringify(report, null, 2) + '\n');
for (const r of results) {
  const per = r.concurrent > 1 ? `per ${r.concurrent} messages` : 'per message';
  console.log(`${r.model}: mean ${r.meanMs} ms per message, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms ${per} (${r.messagesPerSecond}/s), event-loop delay p99 ${r.eventLoopDelayP99Ms} ms`);
}
console.log(`written to ${values.out}`);
