/**
 * Turns a trained LinearModel into a self-contained ONNX graph: raw text in, class probabilities out.
 *
 *   text [1] ─ StringNormalizer(LOWER, C.UTF-8) ─┬─ Tokenizer(tokenexp = Latin/digit runs) ─ TfIdfVectorizer(word pool, TF)
 *                                                └─ Tokenizer(separators [""] = code points) ─ TfIdfVectorizer(char pool, TF)
 *   ─ Concat ─ NonZero ─ Gather counts / IDF / weight rows (only the n-grams present) ─ log(1+tf)·idf ─ L2 norm
 *   ─ x·W[rows] + b ─ ·T ─ Softmax → probabilities [1, C]
 *
 * Scoring gathers only the weight rows of the n-grams present (a few dozen) instead of multiplying the dense
 * vocabulary-wide vector, which is what keeps one message well under a millisecond. The graph takes one text per
 * run (batch size 1): batching would pad token rows and buys nothing per message.
 */
import { parseKey, WORD_TOKEN_RE2 } from '../features.js';
import type { LinearModel } from '../linear-model.js';
import { encodeModel, type NodeSpec, type TensorInit } from './proto.js';

export const INPUT_NAME = 'text';
export const OUTPUT_NAME = 'probabilities';

/** TfIdfVectorizer attributes for one token stream: pool grouped by n-gram length, each mapped to its column. */
function poolAttributes(grams: { tokens: string[]; column: number }[]) {
  const maxN = Math.max(...grams.map((g) => g.tokens.length));
  const sorted = grams.slice().sort((a, b) => a.tokens.length - b.tokens.length);
  const ngramCounts: number[] = [];
  let offset = 0;
  for (let n = 1; n <= maxN; n++) {
    ngramCounts.push(offset); // start of the n-grams of length n in pool_strings, counted in strings
    offset += sorted.filter((g) => g.tokens.length === n).length * n;
  }
  return {
    max_gram_length: { i: maxN },
    min_gram_length: { i: 1 },
    max_skip_count: { i: 0 },
    mode: { s: 'TF' },
    ngram_counts: { ints: ngramCounts },
    ngram_indexes: { ints: sorted.map((g) => g.column) },
    pool_strings: { strings: sorted.flatMap((g) => g.tokens) },
  };
}

