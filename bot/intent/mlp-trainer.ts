/**
 * Trains the one-hidden-layer classifier (mlp-model.ts) on the trainer's TF-IDF features: softmax cross-entropy,
 * inverted dropout on the hidden layer, Adam with lazy updates (only the W1 rows of the message's n-grams and the
 * W2 rows of hidden units that are active move). All randomness (initial weights, order, dropout) comes from the
 * one seeded generator, so the same data and seed give bit-identical weights.
 */
import { DEFAULT_FEATURES, type FeatureSettings } from './features.js';
import { sparseAffine } from './linear-model.js';
import { MlpModel } from './mlp-model.js';
import { prepareTraining, seededRandom, shuffle, withDefaults, type Example } from './trainer.js';

export interface MlpTrainOptions {
  seed?: number;
  hidden?: number;
  epochs?: number;
  learningRate?: number;
  /** probability of dropping a hidden unit while training */
  dropout?: number;
  features?: FeatureSettings;
  /**
   * Loss weight per label (default 1): e.g. a catch-all "out of scope" label trained on few, varied examples gets
   * a larger weight so the network claims it for anything unlike the other labels.
   */
  labelWeights?: Record<string, number>;
  onEpoch?: (epoch: number, epochs: number, loss: number) => void;
}

export const DEFAULT_MLP = { seed: 42, hidden: 256, epochs: 8, learningRate: 1e-3, dropout: 0.5 };

/** Adam state for one parameter array, updated one coordinate at a time. */
class Adam {
  readonly m: Float32Array;
  readonly v: Float32Array;
  constructor(size: number, private readonly lr: number) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }
  /** Step size factors for global step t (bias correction), computed once per step. */
  static corrections(t: number): { c1: number; c2: number } {
    return { c1: 1 - Math.pow(0.9, t), c2: 1 - Math.pow(0.999, t) };
  }
  update(w: Float32Array, at: number, g: number, c1: number, c2: number): void {
    const m = (this.m[at] = 0.9 * this.m[at]! + 0.1 * g);
    const v = (this.v[at] = 0.999 * this.v[at]! + 0.001 * g * g);
    w[at]! -= (this.lr * (m / c1)) / (Math.sqrt(v / c2) + 1e-8);
  }
}

export function trainMlp(rows: Example[], options: MlpTrainOptions = {}): MlpModel {
  const o = withDefaults({ ...DEFAULT_MLP, features: DEFAULT_FEATURES as FeatureSettings }, options);
  const { labels, vocabulary, idf, X, y } = prepareTraining(rows, o.features);
  const weightOf = Float64Array.from(labels, (l) => o.labelWeights?.[l] ?? 1);

  const C = labels.length;
  const F = vocabulary.length;
  const H = o.hidden;
  const random = seededRandom(o.seed);
  const uniform = (size: number, limit: number) => Float32Array.from({ length: size }, () => (random() * 2 - 1) * limit);
  // x has unit norm, so a hidden pre-activation has the variance of one W1 entry: keep it moderate.
  const w1 = uniform(F * H, 0.1);
  const b1 = new Float32Array(H);
  const w2 = uniform(H * C, Math.sqrt(6 / (H + C)));
  const b2 = new Float32Array(C);
  const [aw1, ab1, aw2, ab2] = [new Adam(F * H, o.learningRate), new Adam(H, o.learningRate), new Adam(H * C, o.learningRate), new Adam(C, o.learningRate)];

  const pre = new Float64Array(H);
  const h = new Float64Array(H);
  const dh = new Float64Array(H);
  const z = new Float64Array(C);
  const keep = 1 - o.dropout;
  let t = 0;

  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    let loss = 0;
    for (const i of shuffle(
      rows.map((_, k) => k),
      random,
    )) {
      t++;
      const { c1, c2 } = Adam.corrections(t);
      const x = X[i]!;
      const yi = y[i]!;
      // forward
      sparseAffine(x, w1, b1, H, pre);
      for (let j = 0; j < H; j++) h[j] = pre[j]! > 0 && random() < keep ? pre[j]! / keep : 0;
      z.set(b2);
      for (let j = 0; j < H; j++) {
        const hj = h[j]!;
        if (hj === 0) continue;
        const row = j * C;
        for (let c = 0; c < C; c++) z[c]! += hj * w2[row + c]!;
      }
      let max = -Infinity;
      for (let c = 0; c < C; c++) max = Math.max(max, z[c]!);
      let sum = 0;
      for (let c = 0; c < C; c++) sum += z[c] = Math.exp(z[c]! - max);
      for (let c = 0; c < C; c++) z[c]! /= sum; // z now holds the probabilities
      loss -= Math.log(Math.max(1e-12, z[yi]!));
      z[yi]! -= 1; // dL/dlogits
      const weight = weightOf[yi]!;
      if (weight !== 1) for (let c = 0; c < C; c++) z[c]! *= weight;

      // backward: hidden gradient first (needs W2 before its update), then W2/b2, then W1/b1
      for (let j = 0; j < H; j++) {
        if (h[j] === 0) {
          dh[j] = 0;
          continue;
        }
        const row = j * C;
        let g = 0;
        for (let c = 0; c < C; c++) g += w2[row + c]! * z[c]!;
        dh[j] = g / keep;
      }
      for (let j = 0; j < H; j++) {
        const hj = h[j]!;
        if (hj === 0) continue;
        const row = j * C;
        for (let c = 0; c < C; c++) aw2.update(w2, row + c, hj * z[c]!, c1, c2);
      }
      for (let c = 0; c < C; c++) ab2.update(b2, c, z[c]!, c1, c2);
      for (let j = 0; j < H; j++) if (dh[j] !== 0) ab1.update(b1, j, dh[j]!, c1, c2);
      for (let k = 0; k < x.indices.length; k++) {
        const row = x.indices[k]! * H;
        const v = x.values[k]!;
        for (let j = 0; j < H; j++) if (dh[j] !== 0) aw1.update(w1, row + j, v * dh[j]!, c1, c2);
      }
    }
    o.onEpoch?.(epoch, o.epochs, loss / rows.length);
  }
  return new MlpModel({ labels, features: o.features, vocabulary, idf, hidden: H, w1, b1, w2, b2, temperature: 1 });
}
