/**
 * Turns a trained model (linear, or one hidden layer) into ONNX. `exportOnnx` writes a self-contained graph (input kind
 * `text`): N raw texts in, N rows of class probabilities out. `exportCellsOnnx` writes the head alone (input kind
 * `ngrams`), for a gateway that vectorises the texts itself. The self-contained graph:
 *
 *   text [N] ─ StringNormalizer(LOWER, C.UTF-8) ─┬─ Tokenizer(tokenexp = Latin/digit runs) ─┬─ TfIdfVectorizer(word pool, TF)
 *                                                │   └─ Tokenizer(mark, code points) per word ─ row-wise flatten ─ TfIdfVectorizer(marked pool)
 *                                                └─ Tokenizer(separators [""] = code points) ─ TfIdfVectorizer(char pool, TF)
 *   ─ Concat [N, V] ─ blocks of 32 columns: ReduceMax, NonZero, Gather the blocks holding an n-gram, NonZero in them
 *   → (row, column) of every n-gram present ─ GatherND counts, Gather IDF ─ log(1+tf)·idf
 *   ─ per-row L2 norm (ScatterND add by row) ─ x
 *   ─ x·W[columns] summed into each row's scores (ScatterND add) + b   (or relu(…W1 + b1)·W2 + b2) ─ ·T ─ Softmax → [N, C]
 *   (an ensemble runs both heads on the same x — their first-layer rows gathered in one pass — and averages them)
 *
 * Scoring gathers only the weight rows of the n-grams present (a few dozen per text) instead of multiplying the
 * dense vocabulary-wide vectors, which is what keeps a text well under a millisecond. Rows shorter than the longest
 * text of a batch are padded by the Tokenizers with "#", which no pool n-gram contains (the vocabulary only holds
 * letters, digits and word marks), so a text scores the same alone or in a batch. One run for several texts is what
 * a worker uses when several messages wait for the model at once: the fixed cost of a run is paid once.
 */
import { parseKey, WORD_TOKEN_RE2, type NgramKind } from '../features.js';
import { CELL_INPUTS } from '../manifest.js';
import type { IntentModel } from '../trainer.js';
import { encodeModel, type NodeSpec, type TensorInit } from './proto.js';

export const INPUT_NAME = 'text';
export const OUTPUT_NAME = 'probabilities';
/** The symbolic batch dimension of input and output: a runtime may send one text per run or several. */
export const BATCH = 'batch';
/** What the Tokenizers pad short rows with: not a letter, digit or word mark, so in no pool n-gram. */
const PAD = '#';
/** Order of the token streams in the concatenated count vector (and in the trainer's vocabulary). */
const STREAM_ORDER: NgramKind[] = ['w', 'b', 'c'];
/** Vocabulary columns per block when finding the n-grams present (below); 16–64 measured alike, 32 a little best. */
const BLOCK = 32;

