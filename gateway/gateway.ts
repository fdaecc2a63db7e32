/**
 * Builds a gateway from a validated config: Redis clients, adapters, bot, pipeline and HTTP server, for one of three
 * process roles — `all` (one process does everything), `ingress` (HTTP, sockets, long-lived channel connections)
 * or `worker` (pipeline consumers) — and stops it gracefully, draining in-flight jobs.
 */
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { adapterDefinition } from '../adapters/index.js';
import { refuseUpgrade } from '../adapters/shared/live-socket.js';
import type { AdapterContext, ChannelAdapter, RedisClient } from '../adapters/types.js';
import { createBot, type BotParts } from '../bot/index.js';
import type { Bot } from '../bot/types.js';
import type { GatewayConfig } from '../config/schema.js';
import { mountAdmin } from './admin.js';
import { createChannelHttp } from './channel-http.js';
import { ConversationStore, TransitionError } from './conversations.js';
import { GatewayEvents } from './events.js';
import { createHttpApp, pathOf } from './http.js';
import { LiveHub } from './live.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { OutboundHooks } from './outbound-hooks.js';
import { Pipeline } from './pipeline.js';
import { sendRateLimitHook } from './send-rate-limit.js';
import { clusterNodes, connectRedis, describeTarget, type RedisTarget } from './redis.js';
import { Transcripts } from './transcript.js';
import { checkShardCount } from './shard-count.js';
import { createHandoffLayer, transcriptRetentionSeconds, type HandoffLayer } from './handoff/index.js';
import { newMessageId } from './message.js';
import { MediaStore } from '../adapters/shared/media-store.js';

export type Role = 'all' | 'ingress' | 'worker';

