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

export class Bm25Index {
  private readonly docs = new Map<string, Doc>();
  private readonly postings = new Map<string, Map<string, number>>();
  private totalLength = 0;

  constructor(private readonly options: Bm25Options = { k1: 1.2, b: 0.75 }) {}

  get size(): number {
    return this.docs.size;
  }

  add(doc: string, group: string, tokens: string[]): void {
    this.remove(doc);
    const terms = new Map<string, number>();
    for (const t of tokens) terms.set(t, (terms.get(t) ?? 0) + 1);
    this.docs.set(doc, { group, length: tokens.length, terms });
    this.totalLength += tokens.length;
    for (const [term, tf] of terms) {
      let posting = this.postings.get(term);
      if (!posting) this.postings.set(term, (posting = new Map()));
      posting.set(doc, tf);
    }
  }

  remove(doc: string): void {
    const existing = this.docs.get(doc);
    if (!existing) return;
    this.docs.delete(doc);
    this.totalLength -= existing.length;
    for (const term of existing.terms.keys()) {
      const posting = this.postings.get(term);
      posting?.delete(doc);
      if (posting?.size === 0) this.postings.delete(term);
    }
  }

  clear(): void {
    this.docs.clear();
    this.postings.clear();
    this.totalLength = 0;
  }

  private idf(df: number): number {
    const n = this.docs.size;
    return Math.log(1 + (n - df + 0.5) / (df + 0.5));
  }

  /** Best documents per group, best first. */
  search(tokens: string[], limit = 3): Bm25Hit[] {
    if (this.docs.size === 0 || tokens.length === 0) return [];
    const { k1, b } = this.options;
    const avgdl = this.totalLength / this.docs.size || 1;
    const unique = [...new Set(tokens)];
    let norm = 0;
    const scores = new Map<string, number>();
    for (const term of unique) {
      const posting = this.postings.get(term);
      // A word the KB never saw counts like a word seen once: it makes the question less covered, not impossible.
      const idf = this.idf(posting?.size ?? 1);
      norm += idf;
      if (!posting) continue;
      for (const [doc, tf] of posting) {
        const length = this.docs.get(doc)!.length;
        const s = (idf * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * length) / avgdl));
        scores.set(doc, (scores.get(doc) ?? 0) + s);
      }
    }
    const idfOf = new Map<string, number>();
    for (const term of unique) idfOf.set(term, this.idf(this.postings.get(term)?.size ?? 1));
    // Best phrasing per group by raw score; only the leaders get the (costlier) coverage factor.
    const best = new Map<string, { doc: string; raw: number }>();
    for (const [doc, raw] of scores) {
      const group = this.docs.get(doc)!.group;
      const current = best.get(group);
      if (!current || raw > current.raw) best.set(group, { doc, raw });
    }
    const leaders = topK([...best.entries()], Math.max(limit * 3, 10), ([, a], [, b]) => b.raw - a.raw);
    const hits = leaders.map(([group, { doc, raw }]) => {
      const coverage = this.coverage(doc, idfOf);
      return { group, doc, raw, score: norm > 0 ? (raw / norm) * Math.pow(coverage, this.options.coverageWeight ?? 0.5) : 0 };
    });
    return hits.sort((x, y) => y.score - x.score).slice(0, limit);
  }

  /** Share of the document's IDF mass that the query's terms cover: a long phrasing matched by one word is weak evidence. */
  private coverage(doc: string, queryIdf: Map<string, number>): number {
    let matched = 0;
    let total = 0;
    for (const term of this.docs.get(doc)!.terms.keys()) {
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