/** Constants both graphs use, the head included (`ZERO` fills its score rows, `AXIS_1` turns the cells into columns). */
const AXIS_1: TensorInit = { name: 'axis_1', type: 'int64', dims: [1], data: [1] };
const ZERO: TensorInit = { name: 'zero', type: 'float', dims: [1], data: [0] };

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
    // [N] and the shapes built from it: [N, 1] and [N, -1].
    { op: 'Shape', inputs: [INPUT_NAME], outputs: ['n'] },
    { op: 'Concat', inputs: ['n', 'one_i64'], outputs: ['n_by_1'], attrs: { axis: { i: 0 } } },
    { op: 'Concat', inputs: ['n', 'minus_one_i64'], outputs: ['n_rows'], attrs: { axis: { i: 0 } } },
  ];
  const parts: string[] = [];
  if (word.length || bounded.length) {
    nodes.push({
      op: 'Tokenizer',
      domain: 'com.microsoft',
      inputs: ['normalized'],
      outputs: ['word_tokens'],
      attrs: { mark: { i: 0 }, pad_value: { s: PAD }, mincharnum: { i: 1 }, tokenexp: { s: WORD_TOKEN_RE2 } },
    });
  }
  if (word.length) {
    nodes.push({ op: 'TfIdfVectorizer', inputs: ['word_tokens'], outputs: ['word_tf'], attrs: poolAttributes(word) });
    parts.push('word_tf');
  }
  if (bounded.length) {
    // Every word of a row, marked \u0002…\u0003 by the Tokenizer (`mark: 1`) and split into code points: [N, T, L]
    // padded with "#", then laid end to end per row so one TfIdfVectorizer counts each row into a [V] vector
    // (counting word by word would write a dense [N, T, V] tensor first). No n-gram spanning two words can match: in
    // the pool a start mark only ever comes first and an end mark last, and padding is in no n-gram. A sentinel " "
    // word keeps T ≥ 1 (rows without any word would give a tensor of size 0 in that axis); none of its n-grams is
    // in the pool either.
    nodes.push(
      { op: 'Expand', inputs: ['sentinel_word', 'n_by_1'], outputs: ['sentinel_column'] },
      { op: 'Concat', inputs: ['word_tokens', 'sentinel_column'], outputs: ['words_sentinel'], attrs: { axis: { i: 1 } } },
      {
        op: 'Tokenizer',
        domain: 'com.microsoft',
        inputs: ['words_sentinel'],
        outputs: ['marked_chars'],
        attrs: { mark: { i: 1 }, pad_value: { s: PAD }, mincharnum: { i: 1 }, separators: { strings: [''] } },
      },
      { op: 'Reshape', inputs: ['marked_chars', 'n_rows'], outputs: ['marked_sequence'] },
      { op: 'TfIdfVectorizer', inputs: ['marked_sequence'], outputs: ['bounded_tf'], attrs: poolAttributes(bounded) },
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
        attrs: { mark: { i: 0 }, pad_value: { s: PAD }, mincharnum: { i: 1 }, separators: { strings: [''] } },
      },
      { op: 'TfIdfVectorizer', inputs: ['char_tokens'], outputs: ['char_tf'], attrs: poolAttributes(char) },
    );
    parts.push('char_tf');
  }
  if (!parts.length) throw new Error('empty vocabulary: nothing to export');

  // The count vector is as wide as the vocabulary and almost all zeros, and NonZero over all of it was a third of a
  // run. Instead: the maximum of each block of BLOCK columns (one vectorised pass), NonZero over those maxima, then
  // NonZero only inside the blocks that hold an n-gram. Zero columns pad the width to a whole number of blocks.
  const blocks = Math.ceil(vocabulary.length / BLOCK);
  const padding = blocks * BLOCK - vocabulary.length;
  if (padding > 0) {
    nodes.push(
      { op: 'Concat', inputs: ['n', 'padding_width'], outputs: ['padding_shape'], attrs: { axis: { i: 0 } } },
      { op: 'Expand', inputs: ['zero', 'padding_shape'], outputs: ['padding'] },
    );
    parts.push('padding');
  }
  nodes.push(
    { op: 'Concat', inputs: parts, outputs: ['tf'], attrs: { axis: { i: 1 } } },
    // [N·blocks, BLOCK]: row r·blocks + b is block b of text r.
    { op: 'Reshape', inputs: ['tf', 'block_shape'], outputs: ['tf_blocks'] },
    { op: 'ReduceMax', inputs: ['tf_blocks', 'axis_1'], outputs: ['block_max'], attrs: { keepdims: { i: 0 } } },
    { op: 'NonZero', inputs: ['block_max'], outputs: ['hot_blocks_2d'] },
    { op: 'Reshape', inputs: ['hot_blocks_2d', 'minus_one_i64'], outputs: ['hot_blocks'] },
    { op: 'Gather', inputs: ['tf_blocks', 'hot_blocks'], outputs: ['hot'], attrs: { axis: { i: 0 } } },
    // The n-grams present: [2, nnz] (hot block, column in it), in order of text, then column.
    { op: 'NonZero', inputs: ['hot'], outputs: ['nz'] },
    { op: 'Transpose', inputs: ['nz'], outputs: ['cells'], attrs: { perm: { ints: [1, 0] } } },
    { op: 'GatherND', inputs: ['hot', 'cells'], outputs: ['counts'] },
    { op: 'Gather', inputs: ['nz', 'zero_i64'], outputs: ['hot_index'], attrs: { axis: { i: 0 } } },
    { op: 'Gather', inputs: ['nz', 'one_scalar_i64'], outputs: ['lane'], attrs: { axis: { i: 0 } } },
    { op: 'Gather', inputs: ['hot_blocks', 'hot_index'], outputs: ['block_of_cell'], attrs: { axis: { i: 0 } } },
    // Text and vocabulary column of each n-gram present.
    { op: 'Div', inputs: ['block_of_cell', 'blocks_i64'], outputs: ['rows'] },
    { op: 'Mod', inputs: ['block_of_cell', 'blocks_i64'], outputs: ['block_in_row'] },
    { op: 'Mul', inputs: ['block_in_row', 'block_i64'], outputs: ['block_start'] },
    { op: 'Add', inputs: ['block_start', 'lane'], outputs: ['cols'] },
    { op: 'Unsqueeze', inputs: ['rows', 'axis_1'], outputs: ['row_index'] },
    { op: 'Add', inputs: ['counts', 'one'], outputs: ['counts_1'] },
    { op: 'Log', inputs: ['counts_1'], outputs: ['log_tf'] },
    { op: 'Gather', inputs: ['idf', 'cols'], outputs: ['idf_cols'], attrs: { axis: { i: 0 } } },
    { op: 'Mul', inputs: ['log_tf', 'idf_cols'], outputs: ['tfidf'] },
    // Per-row L2 norm: squares summed into their row.
    { op: 'Mul', inputs: ['tfidf', 'tfidf'], outputs: ['squares'] },
    { op: 'Expand', inputs: ['zero', 'n'], outputs: ['zeros_n'] },
    { op: 'ScatterND', inputs: ['zeros_n', 'row_index', 'squares'], outputs: ['sum_squares'], attrs: { reduction: { s: 'add' } } },
    { op: 'Sqrt', inputs: ['sum_squares'], outputs: ['norm'] },
    { op: 'Max', inputs: ['norm', 'tiny'], outputs: ['norm_safe'] },
    { op: 'Gather', inputs: ['norm_safe', 'rows'], outputs: ['norm_cells'], attrs: { axis: { i: 0 } } },
    { op: 'Div', inputs: ['tfidf', 'norm_cells'], outputs: ['x'] },
    { op: 'Unsqueeze', inputs: ['x', 'axis_1'], outputs: ['x_column'] },
    ...head.nodes,
  );

  const initializers: TensorInit[] = [
    { name: 'one_i64', type: 'int64', dims: [1], data: [1] },
    { name: 'minus_one_i64', type: 'int64', dims: [1], data: [-1] },
    { name: 'zero_i64', type: 'int64', dims: [], data: [0] },
    { name: 'one_scalar_i64', type: 'int64', dims: [], data: [1] },
    AXIS_1,
    { name: 'sentinel_word', type: 'string', dims: [1, 1], data: [' '] },
    { name: 'one', type: 'float', dims: [], data: [1] },
    ZERO,
    { name: 'tiny', type: 'float', dims: [], data: [1e-12] },
    { name: 'idf', type: 'float', dims: [idf.length], data: idf },
    { name: 'padding_width', type: 'int64', dims: [1], data: [padding] },
    { name: 'block_shape', type: 'int64', dims: [2], data: [-1, BLOCK] },
    { name: 'blocks_i64', type: 'int64', dims: [], data: [blocks] },
    { name: 'block_i64', type: 'int64', dims: [], data: [BLOCK] },
    ...head.initializers,
  ];

  return encodeModel({
    graphName: meta.name,
    producer: { name: 'channel-hub-intent-trainer', version: meta.version },
    docString: 'Intent classifier: raw texts in, class probabilities out, one row per text (labels in model.json, same order).',
    opsets: { '': 18, 'com.microsoft': 1 },
    inputs: [{ name: INPUT_NAME, type: 'string', shape: [BATCH] }],
    outputs: [{ name: OUTPUT_NAME, type: 'float', shape: [BATCH, C] }],
    initializers,
    nodes,
    metadata: { labels: JSON.stringify(labels), version: meta.version },
  });
}

