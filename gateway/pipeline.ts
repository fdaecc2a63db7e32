/**
 * The message pipeline, top to bottom:
 *
 *   adapter verifies + decodes ─▶ 1. ingest: dedupe + durable enqueue on in-<shard> ─▶ adapter acks 2xx
 *                                    (group commit: what arrives while a shard's write is in flight shares a job)
 *                                 2. inbound stage: per job, conversations in parallel, each one's messages in order:
 *                                    receive (platform retry? drop; state, turn, transcript) ─▶ bot (only in state `bot`)
 *                                    ├─ replies ─▶ first delivery attempt right away; what fails ─▶ out-<shard>
 *                                    ├─ hand-off ─▶ state handoff_pending + event
 *                                    └─ state agent/handoff_pending ─▶ event for the helpdesk, no bot
 *   agent replies (REST API) ────▶ 3. sendToConversation ─▶ out-<shard>
 *                                 4. outbound stage: hooks ─▶ adapter.send (retry/backoff, rate limit, dead-letter)
 *
 * Both stages are sharded by conversation with one consumer per shard (queues.ts, shards.ts), so the messages of a
 * conversation are handled in order while different conversations run in parallel.
 */
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { ChannelAdapter, IngestResult, RedisClient, ReferenceInput } from '../adapters/types.js';
import { DeliveryError, type DeliveryFailureReason, type SendResult } from '../adapters/types.js';
import type { Bot, HandoffRequest } from '../bot/types.js';
import type { PipelineConfig } from '../config/schema.js';
import type { ConversationReference } from './conversation-reference.js';
import { TransitionError, type ConversationStore, type StateChange, type Turn } from './conversations.js';
import type { GatewayEvents } from './events.js';
import { asInboundJob, IngestBatcher, type InboundEntry, type InboundJob } from './ingest-batcher.js';
import type { LiveHub } from './live.js';
import type { Logger } from './logger.js';
import { MessageLog } from './message-log.js';
import { contentAsText, createMessage, replyMessage, SCHEMA_VERSION, UnifiedMessage, type Content, type DecisionTrace, type Sender } from './message.js';
import type { Metrics } from './metrics.js';
import type { OutboundHooks } from './outbound-hooks.js';
import { queueName, shardOf, type Stage } from './queues.js';
import { claimShardCount } from './shard-count.js';
import { ShardLeases } from './shards.js';
import type { Transcripts } from './transcript.js';

/** How long shutdown waits for the replies of the last inbound jobs to go out before it lets go. */
const DRAIN_TIMEOUT_MS = 5_000;

/** Outbound job data: the message to deliver (its conversation's reference is read at delivery time). */
export interface OutboundJob {
  message: UnifiedMessage;
  /** Attempts made before the job was queued (the first one happens inside the inbound job). */
  priorAttempts?: number;
  /** The first attempt failed for good with this: the job only records it in the dead-letter view. */
  failure?: string;
}

/** An outbound job about to be queued, optionally held back for `delayMs`. */
type QueuedOutbound = OutboundJob & { delayMs?: number };

/** What one delivery attempt came to. */
type Attempt =
  | { outcome: 'delivered' }
  | { outcome: 'blocked'; reason: string }
  | { outcome: 'wait'; ms: number }
  | { outcome: 'failed'; error: Error; retryable: boolean; code?: number | string; reason?: DeliveryFailureReason };

const failureText = (attempt: Extract<Attempt, { outcome: 'failed' }>): string =>
  `${attempt.error.message}${attempt.code === undefined ? '' : ` (code ${attempt.code})`}`;

export interface PipelineDeps {
  config: PipelineConfig;
  prefix: string;
  redis: RedisClient;
  /** The connection BullMQ's queues (producers) use; it carries BullMQ's scripts, which the command client should not. */
  queueRedis: RedisClient;
  /** Opens a new Redis connection (each shard's workers get their own). */
  connect: () => RedisClient;
  processId: string;
  log: Logger;
  adapters: ReadonlyMap<string, ChannelAdapter>;
  bot: Bot;
  conversations: ConversationStore;
  transcripts: Transcripts;
  /** Where a channel's live fan-out goes (SendResult.live), written with the delivery's own record. */
  live: Pick<LiveHub, 'entry'>;
  events: GatewayEvents;
  metrics: Metrics;
  hooks: OutboundHooks;
}

