/**
 * Sensitive-word filter: one Aho–Corasick automaton over the configured list, so checking a message costs one pass
 * over its characters however long the list is. Text and words are NFKC-normalised and lower-cased (full-width
 * Latin, case variants). Words written in Latin letters only match as whole words ("ass" does not fire inside
 * "class"); a word ends at anything that is not a Latin letter, a digit or `_`, so Chinese right next to it ("你是sb吗",
 * "转agent") is a boundary. Chinese words match anywhere, as Chinese has no word boundaries to respect; zero-width
 * characters, and up to three spaces or obfuscators (`* . - _ ·`) between two Han characters ("傻 逼", "傻*逼",
 * "傻\u200b逼"), do not split them. Sentence punctuation and line breaks do: "我真傻。逼自己" is two phrases.
 *
 * The text is read as code points (numbers, not one-character strings): the filter reads every message in and out.
 */
import { LRUCache } from 'lru-cache';

const WORD_CHAR = /[\p{Script=Latin}\p{N}_]/u;
const LATIN_WORD = /^[\p{Script=Latin}\p{N}_' -]+$/u;
const MARK = /^\p{M}/u;
const HAN = /^\p{Script=Han}/u;

/** The longest run of obfuscators closed between two Han characters; a longer one is taken as a real break. */
const MAX_GAP = 3;

/**
 * Characters that split a Chinese word without ending a phrase, as they read after NFKC (which folds the ideographic
 * and other spaces to U+0020, and full-width `＊ ． － ＿` to ASCII): space, tab, `* . - _`, and middle dots and
 * bullets. Sentence punctuation (`。，！？；：、` and the like; NFKC folds some to ASCII `, ! ? ; :`) and line breaks
 * are left out on purpose: closing them would join the end of one phrase to the start of the next.
 */
const OBFUSCATORS: ReadonlySet<number> = new Set([
  0x09, 0x20, 0x2a, 0x2d, 0x2e, 0x5f, // tab, space, * - . _
  0xb7, 0x1680, 0x2010, 0x2022, 0x2027, 0x2219, 0x30fb, // · ogham space ‐ • ‧ ∙ ・
]);

/** Zero-width characters, soft hyphen and the byte-order mark: invisible, so they never separate anything. */
function isInvisible(code: number): boolean {
  return code === 0xad || code === 0x180e || (code >= 0x200b && code <= 0x200f) || (code >= 0x2060 && code <= 0x2064) || code === 0xfeff;
}

/** The CJK Unified Ideographs block: most Chinese text, and NFKC leaves it alone. */
function isCommonHan(code: number): boolean {
  return code >= 0x4e00 && code <= 0x9fff;
}

/** `‥` and `…`. */
function isEllipsis(code: number): boolean {
  return code === 0x2025 || code === 0x2026;
}

/**
 * Answers by code point for the characters outside ASCII and the common Han block, which every message's punctuation
 * and every reply's full-width marks reach: a regular expression (and a string) per character cost more than the
 * rest of the matching. Least recently used out, as the intent model's prediction cache: a text of rare characters
 * cannot grow them without limit.
 */
const CACHE_SIZE = 10_000;
function cached<K extends {}, V extends {}>(cache: LRUCache<K, V>, key: K, compute: (key: K) => V): V {
  let value = cache.get(key);
  if (value === undefined) {
    value = compute(key);
    cache.set(key, value);
  }
  return value;
}
const hanCache = new LRUCache<number, boolean>({ max: CACHE_SIZE });
const markCache = new LRUCache<number, boolean>({ max: CACHE_SIZE });
const segmentCache = new LRUCache<string, number[]>({ max: CACHE_SIZE });

function isHan(code: number): boolean {
  return isCommonHan(code) || (code >= 0x2e80 && cached(hanCache, code, (c) => HAN.test(String.fromCodePoint(c))));
}

/** A combining mark at this index (marks start at U+0300; ASCII and common Han are never one). */
function startsWithMark(text: string, index: number): boolean {
  const code = text.charCodeAt(index);
  if (code < 0x300 || isCommonHan(code)) return false;
  // A surrogate pair's mark status needs both halves; those are rare enough to test each time.
  if (code >= 0xd800 && code <= 0xdfff) return MARK.test(text.slice(index, index + 2));
  return cached(markCache, code, (c) => MARK.test(String.fromCharCode(c)));
}

const isWordChar = (code: number | undefined): boolean => code !== undefined && WORD_CHAR.test(String.fromCodePoint(code));

interface Node {
  next: Map<number, number>;
  fail: number;
  /** Indexes of the words that end here (own and through failure links). */
  out: number[];
}

export interface SensitiveHit {
  word: string;
  /** Where the word starts in the text as given (a string index), whatever normalising changed. */
  index: number;
}

function normalise(text: string): string {
  return text.normalize('NFKC').toLowerCase();
}

/**
 * The text as the automaton reads it, one code point a slot, with where each came from in the text (`undefined`:
 * slot i is the text's index i).
 */
interface FoldedText {
  codes: number[];
  origins: number[] | undefined;
}

const ASCII = /^[\x00-\x7f]*$/;

/**
 * Normalised and lower-cased, invisible characters dropped, gaps between two Han characters closed. ASCII and the
 * common Han block (which NFKC leaves alone) are taken as they are, and so are ellipses (NFKC would make `…` three
 * dots, which read as obfuscators, not as the sentence punctuation it is); other characters are normalised one at a
 * time with the combining marks after them (NFKC composes within such a group).
 */
function fold(text: string): FoldedText {
  // Most texts are plain ASCII: lower-cased, nothing else changes and nothing moves (no Han, no marks).
  if (ASCII.test(text)) {
    const codes = new Array<number>(text.length);
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      codes[i] = code >= 0x41 && code <= 0x5a ? code + 0x20 : code;
    }
    return { codes, origins: undefined };
  }
  const folded = { codes: [] as number[], origins: [] as number[] };
  let start = 0;
  while (start < text.length) {
    const code = text.charCodeAt(start);
    if ((code < 0x80 || isCommonHan(code) || isEllipsis(code)) && !startsWithMark(text, start + 1)) {
      folded.codes.push(code >= 0x41 && code <= 0x5a ? code + 0x20 : code);
      folded.origins.push(start++);
      continue;
    }
    let end = start + (code >= 0xd800 && code <= 0xdbff ? 2 : 1);
    while (startsWithMark(text, end)) end += text.charCodeAt(end) >= 0xd800 && text.charCodeAt(end) <= 0xdbff ? 2 : 1;
    for (const point of cached(segmentCache, text.slice(start, end), foldSegment)) {
      folded.codes.push(point);
      folded.origins.push(start);
    }
    start = end;
  }
  return closeGapsBetweenHan(folded);
}