/**
 * The same model for input kind `ngrams`: the gateway vectorises the texts (bot/intent/vectorizer.ts) and the graph
 * takes a batch's TF-IDF cells — text row, vocabulary column and value of every n-gram present, and the number of
 * texts — and runs only the head. The featurisation nodes above (string normalisation, tokenizers, the dense count
 * vectors and the search for the n-grams present in them) cost most of a run of the text graph.
 */
export function exportCellsOnnx(model: IntentModel, meta: { name: string; version: string }): Uint8Array {
  const head = headOf(model, OUTPUT_NAME);
  return encodeModel({
    graphName: meta.name,
    producer: { name: 'channel-hub-intent-trainer', version: meta.version },
    docString: 'Intent classifier head: the TF-IDF cells of N texts in (vocabulary and IDF in model.json), class probabilities out, one row per text.',
    opsets: { '': 18 },
    inputs: [
      { name: CELL_INPUTS.rows, type: 'int64', shape: ['cells'] },
      { name: CELL_INPUTS.cols, type: 'int64', shape: ['cells'] },
      { name: CELL_INPUTS.values, type: 'float', shape: ['cells'] },
      { name: CELL_INPUTS.count, type: 'int64', shape: [1] },
    ],
    outputs: [{ name: OUTPUT_NAME, type: 'float', shape: [BATCH, model.data.labels.length] }],
    initializers: [AXIS_1, ZERO, ...head.initializers],
    nodes: [
      // The names the head reads: `n` [1], `cols` [cells], `row_index` [cells, 1], `x_column` [cells, 1].
      { op: 'Identity', inputs: [CELL_INPUTS.count], outputs: ['n'] },
      { op: 'Identity', inputs: [CELL_INPUTS.cols], outputs: ['cols'] },
      { op: 'Unsqueeze', inputs: [CELL_INPUTS.rows, 'axis_1'], outputs: ['row_index'] },
      { op: 'Unsqueeze', inputs: [CELL_INPUTS.values, 'axis_1'], outputs: ['x_column'] },
      ...head.nodes,
    ],
    metadata: { labels: JSON.stringify(model.data.labels), version: meta.version },
  });
}