export function exportOnnx(model: LinearModel, meta: { name: string; version: string }): Uint8Array {
  const { vocabulary, idf, weights, bias, labels, temperature } = model.data;
  const C = labels.length;
  const word: { tokens: string[]; column: number }[] = [];
  const char: { tokens: string[]; column: number }[] = [];
  // Columns inside each TfIdfVectorizer output are local; the concatenation puts word columns first. The trainer
  // orders its vocabulary the same way, which this checks rather than assumes.
  vocabulary.forEach((key, j) => {
    const { kind, tokens } = parseKey(key);
    if (kind === 'w') {
      if (char.length) throw new Error('vocabulary must list word n-grams before character n-grams');
      word.push({ tokens, column: j });
    } else char.push({ tokens, column: j - word.length });
  });

  const nodes: NodeSpec[] = [
    {
      op: 'StringNormalizer',
      inputs: [INPUT_NAME],
      outputs: ['normalized'],
      attrs: { case_change_action: { s: 'LOWER' }, is_case_sensitive: { i: 1 }, locale: { s: 'C.UTF-8' } },
    },
  ];
  const parts: string[] = [];
  if (word.length) {
    nodes.push(
      {
        op: 'Tokenizer',
        domain: 'com.microsoft',
        inputs: ['normalized'],
        outputs: ['word_tokens'],
        attrs: { mark: { i: 0 }, pad_value: { s: '#' }, mincharnum: { i: 1 }, tokenexp: { s: WORD_TOKEN_RE2 } },
      },
      { op: 'TfIdfVectorizer', inputs: ['word_tokens'], outputs: ['word_tf'], attrs: poolAttributes(word) },
    );
    parts.push('word_tf');
  }
  if (char.length) {
    nodes.push(
      {
        op: 'Tokenizer',
        domain: 'com.microsoft',
        inputs: ['normalized'],
        outputs: ['char_tokens'],
        attrs: { mark: { i: 0 }, pad_value: { s: '#' }, mincharnum: { i: 1 }, separators: { strings: [''] } },
      },
      { op: 'TfIdfVectorizer', inputs: ['char_tokens'], outputs: ['char_tf'], attrs: poolAttributes(char) },
    );
    parts.push('char_tf');
  }
  if (!parts.length) throw new Error('empty vocabulary: nothing to export');

  nodes.push(
    { op: 'Concat', inputs: parts, outputs: ['tf'], attrs: { axis: { i: 1 } } },
    { op: 'Reshape', inputs: ['tf', 'flat_shape'], outputs: ['tf_flat'] },
    { op: 'NonZero', inputs: ['tf_flat'], outputs: ['nz'] },
    { op: 'Reshape', inputs: ['nz', 'flat_shape'], outputs: ['cols'] },
    { op: 'Gather', inputs: ['tf_flat', 'cols'], outputs: ['counts'], attrs: { axis: { i: 0 } } },
    { op: 'Add', inputs: ['counts', 'one'], outputs: ['counts_1'] },
    { op: 'Log', inputs: ['counts_1'], outputs: ['log_tf'] },
    { op: 'Gather', inputs: ['idf', 'cols'], outputs: ['idf_cols'], attrs: { axis: { i: 0 } } },
    { op: 'Mul', inputs: ['log_tf', 'idf_cols'], outputs: ['tfidf'] },
    { op: 'ReduceSumSquare', inputs: ['tfidf'], outputs: ['sq'], attrs: { keepdims: { i: 0 } } },
    { op: 'Sqrt', inputs: ['sq'], outputs: ['norm'] },
    { op: 'Max', inputs: ['norm', 'tiny'], outputs: ['norm_safe'] },
    { op: 'Div', inputs: ['tfidf', 'norm_safe'], outputs: ['x'] },
    { op: 'Gather', inputs: ['weights', 'cols'], outputs: ['w_rows'], attrs: { axis: { i: 0 } } },
    { op: 'MatMul', inputs: ['x', 'w_rows'], outputs: ['xw'] },
    { op: 'Add', inputs: ['xw', 'bias'], outputs: ['scores'] },
    { op: 'Mul', inputs: ['scores', 'temperature'], outputs: ['logits_flat'] },
    { op: 'Reshape', inputs: ['logits_flat', 'row_shape'], outputs: ['logits'] },
    { op: 'Softmax', inputs: ['logits'], outputs: [OUTPUT_NAME], attrs: { axis: { i: -1 } } },
  );

  const initializers: TensorInit[] = [
    { name: 'flat_shape', type: 'int64', dims: [1], data: [-1] },
    { name: 'row_shape', type: 'int64', dims: [2], data: [1, C] },
    { name: 'one', type: 'float', dims: [], data: [1] },
    { name: 'tiny', type: 'float', dims: [], data: [1e-12] },
    { name: 'temperature', type: 'float', dims: [], data: [temperature] },
    { name: 'idf', type: 'float', dims: [idf.length], data: idf },
    { name: 'weights', type: 'float', dims: [vocabulary.length, C], data: weights },
    { name: 'bias', type: 'float', dims: [C], data: bias },
  ];

  return encodeModel({
    graphName: meta.name,
    producer: { name: 'channel-hub-intent-trainer', version: meta.version },
    docString: 'Intent classifier: raw text in, class probabilities out (labels in model.json, same order).',
    opsets: { '': 18, 'com.microsoft': 1 },
    inputs: [{ name: INPUT_NAME, type: 'string', shape: [1] }],
    outputs: [{ name: OUTPUT_NAME, type: 'float', shape: [1, C] }],
    initializers,
    nodes,
    metadata: { labels: JSON.stringify(labels), version: meta.version },
  });
}
