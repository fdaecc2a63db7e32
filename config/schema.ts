/**
 * The gateway's configuration schema: the single source of truth. It validates `config/gateway.yaml` at start-up
 * (and in `npm run config:check`), gives defaults, and `npm run config:docs` renders docs/config.md from it.
 */
import { z } from 'zod';
import { adapterDefinitions } from '../adapters/index.js';
import { BotConfig } from '../bot/config.js';
import { ApiConfig, type ApiKey } from '../gateway/api/config.js';
import { HandoffConfig } from '../gateway/handoff/config.js';
import { WebhooksConfig } from '../gateway/webhooks/config.js';

export const ChannelId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'use lower-case letters, digits and "-" (it becomes part of /webhooks/<id>)');

export const SendRateLimit = z.object({
  messages: z.number().int().positive().describe('Messages allowed per window'),
  perSeconds: z.number().int().positive().describe('Window length in seconds'),
});
export type SendRateLimit = z.infer<typeof SendRateLimit>;

const channelVariants = adapterDefinitions.map((definition) =>
  z
    .object({
      id: ChannelId,
      type: z.literal(definition.type),
      enabled: z.boolean().default(true),
      rateLimit: SendRateLimit.optional().describe(
        "Outbound quota of this channel instance (the platform's per-app send limit); replies over it wait, none is dropped",
      ),
      options: definition.options,
    })
    .describe(definition.description),
);

function unknownChannelType(type: unknown): string {
  const known = adapterDefinitions.map((d) => d.type).join(', ');
  return type === undefined ? `the channel has no type; set one of: ${known}` : `unknown channel type ${JSON.stringify(type)}; known types: ${known}`;
}

export const ChannelConfig = z.discriminatedUnion('type', channelVariants as unknown as [(typeof channelVariants)[0]], {
  error: (issue) =>
    issue.code === 'invalid_union' && issue.note === 'No matching discriminator'
      ? unknownChannelType((issue.input as { type?: unknown } | undefined)?.type)
      : undefined,
});
export type ChannelConfig = z.infer<typeof ChannelConfig>;

export const ServerConfig = z
  .object({
    host: z.string().default('127.0.0.1').describe('Interface to listen on'),
    port: z.number().int().min(0).max(65535).default(8080).describe('HTTP port (0 picks a free one)'),
    publicBaseUrl: z
      .url()
      .optional()
      .describe('How customers and platforms reach the gateway; defaults to http://<host>:<port>'),
    bodyLimitBytes: z.number().int().positive().default(1024 * 1024).describe('Largest accepted request body; larger → 413'),
    home: z.string().optional().describe('Where GET / redirects (e.g. a web channel demo page /webhooks/web/)'),
    adminKey: z.string().min(16).optional().describe('Bearer key for /admin/* (queue dashboard, dead letters); absent disables /admin'),
    mediaDir: z.string().default('var/media').describe('Where inbound platform media is stored; served at GET /media/<id>'),
    mediaMaxBytes: z.number().int().positive().default(20 * 1024 * 1024).describe('Largest media file downloaded or uploaded'),
    mediaRetentionDays: z
      .number()
      .positive()
      .default(30)
      .describe('Stored media files are deleted this long after their download (as long as transcripts are kept by default); their /media links answer 404 after'),
    mediaAllowPrivateNetworks: z
      .array(z.string())
      .default([])
      .describe('Addresses or CIDR ranges outside the public internet that outbound media URLs may still be fetched from (e.g. an internal asset server); other loopback, private, link-local and CGNAT addresses are refused'),
  })
  .default({ host: '127.0.0.1', port: 8080, bodyLimitBytes: 1024 * 1024, mediaDir: 'var/media', mediaMaxBytes: 20 * 1024 * 1024, mediaRetentionDays: 30, mediaAllowPrivateNetworks: [] });

export const RedisConfig = z
  .object({
    url: z
      .string()
      .optional()
      .describe('redis:// URL of an existing Redis; absent starts a private redis-server child process'),
    cluster: z
      .array(z.string().regex(/^[^:\s]+:\d{1,5}$/, 'use "host:port"'))
      .optional()
      .describe('Seed nodes of a Redis Cluster ("host:port"); when set, url is ignored'),
    prefix: z
      .string()
      .regex(/^[a-zA-Z0-9_-]+$/)
      .default('gw')
      .describe('Prefix of every key and queue the gateway creates'),
    dataDir: z.string().default('var/redis').describe('Data directory of the private redis-server (AOF on)'),
  })
  .default({ prefix: 'gw', dataDir: 'var/redis' });

