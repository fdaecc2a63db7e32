/**
 * KB administration under /admin/kb (the router is already behind the admin key):
 *
 *   GET    /admin/kb                      list (JSON), or `?format=csv|md|json` to download an export
 *   GET    /admin/kb/search?q=..&channel= what the bot would retrieve, with scores (for trainers)
 *   GET    /admin/kb/:id                  one entry
 *   PUT    /admin/kb/:id                  create or replace one entry (JSON body; the id comes from the path)
 *   DELETE /admin/kb/:id                  remove one entry
 *   POST   /admin/kb/import?format=csv|md|json[&replace=true]   import a file (raw body); replace drops the rest
 *
 * Every write is announced through Redis, so all processes answer from the new KB without a restart.
 */
import express, { type Router } from 'express';
import { badRequest, notFound, parseJsonBody } from '../../gateway/errors.js';
import type { Logger } from '../../gateway/logger.js';
import { FaqEntry, FAQ_ID } from './entry.js';
import { KbFormatError, parseKb, serializeKb, type KbFormat } from './formats.js';
import type { KnowledgeBase } from './knowledge-base.js';

const FORMATS: Record<KbFormat, string> = { json: 'application/json', csv: 'text/csv', md: 'text/markdown' };
const IMPORT_LIMIT = '20mb';

function formatParam(value: unknown, fallback?: KbFormat): KbFormat {
  if (value === undefined && fallback) return fallback;
  if (value === 'json' || value === 'csv' || value === 'md') return value;
  throw badRequest('bad_format', 'format must be one of json, csv, md');
}

export function kbAdminRoutes(router: Router, kb: KnowledgeBase, log: Logger, threshold: number): void {
  const body = express.raw({ type: () => true, limit: IMPORT_LIMIT });

  router.get('/kb', (req, res) => {
    if (req.query.format === undefined) {
      res.json({ version: kb.version, count: kb.size, entries: kb.list() });
      return;
    }
    const format = formatParam(req.query.format);
    res.type(FORMATS[format]).attachment(`kb.${format}`).send(serializeKb(kb.list(), format));
  });

  router.get('/kb/search', (req, res) => {
    const q = typeof req.query.q === 'string' ? req.query.q : '';
    if (!q.trim()) throw badRequest('missing_query', 'pass the question as ?q=');
    const channel = typeof req.query.channel === 'string' ? req.query.channel : '';
    const match = kb.search(q, channel);
    res.json({
      threshold,
      answered: match !== undefined && match.score >= threshold,
      ...(match && { id: match.entry.id, score: match.score, answer: match.answer, top: match.top }),
    });
  });

  router.get('/kb/:id', (req, res) => {
    const entry = kb.get(req.params.id!);
    if (!entry) throw notFound('unknown_faq', `no KB entry ${req.params.id}`);
    res.json(entry);
  });

  router.put('/kb/:id', body, async (req, res) => {
    const id = req.params.id!;
    if (!FAQ_ID.test(id)) throw badRequest('bad_id', 'an id is letters, digits, ".", "_" or "-" (at most 100)');
    const parsed = FaqEntry.safeParse({ ...(parseJsonBody(req.body as Buffer) as object), id });
    if (!parsed.success) {
      throw badRequest('invalid_entry', parsed.error.issues.map((i) => `${i.path.join('.') || 'entry'}: ${i.message}`).join('; '));
    }
    const created = kb.get(id) === undefined;
    const version = await kb.upsert([parsed.data]);
    log.info({ faqId: id, version, created }, 'KB entry saved');
    res.status(created ? 201 : 200).json({ entry: kb.get(id), version });
  });

  router.delete('/kb/:id', async (req, res) => {
    const id = req.params.id!;
    if (!kb.get(id)) throw notFound('unknown_faq', `no KB entry ${id}`);
    const version = await kb.remove([id]);
    log.info({ faqId: id, version }, 'KB entry deleted');
    res.json({ deleted: id, version });
  });

  router.post('/kb/import', body, async (req, res) => {
    const format = formatParam(req.query.format, req.is('text/csv') ? 'csv' : req.is('text/markdown') ? 'md' : 'json');
    const raw = req.body as Buffer | undefined;
    if (!raw || raw.length === 0) throw badRequest('empty_body', 'send the file as the request body');
    let entries;
    try {
      entries = parseKb(raw.toString('utf8'), format);
    } catch (err) {
      if (err instanceof KbFormatError) throw badRequest('invalid_kb', err.message);
      throw err;
    }
    const replace = req.query.replace === 'true' || req.query.replace === '1';
    const version = await kb.upsert(entries, { replace });
    log.info({ imported: entries.length, replace, version, format }, 'KB imported');
    res.json({ imported: entries.length, replace, version, count: kb.size });
  });
}
