/**
 * Sensitive-word filter: one Aho–Corasick automaton over the configured list, so checking a message costs one pass
 * over its characters however long the list is. Text and words are NFKC-normalised and lower-cased (full-width
 * Latin, case variants). Words written in Latin letters only match as whole words ("ass" does not fire inside
 * "class"); Chinese words match anywhere, as Chinese has no word boundaries to respect.
 */
const WORD_CHAR = /[\p{L}\p{N}_]/u;
const LATIN_WORD = /^[\p{Script=Latin}\p{N}_' -]+$/u;

interface Node {
  next: Map<string, number>;
  fail: number;
  /** Indexes of the words that end here (own and through failure links). */
  out: number[];
}

export interface SensitiveHit {
  word: string;
  index: number;
}

function normalise(text: string): string {
  return text.normalize('NFKC').toLowerCase();
}

export class SensitiveWords {
  private readonly nodes: Node[] = [{ next: new Map(), fail: 0, out: [] }];
  private readonly words: string[] = [];
  private readonly wholeWord: boolean[] = [];

  constructor(words: readonly string[]) {
    for (const raw of new Set(words.map(normalise).map((w) => w.trim()).filter(Boolean))) this.insert(raw);
    this.link();
  }

  get size(): number {
    return this.words.length;
  }

  private insert(word: string): void {
    let state = 0;
    for (const ch of word) {
      let next = this.nodes[state]!.next.get(ch);
      if (next === undefined) {
        next = this.nodes.length;
        this.nodes.push({ next: new Map(), fail: 0, out: [] });
        this.nodes[state]!.next.set(ch, next);
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
    const chars = [...normalise(text)];
    const found = new Map<string, SensitiveHit>();
    let state = 0;
    chars.forEach((ch, i) => {
      while (state !== 0 && !this.nodes[state]!.next.has(ch)) state = this.nodes[state]!.fail;
      state = this.nodes[state]!.next.get(ch) ?? 0;
      for (const w of this.nodes[state]!.out) {
        const word = this.words[w]!;
        if (found.has(word)) continue;
        const length = [...word].length;
        const start = i - length + 1;
        if (this.wholeWord[w] && (WORD_CHAR.test(chars[start - 1] ?? '') || WORD_CHAR.test(chars[i + 1] ?? ''))) continue;
        found.set(word, { word, index: start });
      }
    });
    return [...found.values()].sort((a, b) => a.index - b.index);
  }
}
