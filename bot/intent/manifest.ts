/** `model.json`, the manifest that travels with every `model.onnx` (the contract is described in models/README.md). */
import { z } from 'zod';

export const Thresholds = z.object({
  confidence: z.number().min(0).max(1),
  outOfScope: z.number().min(0).max(1),
  ambiguityMargin: z.number().min(0).max(1),
});

export const Manifest = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, 'letters, digits, ".", "_" and "-"'),
  version: z.string().min(1),
  labels: z.array(z.string().min(1)).min(2).refine((l) => new Set(l).size === l.length, 'labels must be unique'),
  input: z.object({
    /** "text": the graph takes a string tensor [1] and does its own featurisation (the only kind served today). */
    kind: z.literal('text'),
    name: z.string().default('text'),
    output: z.string().default('probabilities'),
  }),
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
});
export type Manifest = z.infer<typeof Manifest>;
export type ManifestInput = z.input<typeof Manifest>;
