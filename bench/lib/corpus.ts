/**
 * Message texts that never repeat within a run, so the figures measure real bot work: customer-service utterances
 * from the public datasets beside the checkout (Banking77, CLINC150) and the project's own intent data, each used
 * once, then varied with order numbers when a run needs more.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readExamples } from '../../bot/intent/data.js';

/** The texts, and where they came from: figures of runs on different corpora are not comparable. */
export interface Corpus {
  texts: string[];
  sources: string[];
}

/**
 * Where the datasets are: `DATASETS_DIR`, else `../shared/datasets` beside the main checkout — found through git, so
 * a worktree elsewhere (the older arm of an A/B run, say) reads the same texts as the checkout it came from.
 */
export function defaultDatasets(cwd = process.cwd()): string {
  if (process.env.DATASETS_DIR) return process.env.DATASETS_DIR;
  try {
    const commonDir = execFileSync('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return join(dirname(commonDir.trim()), '..', 'shared', 'datasets');
  } catch {
    return join(cwd, '..', 'shared', 'datasets');
  }
}

/**
 * Loads the corpus. A dataset that is missing is left out with a warning on stderr: the figures then measure other
 * texts than a full run's, and are not comparable with one.
 */
export function loadCorpus(datasets = defaultDatasets()): Corpus {
  const texts = new Set<string>();
  const sources: string[] = [];
  const missing = (path: string) => console.warn(`corpus: ${path} not found (set DATASETS_DIR): left out, so these figures use other texts than a full run`);
  const banking = join(datasets, 'banking77', 'train.csv');
  if (!existsSync(banking)) missing(banking);
  else {
    sources.push('banking77');
    for (const line of readFileSync(banking, 'utf8').split('\n').slice(1)) {
      const text = line.slice(0, line.lastIndexOf(',')).replace(/^"|"$/g, '').trim();
      if (text) texts.add(text);
    }
  }
  const clinc = join(datasets, 'clinc150', 'data_full.json');
  if (!existsSync(clinc)) missing(clinc);
  else {
    sources.push('clinc150');
    const data = JSON.parse(readFileSync(clinc, 'utf8')) as Record<string, Array<[string, string]>>;
    for (const [text] of [...(data.train ?? []), ...(data.val ?? [])]) texts.add(text);
  }
  const own = 'data/intents/support';
  if (existsSync(own)) {
    sources.push(own);
    // Read as the trainer reads it (the label comes first in a CSV row: splitting at the first comma gave labels).
    for (const file of readdirSync(own)) for (const { text } of readExamples(join(own, file)).examples) texts.add(text);
  }
  if (texts.size === 0) {
    sources.push('five built-in texts');
    for (const t of ['where is my order', 'I want a refund', '我要退货', 'hello', 'change my address']) texts.add(t);
  }
  return { texts: [...texts], sources };
}

/** What a benchmark's output and JSON say about its corpus (figures of runs on different corpora are not comparable). */
export function corpusSummary(corpus: Corpus): { texts: number; sources: string[]; label: string } {
  return { texts: corpus.texts.length, sources: corpus.sources, label: `corpus ${corpus.texts.length} texts (${corpus.sources.join(', ')})` };
}

/** An endless source of distinct texts: the corpus first, then the corpus again with distinct order numbers. */
export function textSource(corpus: string[]): () => string {
  let i = 0;
  return () => {
    const base = corpus[i % corpus.length]!;
    const round = Math.floor(i / corpus.length);
    i++;
    return round === 0 ? base : `${base} (order ${100000 + round * 7919 + (i % 997)})`;
  };
}
