/**
 * The HTTP surface: operations endpoints, each channel's routes under /webhooks/<channel-id>, and one error handler
 * that turns every failure into `{error, message}` with a 4xx/5xx and a log line — a bad request never crashes the
 * process and never reaches the queue half-done.
 */
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler } from 'express';
import type { ChannelAdapter } from '../adapters/types.js';
import { HttpError, notFound } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface HttpDeps {
  log: Logger;
  metrics: Metrics;
  adapters: ReadonlyMap<string, ChannelAdapter>;
  bodyLimitBytes: number;
  readiness(): Promise<{ ok: boolean; checks: Record<string, { ok: boolean; detail?: string }> }>;
  /** Refreshes gauges that are read on demand (queue depths) before a scrape. */
  beforeScrape?(): Promise<void>;
  /** Extra routers (admin, REST API, static pages), mounted after the webhooks. */
  mount?: (app: Express) => void;
}

/** Keeps the exact request bytes: signatures are computed over them, not over a re-serialised object. */
function rawBody(limit: number): RequestHandler {
  const parse = express.raw({ type: () => true, limit });
  return (req, res, next) =>
    parse(req, res, (err?: unknown) => {
      if (err) return next(err);
      if (Buffer.isBuffer(req.body)) req.rawBody = req.body;
      next();
    });
}

export function createHttpApp(deps: HttpDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');

  // The webhooks first: they carry the traffic, and one lookup by channel id finds the channel's router (rather
  // than a walk past every other route and every other channel's mount point).
  const channelRouters = new Map<string, express.Router>();
  for (const adapter of deps.adapters.values()) {
    if (!adapter.routes) continue;
    const router = express.Router();
    router.use(rawBody(deps.bodyLimitBytes));
    adapter.routes(router);
    channelRouters.set(adapter.id, router);
  }
  app.use('/webhooks/:channelId', (req: Request, res, next) => {
    const id = String(req.params.channelId);
    const router = channelRouters.get(id);
    const unknown = () =>
      deps.adapters.has(id)
        ? notFound('unknown_route', `channel ${id} has no route ${req.method} ${req.originalUrl}`)
        : notFound('unknown_channel', `no channel with id "${id}" is configured`);
    if (!router) return next(unknown());
    // Leaving the channel's router without an answer ('router' included) means it has no such route.
    router(req, res, (err?: unknown) => next(err && err !== 'router' && err !== 'route' ? err : unknown()));
  });

  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/readyz', async (_req, res, next) => {
    try {
      const ready = await deps.readiness();
      res.status(ready.ok ? 200 : 503).json(ready);
    } catch (err) {
      next(err);
    }
  });
  app.get('/metrics', async (_req, res, next) => {
    try {
      await deps.beforeScrape?.();
      res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    } catch (err) {
      next(err);
    }
  });

  deps.mount?.(app);

  app.use((req, _res, next) => next(notFound('not_found', `no route ${req.method} ${req.path}`)));
  app.use(errorHandler(deps));
  return app;
}

function errorHandler(deps: HttpDeps): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const { status, code, message, headers } = toHttpError(err);
    if (status >= 500) deps.log.error({ err, method: req.method, url: req.originalUrl }, 'request failed');
    else deps.log.warn({ status, error: code, reason: message, method: req.method, url: req.originalUrl, ip: req.ip }, 'request refused');
    deps.metrics.rejected.inc({ error: code });
    if (res.headersSent) return;
    res.status(status).set(headers).json({ error: code, message });
  };
}

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as { type?: string; status?: number; limit?: number; message?: string; name?: string; issues?: unknown };
  if (e?.type === 'entity.too.large') {
    return new HttpError(413, 'payload_too_large', `the request body exceeds the ${e.limit ?? ''} byte limit`.replace('  ', ' '));
  }
  if (e?.type === 'entity.verify.failed' || e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') {
    return new HttpError(415, 'unsupported_body', e.message ?? 'unsupported request body');
  }
  if (e?.type === 'request.aborted') return new HttpError(400, 'request_aborted', 'the client aborted the request');
  if (e?.name === 'ZodError') return new HttpError(400, 'invalid_message', `the request does not match the schema: ${e.message}`);
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    return new HttpError(e.status, 'bad_request', e.message ?? 'bad request');
  }
  return new HttpError(500, 'internal_error', 'the gateway failed to handle this request; it has been logged');
}