interface Head {
  nodes: NodeSpec[];
  initializers: TensorInit[];
}

/**
 * From the normalised values `x_column` [nnz, 1] of the n-grams present (their rows `row_index`, columns `cols`) to
 * probabilities [N, C] named `out`: each n-gram's weight row times its value, summed into its text's row
 * (ScatterND add). Linear — softmax(T·(Σ x·W[cols] + b)); one hidden layer — softmax(T·(relu(Σ x·W1[cols] + b1)·W2 +
 * b2)); ensemble — (1 − w)·linear + w·network. Names carry a prefix per branch so an ensemble's two members do not
 * collide.
 *
 * An ensemble gathers its two members' first-layer rows in one go — W and W1 side by side, [F, C + H] — and splits the
 * row sums after: a Gather, Mul and ScatterND cost per cell more than per float, so one pass over 47-float rows costs
 * about two thirds of two passes over 15 and 32 (same products and sums per element, so the same probabilities).
 * `given` names such row sums computed outside the member (unprefixed), which then brings no first-layer weights.
 */
function headOf(model: IntentModel, out: string, prefix = '', given?: string): Head {
  const n = (name: string) => prefix + name;
  const C = model.data.labels.length;
  const F = model.data.vocabulary.length;
  /** Σ over each row's n-grams of value × its row of `weights`: [N, width], named `result` (both unprefixed). */
  const rowSums = (weights: string, width: number, result: string): Head => ({
    nodes: [
      { op: 'Gather', inputs: [n(weights), 'cols'], outputs: [n(`${weights}_cells`)], attrs: { axis: { i: 0 } } },
      { op: 'Mul', inputs: [n(`${weights}_cells`), 'x_column'], outputs: [n(`${weights}_terms`)] },
      { op: 'Concat', inputs: ['n', n(`${weights}_width`)], outputs: [n(`${weights}_shape`)], attrs: { axis: { i: 0 } } },
      { op: 'Expand', inputs: ['zero', n(`${weights}_shape`)], outputs: [n(`${weights}_zeros`)] },
      { op: 'ScatterND', inputs: [n(`${weights}_zeros`), 'row_index', n(`${weights}_terms`)], outputs: [n(result)], attrs: { reduction: { s: 'add' } } },
    ],
    initializers: [{ name: n(`${weights}_width`), type: 'int64', dims: [1], data: [width] }],
  });
  /** The member's own row sums over `weights` [F, width], or none when they are `given`. */
  const firstLayer = (weights: string, data: Float32Array, width: number, result: string): { sums: string; head: Head } => {
    if (given) return { sums: given, head: { nodes: [], initializers: [] } };
    const head = rowSums(weights, width, result);
    head.initializers.push({ name: n(weights), type: 'float', dims: [F, width], data });
    return { sums: n(result), head };
  };
  const softmaxTail = (temperature: number): Head => ({
    nodes: [
      { op: 'Mul', inputs: [n('scores'), n('temperature')], outputs: [n('logits')] },
      { op: 'Softmax', inputs: [n('logits')], outputs: [out], attrs: { axis: { i: -1 } } },
    ],
    initializers: [{ name: n('temperature'), type: 'float', dims: [], data: [temperature] }],
  });

  if (model.kind === 'ensemble') {
    const H = model.mlp.data.hidden;
    const joint = rowSums('joint_weights', C + H, 'joint_sums');
    const linear = headOf(model.linear, 'p_linear', 'linear_', 'linear_xw');
    const mlp = headOf(model.mlp, 'p_mlp', 'mlp_', 'mlp_xw1');
    return {
      nodes: [
        ...joint.nodes,
        { op: 'Split', inputs: [n('joint_sums'), n('joint_split')], outputs: ['linear_xw', 'mlp_xw1'], attrs: { axis: { i: 1 } } },
        ...linear.nodes,
        ...mlp.nodes,
        { op: 'Mul', inputs: ['p_linear', 'linear_share'], outputs: ['p_linear_part'] },
        { op: 'Mul', inputs: ['p_mlp', 'mlp_share'], outputs: ['p_mlp_part'] },
        { op: 'Add', inputs: ['p_linear_part', 'p_mlp_part'], outputs: [out] },
      ],
      initializers: [
        { name: n('joint_weights'), type: 'float', dims: [F, C + H], data: sideBySide(model.linear.data.weights, C, model.mlp.data.w1, H) },
        { name: n('joint_split'), type: 'int64', dims: [2], data: [C, H] },
        ...joint.initializers,
        ...linear.initializers,
        ...mlp.initializers,
        { name: 'linear_share', type: 'float', dims: [], data: [1 - model.mlpWeight] },
        { name: 'mlp_share', type: 'float', dims: [], data: [model.mlpWeight] },
      ],
    };
  }

  const tail = softmaxTail(model.data.temperature);
  if (model.kind === 'linear') {
    const first = firstLayer('weights', model.data.weights, C, 'xw');
    return {
      nodes: [...first.head.nodes, { op: 'Add', inputs: [first.sums, n('bias')], outputs: [n('scores')] }, ...tail.nodes],
      initializers: [...first.head.initializers, { name: n('bias'), type: 'float', dims: [C], data: model.data.bias }, ...tail.initializers],
    };
  }
  const { hidden: H, w1, b1, w2, b2 } = model.data;
  const first = firstLayer('w1', w1, H, 'xw1');
  return {
    nodes: [
      ...first.head.nodes,
      { op: 'Add', inputs: [first.sums, n('b1')], outputs: [n('pre_hidden')] },
      { op: 'Relu', inputs: [n('pre_hidden')], outputs: [n('hidden')] },
      { op: 'MatMul', inputs: [n('hidden'), n('w2')], outputs: [n('hw2')] },
      { op: 'Add', inputs: [n('hw2'), n('b2')], outputs: [n('scores')] },
      ...tail.nodes,
    ],
    initializers: [
      ...first.head.initializers,
      { name: n('b1'), type: 'float', dims: [H], data: b1 },
      { name: n('w2'), type: 'float', dims: [H, C], data: w2 },
      { name: n('b2'), type: 'float', dims: [C], data: b2 },
      ...tail.initializers,
    ],
  };
}

/** Two row-major matrices with the same rows, [rows, a] and [rows, b], as one [rows, a + b]. */
function sideBySide(left: Float32Array, a: number, right: Float32Array, b: number): Float32Array {
  const rows = left.length / a;
  const joint = new Float32Array(rows * (a + b));
  for (let r = 0; r < rows; r++) {
    joint.set(left.subarray(r * a, (r + 1) * a), r * (a + b));
    joint.set(right.subarray(r * b, (r + 1) * b), r * (a + b) + a);
  }
  return joint;
}
