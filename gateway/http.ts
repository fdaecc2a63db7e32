/**
 * The HTTP surface besides the channels' webhooks (`./channel-http.ts`): operations endpoints, and whatever the
 * hand-off API, admin and media mount. One way of refusing serves both: every failure becomes `{error, message}` with
 * a 4xx/5xx, a log line and a metric — a bad request never crashes the process and never reaches the queue half-done.
 */
import express, { type ErrorRequestHandler, type Express, type Request } from 'express';
import { HttpError, notFound } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface RefusalDeps {
  log: Logger;
  metrics: Metrics;
}

export interface HttpDeps extends RefusalDeps {
  readiness(): Promise<{ ok: boolean; checks: Record<string, { ok: boolean; detail?: string }> }>;
  /** Refreshes gauges that are read on demand (queue depths) before a scrape. */
  beforeScrape?(): Promise<void>;
  /** Extra routers (admin, REST API, static pages), mounted after the operations endpoints. */
  mount?: (app: Express) => void;
}

export function createHttpApp(deps: HttpDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', 'loopback');

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
    const { status, code, message, headers } = refusal(deps, err, { method: req.method, url: loggableUrl(req), ip: req.ip });
    if (res.headersSent) return;
    res.status(status).set(headers).json({ error: code, message });
  };
}

/**
 * The URL of a request as it may be logged: the matched route's pattern in place of its parameters (a path parameter
 * can be a secret — the Chatwoot webhook token is one) and no query string (it can carry tokens too).
 */
function loggableUrl(req: Pick<Request, 'originalUrl' | 'route'>): string {
  const path = pathOf(req.originalUrl);
  const pattern: unknown = req.route?.path;
  if (typeof pattern !== 'string') return shortPath(path);
  // The router's mount path is gone by the time an error reaches the app: it is what precedes the route's segments.
  const segments = path.split('/').filter(Boolean);
  const routeSegments = pattern.split('/').filter(Boolean);
  const mount = segments.slice(0, Math.max(0, segments.length - routeSegments.length));
  return `/${[...mount, ...routeSegments].join('/')}`;
}

/** The answer to a failed request — logged (a warning for 4xx, an error with the stack for 5xx) and counted. */
export function refusal(deps: RefusalDeps, err: unknown, where: { method?: string | undefined; url?: string | undefined; ip?: string | undefined; forwardedFor?: string | string[] | undefined }): HttpError {
  const failure = toHttpError(err);
  const { status, code, message } = failure;
  if (status >= 500) deps.log.error({ err, method: where.method, url: where.url }, 'request failed');
  else deps.log.warn({ status, error: code, reason: message, ...where }, 'request refused');
  deps.metrics.rejected.inc({ error: code });
  return failure;
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

/** A request URL without its query string, which can carry a credential (a custom channel's `?token=`). */
export function pathOf(url: string | undefined): string {
  return (url ?? '').split('?', 1)[0]!;
}

/**
 * A path as an unmatched request may be answered and logged: its first two segments. The rest can be a secret a
 * caller put in the wrong place (the Chatwoot webhook's token with the wrong method or an extra segment).
 */
export function shortPath(path: string): string {
  const segments = path.split('/').filter(Boolean);
  return `/${segments.slice(0, 2).join('/')}${segments.length > 2 ? '/…' : ''}`;
}
