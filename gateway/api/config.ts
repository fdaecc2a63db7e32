/** The `api:` section: keys and limits of the REST hand-off API under /v1. */
import { z } from 'zod';

export const ApiScope = z.enum(['read', 'reply', 'admin']);
export type ApiScope = z.infer<typeof ApiScope>;

export const ApiKey = z.object({
  id: z.string().min(1).describe('Name of the key: logs, rate limits and idempotency records are per key id'),
  key: z.string().min(16).describe('The secret sent as "Authorization: Bearer <key>"'),
  scopes: z.array(ApiScope).min(1).describe('read: list and read; reply: agent replies and state changes; admin: everything incl. webhooks'),
});
export type ApiKey = z.infer<typeof ApiKey>;

export const ApiConfig = z
  .object({
    keys: z.array(ApiKey).default([]).describe('API keys; without any, /v1 answers 401 to every call'),
    rateLimit: z
      .object({
        points: z.number().int().positive().default(120).describe('Requests allowed per key per window'),
        durationSeconds: z.number().int().positive().default(60).describe('Window length'),
      })
      .default({ points: 120, durationSeconds: 60 }),
    idempotencyTtlSeconds: z
      .number()
      .int()
      .positive()
      .default(24 * 3600)
      .describe('How long an Idempotency-Key and its response are remembered'),
    docs: z.boolean().default(true).describe('Serve the interactive API docs at /docs'),
  })
  .default({ keys: [], rateLimit: { points: 120, durationSeconds: 60 }, idempotencyTtlSeconds: 24 * 3600, docs: true });
export type ApiConfig = z.infer<typeof ApiConfig>;
