/**
 * The project's own trainer: TF-IDF over word and character n-grams (features.ts), then a one-vs-rest linear SVM
 * (hinge loss, L2 penalty) trained by AdaGrad, then a softmax temperature fitted on held-out data so the scores
 * become probabilities the thresholds can speak about. Everything random draws from one seeded generator, so the
 * same data and seed give bit-identical weights.
 */
import { DEFAULT_FEATURES, extractNgrams, parseKey, type FeatureSettings } from './features.js';
import { argmax, LinearModel, softmax, sparseAffine, type SparseVector } from './linear-model.js';
import { NgramVectorizer } from './vectorizer.js';
import type { EnsembleModel } from './ensemble-model.js';
import type { MlpModel } from './mlp-model.js';

/** The classifiers the trainer makes: all score the same sparse features and export to the same graph input. */
export type IntentModel = LinearModel | MlpModel | EnsembleModel;

export interface Example {
  text: string;
  label: string;
}

export interface TrainOptions {
  seed?: number;
  epochs?: number;
  /** AdaGrad base learning rate */
  learningRate?: number;
  /** L2 penalty */
  l2?: number;
  /** Return the average of the weights over all steps (Polyak averaging) instead of the last ones. */
  average?: boolean;
  features?: FeatureSettings;
  /** Called after each epoch (progress bar). */
  onEpoch?: (epoch: number, epochs: number, loss: number) => void;
}

export const DEFAULT_TRAIN = { seed: 42, epochs: 30, learningRate: 0.1, l2: 3e-4, average: false };

/** mulberry32: tiny, fast, good enough to shuffle, and the same on every platform. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffle<T>(items: T[], random: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Stratified split: `fraction` of every label goes to the held-out part (at least one when the label has ≥ 2). */
export function stratifiedSplit(rows: Example[], fraction: number, seed: number): { train: Example[]; heldOut: Example[] } {
  const random = seededRandom(seed);
  const byLabel = new Map<string, Example[]>();
  for (const r of rows) byLabel.set(r.label, [...(byLabel.get(r.label) ?? []), r]);
  const train: Example[] = [];
  const heldOut: Example[] = [];
  for (const label of [...byLabel.keys()].sort()) {
    const group = shuffle(byLabel.get(label)!, random);
    const k = group.length >= 2 ? Math.max(1, Math.round(group.length * fraction)) : 0;
    heldOut.push(...group.slice(0, k));
    train.push(...group.slice(k));
  }
  return { train, heldOut };
}

/** Vocabulary: candidate n-grams present in at least `minDf` training sentences, in a stable order. */
export function buildVocabulary(texts: string[], features: FeatureSettings): { vocabulary: string[]; idf: Float32Array } {
  const df = new Map<string, number>();
  for (const t of texts) for (const key of extractNgrams(t, features).keys()) df.set(key, (df.get(key) ?? 0) + 1);
  // Order: word features, then word-boundary character features, then running-text character features; by n-gram
  // length, then code-point order. The ONNX export relies on this stream order (the TfIdfVectorizer outputs are
  // concatenated in it) but any stable order within a stream would do.
  const kept = [...df.entries()].filter(([, n]) => n >= features.minDf).map(([k]) => k);
  const rank = (k: string) => {
    const { kind, tokens } = parseKey(k);
    return { w: 0, b: 100, c: 200 }[kind] + tokens.length;
  };
  kept.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  const N = texts.length;
  const idf = Float32Array.from(kept, (k) => Math.log((1 + N) / (1 + df.get(k)!)) + 1);
  return { vocabulary: kept, idf };
}

/** Options left undefined (e.g. CLI flags not given) keep their defaults rather than erasing them. */
export function withDefaults<D extends object, O extends object>(defaults: D, options: O): Omit<O, keyof D> & D {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  return { ...defaults, ...given } as Omit<O, keyof D> & D;
}

/** What every classifier trains on: sorted labels, the TF-IDF vocabulary, and each row as a sparse vector + label. */
export function prepareTraining(rows: Example[], features: FeatureSettings) {
  if (rows.length === 0) throw new Error('no training rows');
  const labels = [...new Set(rows.map((r) => r.label))].sort();
  const labelIndex = new Map(labels.map((l, i) => [l, i]));
  const { vocabulary, idf } = buildVocabulary(
    rows.map((r) => r.text),
    features,
  );
  const vectorizer = new NgramVectorizer(vocabulary, idf, features);
  const X = rows.map((r) => vectorizer.vectorize(r.text));
  const y = rows.map((r) => labelIndex.get(r.label)!);
  return { labels, vocabulary, idf, X, y };
}

