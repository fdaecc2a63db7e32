/**
 * An in-memory Okapi BM25 index that takes single-document updates (add/remove) without a rebuild, so a KB edit
 * announced through Redis costs one document's work in every process.
 *
 * Scores are normalised per query: the raw BM25 sum divided by what the query would score against an average-length
 * document containing each of its terms once (Σ idf). That makes one threshold meaningful across short and long
 * queries and across KB sizes — a score near 1 means "every informative word of the question was found", and a
 * query full of words the KB never saw scores low.
 */
export interface Bm25Options {
  k1: number;
  b: number;
  /** Exponent of the document-coverage factor (0 turns it off). */
  coverageWeight?: number;
}

interface Doc {
  key: string;
  group: string;
  length: number;
  terms: Map<string, number>;
}

export interface Bm25Hit {
  /** The group the document belongs to (an FAQ id: each of its phrasings is one document). */
  group: string;
  doc: string;
  /** Normalised score, see above. */
  score: number;
  /** Raw BM25 score. */
  raw: number;
}

/**
 * Documents get small integer slots (reused after removal) so scoring accumulates into a typed array instead of
 * string-keyed maps: that is what keeps a query on 10,000 entries under a millisecond.
 */
export class Bm25Index {
  private readonly slotOf = new Map<string, number>();
  private docs: Array<Doc | undefined> = [];
  private readonly free: number[] = [];
  private readonly postings = new Map<string, Map<number, number>>();
  private totalLength = 0;
  private count = 0;
  private acc = new Float64Array(0);

  constructor(private readonly options: Bm25Options = { k1: 1.2, b: 0.75 }) {}

  get size(): number {
    return this.count;
  }

  add(key: string, group: string, tokens: string[]): void {
    this.remove(key);
    const terms = new Map<string, number>();
    for (const t of tokens) terms.set(t, (terms.get(t) ?? 0) + 1);
    const slot = this.free.pop() ?? this.docs.length;
    this.docs[slot] = { key, group, length: tokens.length, terms };
    this.slotOf.set(key, slot);
    this.count++;
    this.totalLength += tokens.length;
    for (const [term, tf] of terms) {
      let posting = this.postings.get(term);
      if (!posting) this.postings.set(term, (posting = new Map()));
      posting.set(slot, tf);
    }
  }

  remove(key: string): void {
    const slot = this.slotOf.get(key);
    if (slot === undefined) return;
    const existing = this.docs[slot]!;
    this.slotOf.delete(key);
    this.docs[slot] = undefined;
    this.free.push(slot);
    this.count--;
    this.totalLength -= existing.length;
    for (const term of existing.terms.keys()) {
      const posting = this.postings.get(term);
      posting?.delete(slot);
      if (posting?.size === 0) this.postings.delete(term);
    }
  }

  clear(): void {
    this.slotOf.clear();
    this.docs = [];
    this.free.length = 0;
    this.postings.clear();
    this.totalLength = 0;
    this.count = 0;
  }

  private idf(df: number): number {
    return Math.log(1 + (this.count - df + 0.5) / (df + 0.5));
  }

  /** Best documents per group, best first. */
  search(tokens: string[], limit = 3): Bm25Hit[] {
    if (this.count === 0 || tokens.length === 0) return [];
    const { k1, b } = this.options;
    const avgdl = this.totalLength / this.count || 1;
    if (this.acc.length < this.docs.length) this.acc = new Float64Array(Math.max(this.docs.length, this.acc.length * 2));
    const acc = this.acc;
    const touched: number[] = [];
    const idfOf = new Map<string, number>();
    let norm = 0;
    for (const term of new Set(tokens)) {
      const posting = this.postings.get(term);
      // A word the KB never saw counts like a word seen once: it makes the question less covered, not impossible.
      const idf = this.idf(posting?.size ?? 1);
      idfOf.set(term, idf);
      norm += idf;
      if (!posting) continue;
      const k1b = k1 * (1 - b);
      const k1bl = (k1 * b) / avgdl;
      for (const [slot, tf] of posting) {
        if (acc[slot] === 0) touched.push(slot);
        acc[slot]! += (idf * tf * (k1 + 1)) / (tf + k1b + k1bl * this.docs[slot]!.length);
      }
    }
    // Best phrasing per group by raw score; only the leaders get the (costlier) coverage factor.
    const best = new Map<string, { slot: number; raw: number }>();
    for (const slot of touched) {
      const raw = acc[slot]!;
      acc[slot] = 0;
      const group = this.docs[slot]!.group;
      const current = best.get(group);
      if (!current || raw > current.raw) best.set(group, { slot, raw });
    }
    const leaders = topK([...best.entries()], Math.max(limit * 3, 10), ([, x], [, y]) => y.raw - x.raw);
    const hits = leaders.map(([group, { slot, raw }]) => {
      const coverage = this.coverage(slot, idfOf);
      return { group, doc: this.docs[slot]!.key, raw, score: norm > 0 ? (raw / norm) * Math.pow(coverage, this.options.coverageWeight ?? 0.5) : 0 };
    });
    return hits.sort((x, y) => y.score - x.score).slice(0, limit);
  }

  /** Share of the document's IDF mass that the query's terms cover: a long phrasing matched by one word is weak evidence. */
  private coverage(slot: number, queryIdf: Map<string, number>): number {
    let matched = 0;
    let total = 0;
    for (const term of this.docs[slot]!.terms.keys()) {
      const idf = queryIdf.get(term) ?? this.idf(this.postings.get(term)?.size ?? 1);
      total += idf;
      if (queryIdf.has(term)) matched += idf;
    }
    return total > 0 ? matched / total : 0;
  }
}

/** The k best items without sorting everything (k is small, the candidate list may be long). */
function topK<T>(items: T[], k: number, compare: (a: T, b: T) => number): T[] {
  if (items.length <= k) return items.sort(compare);
  const kept: T[] = [];
  for (const item of items) {
    if (kept.length < k) {
      kept.push(item);
      if (kept.length === k) kept.sort(compare);
      continue;
    }
    if (compare(item, kept[k - 1]!) >= 0) continue;
    let i = k - 1;
    while (i > 0 && compare(item, kept[i - 1]!) < 0) i--;
    kept.splice(i, 0, item);
    kept.pop();
  }
  return kept;
}