export interface GatewayOptions {
  config: GatewayConfig;
  /** A redis:// URL; ignored when the config names a Redis Cluster. */
  redisUrl?: string;
  role?: Role;
  log?: Logger;
  /** Replaces the configured bot (tests, benchmarks). */
  bot?: Bot;
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly log: Logger;
  readonly redis: RedisClient;
  readonly adapters: ReadonlyMap<string, ChannelAdapter>;
  readonly pipeline: Pipeline;
  readonly conversations: ConversationStore;
  readonly transcripts: Transcripts;
  readonly events: GatewayEvents;
  readonly metrics: Metrics;
  readonly hooks: OutboundHooks;
  /** Hand-off layer: lifecycle service, outbound webhooks, REST API /v1, Chatwoot connector. */
  readonly handoff: HandoffLayer;
  readonly app: Express | undefined;
  /** Base URL once listening (ingress roles). */
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const RETENTION_SECONDS = 30 * 24 * 3600;

export function createGateway(options: GatewayOptions): Gateway {
  const { config } = options;
  const target: RedisTarget = config.redis.cluster?.length
    ? { cluster: clusterNodes(config.redis.cluster) }
    : { url: options.redisUrl ?? config.redis.url ?? 'redis://127.0.0.1:6379' };
  const role = options.role ?? 'all';
  const serves = role !== 'worker';
  const consumes = role !== 'ingress';
  const log = options.log ?? createLogger(config.log.level);
  const prefix = config.redis.prefix;
  const logRedisError = (err: Error) => log.error({ err: err.message }, 'redis connection error');
  /** A new connection without auto-pipelining: for BullMQ (queues and blocking workers) and the live hub's subscriber. */
  const connectPlain = () => connectRedis(target, { autoPipelining: false });
  const redis = connectRedis(target);
  redis.on('error', logRedisError);
  // BullMQ's queues get a connection of their own: BullMQ defines its ~50 Lua scripts on the connection it is given,
  // and ioredis copies every script of a connection into each pipeline it builds — one per auto-pipelined tick. On
  // the command client that copying cost ≈ 38 µs per pipeline with BullMQ's scripts, ≈ 8 µs with only the gateway's.
  const queueRedis = connectPlain();
  queueRedis.on('error', logRedisError);

  const metrics = new Metrics();
  const events = new GatewayEvents();
  // A conversation is kept as long as its transcript.
  const retentionSeconds = transcriptRetentionSeconds(config);
  const conversations = new ConversationStore(redis, prefix, retentionSeconds);
  const transcripts = new Transcripts(redis, prefix, config.handoff.transcript.maxMessages, retentionSeconds);
  const live = new LiveHub(redis, connectPlain, prefix, config.pipeline.missedReplyRetention, RETENTION_SECONDS, log);
  // Transcript lines of outbound messages are part of a delivery's record (Pipeline.attemptDelivery), not a hook.
  const hooks = new OutboundHooks();
  // The configured bot (rules, KB, intent model, policy); a bot passed in (tests, benchmarks) replaces it.
  const botParts: BotParts | undefined = options.bot
    ? undefined
    : createBot({
        config: config.bot,
        redis,
        prefix,
        log,
        events,
        // An ingress-only process never runs the bot; it loads the model only if its swap API is used.
        lazyIntent: role === 'ingress',
        // Burst windows: the customer's later messages still waiting in this conversation's inbound shard.
        pendingInbound: (conversationId) => pipeline.pendingInbound(conversationId),
      });
  const bot: Bot = options.bot ?? botParts!.bot;
  for (const hook of botParts?.hooks ?? []) hooks.use(hook);
  // Last before sending: a blocked reply must not use up the quota.
  const quota = sendRateLimitHook(
    config.channels.flatMap((c) => (c.enabled && c.rateLimit ? [{ channel: c.id, rateLimit: c.rateLimit }] : [])),
    redis,
    prefix,
  );
  if (quota) hooks.use(quota);
  const adapters = new Map<string, ChannelAdapter>();
  const media = new MediaStore({
    dir: config.server.mediaDir,
    maxBytes: config.server.mediaMaxBytes,
    retentionSeconds: Math.round(config.server.mediaRetentionDays * 24 * 3600),
    allowPrivateNetworks: config.server.mediaAllowPrivateNetworks,
    redis,
    prefix,
    log: log.child({ component: 'media' }),
    baseUrl: () => gateway.url,
  });

  const pipeline = new Pipeline({
    config: config.pipeline,
    prefix,
    redis,
    queueRedis,
    connect: connectPlain,
    processId: `${hostname()}:${process.pid}:${newMessageId().slice(-8)}`,
    log,
    adapters,
    bot,
    conversations,
    transcripts,
    live,
    events,
    metrics,
    hooks,
  });
  const handoff = createHandoffLayer({ config, redis, queueRedis, connect: connectPlain, log, conversations, transcripts, events, pipeline });

  for (const channel of config.channels) {
    if (!channel.enabled) continue;
    const definition = adapterDefinition(channel.type);
    if (!definition) throw new Error(`no adapter type "${channel.type}"`); // unreachable: the schema checked it
    const channelLog = log.child({ channel: channel.id });
    const ctx: AdapterContext = {
      log: channelLog,
      redis,
      keyPrefix: `${prefix}:ch:${channel.id}:`,
      get publicBaseUrl() {
        return gateway.url;
      },
      ingest: (message, reference) => pipeline.ingest(message, reference),
      subscribe: (onMessage, holds) => live.subscribe(channel.id, onMessage, holds),
      publish: (message) => live.publish(message),
      missedReplies: (conversationId, afterId) => live.missed(conversationId, afterId),
      media: media.forChannel(channel.id),
      events,
      platformMoved: async (conversationId, to, reason) => {
        try {
          const change = await conversations.transition(conversationId, to, `platform:${channel.id}`, reason);
          channelLog.info({ conv: conversationId, change }, 'conversation moved by the platform');
          events.emit('conversation.state_changed', { conversationId, change });
        } catch (err) {
          // Already there (a servicer's every message says it holds the session), or not known to the gateway yet.
          if (!(err instanceof TransitionError)) throw err;
          channelLog.debug({ conv: conversationId, to, state: err.from }, 'platform move not applied');
        }
      },
    };
    adapters.set(channel.id, definition.create({ id: channel.id, type: channel.type, options: channel.options }, ctx));
  }

  let server: Server | undefined;
  const app = serves
    ? createHttpApp({
        log,
        metrics,
        beforeScrape: async () => {
          const totals = new Map<string, number>();
          for (const queue of pipeline.allQueues()) {
            const stage = queue.name.startsWith('{in-') ? 'in' : 'out';
            const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized');
            for (const [state, n] of Object.entries(counts)) totals.set(`${stage}|${state}`, (totals.get(`${stage}|${state}`) ?? 0) + n);
          }
          for (const [key, n] of totals) {
            const [stage, state] = key.split('|') as [string, string];
            metrics.queueDepth.set({ stage, state }, n);
          }
        },
        readiness: async () => {
          const checks: Record<string, { ok: boolean; detail?: string }> = {};
          try {
            checks.redis = { ok: (await redis.ping()) === 'PONG' };
          } catch (err) {
            checks.redis = { ok: false, detail: (err as Error).message };
          }
          checks.started = { ok: started, ...(!started && { detail: 'starting or stopping' }) };
          if (consumes) checks.workers = { ok: pipeline.ownedShards.length > 0 || !started, detail: `shards ${pipeline.ownedShards.join(',')}` };
          checks.bot = bot.health?.() ?? { ok: true };
          for (const adapter of adapters.values()) checks[`channel:${adapter.id}`] = adapter.health?.() ?? { ok: true };
          return { ok: Object.values(checks).every((c) => c.ok), checks };
        },
        mount: (express) => {
          express.get('/', (_req, res, next) => (config.server.home ? res.redirect(302, config.server.home) : next()));
          handoff.mount(express);
          mountAdmin(express, { adminKey: config.server.adminKey, pipeline, log, extend: (router) => botParts?.adminRoutes(router) });
          media.mount(express);
        },
      })
    : undefined;

  let started = false;
  const gateway: Gateway = {
    config,
    log,
    redis,
    adapters,
    pipeline,
    conversations,
    transcripts,
    events,
    metrics,
    hooks,
    handoff,
    app,
    url: config.server.publicBaseUrl ?? `http://${config.server.host}:${config.server.port}`,

    async start() {
      await botParts?.start();
      if (app) {
        const webhooks = createChannelHttp({ log, metrics, adapters, bodyLimitBytes: config.server.bodyLimitBytes });
        server = createServer((req, res) => webhooks(req, res) || app(req, res));
        server.keepAliveTimeout = 65_000;
        server.on('upgrade', (req, socket, head) => {
          const path = pathOf(req.url);
          try {
            for (const adapter of adapters.values()) if (adapter.upgrade?.(req, socket, head)) return;
          } catch (err) {
            // A failing adapter refuses this socket (every adapter, here in one place); it must not take the process,
            // and every other socket, down.
            log.error({ err, url: path }, 'WebSocket upgrade failed');
            if (!socket.writable) return void socket.destroy();
            return refuseUpgrade(socket, 500, 'internal_error', 'the gateway failed to open this socket; it has been logged', log);
          }
          refuseUpgrade(socket, 404, 'unknown_channel', `no WebSocket endpoint at ${path}`, log);
        });
        await new Promise<void>((resolve, reject) => {
          server!.once('error', reject);
          server!.listen(config.server.port, config.server.host, () => resolve());
        });
        const address = server.address() as AddressInfo;
        if (!config.server.publicBaseUrl) gateway.url = `http://${config.server.host}:${address.port}`;
        for (const adapter of adapters.values()) await adapter.start?.();
        media.startSweeping();
      }
      if (consumes) await pipeline.startWorkers();
      else await checkShardCount(redis, prefix, config.pipeline.shards, log);
      if (consumes) await handoff.start();
      started = true;
      log.info({ url: gateway.url, role, redis: describeTarget(target), channels: [...adapters.keys()] }, 'gateway started');
    },

    async stop() {
      started = false;
      log.info('gateway stopping: closing HTTP, draining in-flight jobs');
      // Stop taking traffic first, then let workers finish what they hold, then drop connections.
      const closing = server ? new Promise<void>((r) => server!.close(() => r())) : Promise.resolve();
      server?.closeIdleConnections();
      for (const adapter of adapters.values()) await adapter.stop?.().catch((err) => log.error({ err }, 'adapter stop failed'));
      await pipeline.close();
      await handoff.close();
      await (botParts ? botParts.close() : bot.close?.());
      server?.closeAllConnections();
      await closing;
      await live.close();
      media.close();
      await redis.quit().catch(() => redis.disconnect());
      await queueRedis.quit().catch(() => queueRedis.disconnect());
      log.info('gateway stopped');
    },
  };
  return gateway;
}
