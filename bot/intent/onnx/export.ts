/**
 * Turns a trained model (linear, or one hidden layer) into a self-contained ONNX graph: raw text in, class
 * probabilities out.
 *
 *   text [1] ─ StringNormalizer(LOWER, C.UTF-8) ─┬─ Tokenizer(tokenexp = Latin/digit runs) ─┬─ TfIdfVectorizer(word pool, TF)
 *                                                │   └─ Tokenizer(mark, code points) per word ─ flatten ─ TfIdfVectorizer(marked pool)
 *                                                └─ Tokenizer(separators [""] = code points) ─ TfIdfVectorizer(char pool, TF)
 *   ─ Concat ─ NonZero ─ Gather counts / IDF / weight rows (only the n-grams present) ─ log(1+tf)·idf ─ L2 norm
 *   ─ x·W[rows] + b  (or relu(x·W1[rows] + b1)·W2 + b2) ─ ·T ─ Softmax → probabilities [1, C]
 *   (an ensemble runs both heads on the same x and averages their probabilities)
 *
 * Scoring gathers only the weight rows of the n-grams present (a few dozen) instead of multiplying the dense
 * vocabulary-wide vector, which is what keeps one message well under a millisecond. The graph takes one text per
 * run (batch size 1): batching would pad token rows and buys nothing per message.
 */
import { parseKey, WORD_TOKEN_RE2, type NgramKind } from '../features.js';
import type { IntentModel } from '../trainer.js';
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

