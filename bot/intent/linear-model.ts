/**
 * The trained model in memory: vocabulary (n-gram → column), IDF weights, a linear layer per class, and the softmax
 * temperature that turns its scores into calibrated probabilities. `vectorize` + `scores` are the reference the
 * exported ONNX graph must reproduce (log-TF · IDF, L2 norm, x·W + b, softmax(T · s)).
 */
import type { FeatureSettings } from './features.js';
import { NgramVectorizer, type SparseVector } from './vectorizer.js';

export type { SparseVector };

/**
 * out = bias + x·W for a sparse x and a row-major W of `width` columns with one row per feature: a message gathers
 * only the rows of its own n-grams. The linear layer, the network's first layer and both trainers' forward passes.
 */
export function sparseAffine(x: SparseVector, weights: Float32Array, bias: Float32Array, width: number, out: Float64Array): Float64Array {
  out.set(bias);
  for (let k = 0; k < x.indices.length; k++) {
    const row = x.indices[k]! * width;
    const v = x.values[k]!;
    for (let c = 0; c < width; c++) out[c]! += v * weights[row + c]!;
  }
  return out;
}

/** What every model on the TF-IDF features carries: its labels and the vocabulary + IDF that vectorize a text. */
export interface SparseInputData {
  labels: string[];
  features: FeatureSettings;
  /** feature keys (see features.ts keyOf), index = column */
  vocabulary: string[];
  idf: Float32Array;
}

/** The input side shared by the linear model and the network: text → TF-IDF vector over the vocabulary. */
export abstract class SparseInputModel<D extends SparseInputData> {
  private readonly vectorizer: NgramVectorizer;
  constructor(readonly data: D) {
    this.vectorizer = new NgramVectorizer(data.vocabulary, data.idf, data.features);
  }

  get labels(): string[] {
    return this.data.labels;
  }

  vectorize(text: string): SparseVector {
    return this.vectorizer.vectorize(text);
  }
}

export interface LinearModelData extends SparseInputData {
  /** row-major [vocabulary.length × labels.length]: one row per feature so a sparse input gathers whole rows */
  weights: Float32Array;
  bias: Float32Array;
  temperature: number;
}

export class LinearModel extends SparseInputModel<LinearModelData> {
  readonly kind = 'linear';

  /** Raw linear scores, one per label. */
  scores(x: SparseVector): Float64Array {
    const { weights, bias, labels } = this.data;
    return sparseAffine(x, weights, bias, labels.length, new Float64Array(labels.length));
  }

  probabilities(text: string): Float64Array {
    return softmax(this.scores(this.vectorize(text)), this.data.temperature);
  }
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
