/**
 * The hand-off lifecycle around the conversation state machine: every transition made here is recorded (who, why,
 * when — in conversations.ts) and announced as `conversation.state_changed`; hand-off details (team, priority,
 * reason, agent) are kept next to the conversation; agent replies go out through the pipeline to the customer's
 * own channel; and three things happen on their own:
 *   - no agent picks up within `pickupTimeoutSeconds` → the configured message to the customer and
 *     `conversation.pickup_timeout` (a delayed BullMQ job per hand-off);
 *   - no activity for `idleCloseSeconds` → the conversation is closed (a repeating BullMQ sweep over the activity
 *     index, resuming from where the previous sweep stopped, so each run only reads what newly went idle);
 *   - the bot fails for good on a message (the inbound job's retries ran out) → the customer is handed to a human,
 *     visibly (an error log line and `conversation.handoff_requested` with reason "bot_failed").
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { RedisClient } from '../../adapters/types.js';
import type { HandoffPriority, HandoffRequest } from '../../bot/types.js';
import { TransitionError, type ConversationState, type ConversationStore, type StateChange } from '../conversations.js';
import type { GatewayEvents } from '../events.js';
import type { Logger } from '../logger.js';
import { createMessage, type Content, type UnifiedMessage } from '../message.js';
import { ConversationClosedError, type Pipeline } from '../pipeline.js';
import type { Transcripts } from '../transcript.js';
import type { HandoffConfig } from './config.js';

export interface HandoffInfo {
  reason?: string;
  team?: string;
  priority?: HandoffPriority;
  requestedAt?: number;
  requestedBy?: string;
  agent?: string;
}

export type MessageStatus =
  | { status: 'queued'; at: number }
  | { status: 'delivered'; at: number; channelMessageId?: string }
  | { status: 'failed'; at: number; error: string; code?: string | number };

export class ConflictError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConflictError';
  }
}

const closedConflict = () => new ConflictError('conversation_closed', 'the conversation is closed; it reopens when the customer writes again');

interface PickupJob {
  conversationId: string;
  requestedAt: number;
}

export const HANDOFF_QUEUE = '{handoff}';

export interface HandoffDeps {
  config: HandoffConfig;
  redis: RedisClient;
  /** The connection BullMQ's queues (producers) use; it carries BullMQ's scripts, which the command client should not. */
  queueRedis: RedisClient;
  /** Opens a new Redis connection for a worker (closed with it). */
  connect: () => RedisClient;
  prefix: string;
  conversations: ConversationStore;
  transcripts: Transcripts;
  events: GatewayEvents;
  pipeline: Pipeline;
  log: Logger;
  /** How long message statuses are kept (the transcript retention). */
  retentionSeconds: number;
}

