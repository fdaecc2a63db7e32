/** The `webhooks:` section: outbound, signed event deliveries to helpdesks (Standard Webhooks). */
import { z } from 'zod';

export const WEBHOOK_EVENT_TYPES = [
  'conversation.handoff_requested',
  'conversation.state_changed',
  'conversation.closed',
  'conversation.pickup_timeout',
  'message.created',
  'message.delivered',
  'message.delivery_failed',
] as const;
export const WebhookEventType = z.enum(WEBHOOK_EVENT_TYPES);
export type WebhookEventType = z.infer<typeof WebhookEventType>;

export const EndpointId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'use lower-case letters, digits and "-"');

/** Standard Webhooks secrets are `whsec_` + base64 of 24–64 random bytes. */
export const WebhookSecret = z
  .string()
  .regex(/^whsec_[A-Za-z0-9+/]{32,}={0,2}$/, 'a Standard Webhooks secret: "whsec_" followed by base64 of at least 24 bytes');

export const WebhookEndpoint = z.object({
  id: EndpointId.describe('Stable id; appears in the delivery log'),
  url: z.url().describe('Where events are POSTed'),
  secret: WebhookSecret.describe('Signing secret (whsec_...), shared with the receiver'),
  events: z
    .array(z.union([WebhookEventType, z.literal('*')]))
    .min(1)
    .default(['*'])
    .describe('Event types to send; "*" means all'),
  enabled: z.boolean().default(true),
  description: z.string().optional(),
});
export type WebhookEndpoint = z.infer<typeof WebhookEndpoint>;
export type WebhookEndpointInput = z.input<typeof WebhookEndpoint>;

export const WebhooksConfig = z
  .object({
    endpoints: z.array(WebhookEndpoint).default([]).describe('Subscriptions from config; more can be added over the API'),
    timeoutMs: z.number().int().positive().default(15_000).describe('Per attempt: no answer within this is a network failure'),
    retryForSeconds: z
      .number()
      .int()
      .positive()
      .default(3 * 24 * 3600)
      .describe('Retryable failures are retried until the event is this old, then dead-lettered'),
    backoffBaseMs: z.number().int().positive().default(5_000).describe('First retry delay; doubles per attempt, with jitter'),
    backoffMaxMs: z.number().int().positive().default(3600_000).describe('Longest wait between two attempts'),
    concurrency: z.number().int().min(1).default(16).describe('Deliveries in flight per process (order per conversation is kept anyway)'),
    logRetentionSeconds: z
      .number()
      .int()
      .positive()
      .default(7 * 24 * 3600)
      .describe('How long events and their delivery logs are kept after their last attempt'),
  })
  .default({ endpoints: [], timeoutMs: 15_000, retryForSeconds: 3 * 24 * 3600, backoffBaseMs: 5_000, backoffMaxMs: 3600_000, concurrency: 16, logRetentionSeconds: 7 * 24 * 3600 });
export type WebhooksConfig = z.infer<typeof WebhooksConfig>;
