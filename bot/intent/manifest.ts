/** `model.json`, the manifest that travels with every `model.onnx` (the contract is described in models/README.md). */
import { z } from 'zod';

export const Thresholds = z.object({
  confidence: z.number().min(0).max(1),
  outOfScope: z.number().min(0).max(1),
  ambiguityMargin: z.number().min(0).max(1),
});

/** "text": the graph takes the raw texts, a string tensor [batch] (or [1]), and does its own featurisation. */
const TextInput = z.object({
  kind: z.literal('text'),
  name: z.string().default('text'),
  output: z.string().default('probabilities'),
});

const Range = z.tuple([z.number().int().min(0), z.number().int().min(0)]);

/** The graph inputs of an `ngrams` model: a batch's TF-IDF cells (one per n-gram present in a text) and its size. */
export const CELL_INPUTS = { rows: 'cell_rows', cols: 'cell_cols', values: 'cell_values', count: 'text_count' } as const;

/**
 * "ngrams": the gateway turns each text into its TF-IDF vector over `vocabulary` (bot/intent/vectorizer.ts, the
 * trainer's own featurisation) and the graph takes a batch's cells — `rows` int64 [cells] (the text), `cols` int64
 * [cells] (the vocabulary column), `values` float [cells], `count` int64 [1] (texts in the batch).
 */
const NgramsInput = z.object({
  kind: z.literal('ngrams'),
  names: z
    .object({ rows: z.string(), cols: z.string(), values: z.string(), count: z.string() })
    .default({ ...CELL_INPUTS }),
  output: z.string().default('probabilities'),
  features: z.object({
    wordNgrams: Range,
    charNgrams: Range,
    cjkCharNgrams: Range,
    wordBoundaryNgrams: Range.optional(),
    minDf: z.number().int().min(1),
  }),
  /** n-gram keys as features.ts writes them (`w`/`b`/`c`, U+0001, the tokens joined by U+0001); index = column. */
  vocabulary: z.array(z.string().regex(/^[wbc]\u0001./su, 'an n-gram key: w, b or c, U+0001, its tokens')).min(1),
  idf: z.array(z.number().positive()),
});

const ModelInput = z.discriminatedUnion('kind', [TextInput, NgramsInput]);
/** The model input kinds a manifest may declare (models/README.md), as the schema lists them. */
export const MODEL_INPUT_KINDS = ModelInput.options.map((input) => input.shape.kind.value);

export const Manifest = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, 'letters, digits, ".", "_" and "-"'),
  version: z.string().min(1),
  labels: z.array(z.string().min(1)).min(2).refine((l) => new Set(l).size === l.length, 'labels must be unique'),
  input: ModelInput,
  thresholds: Thresholds,
  languages: z.array(z.string()).min(1),
  training: z
    .object({
      dataSha256: z.string(),
      rows: z.number().int().optional(),
      seed: z.number().int().optional(),
    })
    .passthrough(),
  evaluation: z.record(z.string(), z.unknown()).default({}),
  samples: z.array(z.object({ text: z.string(), label: z.string() })).min(1, 'at least one sample is needed to validate a swap'),
  createdAt: z.string().optional(),
}).superRefine((m, ctx) => {
  // The samples are what proves the graph's label order on a swap: a label without one could sit in the wrong place.
  const sampled = new Set(m.samples.map((s) => s.label));
  const unsampled = m.labels.filter((label) => !sampled.has(label));
  if (unsampled.length) {
    ctx.addIssue({ code: 'custom', path: ['samples'], message: `no sample for label(s) ${unsampled.join(', ')}: every label needs at least one, so a swap proves the label order` });
  }
  if (m.input.kind !== 'ngrams') return;
  const { idf, vocabulary } = m.input;
  if (idf.length !== vocabulary.length) {
    ctx.addIssue({ code: 'custom', path: ['input', 'idf'], message: `${idf.length} IDF weights for ${vocabulary.length} n-grams` });
  }
  // Character n-grams are walked code point by code point: each of their tokens must be exactly one.
  const bad = vocabulary.findIndex((key) => key[0] !== 'w' && key.slice(2).split('\u0001').some((t) => [...t].length !== 1));
  if (bad >= 0) {
    ctx.addIssue({ code: 'custom', path: ['input', 'vocabulary', bad], message: 'a character n-gram whose tokens are not single characters' });
  }
});
export type Manifest = z.infer<typeof Manifest>;
export type ManifestInput = z.input<typeof Manifest>;
/** The model input kinds a manifest may declare (models/README.md). */
export type ModelInputKind = Manifest['input']['kind'];
/** The graph input names of an `ngrams` model. */
export type CellInputNames = Extract<Manifest['input'], { kind: 'ngrams' }>['names'];
