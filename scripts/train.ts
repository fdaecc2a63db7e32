/**
 * Trains an intent model and writes a model folder (model.onnx + model.json):
 *
 *   npm run train -- --data data/intents/support/utterances.csv --out models/support
 *
 * Options: --name (default: the --out folder name), --version, --seed 42, --epochs, --lr, --l2, --holdout 0.2,
 * --min-df 2 (n-grams seen in fewer training sentences are dropped), --cv 5 (also print a k-fold cross-validation),
 * --classifier ensemble|linear|mlp (default ensemble: the SVM and a hidden-layer network, probabilities averaged),
 * --hidden 256, --dropout 0.5, --mlp-epochs 8, --mlp-lr 0.001, --mlp-weight 0.5 (the network's settings),
 * --confidence, --out-of-scope, --margin (thresholds written into the manifest), --input ngrams|text (default ngrams:
 * the gateway vectorises the text and the graph takes its TF-IDF cells; text: a self-contained graph that takes the
 * raw text, for other runtimes — see models/README.md).
 */
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { buildModel, CLASSIFIERS, crossValidate, unsampledLabels, writeModel, type Classifier, type ModelInputKind } from '../bot/intent/build.js';
import { MODEL_INPUT_KINDS } from '../bot/intent/manifest.js';
import { readExamples } from '../bot/intent/data.js';
import { DEFAULT_FEATURES } from '../bot/intent/features.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    out: { type: 'string' },
    name: { type: 'string' },
    version: { type: 'string' },
    seed: { type: 'string' },
    epochs: { type: 'string' },
    lr: { type: 'string' },
    l2: { type: 'string' },
    holdout: { type: 'string' },
    classifier: { type: 'string' },
    'min-df': { type: 'string' },
    cv: { type: 'string' },
    hidden: { type: 'string' },
    dropout: { type: 'string' },
    'mlp-epochs': { type: 'string' },
    'mlp-lr': { type: 'string' },
    'mlp-weight': { type: 'string' },
    confidence: { type: 'string' },
    'out-of-scope': { type: 'string' },
    margin: { type: 'string' },
    input: { type: 'string' },
  },
});
if (values.input && !MODEL_INPUT_KINDS.includes(values.input as ModelInputKind)) {
  console.error(`--input must be one of ${MODEL_INPUT_KINDS.join(', ')}`);
  process.exit(2);
}
if (values.classifier && !CLASSIFIERS.includes(values.classifier as Classifier)) {
  console.error(`--classifier must be one of ${CLASSIFIERS.join(', ')}`);
  process.exit(2);
}
if (!values.data || !values.out) {
  console.error('usage: npm run train -- --data <file.csv|file.jsonl> --out models/<name> [--seed 42] [--epochs 30] [--holdout 0.2]');
  process.exit(2);
}
const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

/** A one-line progress bar on a terminal, a line per epoch otherwise (CI logs). */
function progress(epoch: number, epochs: number, loss: number): void {
  const width = 30;
  const filled = Math.round((epoch / epochs) * width);
  const line = `training [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] epoch ${epoch}/${epochs} loss ${loss.toFixed(4)}`;
  if (process.stderr.isTTY) process.stderr.write(`\r${line}${epoch === epochs ? '\n' : ''}`);
  else console.error(line);
}

const { examples, sha256 } = readExamples(values.data);
const labels = new Set(examples.map((e) => e.label));
console.error(`${examples.length} rows, ${labels.size} labels from ${values.data}`);
const settings = {
  seed: num(values.seed),
  epochs: num(values.epochs),
  learningRate: num(values.lr),
  l2: num(values.l2),
  ...(values['min-df'] && { features: { ...DEFAULT_FEATURES, minDf: Number(values['min-df']) } }),
  classifier: values.classifier as Classifier | undefined,
  mlp: {
    hidden: num(values.hidden),
    dropout: num(values.dropout),
    epochs: num(values['mlp-epochs']),
    learningRate: num(values['mlp-lr']),
    weight: num(values['mlp-weight']),
  },
};
if (values.cv) {
  const cv = crossValidate(examples, Number(values.cv), settings);
  const folds = cv.perFold.map((a) => (a * 100).toFixed(1)).join(' / ');
  console.log(`${cv.folds}-fold cross-validation: accuracy ${(cv.accuracy * 100).toFixed(2)} %, macro-F1 ${(cv.macroF1 * 100).toFixed(2)} % (folds ${folds})`);
}
const started = Date.now();
const built = buildModel({
  name: values.name ?? basename(values.out),
  version: values.version,
  examples,
  dataSha256: sha256,
  ...settings,
  holdout: num(values.holdout),
  input: values.input as ModelInputKind | undefined,
  thresholds: {
    ...(values.confidence && { confidence: Number(values.confidence) }),
    ...(values['out-of-scope'] && { outOfScope: Number(values['out-of-scope']) }),
    ...(values.margin && { ambiguityMargin: Number(values.margin) }),
  },
  onEpoch: progress,
});
const unsampled = unsampledLabels(built.manifest);
if (unsampled.length) {
  console.error(`the model gets no row of ${unsampled.join(', ')} right, so it has no sample to prove its label order and would not load: not written`);
  process.exit(1);
}
writeModel(values.out, built);

const e = built.evaluation;
console.log(`model ${built.manifest.name}@${built.manifest.version} → ${values.out} (${(built.onnx.length / 1024).toFixed(0)} KiB, ${built.model.data.vocabulary.length} n-grams, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
if (e) {
  console.log(`held-out: ${e.count} rows, accuracy ${(e.accuracy * 100).toFixed(2)} %, macro-F1 ${(e.macroF1 * 100).toFixed(2)} % (${built.model.kind})`);
  console.log('worst classes (F1):');
  for (const w of e.worst) console.log(`  ${w.label.padEnd(28)} ${(w.f1 * 100).toFixed(1)} %  (${w.support} rows)`);
}
