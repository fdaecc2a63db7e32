/**
 * A text → its TF-IDF vector over a fixed vocabulary (log(1 + tf) · idf, L2-normalised, columns ascending): what the
 * trainer learns from and what a model whose input is TF-IDF cells is served with.
 *
 * The n-grams are those of features.ts, found by walking a trie of the vocabulary instead of building every candidate
 * n-gram's key string and looking it up: a walk stops as soon as no vocabulary n-gram continues, and no string is
 * built per n-gram. Word n-grams walk by word, character n-grams by code point; counts go into a reused array. The
 * result equals `extractNgrams` + a vocabulary lookup exactly (test/bot/intent-vectorizer.test.ts), at about a fifth
 * of the cost.
 */
import { CJK_CHAR, normalizeText, parseKey, WORD_CHAR, WORD_END, WORD_START, wordTokens, type FeatureSettings } from './features.js';

export interface SparseVector {
  indices: Int32Array;
  values: Float32Array;
}

/** A node of the word n-gram trie: one level per word. */
interface WordNode {
  /** Vocabulary column of the n-gram ending here, or -1 when it is only a prefix. */
  column: number;
  next: Map<string, WordNode> | undefined;
}

function insert(root: Map<string, WordNode>, path: string[], column: number): void {
  let level = root;
  let node: WordNode | undefined;
  for (let i = 0; i < path.length; i++) {
    node = level.get(path[i]!);
    if (!node) level.set(path[i]!, (node = { column: -1, next: undefined }));
    if (i < path.length - 1) level = node.next ??= new Map();
  }
  if (node) node.column = column;
}

/**
 * A trie over code points in flat arrays: its edges (parent node, code point) → child node live in one open-addressing
 * hash table, so a step is a hash and a probe or two over typed arrays instead of a Map lookup per node. Node 0 is the
 * root. The character streams take ≈ 250 steps per message, most of a vectorisation.
 */
class CodePointTrie {
  private columns = new Int32Array(1024).fill(-1);
  private nodeCount = 1;
  private edgeParent = new Int32Array(0);
  private edgeCode = new Int32Array(0);
  private edgeChild = new Int32Array(0);
  private mask = 0;

  constructor(paths: { path: number[]; column: number }[]) {
    const edges = paths.reduce((n, p) => n + p.path.length, 0);
    let capacity = 16;
    while (capacity < edges * 2) capacity *= 2;
    this.allocate(capacity);
    for (const { path, column } of paths) {
      let node = 0;
      for (const code of path) node = this.child(node, code, true);
      this.columns[node] = column;
    }
  }

  /** The column of the n-gram ending at `node`, or -1 when it only leads to longer ones. */
  column(node: number): number {
    return this.columns[node]!;
  }

  /** The child of `node` by `code`, or -1. */
  step(node: number, code: number): number {
    return this.child(node, code, false);
  }

  private slot(node: number, code: number): number {
    return (Math.imul(node, 0x9e3779b1) ^ Math.imul(code, 0x85ebca6b)) & this.mask;
  }

  private child(node: number, code: number, create: boolean): number {
    for (let i = this.slot(node, code); ; i = (i + 1) & this.mask) {
      const child = this.edgeChild[i]!;
      if (child === -1) break;
      if (this.edgeParent[i] === node && this.edgeCode[i] === code) return child;
    }
    if (!create) return -1;
    const added = this.nodeCount++;
    if (added === this.columns.length) {
      const grown = new Int32Array(this.columns.length * 2).fill(-1);
      grown.set(this.columns);
      this.columns = grown;
    }
    let i = this.slot(node, code);
    while (this.edgeChild[i] !== -1) i = (i + 1) & this.mask;
    this.edgeParent[i] = node;
    this.edgeCode[i] = code;
    this.edgeChild[i] = added;
    return added;
  }

  private allocate(capacity: number): void {
    this.edgeParent = new Int32Array(capacity);
    this.edgeCode = new Int32Array(capacity);
    this.edgeChild = new Int32Array(capacity).fill(-1);
    this.mask = capacity - 1;
  }
}

const ASCII = /^[\x00-\x7f]*$/;
const ANY_CJK = new RegExp(CJK_CHAR.source.replace(/^\^|\$$/g, ''), 'u');
const START = WORD_START.codePointAt(0)!;
const END = WORD_END.codePointAt(0)!;

export class NgramVectorizer {
  private readonly words = new Map<string, WordNode>();
  private readonly marked: CodePointTrie;
  private readonly chars: CodePointTrie;
  /** Counts per column, zero between calls; the columns counted by the current call. */
  private readonly counts: Float64Array;
  private touched = new Int32Array(256);
  private touchedCount = 0;
  /** A word's code points with its marks, reused from word to word. */
  private codes = new Int32Array(64);
  /** Scratch for the weights before normalisation; the returned arrays come from the slabs. */
  private weights = new Float64Array(256);
  private readonly indexSlab = new Slab((length) => new Int32Array(length));
  private readonly valueSlab = new Slab((length) => new Float32Array(length));

  constructor(
    vocabulary: readonly string[],
    private readonly idf: Float32Array,
    private readonly features: FeatureSettings,
  ) {
    const marked: { path: number[]; column: number }[] = [];
    const chars: { path: number[]; column: number }[] = [];
    vocabulary.forEach((key, column) => {
      const { kind, tokens } = parseKey(key);
      if (kind === 'w') insert(this.words, tokens, column);
      else (kind === 'b' ? marked : chars).push({ path: tokens.map((t) => t.codePointAt(0)!), column });
    });
    this.marked = new CodePointTrie(marked);
    this.chars = new CodePointTrie(chars);
    this.counts = new Float64Array(vocabulary.length);
  }

