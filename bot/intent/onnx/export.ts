/**
 * Turns a trained LinearModel into a self-contained ONNX graph: raw text in, class probabilities out.
 *
 *   text [1] ─ StringNormalizer(LOWER, C.UTF-8) ─┬─ Tokenizer(tokenexp = Latin/digit runs) ─┬─ TfIdfVectorizer(word pool, TF)
 *                                                │   └─ Tokenizer(mark, code points) per word ─ TfIdfVectorizer(marked pool) ─ ReduceSum
 *                                                └─ Tokenizer(separators [""] = code points) ─ TfIdfVectorizer(char pool, TF)
 *   ─ Concat ─ NonZero ─ Gather counts / IDF / weight rows (only the n-grams present) ─ log(1+tf)·idf ─ L2 norm
 *   ─ x·W[rows] + b ─ ·T ─ Softmax → probabilities [1, C]
 *
 * Scoring gathers only the weight rows of the n-grams present (a few dozen) instead of multiplying the dense
 * vocabulary-wide vector, which is what keeps one message well under a millisecond. The graph takes one text per
 * run (batch size 1): batching would pad token rows and buys nothing per message.
 */
import { parseKey, WORD_TOKEN_RE2, type NgramKind } from '../features.js';
import type { LinearModel } from '../linear-model.js';
import { encodeModel, type NodeSpec, type TensorInit } from './proto.js';

export const INPUT_NAME = 'text';
export const OUTPUT_NAME = 'probabilities';
/** Order of the token streams in the concatenated count vector (and in the trainer's vocabulary). */
const STREAM_ORDER: NgramKind[] = ['w', 'b', 'c'];

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
  const streams: Record<NgramKind, { tokens: string[]; column: number }[]> = { w: [], b: [], c: [] };
  // Columns inside each TfIdfVectorizer output are local; the concatenation puts the streams in STREAM_ORDER. The
  // trainer orders its vocabulary the same way, which this checks rather than assumes.
  let stream = 0;
  vocabulary.forEach((key, j) => {
    const { kind, tokens } = parseKey(key);
    const at = STREAM_ORDER.indexOf(kind);
    if (at < stream) throw new Error(`vocabulary must list its n-grams stream by stream (${STREAM_ORDER.join(', ')})`);
    stream = at;
    const before = STREAM_ORDER.slice(0, at).reduce((n, k) => n + streams[k].length, 0);
    streams[kind].push({ tokens, column: j - before });
  });
  const { w: word, b: bounded, c: char } = streams;

  const nodes: NodeSpec[] = [
    {
      op: 'StringNormalizer',
      inputs: [INPUT_NAME],
      outputs: ['normalized'],
      attrs: { case_change_action: { s: 'LOWER' }, is_case_sensitive: { i: 1 }, locale: { s: 'C.UTF-8' } },
    },
  ];
  const parts: string[] = [];
  if (word.length || bounded.length) {
    nodes.push({
      op: 'Tokenizer',
      domain: 'com.microsoft',
      inputs: ['normalized'],
      outputs: ['word_tokens'],
      attrs: { mark: { i: 0 }, pad_value: { s: '#' }, mincharnum: { i: 1 }, tokenexp: { s: WORD_TOKEN_RE2 } },
    });
  }
  if (word.length) {
    nodes.push({ op: 'TfIdfVectorizer', inputs: ['word_tokens'], outputs: ['word_tf'], attrs: poolAttributes(word) });
    parts.push('word_tf');
  }
  if (bounded.length) {
    // Every word, marked \u0002…\u0003 by the Tokenizer (`mark: 1`) and split into code points: [1, T, L] padded
    // with "#". A sentinel " " word keeps T ≥ 1 (no words at all would give a [1, 0] tensor of another rank); none
    // of its n-grams nor any with padding is in the pool. Counted per word, then summed over the words.
    nodes.push(
      { op: 'Concat', inputs: ['word_tokens', 'sentinel_word'], outputs: ['words_sentinel'], attrs: { axis: { i: 1 } } },
      {
        op: 'Tokenizer',
        domain: 'com.microsoft',
        inputs: ['words_sentinel'],
        outputs: ['marked_chars'],
        attrs: { mark: { i: 1 }, pad_value: { s: '#' }, mincharnum: { i: 1 }, separators: { strings: [''] } },
      },
      { op: 'Squeeze', inputs: ['marked_chars', 'axis0'], outputs: ['word_chars'] },
      { op: 'TfIdfVectorizer', inputs: ['word_chars'], outputs: ['bounded_tf_rows'], attrs: poolAttributes(bounded) },
      { op: 'ReduceSum', inputs: ['bounded_tf_rows', 'axis0'], outputs: ['bounded_tf'], attrs: { keepdims: { i: 1 } } },
    );
    parts.push('bounded_tf');
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
    { name: 'axis0', type: 'int64', dims: [1], data: [0] },
    { name: 'sentinel_word', type: 'string', dims: [1, 1], data: [' '] },
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