export class HandoffService {
  readonly queue: Queue;
  private worker: Worker | undefined;
  private connection: RedisClient | undefined;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly deps: HandoffDeps) {
    this.queue = new Queue(HANDOFF_QUEUE, {
      connection: deps.queueRedis,
      prefix: deps.prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: { count: 1000 } },
    });
    const { events } = deps;
    this.unsubscribe.push(
      // Returned, so whoever announces a hand-off with emitAndWait knows these are stored (or fails and can retry).
      events.on('conversation.handoff_requested', (e) => this.remember(e.conversationId, e.request).catch(this.logAndThrow('hand-off details not stored'))),
      events.on('conversation.state_changed', (e) => this.onStateChanged(e.conversationId, e.change).catch(this.logAndThrow('state change not handled'))),
      events.on('message.delivered', (e) => {
        if (e.message.sender.role === 'bot') return;
        void this.setStatus(e.message.id, { status: 'delivered', at: Date.now(), ...(e.channelMessageId !== undefined && { channelMessageId: e.channelMessageId }) });
      }),
      events.on('message.delivery_failed', (e) => {
        if (e.message.sender.role === 'bot' || !e.final) return;
        void this.setStatus(e.message.id, { status: 'failed', at: Date.now(), error: e.error, ...(e.code !== undefined && { code: e.code }) });
      }),
      events.on('message.processing_failed', (e) => void this.botFailed(e.message, e.error).catch(this.logError('bot-failure hand-off failed'))),
    );
  }

  private logError(what: string) {
    return (err: unknown) => this.deps.log.error({ err }, what);
  }

  private logAndThrow(what: string) {
    return (err: unknown): never => {
      this.deps.log.error({ err }, what);
      throw err;
    };
  }

  private infoKey(id: string) {
    return `${this.deps.prefix}:conv:{${id}}:handoff`;
  }
  private statusKey(messageId: string) {
    return `${this.deps.prefix}:msgstatus:${messageId}`;
  }

  // ── State changes ───────────────────────────────────────────────────────────────────────────────────────────
  /**
   * Moves a conversation, records who/why, counts it as activity and announces it: resolves once the announcement is
   * stored for the helpdesk's webhooks (and the pick-up timer set), and fails when it cannot be — the caller (an API
   * request) then answers an error instead of a change the helpdesk never hears of.
   */
  async transition(conversationId: string, to: ConversationState, by: string, reason: string, from?: readonly ConversationState[]): Promise<StateChange> {
    const change = await this.deps.conversations.transition(conversationId, to, by, reason, from);
    await this.announce(conversationId, change);
    return change;
  }

  private async announce(conversationId: string, change: StateChange): Promise<void> {
    await this.markActive(conversationId);
    this.deps.log.info({ conv: conversationId, change }, 'conversation state changed');
    await this.deps.events.emitAndWait('conversation.state_changed', { conversationId, change });
  }

  private async markActive(conversationId: string): Promise<void> {
    await this.deps.conversations.touch(conversationId, Date.now());
  }

  /**
   * A hand-off asked for over the API, as opposed to one decided by the bot. Resolves once the helpdesk's events are
   * stored. The same request again (same caller, same reason) after one that failed half-way — state changed, events
   * not stored — finds the hand-off made and tells it again instead of answering a conflict: at least once.
   */
  async requestHandoff(conversationId: string, request: HandoffRequest, by: string): Promise<StateChange> {
    let change: StateChange;
    try {
      change = await this.deps.conversations.transition(conversationId, 'handoff_pending', by, request.reason, ['bot', 'closed']);
    } catch (err) {
      const last = err instanceof TransitionError && err.from === 'handoff_pending' ? (await this.deps.conversations.history(conversationId)).at(-1) : undefined;
      if (last?.to !== 'handoff_pending' || last.by !== by || last.reason !== request.reason) throw err;
      change = last;
    }
    await this.announce(conversationId, change);
    const message = (await this.lastInbound(conversationId)) ?? (await this.syntheticEvent(conversationId, 'handoff_requested'));
    await this.deps.events.emitAndWait('conversation.handoff_requested', { conversationId, request, message });
    return change;
  }

  private async remember(conversationId: string, request: HandoffRequest): Promise<void> {
    const info: Record<string, string> = { reason: request.reason, requestedAt: String(Date.now()) };
    if (request.team !== undefined) info.team = request.team;
    if (request.priority !== undefined) info.priority = request.priority;
    const key = this.infoKey(conversationId);
    await this.deps.redis.del(key);
    await this.deps.redis.hset(key, info);
    await this.deps.redis.expire(key, this.deps.retentionSeconds);
  }

  async info(conversationId: string): Promise<HandoffInfo> {
    const h = await this.deps.redis.hgetall(this.infoKey(conversationId));
    return {
      ...(h.reason && { reason: h.reason }),
      ...(h.team && { team: h.team }),
      ...(h.priority && { priority: h.priority as HandoffPriority }),
      ...(h.requestedAt && { requestedAt: Number(h.requestedAt) }),
      ...(h.agent && { agent: h.agent }),
    };
  }

  private async onStateChanged(conversationId: string, change: StateChange): Promise<void> {
    if (change.to === 'handoff_pending') {
      await this.queue.add('pickup', { conversationId, requestedAt: change.at } satisfies PickupJob, {
        delay: Math.round(this.deps.config.pickupTimeoutSeconds * 1000),
        jobId: `pickup.${conversationId}.${change.at}`,
      });
    }
  }

  // ── Agent replies ───────────────────────────────────────────────────────────────────────────────────────────
  /**
   * An agent's reply: picks the conversation up (handoff_pending or bot → agent) and queues the message to the
   * customer's original channel. Replying to a closed conversation is refused — the customer has to write again.
   */
  async agentReply(conversationId: string, content: Content, agent: { id: string; name?: string }, by: string): Promise<UnifiedMessage> {
    await this.pickUp(conversationId, by);
    if (agent.name !== undefined) await this.rememberAgent(conversationId, agent.name);
    let message: UnifiedMessage;
    try {
      message = await this.deps.pipeline.sendToConversation(
        conversationId,
        content,
        { id: agent.id, ...(agent.name !== undefined && { name: agent.name }), role: 'agent' },
        { metadata: { ...(agent.name !== undefined && { agent: agent.name }) } },
      );
    } catch (err) {
      // Closed after the pick-up (an idle sweep, another agent's close): refused like a reply to a closed one.
      if (err instanceof ConversationClosedError) throw closedConflict();
      throw err;
    }
    await this.setStatus(message.id, { status: 'queued', at: Date.now() });
    await this.markActive(conversationId);
    return message;
  }

  /**
   * Moves the conversation to "agent" in one step from whatever state it is in — read and written atomically, so a
   * close or hand-back landing at the same moment is seen here rather than overwritten or ignored.
   */
  private async pickUp(conversationId: string, by: string): Promise<void> {
    try {
      await this.transition(conversationId, 'agent', by, 'agent replied', ['bot', 'handoff_pending']);
    } catch (err) {
      if (!(err instanceof TransitionError)) throw err;
      if (err.from === 'agent') return; // already with an agent: nothing to change
      if (err.from === null) throw new ConflictError('unknown_conversation', `no conversation ${conversationId}`);
      throw closedConflict();
    }
  }

  /** The agent's name, kept as long as the rest of the hand-off details even when no hand-off stored them. */
  private async rememberAgent(conversationId: string, name: string): Promise<void> {
    const key = this.infoKey(conversationId);
    await this.deps.redis.multi().hset(key, 'agent', name).expire(key, this.deps.retentionSeconds).exec();
  }

  private async setStatus(messageId: string, status: MessageStatus): Promise<void> {
    // A delivered/failed status never goes back to "queued" (the events can race the API's own write).
    if (status.status === 'queued') await this.deps.redis.set(this.statusKey(messageId), JSON.stringify(status), 'EX', this.deps.retentionSeconds, 'NX');
    else await this.deps.redis.set(this.statusKey(messageId), JSON.stringify(status), 'EX', this.deps.retentionSeconds);
  }

  async messageStatus(messageId: string): Promise<MessageStatus | null> {
    const json = await this.deps.redis.get(this.statusKey(messageId));
    return json ? (JSON.parse(json) as MessageStatus) : null;
  }

  // ── Bot failure ─────────────────────────────────────────────────────────────────────────────────────────────
  private async botFailed(message: UnifiedMessage, error: string): Promise<void> {
    const state = await this.deps.conversations.state(message.conversationId);
    if (state !== 'bot') return; // already with (or waiting for) a human
    const request: HandoffRequest = { reason: 'bot_failed', priority: 'high' };
    const change = await this.transition(message.conversationId, 'handoff_pending', 'system', `bot failed: ${error}`, ['bot']);
    this.deps.log.error({ conv: message.conversationId, msgId: message.id, error, change }, 'bot failed on a customer message: handed to a human');
    await this.deps.events.emitAndWait('conversation.handoff_requested', { conversationId: message.conversationId, request, message });
  }

  // ── Timeouts ────────────────────────────────────────────────────────────────────────────────────────────────
  async start(): Promise<void> {
    this.connection = this.deps.connect();
    const connection = this.connection as never;
    this.worker = new Worker(HANDOFF_QUEUE, async (job: Job) => (job.name === 'pickup' ? this.pickupTimeout(job.data as PickupJob) : this.idleSweep()), {
      connection,
      prefix: this.deps.prefix,
      concurrency: 4,
    });
    this.worker.on('error', (err) => this.deps.log.error({ err }, 'hand-off worker error'));
    this.worker.on('failed', (job, err) => this.deps.log.error({ err, job: job?.name, jobId: job?.id }, 'hand-off job failed'));
    if (this.deps.config.idleCloseSeconds > 0) {
      await this.queue.upsertJobScheduler('idle-close-sweep', { every: Math.round(this.deps.config.idleSweepSeconds * 1000) }, { name: 'idle-sweep', data: {} });
    } else {
      await this.queue.removeJobScheduler('idle-close-sweep');
    }
  }

  async close(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) off();
    await this.worker?.close();
    this.connection?.disconnect();
    await this.queue.close();
  }

  private async pickupTimeout({ conversationId, requestedAt }: PickupJob): Promise<void> {
    const { conversations, config, log } = this.deps;
    if ((await conversations.state(conversationId)) !== 'handoff_pending') return; // picked up, handed back or closed
    const history = await conversations.history(conversationId);
    const latest = history.filter((h) => h.to === 'handoff_pending').at(-1);
    if (latest && latest.at !== requestedAt) return; // a newer hand-off has its own timer
    const waitedSeconds = Math.round((Date.now() - requestedAt) / 1000);
    try {
      await this.deps.pipeline.sendToConversation(conversationId, { type: 'text', text: config.pickupTimeoutMessage }, { id: 'system', role: 'system' }, {
        metadata: { reason: 'pickup_timeout' },
      });
    } catch (err) {
      if (err instanceof ConversationClosedError) return; // closed since the state was read: nothing is waiting any more
      throw err;
    }
    log.warn({ conv: conversationId, waitedSeconds, action: config.pickupTimeoutAction }, 'no agent picked up the hand-off in time');
    this.deps.events.emit('conversation.pickup_timeout', { conversationId, waitedSeconds, action: config.pickupTimeoutAction });
    if (config.pickupTimeoutAction === 'bot') await this.transition(conversationId, 'bot', 'timeout', 'no agent picked up', ['handoff_pending']);
    if (config.pickupTimeoutAction === 'close') await this.transition(conversationId, 'closed', 'timeout', 'no agent picked up', ['handoff_pending']);
  }

  /** Closes conversations whose last activity is older than idleCloseSeconds; returns how many it closed. */
  async idleSweep(now = Date.now()): Promise<number> {
    const { redis, conversations, config } = this.deps;
    const cursorKey = `${this.deps.prefix}:handoff:idle-cursor`;
    const cutoff = now - config.idleCloseSeconds * 1000;
    const from = (await redis.get(cursorKey)) ?? '-inf';
    const ids = await redis.zrangebyscore(conversations.indexKey, from === '-inf' ? from : `(${from}`, cutoff);
    let closed = 0;
    for (const id of ids) {
      const score = await redis.zscore(conversations.indexKey, id);
      if (score === null || Number(score) > cutoff) continue; // active again since the range was read
      const state = await conversations.state(id);
      if (state === null || state === 'closed') continue;
      try {
        await this.transition(id, 'closed', 'timeout', `idle for ${config.idleCloseSeconds} s`, [state]);
        closed++;
      } catch (err) {
        if (!(err instanceof Error && err.name === 'TransitionError')) throw err; // moved meanwhile: it is not idle
      }
    }
    await redis.set(cursorKey, String(cutoff));
    if (closed > 0) this.deps.log.info({ closed }, 'idle conversations closed');
    return closed;
  }

  // ── Helpers ─────────────────────────────────────────────────────────────────────────────────────────────────
  private async lastInbound(conversationId: string): Promise<UnifiedMessage | undefined> {
    const transcript = await this.deps.transcripts.list(conversationId, 50);
    return transcript.filter((m) => m.direction === 'in').at(-1);
  }

  private async syntheticEvent(conversationId: string, event: string): Promise<UnifiedMessage> {
    const reference = await this.deps.conversations.reference(conversationId);
    return createMessage({
      channel: reference?.channel ?? 'unknown',
      channelType: reference?.channelType ?? 'unknown',
      direction: 'in',
      conversationId,
      sender: { id: 'system', role: 'system' },
      content: { type: 'event', event },
    });
  }
}
