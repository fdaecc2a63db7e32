/**
 * KB import/export in three formats trainers actually edit:
 *
 * - JSON: an array of entries (or `{ "entries": [...] }`), fields as in FaqEntry.
 * - CSV (RFC 4180, header row): `id,question,paraphrases,answer,tags,enabled` plus optional `answer:<channel>`
 *   columns; list cells are separated by `|`.
 * - Markdown: one `## <id>: <question>` section per entry; a bullet list right under the heading holds the
 *   paraphrases; `> key: value` lines hold `tags`, `enabled` and `answer <channel>`; every other line is the answer.
 *
 * Parsing is strict: every problem is reported with its row/section and the whole file is rejected, so an import
 * never half-applies.
 */
import { parse as parseCsv } from 'csv-parse/sync';
import { stringify as stringifyCsv } from 'csv-stringify/sync';
import { FaqEntry, type FaqEntryInput } from './entry.js';

export type KbFormat = 'json' | 'csv' | 'md';

export class KbFormatError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid knowledge base file:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'KbFormatError';
  }
}

export function formatFromName(name: string): KbFormat | undefined {
  const ext = name.toLowerCase().split('.').pop();
  if (ext === 'json') return 'json';
  if (ext === 'csv') return 'csv';
  if (ext === 'md' || ext === 'markdown') return 'md';
  return undefined;
}

export function parseKb(text: string, format: KbFormat): FaqEntry[] {
  const drafts = format === 'json' ? fromJson(text) : format === 'csv' ? fromCsv(text) : fromMarkdown(text);
  const problems: string[] = [];
  const entries: FaqEntry[] = [];
  const seen = new Set<string>();
  drafts.forEach(({ where, draft }) => {
    const result = FaqEntry.safeParse(draft);
    if (!result.success) {
      for (const issue of result.error.issues) problems.push(`${where}: ${issue.path.join('.') || 'entry'}: ${issue.message}`);
      return;
    }
    if (seen.has(result.data.id)) problems.push(`${where}: duplicate id "${result.data.id}"`);
    seen.add(result.data.id);
    entries.push(result.data);
  });
  if (problems.length) throw new KbFormatError(problems);
  return entries;
}

export function serializeKb(entries: FaqEntry[], format: KbFormat): string {
  const sorted = [...entries].sort((a, b) => a.id.localeCompare(b.id));
  if (format === 'json') return JSON.stringify(sorted.map(({ updatedAt: _drop, ...e }) => e), null, 2) + '\n';
  if (format === 'csv') return toCsv(sorted);
  return toMarkdown(sorted);
}

interface Draft {
  where: string;
  draft: unknown;
}

function fromJson(text: string): Draft[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new KbFormatError([`not valid JSON: ${(err as Error).message}`]);
  }
  const list = Array.isArray(data) ? data : (data as { entries?: unknown })?.entries;
  if (!Array.isArray(list)) throw new KbFormatError(['expected an array of entries or {"entries": [...]}']);
  return list.map((draft, i) => ({ where: `entry ${i + 1}${idOf(draft)}`, draft }));
}

