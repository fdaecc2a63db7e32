/**
 * Public benchmark of the intent trainer: Banking77 and CLINC150 (official splits), through the path production
 * predictions take — the text vectorised by the gateway's vectoriser, the exported ONNX graph (input kind `ngrams`)
 * run by onnxruntime-node.
 *
 *   npm run eval:intent [-- --datasets ../shared/datasets --out bench/results/intent-eval.json]
 *
 * CLINC150: trained on `train` (+ `oos_train` as one more class, the "oos-train" setting of Larson et al.; the
 * network weighs that class ×3, --oos-weight), the softmax temperatures and the out-of-scope threshold are chosen on
 * `val` + `oos_val`, then `test` (in-scope accuracy, with and without the threshold) and `oos_test` (out-of-scope
 * recall) are measured once.
 *
 * The classifier is the trainer's default (--classifier ensemble|linear|mlp); for an ensemble, its two members are
 * measured on their own as well, from the same training run.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { readExamples } from '../bot/intent/data.js';
import { argmax } from '../bot/intent/linear-model.js';
import { DEFAULT_CLASSIFIER, trainModel, type Classifier } from '../bot/intent/build.js';
import { cellFeeds } from '../bot/intent/bundle.js';
import { CELL_INPUTS } from '../bot/intent/manifest.js';
import { exportCellsOnnx } from '../bot/intent/onnx/export.js';
import { NgramVectorizer } from '../bot/intent/vectorizer.js';
import { calibrate, evaluate, type Example, type IntentModel, type TrainOptions } from '../bot/intent/trainer.js';

const { values } = parseArgs({
  options: {
    datasets: { type: 'string' },
    out: { type: 'string', default: 'bench/results/intent-eval.json' },
    seed: { type: 'string', default: '42' },
    'oos-recall': { type: 'string', default: '0.55' },
    'oos-weight': { type: 'string', default: '3' },
    classifier: { type: 'string', default: DEFAULT_CLASSIFIER },
  },
});
const root = values.datasets ?? [join(process.cwd(), '../shared/datasets'), '/work/shared/datasets'].find(existsSync)!;
const seed = Number(values.seed);
const OOS = 'oos';
const oosTarget = Number(values['oos-recall']);
const classifier = values.classifier as Classifier;

/** The models to measure: the trained one, and for an ensemble each member on its own (same run, no retraining). */
const variants = (model: IntentModel): [string, IntentModel][] =>
  model.kind === 'ensemble' ? [['ensemble', model], ['linear', model.linear], ['mlp', model.mlp]] : [[model.kind, model]];