export const PipelineConfig = z
  .object({
    shards: z
      .number()
      .int()
      .min(1)
      .max(256)
      .default(4)
      .describe(
        'Queues per stage. A conversation always maps to one shard, and each shard has one consumer at a time, which runs one job at a time (the conversations in a job run in parallel). A shard is consumed by one process, so this bounds how many worker processes share the work: set it to at least the number of worker processes (two per process is a good start). More shards than that make each job smaller, which costs more CPU per message under load. Lowering it: workers refuse to start while the queues beyond the new count still hold jobs',
      ),
    dedupeWindowSeconds: z
      .number()
      .int()
      .positive()
      .default(3 * 24 * 3600)
      .describe(
        'How long a platform message id is remembered to drop retries (longer than any platform retries). Each message leaves two small marks (≈ 150 bytes each) in Redis for this long: one by its queue, which answers the platform, and one in its conversation, which keeps a retry that rode in a queue job from being answered',
      ),
    ingestBatchMax: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(64)
      .describe(
        'Most messages one ingest write carries, and most a waiting inbound job takes on after it was written. Messages for a shard that arrive while its previous write is in flight are written together, and join the shard\'s newest job while it waits (group commit), so queue overhead per message falls as load rises',
      ),
    inboundAttempts: z.number().int().min(1).default(3).describe('Attempts per inbound message, made inside its job so later messages of the conversation wait (backoff: deliveryBackoffMs, doubling); then the job is dead-lettered'),
    deliveryAttempts: z.number().int().min(1).default(8).describe('Attempts per outbound delivery before dead-letter'),
    deliveryBackoffMs: z.number().int().min(1).default(1000).describe('First retry delay; doubles each attempt'),
    keepCompleted: z.number().int().min(0).default(1000).describe('Completed jobs kept per queue (dashboard)'),
    keepFailed: z.number().int().min(0).default(50_000).describe('Failed jobs kept per queue (the dead-letter view)'),
    missedReplyRetention: z
      .number()
      .int()
      .min(1)
      .default(100)
      .describe('Outbound messages kept per conversation for clients that reconnect'),
  })
  .default({
    shards: 4,
    dedupeWindowSeconds: 3 * 24 * 3600,
    ingestBatchMax: 64,
    inboundAttempts: 3,
    deliveryAttempts: 8,
    deliveryBackoffMs: 1000,
    keepCompleted: 1000,
    keepFailed: 50_000,
    missedReplyRetention: 100,
  });

export type ServerConfig = z.infer<typeof ServerConfig>;
export type PipelineConfig = z.infer<typeof PipelineConfig>;

export const GatewayConfig = z
  .object({
    server: ServerConfig,
    redis: RedisConfig,
    pipeline: PipelineConfig,
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .default({ level: 'info' }),
    channels: z.array(ChannelConfig).default([]).describe('Channel instances; each gets /webhooks/<id>'),
    bot: BotConfig,
    handoff: HandoffConfig,
    webhooks: WebhooksConfig,
    api: ApiConfig,
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.channels.forEach((channel, index) => {
      if (seen.has(channel.id)) {
        ctx.addIssue({ code: 'custom', path: ['channels', index, 'id'], message: `duplicate channel id "${channel.id}"` });
      }
      seen.add(channel.id);
    });
    refuseAmbiguousApiKeys(config.api.keys, ctx);
  });

/**
 * API keys are told apart by id (logs, rate limits, idempotency records) and found by their secret: two entries with
 * one id, or one secret with two sets of scopes, would leave it to the order of the list which one applies.
 */
function refuseAmbiguousApiKeys(keys: readonly ApiKey[], ctx: z.RefinementCtx): void {
  keys.forEach((key, index) => {
    const earlier = keys.slice(0, index);
    if (earlier.some((k) => k.id === key.id)) {
      ctx.addIssue({ code: 'custom', path: ['api', 'keys', index, 'id'], message: `duplicate API key id "${key.id}"` });
    }
    const sameSecret = earlier.findIndex((k) => k.key === key.key && !sameScopes(k.scopes, key.scopes));
    if (sameSecret >= 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['api', 'keys', index, 'key'],
        message: `the same key as api.keys[${sameSecret}] (id ${keys[sameSecret]!.id}) with other scopes; a key has one set of scopes`,
      });
    }
  });
}

function sameScopes(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((scope) => b.includes(scope)) && b.every((scope) => a.includes(scope));
}
export type GatewayConfig = z.infer<typeof GatewayConfig>;
export type GatewayConfigInput = z.input<typeof GatewayConfig>;
