/**
 * From labelled rows to a model folder: split off a stratified held-out part, train, fit the probability
 * temperatures on the held-out part, evaluate, export the ONNX graph and write the manifest beside it.
 *
 * The temperatures are fitted on the rows the accuracy is then reported on. For a single model they do not change
 * which label wins; for the ensemble they can, so its held-out figure reads slightly high (≈ 0.4 points in one
 * check, none in another). A calibration slice of its own cost ≈ 2 points of accuracy on the shipped data (10 % fewer
 * training rows), so the rows are kept for training.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { argmax } from './linear-model.js';
import { EnsembleModel } from './ensemble-model.js';
import { DEFAULT_MLP, trainMlp, type MlpTrainOptions } from './mlp-trainer.js';

export type Classifier = 'linear' | 'mlp' | 'ensemble';
export type { ModelInputKind };
export const CLASSIFIERS: Classifier[] = ['linear', 'mlp', 'ensemble'];
export const DEFAULT_CLASSIFIER: Classifier = 'ensemble';
import { CELL_INPUTS, MODEL_INPUT_KINDS, type Manifest, type ModelInputKind } from './manifest.js';
import { exportCellsOnnx, exportOnnx } from './onnx/export.js';
import {
  calibrate,
  DEFAULT_TRAIN,
  evaluate,
  seededRandom,
  shuffle,
  stratifiedSplit,
  train,
  type Evaluation,
  type Example,
  type IntentModel,
  type TrainOptions,
} from './trainer.js';
import type { IntentThresholds } from './types.js';

export const DEFAULT_THRESHOLDS: IntentThresholds = { confidence: 0.5, outOfScope: 0.25, ambiguityMargin: 0.1 };

export interface BuildOptions extends TrainOptions {
  name: string;
  /**
   * `linear` (the SVM alone), `mlp` (the hidden-layer network alone) or `ensemble` (both, probabilities averaged).
   * The top-level epochs / learningRate / l2 are the SVM's; the network's settings are under `mlp`.
   */
  classifier?: Classifier;
  /**
   * The model's input kind (models/README.md): `ngrams` (default) — the gateway vectorises the text and the graph
   * runs the classifier on its TF-IDF cells; `text` — a self-contained graph that takes the raw text and does the
   * featurisation itself (for runtimes other than this gateway), at about twice the inference cost.
   */
  input?: ModelInputKind;
  mlp?: Omit<MlpTrainOptions, 'seed' | 'features' | 'onEpoch'> & { weight?: number };
  version?: string;
  examples: Example[];
  dataSha256: string;
  /** fraction of each label held out for calibration and evaluation (0 = train on everything, no evaluation) */
  holdout?: number;
  thresholds?: Partial<IntentThresholds>;
  samplesPerLabel?: number;
}

export interface BuiltModel {
  model: IntentModel;
  manifest: Manifest;
  onnx: Uint8Array;
  heldOut: Example[];
  evaluation: Evaluation | undefined;
}

export function detectLanguages(rows: Example[]): string[] {
  const langs: string[] = [];
  if (rows.some((r) => /\p{Script=Han}/u.test(r.text))) langs.push('zh');
  if (rows.some((r) => /\p{Script=Latin}/u.test(r.text))) langs.push('en');
  return langs.length ? langs : ['und'];
}

export function buildModel(o: BuildOptions): BuiltModel {
  const seed = o.seed ?? DEFAULT_TRAIN.seed;
  const holdout = o.holdout ?? 0.2;
  const { train: trainRows, heldOut } = holdout > 0 ? stratifiedSplit(o.examples, holdout, seed) : { train: o.examples, heldOut: [] };
  const model = trainModel(trainRows, { ...o, seed });
  if (heldOut.length) calibrate(model, heldOut);
  const evaluation = heldOut.length ? evaluate(model, heldOut) : undefined;

  // Manifest samples: held-out (else training) texts the model gets right, a few per label, so a swap can prove
  // the graph behaves like the model that was evaluated.
  const perLabel = o.samplesPerLabel ?? 2;
  const samples: { text: string; label: string }[] = [];
  const taken = new Map<string, number>();
  for (const r of [...heldOut, ...trainRows]) {
    if ((taken.get(r.label) ?? 0) >= perLabel) continue;
    if (model.labels[argmax(model.probabilities(r.text))] !== r.label) continue;
    samples.push({ text: r.text, label: r.label });
    taken.set(r.label, (taken.get(r.label) ?? 0) + 1);
  }

  const version = o.version ?? new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const manifest: Manifest = {
    name: o.name,
    version,
    labels: model.labels,
    input: inputOf(model, o.input ?? 'ngrams'),
    thresholds: { ...DEFAULT_THRESHOLDS, ...o.thresholds },
    languages: detectLanguages(o.examples),
    training: {
      dataSha256: o.dataSha256,
      rows: trainRows.length,
      heldOutRows: heldOut.length,
      seed,
      ...classifierSettings(model, o),
      features: model.data.features,
      vocabulary: model.data.vocabulary.length,
    },
    evaluation: evaluation ? { heldOut: evaluation } : {},
    samples,
    createdAt: new Date().toISOString(),
  };
  const exporter = manifest.input.kind === 'text' ? exportOnnx : exportCellsOnnx;
  return { model, manifest, onnx: exporter(model, { name: o.name, version }), heldOut, evaluation };
}

