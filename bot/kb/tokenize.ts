/**
 * Retrieval tokens for mixed Chinese/English text. Chinese has no spaces, so a run of Han characters becomes its
 * overlapping character bigrams (a single character stays a unigram) — the standard segmenter-free indexing for
 * Chinese IR, with no dictionary to ship. Latin words are lower-cased, stripped of a small stop-word list and
 * Porter-stemmed (`stemmer`), so "returns"/"returning" meet "return". Digits stay whole tokens (order numbers).
 */
import { stemmer } from 'stemmer';

const HAN = /^\p{Script=Han}/u;
/**
 * A run of Han characters, or a word of other letters and digits (apostrophes inside words kept). A word stops
 * where Han starts: "iPhone怎么退货" is "iphone" and "怎么退货", so a Latin word glued to the Chinese (no space is
 * usual there) neither hides the Chinese nor becomes a token no question shares.
 */
const TOKEN_RUN = /\p{Script=Han}+|(?:(?!\p{Script=Han})[\p{L}\p{N}])+(?:'(?:(?!\p{Script=Han})\p{L})+)?/gu;

/** Function words that carry no meaning for FAQ matching; kept short on purpose ("not", "how", "when" stay). */
const STOP_WORDS = new Set(
  'a an the is are was were be been am i me my we our you your it its this that these those of to in on at for by with and or do does did can could would should will shall please hi hello there s'.split(
    ' ',
  ),
);
/** Chinese particles that are noise as unigrams/bigram halves are handled by IDF; only whole-run fillers here. */
const CJK_STOP_RUNS = new Set(['的', '了', '吗', '呢', '吧', '啊', '我', '你', '是']);

export function tokenize(text: string): string[] {
  const tokens: string[] = [];
  for (const match of text.normalize('NFKC').toLowerCase().matchAll(TOKEN_RUN)) {
    const run = match[0];
    if (HAN.test(run)) {
      const chars = [...run];
      if (chars.length === 1) {
        if (!CJK_STOP_RUNS.has(run)) tokens.push(run);
        continue;
      }
      for (let i = 0; i < chars.length; i++) {
        if (!CJK_STOP_RUNS.has(chars[i]!)) tokens.push(chars[i]!);
        if (i + 1 < chars.length) tokens.push(chars[i]! + chars[i + 1]!);
      }
    } else {
      const word = run.replace(/'.*$/, '');
      if (STOP_WORDS.has(word)) continue;
      tokens.push(/^\d+$/.test(word) ? word : stemmer(word));
    }
  }
  return tokens;
}
