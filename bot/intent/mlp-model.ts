/**
 * A one-hidden-layer network on the same sparse TF-IDF features as the linear model:
 *
 *   x (sparse, L2-normalised) → h = relu(x·W1 + b1) → s = h·W2 + b2 → softmax(T · s)
 *
 * The first layer is read like the linear model's weights (one row of W1 per n-gram, so a message gathers the few
 * dozen rows of its n-grams), which keeps inference as cheap as the linear model's plus one small dense layer.
 * Trained with softmax cross-entropy, dropout on the hidden layer and Adam (the rows of W1 and W2 a step does not
 * touch are left alone — "lazy" Adam — so a step costs what the message has, not what the vocabulary has).
 */
import { softmax, sparseAffine, SparseInputModel, type SparseInputData, type SparseVector } from './linear-model.js';

export interface MlpModelData extends SparseInputData {
  hidden: number;
  /** row-major [vocabulary.length × hidden] */
  w1: Float32Array;
  b1: Float32Array;
  /** row-major [hidden × labels.length] */
  w2: Float32Array;
  b2: Float32Array;
  temperature: number;
}

export class MlpModel extends SparseInputModel<MlpModelData> {
  readonly kind = 'mlp';

  /** Hidden activations (after relu) for a sparse input. */
  hiddenLayer(x: SparseVector, out = new Float64Array(this.data.hidden)): Float64Array {
    const { w1, b1, hidden: H } = this.data;
    sparseAffine(x, w1, b1, H, out);
    for (let j = 0; j < H; j++) if (out[j]! < 0) out[j] = 0;
    return out;
  }

  /** Output scores (logits before the temperature), one per label. */
  scores(x: SparseVector): Float64Array {
    const { w2, b2, hidden: H, labels } = this.data;
    const C = labels.length;
    const h = this.hiddenLayer(x);
    const s = Float64Array.from(b2);
    for (let j = 0; j < H; j++) {
      const hj = h[j]!;
      if (hj === 0) continue;
      const row = j * C;
      for (let c = 0; c < C; c++) s[c]! += hj * w2[row + c]!;
    }
    return s;
  }

  probabilities(text: string): Float64Array {
    return softmax(this.scores(this.vectorize(text)), this.data.temperature);
  }
}
