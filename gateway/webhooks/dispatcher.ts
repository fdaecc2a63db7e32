/**
 * Outbound webhooks as BullMQ jobs, in order per conversation and endpoint.
 *
 * Ordering design. BullMQ OSS has no job groups, and a retrying job moves to the delayed set, so a plain queue would
 * let a conversation's later events overtake an earlier one that is being retried. Instead each (endpoint,
 * conversation) pair has a FIFO "outbox" list in Redis, and only the delivery at its head ever has a job:
 *   - publishing appends to the outbox (Lua, atomic) and queues a job only if the delivery became the head;
 *   - a job that ends — delivered, or dead-lettered (rejected, 410, or retries exhausted after `retryForSeconds`) —
 *     pops itself off the outbox (Lua) and queues a job for the new head;
 *   - while the head is failing its job sits in BullMQ's delayed set (backoff + jitter, honouring Retry-After) and
 *     everything behind it waits in the list: a receiver that is down for an hour gets the backlog in order, once.
 * Different conversations and endpoints never block each other, and the queue can run with any concurrency and in
 * any number of processes. A periodic sweep re-queues the head of any outbox that lost its job (a crash between
 * "pop" and "queue next", a stalled job), and every job first checks its delivery's status, so a duplicate kick
 * never sends twice. Delivery is at-least-once; receivers dedupe on `webhook-id`.
 *
 * Sinks: built-in connectors (Chatwoot) plug in as endpoints whose "delivery" is an API call instead of a signed
 * POST; they get the same ordering, retries, delivery log and dead-letter replay.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { RedisClient } from '../../adapters/types.js';
import type { Logger } from '../logger.js';
import { newMessageId } from '../message.js';
import type { WebhookEventType, WebhooksConfig } from './config.js';
import type { WebhookEndpoints } from './endpoints.js';
import { attemptDelivery, backoffDelay, type AttemptOutcome } from './sender.js';
import { WebhookStore, type DeliveryRecord, type StoredEvent } from './store.js';

export interface WebhookSink {
  id: string;
  events: readonly WebhookEventType[];
  deliver(event: StoredEvent, envelope: WebhookEnvelope): Promise<AttemptOutcome>;
}

/** The JSON body of every webhook (Standard Webhooks' recommended shape). */
export interface WebhookEnvelope {
  type: WebhookEventType;
  timestamp: string;
  data: Record<string, unknown> & { conversationId: string };
}

interface DeliverJob {
  deliveryId: string;
}

class RetryLater extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
    this.name = 'RetryLater';
  }
}

export const WEBHOOK_QUEUE = '{webhooks}';

export interface DispatcherDeps {
  redis: RedisClient;
  /** The connection BullMQ's queues (producers) use; it carries BullMQ's scripts, which the command client should not. */
  queueRedis: RedisClient;
  /** Opens a new Redis connection for a worker (closed with it). */
  connect: () => RedisClient;
  prefix: string;
  config: WebhooksConfig;
  endpoints: WebhookEndpoints;
  store: WebhookStore;
  log: Logger;
}

