/**
 * The one small interface every channel implements, and what the gateway hands an adapter when it builds it.
 *
 * An adapter is built from one `channels[]` config instance. It owns the HTTP routes under `/webhooks/<id>` (and,
 * optionally, WebSocket upgrades or a long-lived connection), verifies and decodes inbound traffic into
 * UnifiedMessages which it passes to `ctx.ingest` *before* acknowledging the platform, and sends outbound messages.
 * It never knows another adapter exists.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Redis, Cluster } from 'ioredis';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { ContentType, UnifiedMessage } from '../gateway/message.js';
import type { ConversationReference } from '../gateway/conversation-reference.js';
import type { WebhookRoute } from './http.js';
import type { ChannelMedia } from './shared/media-store.js';
import type { GatewayEvents } from '../gateway/events.js';

export type RedisClient = Redis | Cluster;

export interface IngestResult {
  messageId: string;
  /** True when the same platform message was already accepted inside the dedupe window. */
  duplicate: boolean;
}

/** Passed with every inbound message so a reply can be sent later by anyone (bot, agent, timeout). */
export type ReferenceInput = Omit<ConversationReference, 'channel' | 'channelType' | 'conversationId' | 'updatedAt'>;

export interface AdapterContext {
  readonly log: Logger;
  readonly redis: RedisClient;
  /** Key prefix for anything the adapter stores in Redis (cursors, visitor state...): `<prefix>:ch:<id>:`. */
  readonly keyPrefix: string;
  /** Externally reachable base URL of the gateway (for media URLs, widget script URLs). */
  readonly publicBaseUrl: string;
  /**
   * Verify → dedupe → **durable enqueue**. Resolves once the message is in Redis; only then may the adapter
   * acknowledge the platform. Validates the message (throws on an invalid one).
   */
  ingest(message: UnifiedMessage, reference: ReferenceInput): Promise<IngestResult>;
  /**
   * Subscribe to outbound messages published for this channel on any process (WebSocket fan-out). With `holds`,
   * only messages of the conversations it says this process holds connections for arrive; the others are dropped
   * unread, so a process holding few of the channel's conversations does not parse every reply.
   */
  subscribe(onMessage: (message: UnifiedMessage) => void, holds?: (conversationId: string) => boolean): Promise<() => Promise<void>>;
  /** Publish an outbound message to the processes holding this channel's live connections (and keep it in the
   *  conversation's bounded outbox for clients that reconnect). */
  publish(message: UnifiedMessage): Promise<void>;
  /** Outbound messages of a conversation newer than `afterId` (a message id), oldest first. */
  missedReplies(conversationId: string, afterId: string | undefined): Promise<UnifiedMessage[]>;
  /** Platform media ids → files served at `GET /media/<id>` (adapters/shared/media-store.ts). */
  readonly media: ChannelMedia;
  /** The gateway's in-process events (hand-off requested, delivery failed...), for adapters that mirror them on the
   *  platform (e.g. WeCom kf moving a session to a human servicer). Emitted in the process running the pipeline. */
  readonly events?: GatewayEvents;
  /**
   * The platform itself moved the conversation: a human on the platform took it (WeCom kf: a servicer in the WeCom
   * client), or it ended there. The gateway's state follows — `agent` keeps the bot from answering over that human —
   * when the move is allowed from the conversation's state (otherwise it stays as it is). Resolves once stored.
   */
  platformMoved?(conversationId: string, to: 'agent' | 'closed', reason: string): Promise<void>;
}

export interface SendResult {
  /** The platform's id of the sent message, when it returns one. */
  channelMessageId?: string;
  /**
   * Also hand the message to the channel's live sockets and reconnect outbox (as `AdapterContext.publish` does), as
   * part of the delivery's record: the app channel, whose app got the reply by callback, fans it out to its sockets
   * this way. A failure is logged, not retried — the message was delivered, and a retry would send it again.
   */
  live?: boolean;
}

export interface AdapterHealth {
  ok: boolean;
  detail?: string;
}

export interface ChannelAdapter {
  readonly id: string;
  readonly type: string;
  /** Content types `send` handles natively; the pipeline renders anything else as text first. */
  readonly capabilities: ReadonlySet<ContentType>;
  /** The channel's webhook routes, served under `/webhooks/<id>` (called once, when the gateway starts serving). */
  routes?(): readonly WebhookRoute[];
  /** Handle an HTTP upgrade under `/webhooks/<id>/…`; return false to refuse it. */
  upgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Start long-lived connections (IMAP IDLE, Wechaty, heartbeats). Only called in ingress processes. */
  start?(): Promise<void>;
  stop?(): Promise<void>;
  /**
   * Deliver one outbound message to the conversation's peer. Throw `DeliveryError` to say whether retrying can
   * help; any other error is treated as retryable (network errors, 5xx).
   */
  send(message: UnifiedMessage, reference: ConversationReference): Promise<SendResult>;
  health?(): AdapterHealth;
}

export interface AdapterInstance<Options> {
  id: string;
  type: string;
  options: Options;
}

/** What each `adapters/<type>/index.ts` exports; `adapters/index.ts` lists them all. */
export interface AdapterDefinition<Schema extends z.ZodType = z.ZodType> {
  type: string;
  /** One line for the generated config docs. */
  description: string;
  /** Zod schema of the instance's `options`; part of the config schema, so bad options stop start-up. */
  options: Schema;
  create(instance: AdapterInstance<z.output<Schema>>, ctx: AdapterContext): ChannelAdapter;
}

export function defineAdapter<Schema extends z.ZodType>(definition: AdapterDefinition<Schema>): AdapterDefinition<Schema> {
  return definition;
}

/**
 * Why a delivery failed, in platform-neutral words, so the hand-off layer can act on it (e.g. a closed reply window
 * means "ask the agent to wait for the customer", an unreachable recipient means "close the conversation").
 */
export type DeliveryFailureReason =
  | 'reply_window_expired'
  | 'recipient_unreachable'
  | 'quota_exhausted'
  | 'rate_limited'
  | 'auth'
  | 'invalid_request'
  | 'platform_error';

/** Thrown by `send`. `retryable: false` fails the job at once (dead-letter) with the platform's code. */
export class DeliveryError extends Error {
  readonly retryable: boolean;
  readonly code: string | number | undefined;
  /** Set when the platform said "slow down": the delivery worker pauses this shard for that long. */
  readonly rateLimitMs: number | undefined;
  readonly reason: DeliveryFailureReason | undefined;
  constructor(
    message: string,
    opts: { retryable: boolean; code?: string | number; rateLimitMs?: number; reason?: DeliveryFailureReason },
  ) {
    super(message);
    this.name = 'DeliveryError';
    this.retryable = opts.retryable;
    this.code = opts.code;
    this.rateLimitMs = opts.rateLimitMs;
    this.reason = opts.reason;
  }
}
