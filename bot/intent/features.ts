/**
 * The featurisation both the trainer and the exported ONNX graph perform, written once here so they cannot drift:
 *
 *   lower-case (per code point, as ONNX StringNormalizer does with locale C.UTF-8)
 *   → word tokens: runs of Latin letters and digits (the graph: com.microsoft Tokenizer with the same tokenexp)
 *   → word 1–2-grams
 *   → characters (the graph: Tokenizer with separators [""], which splits into code points, spaces included)
 *   → character n-grams made only of letters/digits ("within words"): 2–5-grams of non-CJK text, 1–2-grams where a
 *     CJK character takes part (Chinese has no spaces; single characters and bigrams carry the meaning).
 *
 * The graph counts every n-gram of its vocabulary (TfIdfVectorizer pool) in those token streams. The vocabulary only
 * ever holds n-grams this file accepts as candidates, so an n-gram spanning a space or punctuation simply never
 * matches, and the graph's counts equal the ones computed here.
 */

/** RE2 syntax for the ONNX Tokenizer; the JavaScript regex below is its exact equivalent. */
export const WORD_TOKEN_RE2 = '[\\p{Latin}\\p{N}]+';
const WORD_TOKEN = /[\p{Script=Latin}\p{N}]+/gu;
export const WORD_CHAR = /^[\p{L}\p{N}]$/u;
export const CJK_CHAR = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]$/u;

export interface FeatureSettings {
  wordNgrams: [number, number];
  charNgrams: [number, number];
  cjkCharNgrams: [number, number];
  /**
   * Character n-grams of every word (Latin letters/digits run) between a start and an end mark, so prefixes and
   * suffixes are features of their own ("char_wb"). Absent: no such stream (models trained before it existed).
   */
  wordBoundaryNgrams?: [number, number];
  /** n-grams seen in fewer training sentences than this are dropped */
  minDf: number;
}

export const DEFAULT_FEATURES: FeatureSettings = {
  wordNgrams: [1, 3],
  // Latin character n-grams come from the word-boundary stream below; the running-text stream keeps CJK only.
  charNgrams: [0, 0],
  cjkCharNgrams: [1, 2],
  wordBoundaryNgrams: [2, 5],
  minDf: 2,
};

/**
 * Lower-cases one code point at a time, as the C library's towlower does for StringNormalizer: where Unicode's
 * full lower case is several code points (U+0130 İ → i + combining dot), towlower keeps only the first.
 */
export function normalizeText(text: string): string {
  let out = '';
  for (const ch of text) out += String.fromCodePoint(ch.toLowerCase().codePointAt(0)!);
  return out;
}

export function wordTokens(normalized: string): string[] {
  return normalized.match(WORD_TOKEN) ?? [];
}

/**
 * Token streams: `w` word n-grams, `b` character n-grams of each word padded with boundary marks (the "char_wb"
 * analyser), `c` character n-grams of the running text.
 */
export type NgramKind = 'w' | 'b' | 'c';
/** Start/end marks around every word in the `b` stream: what the ONNX Tokenizer writes with `mark: 1`. */
export const WORD_START = '\u0002';
export const WORD_END = '\u0003';

/** A feature: which token stream it is counted in, and its tokens. */
export interface NgramKey {
  kind: NgramKind;
  tokens: string[];
}

/** Joins tokens with a separator that neither stream can contain inside a token. */
export const keyOf = (kind: NgramKind, tokens: string[]): string => `${kind}\u0001${tokens.join('\u0001')}`;
export const parseKey = (key: string): NgramKey => {
  const [kind, ...tokens] = key.split('\u0001');
  return { kind: kind as NgramKind, tokens };
};

/** Counts of every candidate n-gram of one text, keyed by `keyOf`. */
export function extractNgrams(text: string, s: FeatureSettings = DEFAULT_FEATURES): Map<string, number> {
  const counts = new Map<string, number>();
  const add = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
  const norm = normalizeText(text);

  const words = wordTokens(norm);
  for (let n = s.wordNgrams[0]; n <= s.wordNgrams[1]; n++) {
    for (let i = 0; i + n <= words.length; i++) add(keyOf('w', words.slice(i, i + n)));
  }

  if (s.wordBoundaryNgrams) {
    const [lo, hi] = s.wordBoundaryNgrams;
    for (const word of words) {
      const marked = [WORD_START, ...word, WORD_END];
      for (let n = lo; n <= hi; n++) {
        for (let i = 0; i + n <= marked.length; i++) add(keyOf('b', marked.slice(i, i + n)));
      }
    }
  }

  const chars = [...norm];
  const isWord = chars.map((c) => WORD_CHAR.test(c));
  const isCjk = chars.map((c) => CJK_CHAR.test(c));
  const maxN = Math.max(s.charNgrams[1], s.cjkCharNgrams[1]);
  const minN = Math.min(s.charNgrams[0], s.cjkCharNgrams[0]);
  for (let i = 0; i < chars.length; i++) {
    let cjk = false;
    for (let n = 1; n <= maxN && i + n <= chars.length; n++) {
      const j = i + n - 1;
      if (!isWord[j]) break;
      cjk ||= isCjk[j]!;
      if (n < minN) continue;
      const [lo, hi] = cjk ? s.cjkCharNgrams : s.charNgrams;
      if (n >= lo && n <= hi) add(keyOf('c', chars.slice(i, i + n)));
    }
  }
  return counts;
}