/** The manifest's `input`: for `ngrams`, what the gateway needs to vectorise a text as the trainer did. */
function inputOf(model: IntentModel, kind: ModelInputKind): Manifest['input'] {
  if (!MODEL_INPUT_KINDS.includes(kind)) throw new Error(`unknown model input kind "${kind}" (${MODEL_INPUT_KINDS.join(', ')})`);
  if (kind === 'text') return { kind, name: 'text', output: 'probabilities' };
  const { features, vocabulary, idf } = model.data;
  return { kind, names: { ...CELL_INPUTS }, output: 'probabilities', features, vocabulary, idf: Array.from(idf) };
}

/** Trains the chosen classifier; the SVM and the network each keep their own defaults for what is not given. */
export function trainModel(rows: Example[], o: TrainOptions & Pick<BuildOptions, 'classifier' | 'mlp'>): IntentModel {
  const classifier = o.classifier ?? DEFAULT_CLASSIFIER;
  if (!CLASSIFIERS.includes(classifier)) throw new Error(`unknown classifier "${classifier}" (${CLASSIFIERS.join(', ')})`);
  const network = () => trainMlp(rows, { ...o.mlp, seed: o.seed, features: o.features, onEpoch: o.onEpoch });
  if (classifier === 'mlp') return network();
  const linear = train(rows, o);
  if (classifier === 'linear') return linear;
  return new EnsembleModel(linear, network(), o.mlp?.weight ?? 0.5);
}

/** What the manifest records about the classifier: enough to retrain it. */
function classifierSettings(model: IntentModel, o: BuildOptions): Record<string, unknown> {
  const linear = {
    classifier: 'one-vs-rest linear SVM (hinge, L2) by AdaGrad; softmax with fitted temperature',
    epochs: o.epochs ?? DEFAULT_TRAIN.epochs,
    learningRate: o.learningRate ?? DEFAULT_TRAIN.learningRate,
    l2: o.l2 ?? DEFAULT_TRAIN.l2,
  };
  const mlp = {
    classifier: 'one hidden layer (relu) on the sparse features, softmax cross-entropy, dropout, Adam; fitted temperature',
    hidden: o.mlp?.hidden ?? DEFAULT_MLP.hidden,
    dropout: o.mlp?.dropout ?? DEFAULT_MLP.dropout,
    epochs: o.mlp?.epochs ?? DEFAULT_MLP.epochs,
    learningRate: o.mlp?.learningRate ?? DEFAULT_MLP.learningRate,
    ...(o.mlp?.labelWeights && { labelWeights: o.mlp.labelWeights }),
  };
  if (model.kind === 'linear') return { ...linear, temperature: model.data.temperature };
  if (model.kind === 'mlp') return { ...mlp, temperature: model.data.temperature };
  return {
    classifier: 'ensemble: mean of the linear SVM and the hidden-layer network probabilities',
    mlpWeight: model.mlpWeight,
    linear: { ...linear, temperature: model.linear.data.temperature },
    mlp: { ...mlp, temperature: model.mlp.data.temperature },
  };
}

/**
 * k-fold cross-validation with the same settings: every row is held out exactly once (folds stratified by label,
 * shuffled with the seed), each fold's model calibrated on its held-out fold, as buildModel does. A steadier figure
 * than one 20 % split on a few thousand rows, at k times the training cost.
 */
export function crossValidate(
  examples: Example[],
  k: number,
  o: TrainOptions & Pick<BuildOptions, 'classifier' | 'mlp'>,
): { folds: number; accuracy: number; macroF1: number; perFold: number[]; foldSizes: number[] } {
  if (!Number.isInteger(k) || k < 2) throw new Error('cross-validation needs at least 2 folds');
  const random = seededRandom(o.seed ?? DEFAULT_TRAIN.seed);
  const folds: Example[][] = Array.from({ length: k }, () => []);
  const byLabel = new Map<string, Example[]>();
  for (const e of examples) byLabel.set(e.label, [...(byLabel.get(e.label) ?? []), e]);
  let next = 0;
  for (const label of [...byLabel.keys()].sort()) for (const e of shuffle(byLabel.get(label)!, random)) folds[next++ % k]!.push(e);
  const results = folds.map((heldOut, i) => {
    const model = trainModel(folds.filter((_, j) => j !== i).flat(), { ...o, onEpoch: undefined });
    calibrate(model, heldOut);
    return evaluate(model, heldOut);
  });
  const weighted = (f: (e: Evaluation) => number) => results.reduce((a, e) => a + f(e) * e.count, 0) / examples.length;
  return { folds: k, accuracy: weighted((e) => e.accuracy), macroF1: weighted((e) => e.macroF1), perFold: results.map((e) => e.accuracy), foldSizes: folds.map((f) => f.length) };
}

/**
 * Labels the manifest has no sample for: the model got none of their rows right. Such a model does not load (a
 * sample per label is what proves the graph's label order), so it is not worth writing.
 */
export function unsampledLabels(manifest: Manifest): string[] {
  const sampled = new Set(manifest.samples.map((s) => s.label));
  return manifest.labels.filter((label) => !sampled.has(label));
}

export function writeModel(dir: string, built: Pick<BuiltModel, 'manifest' | 'onnx'>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), built.onnx);
  writeFileSync(join(dir, 'model.json'), formatManifest(built.manifest));
}

/**
 * model.json indented for reading, except that long arrays of plain values (an `ngrams` model's vocabulary and IDF)
 * stay on one line each instead of one line per n-gram.
 */
export function formatManifest(manifest: Manifest): string {
  const long: string[] = [];
  const json = JSON.stringify(
    manifest,
    (_key, value: unknown) =>
      Array.isArray(value) && value.length > 32 && value.every((v) => typeof v !== 'object') ? `\u0000long:${long.push(JSON.stringify(value)) - 1}` : value,
    2,
  );
  return json.replace(/"\\u0000long:(\d+)"/g, (_m, i: string) => long[Number(i)]!) + '\n';
}