export class Pipeline {
  private readonly queues = new Map<string, Queue>();
  private readonly workers = new Map<number, { workers: Worker[]; connection: RedisClient }>();
  private leases: ShardLeases | undefined;
  private draining = false;
  /** Channels whose platform or send quota asked to wait: first delivery attempts queue until then. */
  private readonly channelPausedUntil = new Map<string, number>();

  private readonly batcher: IngestBatcher;
  /** Per conversation, the entries of the running inbound job not handled yet (the first one is being handled). */
  private readonly inProgress = new Map<string, InboundEntry[]>();

  constructor(private readonly deps: PipelineDeps) {
    const { config } = deps;
    this.batcher = new IngestBatcher({
      redis: deps.redis,
      queueAt: (shard) => this.queueAt('in', shard),
      jobOptions: {
        // A bot failure (model crash, Redis blip) is retried; when attempts run out the job is dead-lettered visibly.
        attempts: config.inboundAttempts,
        backoff: { type: 'exponential', delay: config.deliveryBackoffMs },
      },
      dedupeWindowMs: config.dedupeWindowSeconds * 1000,
      maxBatch: config.ingestBatchMax,
      connect: () => {
        const connection = deps.connect();
        connection.on('error', (err: Error) => deps.log.error({ err: err.message }, 'redis connection error (ingest writes)'));
        return connection;
      },
    });
  }

  // ── 1. Ingest ────────────────────────────────────────────────────────────────────────────────────────────────
  /**
   * Dedupe and enqueue in one transaction (ingest-batcher.ts): the dedupe mark lives as long as the dedupe window,
   * even after the job is removed, so a platform retry days later is still recognised. Resolves only once the job is
   * in Redis (AOF), which is when the adapter may acknowledge.
   */
  async ingest(message: UnifiedMessage, reference: ReferenceInput): Promise<IngestResult> {
    const started = performance.now();
    const valid = UnifiedMessage.parse(message);
    const duplicateOf = await this.batcher.add(shardOf(valid.conversationId, this.deps.config.shards), { message: valid, reference });
    const duplicate = duplicateOf !== undefined;
    this.deps.metrics.messagesIn.inc({ channel: valid.channel, duplicate: String(duplicate) });
    this.deps.metrics.stageSeconds.observe({ stage: 'ingest' }, (performance.now() - started) / 1000);
    this.deps.log.debug({ msgId: valid.id, channel: valid.channel, duplicate }, duplicate ? 'duplicate dropped' : 'enqueued');
    return { messageId: duplicateOf ?? valid.id, duplicate };
  }

  // ── 2. Inbound stage ─────────────────────────────────────────────────────────────────────────────────────────
  /**
   * One job holds the messages one group commit wrote. Different conversations run in parallel; a conversation's
   * messages run in order, and after a failure its later messages wait for the job's retry. What succeeded is
   * recorded in the job, so a retry does not answer a message twice.
   */
  private async processInbound(job: Job<InboundJob>): Promise<void> {
    const data = asInboundJob(job.data);
    const done = new Set(data.done ?? []);
    const byConversation = new Map<string, InboundEntry[]>();
    for (const entry of data.entries) {
      if (done.has(entry.message.id)) continue;
      const list = byConversation.get(entry.message.conversationId);
      if (list) list.push(entry);
      else byConversation.set(entry.message.conversationId, [entry]);
    }
    const failures: Error[] = [];
    await Promise.all(
      [...byConversation].map(async ([conversationId, list]) => {
        this.inProgress.set(conversationId, list);
        try {
          while (list.length > 0) {
            await this.handleInboundWithRetries(list[0]!);
            done.add(list.shift()!.message.id);
          }
        } catch (err) {
          failures.push(err as Error);
        } finally {
          this.inProgress.delete(conversationId);
        }
      }),
    );
    if (failures.length > 0) {
      // What this attempt finished, for the retry. `done` goes first: ingest only joins new messages to a job whose
      // data still starts with its entries (ingest-batcher.ts), so a job rewritten here is never joined again.
      await job.updateData({ done: [...done], entries: data.entries });
      throw failures[0];
    }
  }

