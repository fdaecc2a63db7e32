/**
 * Mounts the REST API under /v1 (auth → rate limit → validation → idempotency → handler, every error as
 * `{error, message}`), the OpenAPI document at /v1/openapi.json and the interactive docs at /docs (Swagger UI
 * served from the installed swagger-ui-dist package — nothing is fetched from a CDN).
 */
import express, { type ErrorRequestHandler, type Express, type Request, type Response } from 'express';
import swaggerUi from 'swagger-ui-express';
import { z } from 'zod';
import { HttpError, notFound } from '../errors.js';
import { shortPath } from '../http.js';
import type { Logger } from '../logger.js';
import type { ApiAuth } from './auth.js';
import type { Idempotency } from './idempotency.js';
import { buildOpenApi } from './openapi.js';
import type { RouteSpec } from './route.js';

export interface ApiMountDeps {
  routes: RouteSpec[];
  auth: ApiAuth;
  idempotency: Idempotency;
  log: Logger;
  bodyLimitBytes: number;
  docs: boolean;
  /** Extra unauthenticated routes under /v1 (connector webhooks with their own verification). */
  extend?: (router: express.Router) => void;
}

function validate<T extends z.ZodType>(schema: T | undefined, value: unknown, where: string): z.output<T> | undefined {
  if (!schema) return undefined;
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new HttpError(400, 'invalid_request', `invalid ${where}: ${z.prettifyError(parsed.error).replaceAll('\n', '; ')}`);
  return parsed.data;
}

export function mountApi(app: Express, deps: ApiMountDeps): void {
  const openapi = buildOpenApi(deps.routes, { title: 'Channel hub hand-off API', version: '1.0.0' });
  const router = express.Router();
  router.get('/openapi.json', (_req, res) => void res.json(openapi));
  deps.extend?.(router);
  router.use(express.json({ limit: deps.bodyLimitBytes, type: () => true }));

  for (const spec of deps.routes) {
    router[spec.method](spec.path, async (req: Request, res: Response) => {
      const key = deps.auth.authenticate(req);
      deps.auth.authorize(key, spec.scope);
      res.set(await deps.auth.limit(key));
      const params = validate(spec.params, req.params, 'path parameters');
      const query = validate(spec.query, req.query, 'query');
      const body = spec.body ? validate(spec.body, req.body ?? {}, 'body') : undefined;
      const act = () => spec.handler({ params, query, body, key, req, res });
      const idempotencyKey = spec.method === 'post' ? req.get('idempotency-key') : undefined;
      const result = idempotencyKey
        ? await deps.idempotency.run(key.id, idempotencyKey, { method: spec.method, path: req.path, body }, act)
        : await act();
      if (result.headers) res.set(result.headers);
      if (result.status === 204) return void res.status(204).end();
      res.status(result.status).json(result.body);
      deps.log.debug({ key: key.id, op: spec.operationId, status: result.status }, 'api request');
    });
  }
  // A malformed JSON body is the client's mistake: say so in the common error shape.
  const jsonErrors: ErrorRequestHandler = (err, _req, _res, next) => {
    if ((err as { type?: string }).type === 'entity.parse.failed') return next(new HttpError(400, 'malformed_json', `the request body is not valid JSON: ${(err as Error).message}`));
    next(err);
  };
  router.use(jsonErrors);
  router.use((req, _res, next) => next(notFound('not_found', `no API route ${req.method} /v1${shortPath(req.path)}`)));
  app.use('/v1', router);
  if (deps.docs) app.use('/docs', swaggerUi.serve, swaggerUi.setup(openapi, { customSiteTitle: 'Channel hub hand-off API' }));
}
