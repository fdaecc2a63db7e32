/**
 * Operator endpoints under /admin, all behind the admin key (`Authorization: Bearer <key>`, or HTTP Basic with the
 * key as password so a browser can open the dashboard): the Bull Board queue dashboard and the dead-letter view
 * with replay. Without an admin key in the config, /admin answers 404.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type Express, type RequestHandler, type Router } from 'express';
import { HttpError, notFound, unauthorized } from './errors.js';
import type { Logger } from './logger.js';
import type { UnifiedMessage } from './message.js';
import type { Pipeline } from './pipeline.js';

export interface AdminDeps {
  adminKey: string | undefined;
  pipeline: Pipeline;
  log: Logger;
  /** Further admin routes (model swap, KB, webhooks) mounted under /admin by other modules. */
  extend?: (router: Router) => void;
}

// Digests are compared, not the keys: equal lengths whatever was sent, so the comparison neither throws on a key whose
// UTF-8 is longer than its characters nor tells the key's length by its timing.
const digest = (s: string) => createHash('sha256').update(s).digest();

export function requireKey(key: string): RequestHandler {
  const expected = digest(key);
  return (req, res, next) => {
    const header = req.get('authorization') ?? '';
    let given = '';
    if (header.startsWith('Bearer ')) given = header.slice(7);
    else if (header.startsWith('Basic ')) given = Buffer.from(header.slice(6), 'base64').toString().split(':').slice(1).join(':');
    if (timingSafeEqual(digest(given), expected)) return next();
    res.set('WWW-Authenticate', 'Basic realm="gateway admin"');
    next(unauthorized('invalid_admin_key', 'send the admin key as "Authorization: Bearer <key>"'));
  };
}

export function mountAdmin(app: Express, deps: AdminDeps): void {
  if (!deps.adminKey) return;
  const router = express.Router();
  router.use(requireKey(deps.adminKey));

  const board = new ExpressAdapter();
  board.setBasePath('/admin/queues');
  createBullBoard({ queues: deps.pipeline.allQueues().map((q) => new BullMQAdapter(q)), serverAdapter: board });
  router.use('/queues', board.getRouter());

  // Dead letters: jobs that failed for good (attempts used up or an error retrying cannot fix).
  router.get('/dead-letters', async (req, res) => {
    // 1–500: a negative limit became BullMQ's "to the end" range and read every failed job.
    const limit = Math.max(1, Math.min(500, Math.trunc(Number(req.query.limit ?? 100)) || 100));
    const items = [];
    for (const queue of deps.pipeline.allQueues()) {
      for (const job of await queue.getFailed(0, limit - 1)) {
        // An outbound job carries one message; an inbound job the messages one ingest write grouped, of which a
        // retry had already handled `done`.
        const done: string[] = job.data?.done ?? [];
        const messages: UnifiedMessage[] = job.data?.entries
          ? job.data.entries.map((e: { message: UnifiedMessage }) => e.message).filter((m: UnifiedMessage) => !done.includes(m.id))
          : [job.data?.message].filter(Boolean);
        const first = messages[0];
        items.push({
          queue: queue.name,
          jobId: job.id,
          messageId: first?.id,
          conversationId: first?.conversationId,
          channel: first?.channel,
          messages: messages.map((m) => ({ id: m.id, conversationId: m.conversationId, channel: m.channel })),
          failedReason: job.failedReason,
          attemptsMade: job.attemptsMade,
          failedAt: job.finishedOn,
        });
      }
    }
    items.sort((a, b) => (b.failedAt ?? 0) - (a.failedAt ?? 0));
    res.json({ items: items.slice(0, limit) });
  });

  router.post('/dead-letters/:queue/:jobId/replay', async (req, res) => {
    const queue = deps.pipeline.allQueues().find((q) => q.name === req.params.queue);
    if (!queue) throw notFound('unknown_queue', `no queue ${req.params.queue}`);
    const job = await queue.getJob(req.params.jobId);
    if (!job) throw notFound('unknown_job', `no job ${req.params.jobId} in ${queue.name}`);
    if (!(await job.isFailed())) throw new HttpError(409, 'not_failed', `job ${job.id} is not in the failed state`);
    // A replay is a fresh try: an outbound job that only recorded a failed first attempt now really delivers.
    if (job.data?.failure !== undefined) await job.updateData({ ...job.data, failure: undefined });
    await job.retry('failed', { resetAttemptsMade: true });
    deps.log.info({ queue: queue.name, jobId: job.id }, 'dead letter replayed');
    res.status(202).json({ replayed: job.id });
  });

  deps.extend?.(router);
  app.use('/admin', router);
}
