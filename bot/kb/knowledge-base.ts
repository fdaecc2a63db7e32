/**
 * The knowledge base: FAQ entries persisted in Redis, mirrored and BM25-indexed in memory in every process.
 * Each phrasing of an entry (question and paraphrases) is its own document and an entry scores as its best
 * phrasing, so adding a paraphrase can only help the entry it belongs to.
 */
import type { RedisClient } from '../../adapters/types.js';
import type { Logger } from '../../gateway/logger.js';
import { SyncedCollection } from '../synced-collection.js';
import { Bm25Index } from './bm25.js';
import { answerFor, FaqEntry } from './entry.js';
import { tokenize } from './tokenize.js';

export interface KbMatch {
  entry: FaqEntry;
  answer: string;
  score: number;
  /** Runner-up entries, for the trace and for calibrating the threshold. */
  top: Array<{ id: string; score: number }>;
}

export interface KnowledgeBaseOptions {
  redis: RedisClient;
  prefix: string;
  log: Logger;
  k1?: number;
  b?: number;
}

/** The in-memory index of a set of entries (also used offline: calibration, benchmark). */
export class KbIndex {
  private readonly index: Bm25Index;
  private readonly entries = new Map<string, FaqEntry>();
  /** Document keys per entry, to drop its old phrasings on update. */
  private readonly docsOf = new Map<string, string[]>();

  constructor(options: { k1?: number; b?: number } = {}) {
    this.index = new Bm25Index({ k1: options.k1 ?? 1.2, b: options.b ?? 0.75 });
  }

  static of(entries: FaqEntry[], options: { k1?: number; b?: number } = {}): KbIndex {
    const index = new KbIndex(options);
    for (const e of entries) index.put(e);
    return index;
  }

  clear(): void {
    this.index.clear();
    this.entries.clear();
    this.docsOf.clear();
  }

  put(entry: FaqEntry): void {
    this.delete(entry.id);
    this.entries.set(entry.id, entry);
    if (!entry.enabled) return;
    const docs = [entry.question, ...entry.paraphrases].map((text, i) => {
      const doc = `${entry.id}\u0000${i}`;
      this.index.add(doc, entry.id, tokenize(text));
      return doc;
    });
    this.docsOf.set(entry.id, docs);
  }

  delete(id: string): void {
    for (const doc of this.docsOf.get(id) ?? []) this.index.remove(doc);
    this.docsOf.delete(id);
    this.entries.delete(id);
  }

  /** The best enabled entry for `text` with its normalised score (no threshold applied here). */
  search(text: string, channel: string, limit = 3): KbMatch | undefined {
    const hits = this.index.search(tokenize(text), limit);
    const best = hits[0];
    const entry = best && this.entries.get(best.group);
    if (!best || !entry) return undefined;
    return { entry, answer: answerFor(entry, channel), score: best.score, top: hits.map((h) => ({ id: h.group, score: h.score })) };
  }
}

export class KnowledgeBase {
  private readonly index: KbIndex;
  private readonly store: SyncedCollection<FaqEntry>;

  constructor(options: KnowledgeBaseOptions) {
    this.index = new KbIndex(options);
    this.store = new SyncedCollection<FaqEntry>({
      redis: options.redis,
      key: `${options.prefix}:bot:kb`,
      log: options.log,
      parse: (json) => FaqEntry.parse(json),
      onChange: (change) => {
        if (change.reset) this.index.clear();
        for (const id of change.removed) this.index.delete(id);
        for (const entry of change.upserted) this.index.put(entry);
      },
    });
  }

  start(): Promise<void> {
    return this.store.start();
  }
  close(): Promise<void> {
    return this.store.close();
  }

  get version(): number {
    return this.store.currentVersion;
  }
  get size(): number {
    return this.store.size;
  }
  list(): FaqEntry[] {
    return this.store.all().sort((a, b) => a.id.localeCompare(b.id));
  }
  get(id: string): FaqEntry | undefined {
    return this.store.get(id);
  }

  upsert(entries: FaqEntry[], opts: { replace?: boolean } = {}): Promise<number> {
    const now = Date.now();
    return this.store.upsert(
      entries.map((e) => ({ ...e, updatedAt: now })),
      opts,
    );
  }
  remove(ids: string[]): Promise<number> {
    return this.store.remove(ids);
  }
  seedIfEmpty(entries: FaqEntry[]): Promise<boolean> {
    return this.store.seedIfEmpty(entries);
  }

  /** The best enabled entry for `text` with its normalised score (no threshold applied here). */
  search(text: string, channel: string, limit = 3): KbMatch | undefined {
    return this.index.search(text, channel, limit);
  }
}