function idOf(draft: unknown): string {
  const id = (draft as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? ` (id ${id})` : '';
}

const splitList = (cell: string | undefined) =>
  (cell ?? '')
    .split('|')
    .map((s) => s.trim())
    .filter(Boolean);

function fromCsv(text: string): Draft[] {
  let rows: Record<string, string>[];
  try {
    rows = parseCsv(text, { columns: true, skip_empty_lines: true, trim: true, bom: true });
  } catch (err) {
    throw new KbFormatError([`not valid CSV: ${(err as Error).message}`]);
  }
  return rows.map((row, i) => {
    const answers: Record<string, string> = {};
    for (const [column, value] of Object.entries(row)) {
      if (column.startsWith('answer:') && value) answers[column.slice('answer:'.length).trim()] = value;
    }
    const enabled = (row.enabled ?? '').toLowerCase();
    const draft: FaqEntryInput = {
      id: row.id ?? '',
      question: row.question ?? '',
      paraphrases: splitList(row.paraphrases),
      answer: row.answer ?? '',
      answers,
      tags: splitList(row.tags),
      enabled: !['false', 'no', '0', 'off'].includes(enabled),
    };
    return { where: `row ${i + 2}${idOf(draft)}`, draft };
  });
}

function toCsv(entries: FaqEntry[]): string {
  const channels = [...new Set(entries.flatMap((e) => Object.keys(e.answers)))].sort();
  const header = ['id', 'question', 'paraphrases', 'answer', 'tags', 'enabled', ...channels.map((c) => `answer:${c}`)];
  const rows = entries.map((e) => [
    e.id,
    e.question,
    e.paraphrases.join(' | '),
    e.answer,
    e.tags.join(' | '),
    String(e.enabled),
    ...channels.map((c) => e.answers[c] ?? ''),
  ]);
  return stringifyCsv([header, ...rows]);
}

const HEADING = /^##\s+([^:\s]+)\s*:\s*(.+?)\s*$/;
const META = /^>\s*([A-Za-z]+)(?:\s+([^:]+?))?\s*:\s*(.*)$/;

function fromMarkdown(text: string): Draft[] {
  const drafts: Draft[] = [];
  const problems: string[] = [];
  let current: { line: number; draft: FaqEntryInput & { answers: Record<string, string> }; body: string[]; inList: boolean } | undefined;
  const finish = () => {
    if (!current) return;
    current.draft.answer = current.body.join('\n').trim();
    drafts.push({ where: `section at line ${current.line}${idOf(current.draft)}`, draft: current.draft });
  };
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.startsWith('## ')) {
      finish();
      const m = HEADING.exec(line);
      if (!m) {
        problems.push(`line ${i + 1}: a section heading must read "## <id>: <question>"`);
        current = undefined;
        return;
      }
      current = { line: i + 1, draft: { id: m[1]!, question: m[2]!, paraphrases: [], answer: '', answers: {}, tags: [] }, body: [], inList: true };
      return;
    }
    if (!current) return; // title and prose before the first section
    const bullet = /^\s*[-*]\s+(.+)$/.exec(line);
    if (current.inList && bullet) {
      current.draft.paraphrases!.push(bullet[1]!.trim());
      return;
    }
    if (current.inList) {
      // The paraphrases are the bullets right under the heading: the first other line, a blank one included, ends them.
      current.inList = false;
      if (line.trim() === '') return;
    }
    const meta = META.exec(line);
    if (meta) {
      const [, key, arg, value] = meta;
      if (key === 'tags') current.draft.tags = value!.split(',').map((t) => t.trim()).filter(Boolean);
      else if (key === 'enabled') current.draft.enabled = !['false', 'no', '0', 'off'].includes(value!.trim().toLowerCase());
      else if (key === 'answer' && arg) current.draft.answers[arg.trim()] = value!.trim();
      else problems.push(`line ${i + 1}: unknown metadata "${key}${arg ? ' ' + arg : ''}" (tags, enabled, answer <channel>)`);
      return;
    }
    current.body.push(unescapeAnswerLine(line));
  });
  finish();
  if (problems.length) throw new KbFormatError(problems);
  return drafts;
}

/**
 * An answer line that would read as something else — a paraphrase bullet (`-`, `*`), metadata (`>`), a section
 * heading (`## `) — is written with a backslash in front; so is one that starts with a backslash, so that the
 * backslash an import removes is always the one added here.
 */
const ESCAPED = /^\\[-*>#\\]/;
const NEEDS_ESCAPE = /^[-*>#\\]/;
const escapeAnswerLine = (line: string): string => (NEEDS_ESCAPE.test(line) ? `\\${line}` : line);
const unescapeAnswerLine = (line: string): string => (ESCAPED.test(line) ? line.slice(1) : line);

function toMarkdown(entries: FaqEntry[]): string {
  const out = ['# Knowledge base', ''];
  for (const e of entries) {
    out.push(`## ${e.id}: ${e.question.replace(/\n/g, ' ')}`);
    for (const p of e.paraphrases) out.push(`- ${p.replace(/\n/g, ' ')}`);
    out.push('', ...e.answer.split('\n').map(escapeAnswerLine), '');
    if (e.tags.length) out.push(`> tags: ${e.tags.join(', ')}`);
    if (!e.enabled) out.push('> enabled: false');
    for (const [channel, answer] of Object.entries(e.answers)) out.push(`> answer ${channel}: ${answer.replace(/\n/g, ' ')}`);
    if (e.tags.length || !e.enabled || Object.keys(e.answers).length) out.push('');
  }
  return out.join('\n');
}