  vectorize(text: string): SparseVector {
    this.touchedCount = 0;
    const ascii = ASCII.test(text);
    // ASCII lower-cases the same whole or code point by code point; anything else goes the way StringNormalizer does.
    const normalized = ascii ? text.toLowerCase() : normalizeText(text);
    const words = wordTokens(normalized);
    this.countWordNgrams(words);
    if (this.features.wordBoundaryNgrams) this.countMarkedNgrams(words, ascii);
    // Running-text character n-grams: with the default settings only where CJK characters take part.
    if (this.features.charNgrams[1] > 0 || (!ascii && ANY_CJK.test(normalized))) this.countCharNgrams(normalized);
    return this.collect();
  }

  private count(column: number): void {
    if (this.counts[column]!++ > 0) return;
    if (this.touchedCount === this.touched.length) {
      const grown = new Int32Array(this.touched.length * 2);
      grown.set(this.touched);
      this.touched = grown;
    }
    this.touched[this.touchedCount++] = column;
  }

  private countWordNgrams(words: string[]): void {
    const [lo, hi] = this.features.wordNgrams;
    for (let i = 0; i < words.length; i++) {
      let level: Map<string, WordNode> | undefined = this.words;
      for (let n = 1; n <= hi && i + n <= words.length && level; n++) {
        const node: WordNode | undefined = level.get(words[i + n - 1]!);
        if (!node) break;
        if (n >= lo && node.column >= 0) this.count(node.column);
        level = node.next;
      }
    }
  }

  /** Each word's code points between the start and end marks: the "b" stream. */
  private countMarkedNgrams(words: string[], ascii: boolean): void {
    const [lo, hi] = this.features.wordBoundaryNgrams!;
    for (const word of words) {
      // A word has at most as many code points as UTF-16 units, plus its two marks.
      if (this.codes.length < word.length + 2) this.codes = new Int32Array(Math.max(word.length + 2, this.codes.length * 2));
      const codes = this.codes;
      let length = 0;
      codes[length++] = START;
      if (ascii) for (let k = 0; k < word.length; k++) codes[length++] = word.charCodeAt(k);
      else for (const ch of word) codes[length++] = ch.codePointAt(0)!;
      codes[length++] = END;
      this.walkCodes(this.marked, codes, length, lo, hi);
    }
  }

  private walkCodes(trie: CodePointTrie, codes: Int32Array, length: number, lo: number, hi: number): void {
    for (let i = 0; i < length; i++) {
      let node = 0;
      for (let n = 1; n <= hi && i + n <= length; n++) {
        node = trie.step(node, codes[i + n - 1]!);
        if (node < 0) break;
        const column = trie.column(node);
        if (n >= lo && column >= 0) this.count(column);
      }
    }
  }

  /** The "c" stream: n-grams of letters/digits only; the CJK range applies once a CJK character takes part. */
  private countCharNgrams(normalized: string): void {
    const { charNgrams, cjkCharNgrams } = this.features;
    const chars = [...normalized];
    const isWord = chars.map((c) => WORD_CHAR.test(c));
    const isCjk = chars.map((c) => CJK_CHAR.test(c));
    const maxN = Math.max(charNgrams[1], cjkCharNgrams[1]);
    for (let i = 0; i < chars.length; i++) {
      let cjk = false;
      let node = 0;
      for (let n = 1; n <= maxN && i + n <= chars.length; n++) {
        const j = i + n - 1;
        if (!isWord[j]) break;
        cjk ||= isCjk[j]!;
        node = this.chars.step(node, chars[j]!.codePointAt(0)!);
        if (node < 0) break;
        const [lo, hi] = cjk ? cjkCharNgrams : charNgrams;
        if (n >= lo && n <= hi && this.chars.column(node) >= 0) this.count(this.chars.column(node));
      }
    }
  }

  /** The counted columns in ascending order with their normalised weights; resets the counts for the next call. */
  private collect(): SparseVector {
    const n = this.touchedCount;
    const indices = this.indexSlab.take(n);
    indices.set(this.touched.subarray(0, n));
    indices.sort();
    if (this.weights.length < n) this.weights = new Float64Array(Math.max(n, this.weights.length * 2));
    const weights = this.weights;
    let sumOfSquares = 0;
    for (let k = 0; k < n; k++) {
      const column = indices[k]!;
      const weight = Math.log(1 + this.counts[column]!) * this.idf[column]!;
      this.counts[column] = 0;
      weights[k] = weight;
      sumOfSquares += weight * weight;
    }
    const norm = Math.sqrt(sumOfSquares);
    const values = this.valueSlab.take(n);
    if (norm > 0) for (let k = 0; k < n; k++) values[k] = weights[k]! / norm;
    return { indices, values };
  }
}

/**
 * Hands out zeroed views of a large typed array, a new one when it runs out. A typed array of more than a few dozen
 * bytes gets a backing store of its own outside the V8 heap — an allocation and its bookkeeping that cost more than
 * the rest of a text's vector (≈ 1.5 µs each for the ≈ 110 cells of a message); a view of a shared buffer is one small
 * object. A slab stays alive while any vector it handed out does.
 */
class Slab<T extends Int32Array | Float32Array> {
  private buffer: T;
  private used = 0;

  constructor(
    private readonly make: (length: number) => T,
    private readonly size = 16_384,
  ) {
    this.buffer = make(0);
  }

  take(length: number): T {
    if (this.used + length > this.buffer.length) {
      this.buffer = this.make(Math.max(this.size, length));
      this.used = 0;
    }
    const view = this.buffer.subarray(this.used, this.used + length) as T;
    this.used += length;
    return view;
  }
}