export function train(rows: Example[], options: TrainOptions = {}): LinearModel {
  const o = withDefaults({ ...DEFAULT_TRAIN, features: DEFAULT_FEATURES as FeatureSettings }, options);
  const { labels, vocabulary, idf, X, y } = prepareTraining(rows, o.features);

  const C = labels.length;
  const F = vocabulary.length;
  const W = new Float32Array(F * C);
  const G = new Float32Array(F * C);
  const b = new Float32Array(C);
  const Gb = new Float32Array(C);
  const random = seededRandom(o.seed);
  const order = rows.map((_, i) => i);
  const s = new Float64Array(C);
  const eps = 1e-8;
  // Averaging without touching every weight each step: U accumulates step·Δw, and mean(w) = W − U / steps.
  const U = o.average ? new Float32Array(F * C) : undefined;
  const Ub = new Float32Array(C);
  let step = 0;

  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    let loss = 0;
    for (const i of shuffle(order, random)) {
      step++;
      const x = X[i]!;
      const yi = y[i]!;
      sparseAffine(x, W, b, C, s);
      for (let c = 0; c < C; c++) {
        const sign = c === yi ? 1 : -1;
        const margin = sign * s[c]!;
        if (margin >= 1) continue;
        loss += 1 - margin;
        // hinge sub-gradient −sign·x, plus the L2 penalty on the touched weights (lazy regularisation)
        for (let k = 0; k < x.indices.length; k++) {
          const at = x.indices[k]! * C + c;
          const g = -sign * x.values[k]! + o.l2 * W[at]!;
          G[at]! += g * g;
          const delta = (o.learningRate * g) / (Math.sqrt(G[at]!) + eps);
          W[at]! -= delta;
          if (U) U[at]! -= step * delta;
        }
        const gb = -sign;
        Gb[c]! += gb * gb;
        const deltaB = (o.learningRate * gb) / (Math.sqrt(Gb[c]!) + eps);
        b[c]! -= deltaB;
        Ub[c]! -= step * deltaB;
      }
    }
    o.onEpoch?.(epoch, o.epochs, loss / rows.length);
  }
  if (U && step > 0) {
    for (let k = 0; k < W.length; k++) W[k]! -= U[k]! / step;
    for (let c = 0; c < C; c++) b[c]! -= Ub[c]! / step;
  }
  return new LinearModel({ labels, features: o.features, vocabulary, idf, weights: W, bias: b, temperature: 1 });
}

/**
 * Fits the softmax temperature on held-out examples (minimum negative log-likelihood over a log-spaced grid, then
 * a finer pass around the best), so that "probability 0.8" means right about 80 % of the time.
 */
export function calibrate(model: IntentModel, heldOut: Example[]): number {
  if (model.kind === 'ensemble') {
    calibrate(model.linear, heldOut);
    return calibrate(model.mlp, heldOut);
  }
  const scored = heldOut
    .filter((r) => model.labels.includes(r.label))
    .map((r) => ({ s: model.scores(model.vectorize(r.text)), y: model.labels.indexOf(r.label) }));
  if (scored.length === 0) return model.data.temperature;
  const nll = (t: number) => scored.reduce((acc, { s, y }) => acc - Math.log(Math.max(1e-12, softmax(s, t)[y]!)), 0);
  let best = 1;
  let bestLoss = Infinity;
  const grid = (lo: number, hi: number, steps: number) => {
    for (let i = 0; i <= steps; i++) {
      const t = lo * Math.pow(hi / lo, i / steps);
      const l = nll(t);
      if (l < bestLoss) [best, bestLoss] = [t, l];
    }
  };
  grid(0.25, 64, 40);
  grid(best / 1.2, best * 1.2, 20);
  model.data.temperature = Number(best.toFixed(4));
  return model.data.temperature;
}

export interface Evaluation {
  count: number;
  accuracy: number;
  macroF1: number;
  /** lowest F1 first */
  worst: { label: string; f1: number; support: number }[];
}

export function evaluate(model: IntentModel, rows: Example[], predict?: (text: string) => string): Evaluation {
  const labels = model.labels;
  const tp = new Map<string, number>();
  const fp = new Map<string, number>();
  const fn = new Map<string, number>();
  const support = new Map<string, number>();
  const inc = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  let correct = 0;
  for (const r of rows) {
    const got = predict ? predict(r.text) : labels[argmax(model.probabilities(r.text))]!;
    inc(support, r.label);
    if (got === r.label) {
      correct++;
      inc(tp, r.label);
    } else {
      inc(fp, got);
      inc(fn, r.label);
    }
  }
  const perLabel = [...support.keys()].map((label) => {
    const t = tp.get(label) ?? 0;
    const p = t / Math.max(1, t + (fp.get(label) ?? 0));
    const rc = t / Math.max(1, t + (fn.get(label) ?? 0));
    return { label, f1: p + rc === 0 ? 0 : (2 * p * rc) / (p + rc), support: support.get(label)! };
  });
  perLabel.sort((a, b) => a.f1 - b.f1 || (a.label < b.label ? -1 : 1));
  return {
    count: rows.length,
    accuracy: rows.length ? correct / rows.length : 0,
    macroF1: perLabel.length ? perLabel.reduce((a, x) => a + x.f1, 0) / perLabel.length : 0,
    worst: perLabel.slice(0, 5).map((x) => ({ ...x, f1: Number(x.f1.toFixed(4)) })),
  };
}

export type { SparseVector };
