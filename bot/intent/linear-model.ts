/**
 * The trained model in memory: vocabulary (n-gram → column), IDF weights, a linear layer per class, and the softmax
 * temperature that turns its scores into calibrated probabilities. `vectorize` + `scores` are the reference the
 * exported ONNX graph must reproduce (log-TF · IDF, L2 norm, x·W + b, softmax(T · s)).
 */
import { DEFAULT_FEATURES, extractNgrams, type FeatureSettings } from './features.js';

export interface SparseVector {
  indices: Int32Array;
  values: Float32Array;
}

export interface LinearModelData {
  labels: string[];
  features: FeatureSettings;
  /** feature keys (see features.ts keyOf), index = column */
  vocabulary: string[];
  idf: Float32Array;
  /** row-major [vocabulary.length × labels.length]: one row per feature so a sparse input gathers whole rows */
  weights: Float32Array;
  bias: Float32Array;
  temperature: number;
}

export class LinearModel {
  readonly kind = 'linear';
  readonly index: Map<string, number>;
  constructor(readonly data: LinearModelData) {
    this.index = new Map(data.vocabulary.map((k, i) => [k, i]));
  }

  get labels(): string[] {
    return this.data.labels;
  }

  vectorize(text: string): SparseVector {
    return vectorizeWith(text, this.index, this.data.idf, this.data.features);
  }

  /** Raw linear scores, one per label. */
  scores(x: SparseVector): Float64Array {
    const { weights, bias, labels } = this.data;
    const C = labels.length;
    const s = Float64Array.from(bias);
    for (let k = 0; k < x.indices.length; k++) {
      const row = x.indices[k]! * C;
      const v = x.values[k]!;
      for (let c = 0; c < C; c++) s[c]! += v * weights[row + c]!;
    }
    return s;
  }

  probabilities(text: string): Float64Array {
    return softmax(this.scores(this.vectorize(text)), this.data.temperature);
  }
}

export function vectorizeWith(
  text: string,
  index: Map<string, number>,
  idf: Float32Array,
  features: FeatureSettings = DEFAULT_FEATURES,
): SparseVector {
  const cols: number[] = [];
  const vals: number[] = [];
  for (const [key, tf] of extractNgrams(text, features)) {
    const j = index.get(key);
    if (j === undefined) continue;
    cols.push(j);
    vals.push(Math.log(1 + tf) * idf[j]!);
  }
  const norm = Math.sqrt(vals.reduce((a, v) => a + v * v, 0));
  const order = cols.map((_, i) => i).sort((a, b) => cols[a]! - cols[b]!);
  return {
    indices: Int32Array.from(order, (i) => cols[i]!),
    values: Float32Array.from(order, (i) => (norm > 0 ? vals[i]! / norm : 0)),
  };
}

export function softmax(s: ArrayLike<number>, temperature = 1): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < s.length; i++) max = Math.max(max, s[i]! * temperature);
  const out = new Float64Array(s.length);
  let sum = 0;
  for (let i = 0; i < s.length; i++) sum += out[i] = Math.exp(s[i]! * temperature - max);
  for (let i = 0; i < s.length; i++) out[i]! /= sum;
  return out;
}

export function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
  return best;
}
