/**
 * Composition of the hand-off layer: lifecycle service, outbound webhooks, the REST API and the Chatwoot connector.
 * `createGateway` builds one per process; producers (event → webhook, API) run everywhere, the consumers (webhook
 * deliveries, timeouts) only where the pipeline consumes.
 */
import type { Express } from 'express';
import type { RedisClient } from '../../adapters/types.js';
import type { GatewayConfig } from '../../config/schema.js';
import { ApiAuth } from '../api/auth.js';
import { conversationRoutes } from '../api/conversation-routes.js';
import { Idempotency } from '../api/idempotency.js';
import { mountApi } from '../api/router.js';
import { webhookRoutes } from '../api/webhook-routes.js';
import type { ConversationStore } from '../conversations.js';
import type { GatewayEvents } from '../events.js';
import type { Logger } from '../logger.js';
import type { Pipeline } from '../pipeline.js';
import type { Transcripts } from '../transcript.js';
import { WebhookDispatcher } from '../webhooks/dispatcher.js';
import { WebhookEndpoints } from '../webhooks/endpoints.js';
import { forwardGatewayEvents } from '../webhooks/from-gateway-events.js';
import { WebhookStore } from '../webhooks/store.js';
import { ChatwootConnector } from './chatwoot/connector.js';
import { HandoffService } from './service.js';

export interface HandoffLayerDeps {
  config: GatewayConfig;
  redis: RedisClient;
  /** The connection BullMQ's queues (producers) use; it carries BullMQ's scripts, which the command client should not. */
  queueRedis: RedisClient;
  connect: () => RedisClient;
  log: Logger;
  conversations: ConversationStore;
  transcripts: Transcripts;
  events: GatewayEvents;
  pipeline: Pipeline;
}

export function transcriptRetentionSeconds(config: GatewayConfig): number {
  return Math.round(config.handoff.transcript.retentionDays * 24 * 3600);
}

export function createHandoffLayer(deps: HandoffLayerDeps) {
  const { config, redis, log } = deps;
  const prefix = config.redis.prefix;
  const whPrefix = `${prefix}:{wh}`;
  const service = new HandoffService({
    config: config.handoff,
    redis,
    queueRedis: deps.queueRedis,
    connect: deps.connect,
    prefix,
    conversations: deps.conversations,
    transcripts: deps.transcripts,
    events: deps.events,
    pipeline: deps.pipeline,
    log: log.child({ component: 'handoff' }),
    retentionSeconds: transcriptRetentionSeconds(config),
  });
  const endpoints = new WebhookEndpoints(redis, whPrefix, config.webhooks.endpoints);
  const store = new WebhookStore(redis, whPrefix, config.webhooks.logRetentionSeconds);
  const dispatcher = new WebhookDispatcher({ redis, queueRedis: deps.queueRedis, connect: deps.connect, prefix, config: config.webhooks, endpoints, store, log: log.child({ component: 'webhooks' }) });
  const chatwoot = config.handoff.chatwoot
    ? new ChatwootConnector({
        config: config.handoff.chatwoot,
        redis,
        prefix,
        conversations: deps.conversations,
        transcripts: deps.transcripts,
        handoff: service,
        log: log.child({ component: 'chatwoot' }),
      })
    : undefined;
  if (chatwoot) dispatcher.addSink(chatwoot.sink());
  const stopForwarding = forwardGatewayEvents({
    events: deps.events,
    dispatcher,
    conversations: deps.conversations,
    transcripts: deps.transcripts,
    transcriptMessages: config.handoff.webhookTranscriptMessages,
  });

  return {
    service,
    dispatcher,
    endpoints,
    store,
    chatwoot,
    mount(app: Express): void {
      mountApi(app, {
        routes: [
          ...conversationRoutes({ redis, conversations: deps.conversations, transcripts: deps.transcripts, handoff: service }),
          ...webhookRoutes({ endpoints, store, dispatcher }),
        ],
        auth: new ApiAuth(config.api, redis, prefix),
        idempotency: new Idempotency(redis, prefix, config.api.idempotencyTtlSeconds),
        log: log.child({ component: 'api' }),
        bodyLimitBytes: config.server.bodyLimitBytes,
        docs: config.api.docs,
        ...(chatwoot && { extend: (router) => chatwoot.routes(router) }),
      });
    },
    /** Starts the consumers (webhook deliveries, timeouts); call only in processes that consume. */
    async start(): Promise<void> {
      await dispatcher.start();
      await service.start();
    },
    async close(): Promise<void> {
      stopForwarding();
      await service.close();
      await dispatcher.close();
    },
  };
}
export type HandoffLayer = ReturnType<typeof createHandoffLayer>;
