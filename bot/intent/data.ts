/**
 * Training data files: CSV with a header naming a `text` column and a `label` (or `category`/`intent`) column
 * (RFC 4180 quoting), or JSON Lines with `{"text", "label"}` objects. A file's content hash goes into the manifest
 * so a model can always be traced back to the exact data it was trained on.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Example } from './trainer.js';

const LABEL_COLUMNS = ['label', 'intent', 'category'];

/** RFC 4180: fields separated by commas, optionally double-quoted, "" inside quotes is a quote, CRLF or LF rows. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.some((f) => f !== '')) rows.push(row);
      row = [];
    } else field += ch;
  }
  row.push(field);
  if (row.some((f) => f !== '')) rows.push(row);
  return rows;
}

/**
 * Labelled texts from CSV or JSON Lines. Texts are NFKC-normalised, as the gateway normalises a customer's text before
 * the model sees it (bot/policy.ts, ModelBundle.predict): full-width Latin letters, digits and punctuation — common
 * from Chinese keyboards — train the same features they are served with.
 */
export function parseExamples(content: string, format: 'csv' | 'jsonl', source = 'data'): Example[] {
  const out: Example[] = [];
  if (format === 'jsonl') {
    content.split(/\r?\n/).forEach((line, n) => {
      if (!line.trim()) return;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch {
        throw new Error(`${source}:${n + 1}: not valid JSON`);
      }
      const { text, label, intent } = obj as Record<string, unknown>;
      const l = label ?? intent;
      if (typeof text !== 'string' || typeof l !== 'string') throw new Error(`${source}:${n + 1}: needs string "text" and "label"`);
      if (text.trim()) out.push({ text: text.normalize('NFKC'), label: l });
    });
    return out;
  }
  const [header, ...rows] = parseCsv(content.replace(/^\uFEFF/, ''));
  if (!header) return out;
  const names = header.map((h) => h.trim().toLowerCase());
  const ti = names.indexOf('text');
  const li = names.findIndex((n) => LABEL_COLUMNS.includes(n));
  if (ti < 0 || li < 0) throw new Error(`${source}: the CSV header needs a "text" and a "label" column (got ${header.join(',')})`);
  rows.forEach((r, n) => {
    const text = r[ti];
    const label = r[li];
    if (text === undefined || label === undefined) throw new Error(`${source}:${n + 2}: expected ${header.length} columns`);
    if (text.trim()) out.push({ text: text.normalize('NFKC'), label: label.trim() });
  });
  return out;
}

export function readExamples(path: string): { examples: Example[]; sha256: string } {
  const content = readFileSync(path, 'utf8');
  const format = path.endsWith('.jsonl') || path.endsWith('.ndjson') ? 'jsonl' : 'csv';
  return { examples: parseExamples(content, format, path), sha256: hashExamples(content) };
}

export const hashExamples = (content: string | Buffer): string => createHash('sha256').update(content).digest('hex');