function progress(name: string): TrainOptions['onEpoch'] {
  return (epoch, epochs, loss) => {
    const line = `${name}: epoch ${epoch}/${epochs} loss ${loss.toFixed(4)}`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}${epoch === epochs ? '\n' : ''}`);
    else if (epoch === epochs) console.error(line);
  };
}

/** Probabilities for every text through onnxruntime-node, one message per run. */
async function onnxProbabilities(model: IntentModel, texts: string[]): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(exportCellsOnnx(model, { name: 'eval', version: '0' }), {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const { vocabulary, idf, features } = model.data;
  const vectorizer = new NgramVectorizer(vocabulary, idf, features);
  const out: Float32Array[] = [];
  for (const text of texts) {
    const r = await session.run(cellFeeds(ort, [vectorizer.vectorize(text)], CELL_INPUTS));
    out.push(Float32Array.from(r.probabilities!.data as Float32Array));
  }
  await session.release();
  return out;
}

const pct = (x: number) => Number((x * 100).toFixed(2));

/** What both reports say of the trained model: its size, training time, and the figures of it and its members. */
function modelFigures<M>(trained: IntentModel, trainSeconds: number, measured: Record<string, M>) {
  return {
    labels: trained.labels.length,
    vocabulary: trained.data.vocabulary.length,
    trainSeconds,
    classifier: trained.kind,
    ...measured[trained.kind]!,
    ...(trained.kind === 'ensemble' && { members: { linear: measured.linear, mlp: measured.mlp } }),
  };
}

async function banking77() {
  const dir = join(root, 'banking77');
  const trainRows = readExamples(join(dir, 'train.csv')).examples;
  const testRows = readExamples(join(dir, 'test.csv')).examples;
  const started = Date.now();
  const trained = trainModel(trainRows, { seed, classifier, onEpoch: progress('banking77') });
  const trainSeconds = (Date.now() - started) / 1000;
  const measured: Record<string, { accuracy: number; macroF1: number; worst: unknown }> = {};
  for (const [name, model] of variants(trained)) {
    const probs = await onnxProbabilities(model, testRows.map((r) => r.text));
    const predicted = probs.map((p) => model.labels[argmax(p)]!);
    let i = 0;
    const e = evaluate(model, testRows, () => predicted[i++]!);
    measured[name] = { accuracy: pct(e.accuracy), macroF1: pct(e.macroF1), worst: e.worst };
  }
  return {
    train: trainRows.length,
    test: testRows.length,
    ...modelFigures(trained, trainSeconds, measured),
    reference: { 'TF-IDF + linear SVM': 90.3, 'BERT-large (fine-tuned)': 93.7 },
  };
}

async function clinc150() {
  const data = JSON.parse(readFileSync(join(root, 'clinc150', 'data_full.json'), 'utf8')) as Record<string, [string, string][]>;
  const rows = (k: string): Example[] => data[k]!.map(([text, label]) => ({ text, label }));
  const trainRows = [...rows('train'), ...rows('oos_train')];
  const val = [...rows('val'), ...rows('oos_val')];
  const test = rows('test');
  const oosTest = rows('oos_test');

  const started = Date.now();
  const trained = trainModel(trainRows, { seed, classifier, mlp: { labelWeights: { [OOS]: Number(values['oos-weight']) } }, onEpoch: progress('clinc150') });
  const trainSeconds = (Date.now() - started) / 1000;
  calibrate(trained, val);
  const measured: Record<string, ReturnType<typeof operatingPoint> extends Promise<infer R> ? R : never> = {};
  for (const [name, model] of variants(trained)) measured[name] = await operatingPoint(model, val, test, oosTest);
  return {
    train: trainRows.length,
    validation: val.length,
    test: test.length,
    oosTest: oosTest.length,
    ...modelFigures(trained, trainSeconds, measured),
    reference: { 'in-scope MLP': 93.5, 'in-scope BERT': 96.9, 'OOS recall (Larson et al.)': '10–52' },
  };
}

/**
 * One-sided 95 % Wilson lower bound of a proportion p measured on n items. The validation split has only 100
 * out-of-scope sentences, so its recall is known to about ±5 points: the threshold is chosen so that even the
 * lower bound reaches the target, not just the point estimate.
 */
function wilsonLowerBound(p: number, n: number, z = 1.645): number {
  return (p + (z * z) / (2 * n) - z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / (1 + (z * z) / n);
}

async function operatingPoint(model: IntentModel, val: Example[], test: Example[], oosTest: Example[]) {
  const oosIndex = model.labels.indexOf(OOS);
  /** In scope when the best label is not `oos` and its probability clears the threshold. */
  const decide = (p: Float32Array, threshold: number) => {
    const best = argmax(p);
    return best === oosIndex || p[best]! < threshold ? OOS : model.labels[best]!;
  };
  const score = (probs: Float32Array[], gold: Example[], threshold: number) => {
    let inCorrect = 0, inTotal = 0, oosHit = 0, oosTotal = 0;
    probs.forEach((p, i) => {
      const got = decide(p, threshold);
      if (gold[i]!.label === OOS) {
        oosTotal++;
        if (got === OOS) oosHit++;
      } else {
        inTotal++;
        if (got === gold[i]!.label) inCorrect++;
      }
    });
    return { inScope: inCorrect / Math.max(1, inTotal), oosRecall: oosHit / Math.max(1, oosTotal), oosTotal };
  };

  // Operating point, chosen on validation only: the lowest threshold whose OOS recall reaches the target (its
  // lower confidence bound does) — every higher threshold rejects more in-scope questions for no required gain.
  const valProbs = await onnxProbabilities(model, val.map((r) => r.text));
  let threshold = 0;
  for (let t = 0; t <= 0.95; t += 0.005) {
    threshold = Number(t.toFixed(3));
    const v = score(valProbs, val, t);
    if (wilsonLowerBound(v.oosRecall, v.oosTotal) >= oosTarget) break;
  }
  const valAt = score(valProbs, val, threshold);

  const gold = [...test, ...oosTest];
  const testProbs = await onnxProbabilities(model, gold.map((r) => r.text));
  const at = score(testProbs, gold, threshold);
  const plain = test.filter((r, i) => model.labels[argmax(testProbs[i]!)] === r.label).length / test.length;
  return {
    temperature: model.kind === 'ensemble' ? [model.linear.data.temperature, model.mlp.data.temperature] : model.data.temperature,
    outOfScopeThreshold: threshold,
    validationOosRecallLowerBoundTarget: pct(oosTarget),
    validationAtThreshold: { inScopeAccuracy: pct(valAt.inScope), oosRecall: pct(valAt.oosRecall) },
    inScopeAccuracyNoThreshold: pct(plain),
    inScopeAccuracy: pct(at.inScope),
    oosRecall: pct(at.oosRecall),
  };
}

const results = {
  generatedAt: new Date().toISOString(),
  datasets: root,
  seed,
  trainer:
    'word 1–3-grams + word-boundary-marked char 2–5-grams (CJK char 1–2-grams), log-TF·IDF, L2; ' +
    (classifier === 'linear' ? 'one-vs-rest linear SVM by AdaGrad' : classifier === 'mlp' ? 'one hidden layer (256 relu, dropout 0.5, Adam)' : 'mean of a one-vs-rest linear SVM (AdaGrad) and a one-hidden-layer network (256 relu, dropout 0.5, Adam), each temperature-calibrated'),
  banking77: await banking77(),
  clinc150: await clinc150(),
};
mkdirSync(dirname(values.out!), { recursive: true });
writeFileSync(values.out!, JSON.stringify(results, null, 2) + '\n');
const b = results.banking77;
const c = results.clinc150;
console.log(`Banking77 (${b.classifier}): accuracy ${b.accuracy} % (macro-F1 ${b.macroF1} %)   [TF-IDF+SVM 90.3 %, BERT 93.7 %]`);
console.log(
  `CLINC150 (${c.classifier}): in-scope ${c.inScopeAccuracy} % at OOS threshold ${c.outOfScopeThreshold} (${c.inScopeAccuracyNoThreshold} % without), OOS recall ${c.oosRecall} %   [MLP 93.5 %, BERT 96.9 %]`,
);
console.log(`written to ${values.out}`);
