/**
 * A route is declared once — method, path, scope, zod schemas, handler — and both mounted on Express (with
 * validation, auth, idempotency) and described in the OpenAPI document from the same declaration.
 */
import type { Request, Response } from 'express';
import { z } from 'zod';
import type { ApiKey, ApiScope } from './config.js';

export interface RouteContext<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  key: ApiKey;
  req: Request;
  res: Response;
}

export interface RouteResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface RouteSpec<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: 'get' | 'post' | 'delete';
  /** Express-style path below /v1, e.g. /conversations/:id/messages. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  scope: ApiScope;
  params?: P;
  query?: Q;
  body?: B;
  responses: Record<number, { description: string; schema?: z.ZodType }>;
  handler(ctx: RouteContext<z.output<P>, z.output<Q>, z.output<B>>): Promise<RouteResult>;
}

/** Keeps the generic parameters inferred at the declaration site. */
export function route<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(spec: RouteSpec<P, Q, B>): RouteSpec {
  return spec as unknown as RouteSpec;
}
