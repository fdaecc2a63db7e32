/**
 * The intent classifier contract between the model runtime (bot/intent/) and the decision policy (bot/policy.ts).
 * A model is a folder with `model.onnx` + `model.json` (see models/README.md); the thresholds that decide whether a
 * prediction is trusted travel with the model, so swapping a model swaps its operating point too.
 */
export interface IntentScore {
  label: string;
  score: number;
}

export interface IntentThresholds {
  /** Below this top-1 probability the prediction is not used to answer. */
  confidence: number;
  /** Below this top-1 probability the text is out of scope (no intent at all). */
  outOfScope: number;
  /** Top-1 minus top-2 below this margin → ask a clarifying question rather than guess. */
  ambiguityMargin: number;
}

export interface IntentPrediction {
  label: string;
  confidence: number;
  /** Best three labels with their probabilities, best first. */
  top: IntentScore[];
  /** `<name>@<version>` of the model that answered. */
  modelVersion: string;
  thresholds: IntentThresholds;
  outOfScope: boolean;
}

export interface IntentClassifier {
  predict(text: string): Promise<IntentPrediction>;
  /** For /readyz: false when this process failed to load the announced model (it keeps answering with the old one). */
  health(): { ok: boolean; detail?: string };
}
