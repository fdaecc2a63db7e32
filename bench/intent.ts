/**
 * Inference latency of an intent model through onnxruntime-node, one message per run on one thread (how the
 * gateway serves it), and how much a prediction blocks the event loop — the figure that decides whether inference
 * needs a worker thread. The prediction cache is off for these figures; a separate row measures it on repeated texts.
 *
 *   npm run bench:intent [-- --model models/support --out bench/results/intent-bench.json --runs 5000]
 *
 * Without --model it benchmarks the shipped support model and, when the public datasets are present, a
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

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    out: { type: 'string', default: 'bench/results/intent-bench.json' },
    runs: { type: 'string', default: '5000' },
    datasets: { type: 'string' },
  },
});
const runs = Number(values.runs);

/** `predictionCache: 0` measures inference itself; with the cache and texts cycling, repeated texts are hits. */
async function measure(name: string, files: ModelFiles, texts: string[], predictionCache = 0) {
  const bundle = await ModelBundle.load(files, { predictionCache });
  for (let i = 0; i < 200; i++) await bundle.predict(texts[i % texts.length]!); // warm-up
  const times = new Float64Array(runs);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const started = performance.now();
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await bundle.predict(texts[i % texts.length]!);
    times[i] = performance.now() - t0;
  }
  const total = performance.now() - started;
  delay.disable();
  bundle.retire();
  times.sort();
  const q = (p: number) => Number(times[Math.min(runs - 1, Math.floor(p * runs))]!.toFixed(4));
  return {
    model: name,
    labels: bundle.manifest.labels.length,
    runs,
    meanMs: Number((total / runs).toFixed(4)),
    p50Ms: q(0.5),
    p95Ms: q(0.95),
    p99Ms: q(0.99),
    messagesPerSecond: Math.round((runs / total) * 1000),
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
  const support = readExamples('data/intents/support/utterances.csv').examples.map((e) => e.text);
  const supportFiles = await readModelFolder('models/support');
  results.push(await measure('models/support', supportFiles, support));
  // Repeated texts (every text comes back once the list is exhausted): what the prediction cache saves.
  results.push(await measure('models/support, repeated texts, prediction cache', supportFiles, support, PREDICTION_CACHE_SIZE));
  const root = values.datasets ?? [join(process.cwd(), '../shared/datasets'), '/work/shared/datasets'].find(existsSync);
  if (root) {
    const data = JSON.parse(readFileSync(join(root, 'clinc150', 'data_full.json'), 'utf8')) as Record<string, [string, string][]>;
    const rows = data.train!.map(([text, label]) => ({ text, label }));
    console.error('training a CLINC150-sized model for the benchmark…');
    const built = buildModel({ name: 'clinc150', version: 'bench', examples: rows, dataSha256: 'clinc150-train', holdout: 0.1 });
    const files = { onnx: built.onnx, manifest: Buffer.from(JSON.stringify(built.manifest)) };
    results.push(await measure('clinc150 (150 labels)', files, data.test!.map(([t]) => t)));
  }
}

const report = { generatedAt: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model, threads: 1, batch: 1, results };
mkdirSync(dirname(values.out!), { recursive: true });
writeFileSync(values.out!, JSON.stringify(report, null, 2) + '\n');
for (const r of results) {
  console.log(`${r.model}: mean ${r.meanMs} ms, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms per message (${r.messagesPerSecond}/s), event-loop delay p99 ${r.eventLoopDelayP99Ms} ms`);
}
console.log(`written to ${values.out}`);
