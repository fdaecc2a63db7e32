/**
 * Group commit for ingest. Messages that arrive for the same inbound shard while that shard's previous write is still
 * on its way to Redis are written together, as one queue job, in one MULTI:
 *
 *   MULTI
 *     SET <queue>:dd:<channel>|<platform id> <message id> PX <window> NX GET   ← one per message that has a platform id
 *     addStandardJob(<queue>, { entries: [...] })                             ← BullMQ's own add script
 *   EXEC
 *
 * So the dedupe marks and the job become durable together or not at all (no window in which a platform retry is
 * dropped for a message that never made it into a queue), and each message is acknowledged only after EXEC. At low
 * load a batch is one message written at once; under load the batch grows with the write latency, which is what
 * makes the pipeline's per-message Redis and queue overhead fall as the load rises.
 *
 * A SET that finds another message id there marks a duplicate. The duplicate still rides in the job (MULTI cannot
 * branch); the inbound stage reads the marks back and skips every entry whose mark names another message.
 * Dedupe keys carry the queue's hash tag, so the transaction stays in one Redis Cluster slot.
 */
import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { ChainableCommander } from 'ioredis';
import type { ReferenceInput } from '../adapters/types.js';
import type { UnifiedMessage } from './message.js';

/** One message in an inbound job, with the reference that lets anyone answer it later. */
export interface InboundEntry {
  message: UnifiedMessage;
  reference: ReferenceInput;
}

/** Inbound job data: the messages written together, in arrival order. */
export interface InboundJob {
  entries: InboundEntry[];
  /** Ids of entries already handled by an earlier attempt of this job (a retry skips them). */
  done?: string[];
}

/** The dedupe mark of a message in its inbound queue's slot, or undefined when the platform gave it no id. */
export function dedupeKey(queue: Queue, message: UnifiedMessage): string | undefined {
  if (message.channelMessageId === undefined) return undefined;
  return `${queue.qualifiedName}:dd:${message.channel}|${message.channelMessageId}`;
}

export interface IngestBatcherOptions {
  queueAt: (shard: number) => Queue;
  jobOptions: JobsOptions;
  dedupeWindowMs: number;
  /** Most messages per job: bounds the size of one job and of one retry. */
  maxBatch: number;
}

interface Pending {
  entry: InboundEntry;
  resolve: (duplicateOf: string | undefined) => void;
  reject: (err: Error) => void;
}

export class IngestBatcher {
  private readonly pending = new Map<number, Pending[]>();
  /** Shards with a write scheduled or in flight: arrivals meanwhile join the next batch. */
  private readonly busy = new Set<number>();

  constructor(private readonly opts: IngestBatcherOptions) {}

  /** Resolves once the message is durably queued: undefined, or the id of the message it duplicates. */
  add(shard: number, entry: InboundEntry): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      let list = this.pending.get(shard);
      if (!list) this.pending.set(shard, (list = []));
      list.push({ entry, resolve, reject });
      if (!this.busy.has(shard)) {
        this.busy.add(shard);
        // The rest of this turn of the event loop still joins the batch.
        setImmediate(() => void this.flush(shard));
      }
    });
  }

  private async flush(shard: number): Promise<void> {
    const list = this.pending.get(shard) ?? [];
    const batch = list.splice(0, this.opts.maxBatch);
    try {
      if (batch.length > 0) await this.write(shard, batch);
    } finally {
      if (list.length > 0) setImmediate(() => void this.flush(shard));
      else this.busy.delete(shard);
    }
  }

  private async write(shard: number, batch: Pending[]): Promise<void> {
    try {
      const queue = this.opts.queueAt(shard);
      // BullMQ's client is the ioredis connection the gateway gave it.
      const multi = (await queue.backend.client).multi() as unknown as ChainableCommander;
      const marked: Pending[] = [];
      for (const p of batch) {
        const key = dedupeKey(queue, p.entry.message);
        if (key === undefined) continue;
        multi.call('SET', [key, p.entry.message.id, 'PX', this.opts.dedupeWindowMs, 'NX', 'GET']);
        marked.push(p);
      }
      const data: InboundJob = { entries: batch.map((p) => p.entry) };
      const job = new Job(queue, 'inbound', data, { ...this.opts.jobOptions, jobId: batch[0]!.entry.message.id });
      // Queued on the transaction synchronously (as BullMQ's own addBulk does); EXEC sends it.
      void job.addJob(multi as never);
      const results = (await multi.exec()) ?? [];
      const failed = results.find(([err]: [Error | null, unknown]) => err);
      if (failed) {
        // No job: take back the marks this batch set, so the platform's retry of these messages is not dropped.
        const ours = marked.flatMap((p, i) => (results[i]?.[1] === null ? [dedupeKey(queue, p.entry.message)!] : []));
        if (ours.length > 0) await (await queue.backend.client).del(...ours).catch(() => undefined);
        throw failed[0];
      }
      const duplicateOf = new Map<Pending, string | undefined>();
      marked.forEach((p, i) => {
        const previous = results[i]![1] as string | null;
        duplicateOf.set(p, previous !== null && previous !== p.entry.message.id ? previous : undefined);
      });
      for (const p of batch) p.resolve(duplicateOf.get(p));
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
    }
  }
}