  /**
   * A failing message is tried again right here, while its job holds the shard: BullMQ would set the job aside for its
   * backoff and run the next one, whose later messages of the same conversation would then be answered first. The
   * shard waits (at most the backoffs of `inboundAttempts`) — failures are rare (a model crash, Redis gone) and order
   * is what the customer sees. When the attempts run out the job fails for good and shows in the dead-letter view. On
   * shutdown the job is left to BullMQ's retry instead of waiting.
   */
  private async handleInboundWithRetries(entry: InboundEntry): Promise<void> {
    const { inboundAttempts, deliveryBackoffMs } = this.deps.config;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.handleInbound(entry);
      } catch (err) {
        if (err instanceof UnrecoverableError || this.draining) throw err;
        const { id, conversationId } = entry.message;
        if (attempt >= inboundAttempts) {
          throw new UnrecoverableError(`${(err as Error).message} (after ${attempt} attempts)`);
        }
        const delayMs = deliveryBackoffMs * 2 ** (attempt - 1);
        this.deps.log.warn({ err, msgId: id, conv: conversationId, attempt, delayMs }, 'inbound message failed; trying again');
        this.deps.metrics.failures.inc({ stage: 'inbound', reason: 'retry' });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  /**
   * The customer's messages not handled yet: in this process's running job (the one being handled first) and in
   * the conversation's queue. The bot's burst window looks here for a message typed right after the current one.
   */
  async pendingInbound(conversationId: string): Promise<UnifiedMessage[]> {
    const running = this.inProgress.get(conversationId)?.map((e) => e.message) ?? [];
    const jobs: Job<InboundJob>[] = (await this.queue('in', conversationId).getWaiting(0, 200)).filter(Boolean);
    const waiting = jobs
      .flatMap((job) => (job.data ? asInboundJob(job.data).entries : []))
      .map((e) => e.message)
      .filter((m) => m.conversationId === conversationId);
    return [...running, ...waiting];
  }

  private async handleInbound(entry: InboundEntry): Promise<void> {
    const started = performance.now();
    const message = queuedMessage(entry.message);
    const log = new MessageLog(this.deps.log, { msgId: message.id, conv: message.conversationId, channel: message.channel });
    const { conversations, transcripts, events, bot, metrics } = this.deps;

    const reference: ConversationReference = {
      ...entry.reference,
      conversationId: message.conversationId,
      channel: message.channel,
      channelType: message.channelType,
      updatedAt: Date.now(),
    };
    // The bot's model run starts now, shared by the job's messages (their receive() calls share a round trip too),
    // and is dropped unless the bot runs. receive() also reads what the bot saved for the conversation.
    const prepared = bot.prepare?.(message);
    prepared?.catch(() => undefined);
    const conversation = await conversations.receive(reference, message, this.deps.config.dedupeWindowSeconds * 1000, transcripts.entry(message));
    if (conversation.duplicateOf !== undefined) {
      // Ingest wrote a platform retry into the job (a group commit cannot branch); the first copy is, or was, answered.
      log.debug({ duplicateOf: conversation.duplicateOf }, 'duplicate dropped');
      return;
    }
    if (conversation.answered === message.id) {
      // An earlier attempt answered this message and failed after: finish what it left, never answer twice.
      log.info({ handoffDue: conversation.handoffDue !== undefined }, 'message already answered by an earlier attempt');
      if (conversation.handoffDue !== undefined) await this.handOff(message, JSON.parse(conversation.handoffDue) as HandoffRequest, log);
      return;
    }

    // The gateway owns the state: a conversation with (or waiting for) a human never gets a bot reply. The helpdesk
    // must get the message: the job waits until the event is stored for its webhooks, and fails (to be tried again)
    // when it cannot be.
    if (conversation.state !== 'bot') {
      log.info({ state: conversation.state }, 'customer message forwarded to the helpdesk, bot skipped');
      await events.emitAndWait('message.created', { conversationId: message.conversationId, message });
      return;
    }

    const botStarted = performance.now();
    const decision = await bot.decide({
      message,
      conversation: { id: message.conversationId, turns: conversation.turns, reference },
      ...(conversation.botState !== undefined && { state: conversation.botState }),
      ...(prepared && { prepared }),
    });
    metrics.stageSeconds.observe({ stage: 'bot' }, (performance.now() - botStarted) / 1000);
    log.info({ trace: decision.trace, replies: decision.replies.length, handoff: decision.handoff?.reason }, 'bot decided');

    const botSender: Sender = { id: 'bot', role: 'bot' };
    const replies = decision.replies.map((content) => replyMessage(message, content, botSender, decision.trace));
    // The turn (answered, the bot's state, a hand-off still to make) is recorded with the first delivered reply (one
    // script), or now if none went out.
    let turn: Turn | undefined = { answered: message.id, botState: decision.state, handoffDue: decision.handoff && JSON.stringify(decision.handoff) };
    const takeTurn = () => {
      const taken = turn;
      turn = undefined;
      return taken;
    };
    await this.deliverReplies(replies, reference, conversation.queuedOutbound > 0, log, takeTurn);
    const unrecorded = takeTurn();
    if (unrecorded) await this.saveTurn(message.conversationId, unrecorded, log);

    if (decision.handoff) await this.handOff(message, decision.handoff, log);
    metrics.stageSeconds.observe({ stage: 'inbound' }, (performance.now() - started) / 1000);
  }

  /**
   * Records the bot's turn after it decided. Its replies may already be out, so a failure here is logged, not thrown:
   * a retry of the job would answer the customer a second time.
   */
  private async saveTurn(conversationId: string, turn: Turn, log: MessageLog): Promise<void> {
    try {
      await this.deps.conversations.saveTurn(conversationId, turn);
    } catch (err) {
      log.error({ err }, 'bot turn not recorded');
      this.deps.metrics.failures.inc({ stage: 'bot', reason: 'state_write' });
    }
  }

  /**
   * The hand-off the bot asked for: the conversation moves to `handoff_pending` and the helpdesk is told. The job
   * waits until the events are stored for their webhooks; if anything fails, the job's next attempt finds the message
   * answered with the hand-off still due (saveTurn) and comes back here — the state is then already changed.
   */
  private async handOff(message: UnifiedMessage, request: HandoffRequest, log: MessageLog): Promise<void> {
    const { conversations, events } = this.deps;
    const { conversationId } = message;
    let change: StateChange | undefined;
    try {
      change = await conversations.transition(conversationId, 'handoff_pending', 'bot', request.reason, ['bot']);
    } catch (err) {
      if (!(err instanceof TransitionError)) throw err;
      // `handoff_pending`: an earlier attempt made the change and failed after it. Anything else — an agent took the
      // conversation, it was closed — leaves it as it is.
      if (err.from !== 'handoff_pending') {
        log.info({ state: err.from }, 'hand-off not made: the conversation moved meanwhile');
        return conversations.handoffMade(conversationId);
      }
      // Its state_changed event may not have been stored: tell it again from the history (at least once).
      const last = (await conversations.history(conversationId)).at(-1);
      if (last?.to === 'handoff_pending' && last.by === 'bot') change = last;
    }
    if (change) {
      log.info({ change, team: request.team, priority: request.priority }, 'hand-off requested');
      await events.emitAndWait('conversation.state_changed', { conversationId, change });
    }
    await events.emitAndWait('conversation.handoff_requested', { conversationId, request, message });
    await conversations.handoffMade(conversationId);
  }

  // ── 3. Anyone (bot, agent, timeout) sends to a conversation through its reference ──────────────────────────────
  /**
   * Queues a message to the customer of `conversationId` on the channel they used; returns the message. A closed
   * conversation gets nothing (ConversationClosedError): checked atomically with the queueing, so a close that lands
   * while an agent's reply is on its way either comes first and refuses it, or comes after it was accepted.
   */
  async sendToConversation(
    conversationId: string,
    content: Content,
    sender: Sender,
    opts: { replyTo?: string; metadata?: Record<string, string | number | boolean> } = {},
  ): Promise<UnifiedMessage> {
    const reference = await this.deps.conversations.reference(conversationId);
    if (!reference) throw new UnknownConversationError(conversationId);
    const message = createMessage({
      channel: reference.channel,
      channelType: reference.channelType,
      direction: 'out',
      conversationId,
      sender,
      content,
      ...(opts.replyTo !== undefined && { replyTo: opts.replyTo }),
      metadata: opts.metadata ?? {},
    });
    await this.enqueueOutbound([{ message }], { ifOpen: true });
    return message;
  }

  /**
   * Queues outbound messages of one conversation, in order. The conversation is marked first, so no first delivery
   * attempt of a later reply overtakes them (see deliverReplies); with `ifOpen`, only while it is not closed.
   */
  private async enqueueOutbound(entries: QueuedOutbound[], opts: { ifOpen?: boolean } = {}): Promise<void> {
    if (entries.length === 0) return;
    const { deliveryAttempts, deliveryBackoffMs } = this.deps.config;
    const conversationId = entries[0]!.message.conversationId;
    if (!(await this.deps.conversations.markOutboundQueued(conversationId, entries.map((e) => e.message.id), opts))) {
      throw new ConversationClosedError(conversationId);
    }
    // All share a conversation, hence a shard: one addBulk keeps their order.
    await this.queue('out', conversationId).addBulk(
      entries.map(({ delayMs, ...data }) => ({
        name: 'deliver',
        data: data satisfies OutboundJob,
        opts: {
          jobId: data.message.id,
          attempts: data.failure !== undefined ? 1 : Math.max(1, deliveryAttempts - (data.priorAttempts ?? 0)),
          backoff: { type: 'exponential', delay: deliveryBackoffMs },
          ...(delayMs !== undefined && { delay: delayMs }),
        },
      })),
    );
  }

  /**
   * The bot's replies get their first delivery attempt right here, inside the inbound job: one queue job per message
   * instead of two. Whatever does not go out at once — a failure, a rate limit, a block — and everything after it
   * goes to the outbound queue, whose stage retries, waits and dead-letters. Replies queue directly while the
   * conversation already has messages waiting there, so they keep their order.
   */
  private async deliverReplies(
    replies: UnifiedMessage[],
    reference: ConversationReference,
    queuedBefore: boolean,
    log: MessageLog,
    takeTurn: () => Turn | undefined,
  ): Promise<void> {
    for (let i = 0; i < replies.length; i++) {
      const message = replies[i]!;
      const paused = (this.channelPausedUntil.get(message.channel) ?? 0) > Date.now();
      const queued = queuedBefore || paused ? { message } : await this.firstAttempt(message, reference, log.with({ replyId: message.id }), takeTurn);
      if (queued === undefined) continue;
      return this.enqueueOutbound([queued, ...replies.slice(i + 1).map((m) => ({ message: m }))]);
    }
  }

  /** Tries to deliver at once; undefined when delivered, else the outbound job that takes the message on. */
  private async firstAttempt(
    message: UnifiedMessage,
    reference: ConversationReference,
    log: MessageLog,
    takeTurn: () => Turn | undefined,
  ): Promise<QueuedOutbound | undefined> {
    const attempt = await this.attemptDelivery(message, reference, 1, log, takeTurn);
    switch (attempt.outcome) {
      case 'delivered':
        return undefined;
      case 'wait':
        // The whole channel waits, not only this conversation: later first attempts queue until the pause ends.
        this.channelPausedUntil.set(message.channel, Date.now() + attempt.ms);
        return { message, delayMs: attempt.ms };
      case 'blocked':
        this.emitDeliveryFailed(message, { error: `blocked by ${attempt.reason}` });
        return { message, failure: `blocked by ${attempt.reason}` };
      case 'failed': {
        const final = !attempt.retryable || this.deps.config.deliveryAttempts <= 1;
        this.deps.metrics.messagesOut.inc({ channel: message.channel, result: final ? 'failed' : 'retry' });
        if (!final) return { message, priorAttempts: 1, delayMs: this.deps.config.deliveryBackoffMs };
        this.emitAttemptFailed(message, attempt);
        // Queued as an already-failed job, so it shows (and can be replayed) in the dead-letter view.
        return { message, failure: failureText(attempt) };
      }
    }
  }

  // ── 4. Outbound stage ────────────────────────────────────────────────────────────────────────────────────────
  private async processOutbound(job: Job<OutboundJob>, worker: Worker, token: string | undefined): Promise<void> {
    const message = UnifiedMessage.parse(job.data.message);
    // A failure already recorded by the first attempt: fail the job with it (a replay clears it first).
    if (job.data.failure !== undefined) throw new UnrecoverableError(job.data.failure);
    const log = new MessageLog(this.deps.log, { msgId: message.id, conv: message.conversationId, channel: message.channel });
    if (!(await this.isFirstInLine(message.conversationId, job.id!, log))) {
      // An earlier message of this conversation is still waiting for a retry: go after it, without using an attempt.
      await job.moveToDelayed(Date.now() + this.deps.config.deliveryBackoffMs, token);
      throw new DelayedError();
    }
    const reference = await this.deps.conversations.reference(message.conversationId);
    if (!reference) {
      const error = `conversation ${message.conversationId} has no reference (expired or deleted)`;
      this.emitDeliveryFailed(message, { error });
      throw new UnrecoverableError(error);
    }

    const attempt = await this.attemptDelivery(message, reference, (job.data.priorAttempts ?? 0) + job.attemptsMade + 1, log);
    switch (attempt.outcome) {
      case 'delivered':
        await this.deps.conversations.markOutboundDone(message.conversationId, job.id!);
        return;
      case 'blocked':
        this.emitDeliveryFailed(message, { error: `blocked by ${attempt.reason}` });
        throw new UnrecoverableError(`blocked by ${attempt.reason}`);
      case 'wait':
        // Pause this shard's consumer; the job runs again without using an attempt.
        await worker.rateLimit(attempt.ms);
        throw Worker.RateLimitError();
      case 'failed': {
        const final = !attempt.retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        this.deps.metrics.messagesOut.inc({ channel: message.channel, result: final ? 'failed' : 'retry' });
        if (final) this.emitAttemptFailed(message, attempt);
        if (!attempt.retryable) throw new UnrecoverableError(failureText(attempt));
        throw attempt.error;
      }
    }
  }

  /**
   * Whether `jobId` is the conversation's oldest queued outbound job. BullMQ moves a failed job aside for its backoff
   * and runs the next one; this keeps a conversation's messages in order across retries. A head that no longer
   * waits in the queue (removed by hand) is dropped from the line.
   */
  private async isFirstInLine(conversationId: string, jobId: string, log: MessageLog): Promise<boolean> {
    const { conversations } = this.deps;
    for (;;) {
      const head = await conversations.outboundHead(conversationId);
      if (head === undefined || head === jobId) return true;
      const state = await this.queue('out', conversationId).getJobState(head);
      if (state !== 'unknown' && state !== 'completed' && state !== 'failed') return false;
      log.debug({ head, state }, 'stale outbound marker dropped');
      await conversations.markOutboundDone(conversationId, head);
    }
  }

  /**
   * One delivery attempt through the outbound hooks and the adapter; logs (to a logger that names the message) and
   * counts it, never throws. Once the platform has the message, its record — transcript line, live fan-out when the
   * channel asks for one, and the bot turn `takeTurn` hands over (a turn's first delivered reply) — is written in one
   * script, beside the after-send hooks.
   */
  private async attemptDelivery(
    message: UnifiedMessage,
    reference: ConversationReference,
    attempt: number,
    log: MessageLog,
    takeTurn?: () => Turn | undefined,
  ): Promise<Attempt> {
    const started = performance.now();
    const { metrics, hooks, events } = this.deps;
    const adapter = this.deps.adapters.get(message.channel);
    if (!adapter) return { outcome: 'failed', error: new Error(`channel ${message.channel} is not configured any more`), retryable: false };

    const checked = await hooks.before(message, reference);
    if ('blocked' in checked) {
      metrics.messagesOut.inc({ channel: message.channel, result: 'blocked' });
      log.warn({ reason: checked.blocked }, 'outbound message blocked');
      return { outcome: 'blocked', reason: checked.blocked };
    }
    if ('retryAfterMs' in checked) {
      metrics.messagesOut.inc({ channel: message.channel, result: 'rate_limited' });
      log.debug({ reason: checked.reason, retryAfterMs: checked.retryAfterMs }, 'outbound message waits for the rate limit');
      return { outcome: 'wait', ms: checked.retryAfterMs };
    }
    // Rasa's OutputChannel idea: what the channel cannot send natively goes out as text.
    const toSend = renderForChannel(checked.message, adapter.capabilities);
    let result: SendResult;
    try {
      result = await adapter.send(toSend, reference);
    } catch (err) {
      const code = err instanceof DeliveryError ? err.code : undefined;
      log.warn({ err, attempt, code }, 'delivery failed');
      metrics.failures.inc({ stage: 'deliver', reason: code === undefined ? 'error' : String(code) });
      if (err instanceof DeliveryError && err.rateLimitMs !== undefined) {
        // The platform said "slow down": the delivery waits, without using an attempt.
        metrics.messagesOut.inc({ channel: message.channel, result: 'rate_limited' });
        return { outcome: 'wait', ms: err.rateLimitMs };
      }
      return {
        outcome: 'failed',
        error: err as Error,
        retryable: !(err instanceof DeliveryError && !err.retryable),
        ...(code !== undefined && { code }),
        ...(err instanceof DeliveryError && err.reason !== undefined && { reason: err.reason }),
      };
    }
    // Delivered: from here on nothing may send the message again, so a failing record or after-send hook is only
    // logged.
    const turn = takeTurn?.();
    const recorded = this.deps.conversations.delivered(
      message.conversationId,
      this.deps.transcripts.entry(toSend),
      result.live ? this.deps.live.entry(toSend) : undefined,
      turn,
    );
    try {
      await Promise.all([recorded, hooks.after(toSend, reference, result)]);
    } catch (err) {
      log.error({ err, turnLost: turn !== undefined }, 'after-send work failed (the message was delivered)');
      metrics.failures.inc({ stage: 'deliver', reason: 'after_send_hook' });
      if (turn) metrics.failures.inc({ stage: 'bot', reason: 'state_write' });
    }
    metrics.messagesOut.inc({ channel: message.channel, result: 'delivered' });
    metrics.stageSeconds.observe({ stage: 'deliver' }, (performance.now() - started) / 1000);
    metrics.stageSeconds.observe({ stage: 'end_to_end' }, (Date.now() - message.receivedAt) / 1000);
    log.info({ attempt, channelMessageId: result.channelMessageId }, 'delivered');
    events.emit('message.delivered', {
      conversationId: message.conversationId,
      message: toSend,
      ...(result.channelMessageId !== undefined && { channelMessageId: result.channelMessageId }),
    });
    return { outcome: 'delivered' };
  }

  /** A message that will not be delivered: whoever sent it (an agent, through the API's status) must learn it. */
  private emitDeliveryFailed(message: UnifiedMessage, failure: { error: string; code?: string | number; reason?: DeliveryFailureReason }): void {
    this.deps.events.emit('message.delivery_failed', {
      conversationId: message.conversationId,
      message,
      error: failure.error,
      ...(failure.code !== undefined && { code: failure.code }),
      ...(failure.reason !== undefined && { reason: failure.reason }),
      final: true,
    });
  }

  private emitAttemptFailed(message: UnifiedMessage, attempt: Extract<Attempt, { outcome: 'failed' }>): void {
    this.emitDeliveryFailed(message, {
      error: attempt.error.message,
      ...(attempt.code !== undefined && { code: attempt.code }),
      ...(attempt.reason !== undefined && { reason: attempt.reason }),
    });
  }

  // ── Queues and consumers ─────────────────────────────────────────────────────────────────────────────────────
  queue(stage: Stage, conversationId: string): Queue {
    return this.queueAt(stage, shardOf(conversationId, this.deps.config.shards));
  }

  queueAt(stage: Stage, shard: number): Queue {
    const name = queueName(stage, shard);
    let queue = this.queues.get(name);
    if (!queue) {
      const { keepCompleted, keepFailed } = this.deps.config;
      queue = new Queue(name, {
        connection: this.deps.queueRedis,
        prefix: this.deps.prefix,
        defaultJobOptions: { removeOnComplete: { count: keepCompleted }, removeOnFail: { count: keepFailed } },
      });
      this.queues.set(name, queue);
    }
    return queue;
  }

  allQueues(): Queue[] {
    const queues: Queue[] = [];
    for (const stage of ['in', 'out'] as const) for (let i = 0; i < this.deps.config.shards; i++) queues.push(this.queueAt(stage, i));
    return queues;
  }

  /** Start consuming: claims shards through leases and runs one worker per stage for each owned shard. */
  async startWorkers(): Promise<void> {
    // Refuses a lowered shard count while the queues it would abandon still hold jobs (shard-count.ts).
    await claimShardCount(this.deps.redis, this.deps.prefix, this.deps.config.shards, (stage, shard) =>
      this.queueAt(stage, shard).getJobCountByTypes('wait', 'active', 'delayed', 'prioritized', 'waiting-children'),
    );
    this.leases = new ShardLeases({
      redis: this.deps.redis,
      prefix: this.deps.prefix,
      shards: this.deps.config.shards,
      processId: this.deps.processId,
      log: this.deps.log,
      acquire: async (shard) => this.startShard(shard),
      release: async (shard) => this.stopShard(shard, this.draining),
    });
    await this.leases.start();
  }

  /** The connection ingest writes its transactions on (ingest-batcher.ts), once a message was ingested. */
  ingestConnection(): Promise<RedisClient | undefined> {
    return this.batcher.writeConnection();
  }

  get ownedShards(): number[] {
    return this.leases?.ownedShards ?? [];
  }

  private startShard(shard: number): void {
    const { prefix, config, log } = this.deps;
    // BullMQ duplicates this connection for its blocking reads; we own it and close it with the shard.
    const connection = this.deps.connect();
    // Concurrency 1 is what keeps a conversation's messages in order: BullMQ's worker may start concurrently fetched
    // jobs in a different order than Redis popped them. Parallelism comes from the number of shards instead.
    const common = { connection: connection as never, prefix, concurrency: 1, autorun: true };
    const inbound = new Worker<InboundJob>(queueName('in', shard), async (job) => this.processInbound(job), common);
    const outbound: Worker<OutboundJob> = new Worker<OutboundJob>(
      queueName('out', shard),
      async (job, token) => this.processOutbound(job, outbound, token),
      common,
    );
    for (const [stage, worker] of [['inbound', inbound], ['outbound', outbound]] as const) {
      worker.on('failed', (job, err) => {
        if (!job) return;
        const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
        if (final) log.error({ msgId: job.id, queue: worker.name, err }, `${stage} job dead-lettered`);
        const outboundMessage = stage === 'outbound' ? (job as Job<OutboundJob>).data?.message : undefined;
        if (final && outboundMessage) {
          const conversationId = outboundMessage.conversationId;
          this.deps.conversations.markOutboundDone(conversationId, job.id!).catch((e) => log.warn({ err: e }, 'outbound marker not cleared'));
        }
        // Nobody may be left waiting silently: the hand-off layer turns this into a visible hand-off to a human.
        if (final && stage === 'inbound' && job.data) {
          const { entries, done = [] } = asInboundJob((job as Job<InboundJob>).data);
          for (const { message } of entries.filter((e) => !done.includes(e.message.id))) {
            this.deps.events.emit('message.processing_failed', { conversationId: message.conversationId, message, error: err.message });
          }
        }
        this.deps.metrics.failures.inc({ stage, reason: final ? 'dead_letter' : 'retry' });
      });
      worker.on('error', (err) => log.error({ err, queue: worker.name }, 'worker error'));
    }
    this.workers.set(shard, { workers: [inbound, outbound], connection });
    log.debug({ shard }, 'shard consumer started');
  }

  /**
   * Stops a shard's consumers. close() waits for in-flight jobs, so a shard is never consumed twice at once. The
   * inbound worker goes first; on shutdown (`drain`) the outbound worker then delivers the replies those last
   * inbound jobs produced (bounded), so a customer whose message was being answered still gets the answer.
   */
  private async stopShard(shard: number, drain = false): Promise<void> {
    const entry = this.workers.get(shard);
    if (!entry) return;
    this.workers.delete(shard);
    const [inbound, outbound] = entry.workers;
    await inbound?.close();
    if (drain) {
      const queue = this.queueAt('out', shard);
      const deadline = Date.now() + DRAIN_TIMEOUT_MS;
      while (Date.now() < deadline && (await queue.getJobCountByTypes('waiting', 'active', 'prioritized')) > 0) {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await outbound?.close();
    entry.connection.disconnect();
  }

  /** Stops consuming (draining in-flight jobs) and closes producers. */
  async close(): Promise<void> {
    this.draining = true;
    await this.leases?.stop();
    await Promise.all([...this.workers.keys()].map((s) => this.stopShard(s, true)));
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    await this.batcher.close();
  }
}

/**
 * A message of an inbound job. Ingest validated it against this same schema before queueing it, so the stage checks
 * only the schema version (a full parse per message would repeat ingest's work); a job written by a gateway of
 * another version is refused for good and shows in the dead-letter view.
 */
function queuedMessage(message: UnifiedMessage): UnifiedMessage {
  if (message?.schemaVersion !== SCHEMA_VERSION) {
    throw new UnrecoverableError(`queued message has schemaVersion ${String(message?.schemaVersion)}; this gateway reads ${SCHEMA_VERSION}`);
  }
  return message;
}

export class UnknownConversationError extends Error {
  constructor(readonly conversationId: string) {
    super(`unknown conversation ${conversationId}`);
    this.name = 'UnknownConversationError';
  }
}

export class ConversationClosedError extends Error {
  constructor(readonly conversationId: string) {
    super(`conversation ${conversationId} is closed (or gone)`);
    this.name = 'ConversationClosedError';
  }
}

/** Keeps content the channel can send; turns anything else into its text rendering. */
export function renderForChannel(message: UnifiedMessage, capabilities: ReadonlySet<Content['type']>): UnifiedMessage {
  if (capabilities.has(message.content.type)) return message;
  return { ...message, content: { type: 'text', text: contentAsText(message.content) } };
}