export class WebhookDispatcher {
  readonly queue: Queue;
  private worker: Worker | undefined;
  private connection: RedisClient | undefined;
  private readonly sinks = new Map<string, WebhookSink>();
  /** Per conversation, publishing is chained so events enter the outboxes in the order they were emitted. */
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: DispatcherDeps) {
    this.queue = new Queue(WEBHOOK_QUEUE, {
      connection: deps.queueRedis,
      prefix: deps.prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
    });
  }

  addSink(sink: WebhookSink): void {
    this.sinks.set(sink.id, sink);
  }

  /**
   * Creates the event and queues it for every endpoint subscribed to its type; resolves once it is in Redis (null
   * when nobody subscribes). Rejects when it could not be stored — after logging it — so a caller that must not lose
   * the event can fail and try again; the conversation's later events do not wait on a failed one.
   */
  publish(type: WebhookEventType, conversationId: string, data: () => Promise<Record<string, unknown>> | Record<string, unknown>): Promise<StoredEvent | null> {
    const previous = this.chains.get(conversationId) ?? Promise.resolve();
    const run = previous.then(async () => {
      const endpoints = (await this.deps.endpoints.subscribedTo(type)).map((e) => e.id);
      for (const sink of this.sinks.values()) if (sink.events.includes(type)) endpoints.push(sink.id);
      if (endpoints.length === 0) return null;
      const createdAt = Date.now();
      const envelope: WebhookEnvelope = { type, timestamp: new Date(createdAt).toISOString(), data: { conversationId, ...(await data()) } };
      const event: StoredEvent = { id: `msg_${newMessageId()}`, type, conversationId, createdAt, body: JSON.stringify(envelope) };
      await this.deps.store.saveEvent(event);
      for (const endpointId of endpoints) {
        const { deliveryId, head } = await this.deps.store.enqueue(event, endpointId);
        if (head) await this.addJob(deliveryId, 0);
      }
      this.deps.log.debug({ eventId: event.id, type, conv: conversationId, endpoints }, 'webhook event queued');
      return event;
    });
    const settled = run.catch((err) => {
      this.deps.log.error({ err, type, conv: conversationId }, 'webhook event could not be queued');
      return null;
    });
    this.chains.set(conversationId, settled);
    void settled.then(() => {
      if (this.chains.get(conversationId) === settled) this.chains.delete(conversationId);
    });
    return run;
  }

  private async addJob(deliveryId: string, replays: number): Promise<void> {
    await this.queue.add('deliver', { deliveryId } satisfies DeliverJob, {
      jobId: replays === 0 ? deliveryId : `${deliveryId}.r${replays}`,
      attempts: 1_000_000, // bounded by age (retryForSeconds), not by count
      backoff: { type: 'webhook' },
    });
  }

  // ── Consuming ────────────────────────────────────────────────────────────────────────────────────────────────
  async start(): Promise<void> {
    this.connection = this.deps.connect();
    const connection = this.connection as never;
    this.worker = new Worker<DeliverJob>(
      WEBHOOK_QUEUE,
      async (job) => (job.name === 'sweep' ? this.sweep() : this.process(job)),
      {
        connection,
        prefix: this.deps.prefix,
        concurrency: this.deps.config.concurrency,
        settings: { backoffStrategy: (_attempts, _type, err) => (err instanceof RetryLater ? err.delayMs : this.deps.config.backoffBaseMs) },
      },
    );
    this.worker.on('error', (err) => this.deps.log.error({ err }, 'webhook worker error'));
    await this.queue.upsertJobScheduler('webhook-outbox-sweep', { every: 60_000 }, { name: 'sweep', data: { deliveryId: '' } });
    await this.sweep();
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
    await this.worker?.close();
    this.connection?.disconnect();
    await this.queue.close();
  }

  private async process(job: Job<DeliverJob>): Promise<void> {
    const { store, endpoints, config, log } = this.deps;
    const record = await store.delivery(job.data.deliveryId);
    if (!record) return; // expired from the log: nothing left to send
    if (record.status === 'delivered' || record.status === 'dead') return this.next(record); // a duplicate kick
    const event = await store.event(record.eventId);
    if (!event) {
      await store.markDead(record.id, 'event expired before it could be delivered');
      return this.next(record);
    }

    const sink = this.sinks.get(record.endpointId);
    const endpoint = sink ? undefined : await endpoints.get(record.endpointId);
    if (!sink && !endpoint) {
      await store.markDead(record.id, 'endpoint removed');
      return this.next(record);
    }
    // A disabled endpoint keeps its backlog in the outbox; re-enabling it resumes delivery (see kickEndpoint).
    if (endpoint && !endpoint.enabled) return;

    const attempt = record.attempts.length + 1;
    const outcome = sink
      ? await sink.deliver(event, JSON.parse(event.body) as WebhookEnvelope).catch(
          (err: Error): AttemptOutcome => ({ kind: 'retry', error: err.message, latencyMs: 0 }),
        )
      : await attemptDelivery(endpoint!.url, endpoint!.secret, event.id, event.body, config.timeoutMs);
    const at = Date.now();
    const base = { attempt, at, latencyMs: outcome.latencyMs, ...('status' in outcome && outcome.status !== undefined && { status: outcome.status }) };
    const logFields = { deliveryId: record.id, endpoint: record.endpointId, conv: record.conversationId, type: record.type, ...base };

    switch (outcome.kind) {
      case 'delivered':
        await store.recordAttempt(record.id, base, 'delivered');
        log.info(logFields, 'webhook delivered');
        return this.next(record);
      case 'gone':
        await store.recordAttempt(record.id, { ...base, error: '410 Gone' }, 'dead');
        await store.markDead(record.id, 'receiver answered 410 Gone; endpoint disabled');
        await endpoints.setEnabled(record.endpointId, false, 'receiver answered 410 Gone');
        log.warn(logFields, 'webhook endpoint answered 410 Gone: endpoint disabled');
        return this.next(record);
      case 'rejected':
        await store.recordAttempt(record.id, { ...base, error: outcome.error }, 'dead');
        await store.markDead(record.id, `receiver rejected the event (${outcome.error})`);
        log.warn(logFields, 'webhook rejected by the receiver: dead-lettered');
        return this.next(record);
      case 'retry': {
        const delay = Math.max(backoffDelay(attempt, config.backoffBaseMs, config.backoffMaxMs), outcome.retryAfterMs ?? 0);
        if (at + delay - event.createdAt > config.retryForSeconds * 1000) {
          await store.recordAttempt(record.id, { ...base, error: outcome.error }, 'dead');
          await store.markDead(record.id, `retries exhausted after ${Math.round((at - event.createdAt) / 1000)} s (${outcome.error})`);
          log.error(logFields, 'webhook retries exhausted: dead-lettered');
          return this.next(record);
        }
        await store.recordAttempt(record.id, { ...base, error: outcome.error, nextAttemptAt: at + delay }, 'retrying');
        log.warn({ ...logFields, error: outcome.error, retryInMs: delay }, 'webhook attempt failed, will retry');
        throw new RetryLater(outcome.error, delay);
      }
    }
  }

  /** Pops a finished delivery and queues the one behind it. */
  private async next(record: DeliveryRecord): Promise<void> {
    const nextId = await this.deps.store.advance(record);
    if (!nextId) return;
    const next = await this.deps.store.delivery(nextId);
    await this.addJob(nextId, next?.replays ?? 0);
  }

  /** Re-queues outbox heads that have no job (after a crash, or after an endpoint is re-enabled). */
  async sweep(onlyEndpoint?: string): Promise<number> {
    const { store, endpoints } = this.deps;
    let kicked = 0;
    const enabled = new Set((await endpoints.list()).filter((e) => e.enabled).map((e) => e.id));
    for (const sink of this.sinks.keys()) enabled.add(sink);
    for (const outbox of await store.outboxes()) {
      const headId = await store.head(outbox);
      if (!headId) continue;
      const record = await store.delivery(headId);
      if (!record) {
        // The head expired from the log: drop it so the rest can flow.
        await store.advance({ id: headId, endpointId: outbox.split(':outbox:')[1]!.split(':')[0]!, conversationId: outbox.split(':outbox:')[1]!.split(':').slice(1).join(':') });
        continue;
      }
      if (onlyEndpoint !== undefined && record.endpointId !== onlyEndpoint) continue;
      if (!enabled.has(record.endpointId)) continue;
      const jobId = record.replays === 0 ? record.id : `${record.id}.r${record.replays}`;
      if (await this.queue.getJob(jobId)) continue;
      await this.addJob(record.id, record.replays);
      kicked++;
    }
    if (kicked > 0) this.deps.log.info({ kicked }, 'webhook outboxes resumed');
    return kicked;
  }

  /** Manual replay of a dead-lettered delivery: same webhook-id, queued behind what is pending now. */
  async replay(deliveryId: string): Promise<DeliveryRecord | null> {
    const record = await this.deps.store.delivery(deliveryId);
    if (!record) return null;
    if (record.status !== 'dead') throw new Error(`delivery ${deliveryId} is ${record.status}, not dead`);
    const requeued = await this.deps.store.requeue(deliveryId);
    if (requeued?.head) await this.addJob(deliveryId, record.replays + 1);
    this.deps.log.info({ deliveryId, endpoint: record.endpointId }, 'dead webhook delivery replayed');
    return this.deps.store.delivery(deliveryId);
  }
}