/** A character with the combining marks after it, as the automaton reads it: normalised, invisible ones dropped. */
function foldSegment(segment: string): number[] {
  const points: number[] = [];
  for (const ch of normalise(segment)) {
    const point = ch.codePointAt(0)!;
    if (!isInvisible(point)) points.push(point);
  }
  return points;
}

/** Where the run of obfuscators starting at `start` ends, looking no further than one past the longest run closed. */
function endOfGap(codes: readonly number[], start: number): number {
  const limit = Math.min(codes.length, start + MAX_GAP + 1);
  let end = start;
  while (end < limit && OBFUSCATORS.has(codes[end]!)) end++;
  return end;
}

function closeGapsBetweenHan({ codes, origins }: { codes: number[]; origins: number[] }): FoldedText {
  const kept = { codes: [] as number[], origins: [] as number[] };
  let afterHan = false;
  for (let i = 0; i < codes.length; i++) {
    if (afterHan && OBFUSCATORS.has(codes[i]!)) {
      const next = endOfGap(codes, i);
      if (next - i <= MAX_GAP && next < codes.length && isHan(codes[next]!)) {
        i = next - 1;
        continue;
      }
    }
    kept.codes.push(codes[i]!);
    kept.origins.push(origins[i]!);
    afterHan = isHan(codes[i]!);
  }
  return kept;
}

export class SensitiveWords {
  private readonly nodes: Node[] = [{ next: new Map(), fail: 0, out: [] }];
  private readonly words: string[] = [];
  private readonly wholeWord: boolean[] = [];

  constructor(words: readonly string[]) {
    for (const raw of new Set(words.map((w) => String.fromCodePoint(...fold(w).codes).trim()).filter(Boolean))) this.insert(raw);
    this.link();
  }

  get size(): number {
    return this.words.length;
  }

  private insert(word: string): void {
    let state = 0;
    for (const ch of word) {
      const code = ch.codePointAt(0)!;
      let next = this.nodes[state]!.next.get(code);
      if (next === undefined) {
        next = this.nodes.length;
        this.nodes.push({ next: new Map(), fail: 0, out: [] });
        this.nodes[state]!.next.set(code, next);
      }
      state = next;
    }
    this.nodes[state]!.out.push(this.words.length);
    this.words.push(word);
    this.wholeWord.push(LATIN_WORD.test(word));
  }

  /** Breadth-first failure links; each node inherits the outputs of its failure target. */
  private link(): void {
    const queue: number[] = [];
    for (const child of this.nodes[0]!.next.values()) queue.push(child);
    while (queue.length) {
      const state = queue.shift()!;
      for (const [ch, child] of this.nodes[state]!.next) {
        let fail = this.nodes[state]!.fail;
        while (fail !== 0 && !this.nodes[fail]!.next.has(ch)) fail = this.nodes[fail]!.fail;
        const target = this.nodes[fail]!.next.get(ch);
        this.nodes[child]!.fail = target !== undefined && target !== child ? target : 0;
        this.nodes[child]!.out.push(...this.nodes[this.nodes[child]!.fail]!.out);
        queue.push(child);
      }
    }
  }

  /** Every listed word found in `text` (each word once), in order of first occurrence. */
  find(text: string): SensitiveHit[] {
    if (this.words.length === 0 || !text) return [];
    const { codes, origins } = fold(text);
    const found = new Map<string, SensitiveHit>();
    const { nodes } = this;
    let state = 0;
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i]!;
      let next = nodes[state]!.next.get(code);
      while (next === undefined && state !== 0) {
        state = nodes[state]!.fail;
        next = nodes[state]!.next.get(code);
      }
      state = next ?? 0;
      for (const w of nodes[state]!.out) {
        const word = this.words[w]!;
        if (found.has(word)) continue;
        const length = [...word].length;
        const start = i - length + 1;
        if (this.wholeWord[w] && (isWordChar(codes[start - 1]) || isWordChar(codes[i + 1]))) continue;
        found.set(word, { word, index: origins ? origins[start]! : start });
      }
    }
    return [...found.values()].sort((a, b) => a.index - b.index);
  }
}
