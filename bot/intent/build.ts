/**
 * From labelled rows to a model folder: split off a stratified held-out part, train, fit the probability
 * temperature on the held-out part, evaluate, export the ONNX graph and write the manifest beside it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LinearModel } from './linear-model.js';
import { argmax } from './linear-model.js';
import type { Manifest } from './manifest.js';
import { exportOnnx } from './onnx/export.js';
import { calibrate, DEFAULT_TRAIN, evaluate, stratifiedSplit, train, type Evaluation, type Example, type TrainOptions } from './trainer.js';
import type { IntentThresholds } from './types.js';

export const DEFAULT_THRESHOLDS: IntentThresholds = { confidence: 0.5, outOfScope: 0.25, ambiguityMargin: 0.1 };

export interface BuildOptions extends TrainOptions {
  name: string;
  version?: string;
  examples: Example[];
  dataSha256: string;
  /** fraction of each label held out for calibration and evaluation (0 = train on everything, no evaluation) */
  holdout?: number;
  thresholds?: Partial<IntentThresholds>;
  samplesPerLabel?: number;
}

export interface BuiltModel {
  model: LinearModel;
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
  const model = train(trainRows, { ...o, seed });
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
    input: { kind: 'text', name: 'text', output: 'probabilities' },
    thresholds: { ...DEFAULT_THRESHOLDS, ...o.thresholds },
    languages: detectLanguages(o.examples),
    training: {
      dataSha256: o.dataSha256,
      rows: trainRows.length,
      heldOutRows: heldOut.length,
      seed,
      classifier: 'one-vs-rest linear SVM (hinge, L2) by AdaGrad; softmax with fitted temperature',
      epochs: o.epochs ?? DEFAULT_TRAIN.epochs,
      learningRate: o.learningRate ?? DEFAULT_TRAIN.learningRate,
      l2: o.l2 ?? DEFAULT_TRAIN.l2,
      features: model.data.features,
      vocabulary: model.data.vocabulary.length,
      temperature: model.data.temperature,
    },
    evaluation: evaluation ? { heldOut: evaluation } : {},
    samples,
    createdAt: new Date().toISOString(),
  };
  return { model, manifest, onnx: exportOnnx(model, { name: o.name, version }), heldOut, evaluation };
}

export function writeModel(dir: string, built: Pick<BuiltModel, 'manifest' | 'onnx'>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), built.onnx);
  writeFileSync(join(dir, 'model.json'), JSON.stringify(built.manifest, null, 2) + '\n');
}
