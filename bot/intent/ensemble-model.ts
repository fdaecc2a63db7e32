/**
 * The linear SVM and the hidden-layer network trained on the same rows (so the same vocabulary and IDF), each
 * calibrated with its own temperature, their probabilities averaged: p = (1 − w)·p_linear + w·p_network. The two
 * make different mistakes — the network is sharper on in-scope wording, the linear model less sure of sentences
 * unlike its training data — and the average is better at both than either (see docs/bot-trainers.md).
 */
import type { LinearModel } from './linear-model.js';
import type { MlpModel } from './mlp-model.js';

export class EnsembleModel {
  readonly kind = 'ensemble';
  constructor(
    readonly linear: LinearModel,
    readonly mlp: MlpModel,
    /** share of the network in the average */
    readonly mlpWeight = 0.5,
  ) {
    if (linear.data.vocabulary.length !== mlp.data.vocabulary.length || linear.labels.join('\n') !== mlp.labels.join('\n')) {
      throw new Error('ensemble members must share vocabulary and labels (train both on the same rows)');
    }
  }

  get labels(): string[] {
    return this.linear.labels;
  }

  /** The shared featurisation, and both temperatures for the manifest. */
  get data() {
    const { labels, features, vocabulary, idf } = this.linear.data;
    return { labels, features, vocabulary, idf, temperature: this.linear.data.temperature, mlpTemperature: this.mlp.data.temperature };
  }

  probabilities(text: string): Float64Array {
    const a = this.linear.probabilities(text);
    const b = this.mlp.probabilities(text);
    const w = this.mlpWeight;
    return a.map((p, i) => (1 - w) * p + w * b[i]!);
  }
}