export function exportOnnx(model: IntentModel, meta: { name: string; version: string }): Uint8Array {
  const { vocabulary, idf, labels } = model.data;
  const C = labels.length;
  const head = headOf(model, OUTPUT_NAME);
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
    // with "#", then laid end to end in one sequence so one TfIdfVectorizer counts it into a [V] vector (counting
    // row by row would write a dense [T, V] matrix first). No n-gram spanning two words can match: in the pool a
    // start mark only ever comes first and an end mark last, and padding is in no n-gram. A sentinel " " word keeps
    // T ≥ 1 (no words at all would give a [1, 0] tensor of another rank); none of its n-grams is in the pool either.
    nodes.push(
      { op: 'Concat', inputs: ['word_tokens', 'sentinel_word'], outputs: ['words_sentinel'], attrs: { axis: { i: 1 } } },
      {
        op: 'Tokenizer',
        domain: 'com.microsoft',
        inputs: ['words_sentinel'],
        outputs: ['marked_chars'],
        attrs: { mark: { i: 1 }, pad_value: { s: '#' }, mincharnum: { i: 1 }, separators: { strings: [''] } },
      },
      { op: 'Reshape', inputs: ['marked_chars', 'flat_shape'], outputs: ['marked_sequence'] },
      { op: 'TfIdfVectorizer', inputs: ['marked_sequence'], outputs: ['bounded_counts'], attrs: poolAttributes(bounded) },
      { op: 'Reshape', inputs: ['bounded_counts', 'one_row'], outputs: ['bounded_tf'] },
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
    ...head.nodes,
  );

  const initializers: TensorInit[] = [
    { name: 'flat_shape', type: 'int64', dims: [1], data: [-1] },
    { name: 'one_row', type: 'int64', dims: [2], data: [1, -1] },
    { name: 'sentinel_word', type: 'string', dims: [1, 1], data: [' '] },
    { name: 'row_shape', type: 'int64', dims: [2], data: [1, C] },
    { name: 'one', type: 'float', dims: [], data: [1] },
    { name: 'tiny', type: 'float', dims: [], data: [1e-12] },
    { name: 'idf', type: 'float', dims: [idf.length], data: idf },
    ...head.initializers,
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

interface Head {
  nodes: NodeSpec[];
  initializers: TensorInit[];
}

/**
 * From the normalised sparse vector `x` (values of the n-grams present, columns `cols`) to probabilities [1, C]
 * named `out`: linear — softmax(T·(x·W[cols] + b)); one hidden layer — softmax(T·(relu(x·W1[cols] + b1)·W2 + b2));
 * ensemble — (1 − w)·linear + w·network. Only the rows of the n-grams present are gathered from the
 * vocabulary-wide first matrices. Names carry a prefix per branch so an ensemble's two members do not collide.
 */
function headOf(model: IntentModel, out: string, prefix = ''): Head {
  const n = (name: string) => prefix + name;
  const C = model.data.labels.length;
  const F = model.data.vocabulary.length;
  const softmaxTail = (temperature: number): Head => ({
    nodes: [
      { op: 'Mul', inputs: [n('scores'), n('temperature')], outputs: [n('logits_flat')] },
      { op: 'Reshape', inputs: [n('logits_flat'), 'row_shape'], outputs: [n('logits')] },
      { op: 'Softmax', inputs: [n('logits')], outputs: [out], attrs: { axis: { i: -1 } } },
    ],
    initializers: [{ name: n('temperature'), type: 'float', dims: [], data: [temperature] }],
  });

  if (model.kind === 'ensemble') {
    const linear = headOf(model.linear, 'p_linear', 'linear_');
    const mlp = headOf(model.mlp, 'p_mlp', 'mlp_');
    return {
      nodes: [
        ...linear.nodes,
        ...mlp.nodes,
        { op: 'Mul', inputs: ['p_linear', 'linear_share'], outputs: ['p_linear_part'] },
        { op: 'Mul', inputs: ['p_mlp', 'mlp_share'], outputs: ['p_mlp_part'] },
        { op: 'Add', inputs: ['p_linear_part', 'p_mlp_part'], outputs: [out] },
      ],
      initializers: [
        ...linear.initializers,
        ...mlp.initializers,
        { name: 'linear_share', type: 'float', dims: [], data: [1 - model.mlpWeight] },
        { name: 'mlp_share', type: 'float', dims: [], data: [model.mlpWeight] },
      ],
    };
  }

  const tail = softmaxTail(model.data.temperature);
  if (model.kind === 'linear') {
    return {
      nodes: [
        { op: 'Gather', inputs: [n('weights'), 'cols'], outputs: [n('w_rows')], attrs: { axis: { i: 0 } } },
        { op: 'MatMul', inputs: ['x', n('w_rows')], outputs: [n('xw')] },
        { op: 'Add', inputs: [n('xw'), n('bias')], outputs: [n('scores')] },
        ...tail.nodes,
      ],
      initializers: [
        { name: n('weights'), type: 'float', dims: [F, C], data: model.data.weights },
        { name: n('bias'), type: 'float', dims: [C], data: model.data.bias },
        ...tail.initializers,
      ],
    };
  }
  const { hidden: H, w1, b1, w2, b2 } = model.data;
  return {
    nodes: [
      { op: 'Gather', inputs: [n('w1'), 'cols'], outputs: [n('w1_rows')], attrs: { axis: { i: 0 } } },
      { op: 'MatMul', inputs: ['x', n('w1_rows')], outputs: [n('xw1')] },
      { op: 'Add', inputs: [n('xw1'), n('b1')], outputs: [n('pre_hidden')] },
      { op: 'Relu', inputs: [n('pre_hidden')], outputs: [n('hidden')] },
      { op: 'MatMul', inputs: [n('hidden'), n('w2')], outputs: [n('hw2')] },
      { op: 'Add', inputs: [n('hw2'), n('b2')], outputs: [n('scores')] },
      ...tail.nodes,
    ],
    initializers: [
      { name: n('w1'), type: 'float', dims: [F, H], data: w1 },
      { name: n('b1'), type: 'float', dims: [H], data: b1 },
      { name: n('w2'), type: 'float', dims: [H, C], data: w2 },
      { name: n('b2'), type: 'float', dims: [C], data: b2 },
      ...tail.initializers,
    ],
  };
}
