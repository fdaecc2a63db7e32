/**
 * Group commit for ingest. Messages that arrive for the same inbound shard while that shard's previous write is still
 * on its way to Redis are written together, as one queue job, in one MULTI:
 *
 *   MULTI
 *     SET <queue>:dd:<channel>|<platform id> <message id> PX <window> NX GET   ← one per message that has a platform id
 *     addStandardJob(<queue>, { entries: [...] })                             ← BullMQ's own add script
 *     LLEN <queue>:active, LLEN <queue>:wait                                  ← is the consumer behind?
 *   EXEC
 *
 * So the dedupe marks and the job become durable together or not at all (no window in which a platform retry is
 * dropped for a message that never made it into a queue), and each message is acknowledged only after EXEC. At low
 * load a batch is one message written at once; under load the batch grows with the write latency, which is what
 * makes the pipeline's per-message Redis and queue overhead fall as the load rises.
 *
 * A SET that finds another message id there marks a duplicate: the platform is told so at once (the id it already
 * has). The duplicate still rides in the job (MULTI cannot branch); the inbound stage drops it when the message
 * reaches its conversation, by the same platform id marked in the conversation's own slot (ConversationStore.receive).
 *
 * When the shard's newest job is still waiting (its consumer is behind), a batch joins that job instead: one script
 * sets the dedupe marks and appends the entries to the job's data, so the consumer gets them with the job itself. A
 * backlog thus becomes fewer, larger jobs — the consumer catches up with less queue work per message instead of paying
 * it for every message of a backlog written one by one at moderate load. A shard's write only tries this after the
 * previous one saw the consumer behind (or joined): at low load every job is taken at once, and a try that finds
 * nothing to join would cost a round trip before the write.
 *
 * Every key here carries the queue's hash tag, so each write stays in one Redis Cluster slot.
 */
import { createIORedisClient, Job, type JobsOptions, type Queue } from 'bullmq';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient, ReferenceInput } from '../adapters/types.js';
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

/** Inbound job data as written before group commit: one message per job. Jobs queued then are still handled. */
interface SingleMessageJob {
  message: UnifiedMessage;
  reference: ReferenceInput;
}

/** A job's data in the current shape, whichever version wrote it. */
export function asInboundJob(data: InboundJob | SingleMessageJob): InboundJob {
  return 'entries' in data ? data : { entries: [{ message: data.message, reference: data.reference }] };
}

/** The dedupe mark of a message in its inbound queue's slot, or undefined when the platform gave it no id. */
export function dedupeKey(queue: Queue, message: UnifiedMessage): string | undefined {
  if (message.channelMessageId === undefined) return undefined;
  return `${queue.qualifiedName}:dd:${message.channel}|${message.channelMessageId}`;
}

// KEYS[1] the queue's wait list (BullMQ pushes new jobs on the left). ARGV: the queue's key prefix ("<prefix>:<queue>:"),
// most entries a waiting job takes on, dedupe window in ms, the new entries' JSON joined by commas, then per message:
// dedupe key ('' for none), message id. Returns nil when there is no waiting job, it is full, or its data is not
// `{"entries":[…]}` as ingest wrote it (a job rewritten after a failed attempt starts with its "done" list); else
// per message the id its dedupe mark already named ('' when the mark is new). Atomic with BullMQ's move to active, so
// a job is never appended to after its consumer took it. `gwJoined` (a field of the job's hash, which BullMQ leaves
// alone) counts the entries a job took on.
const APPEND_LUA = `
local tail = redis.call('LINDEX', KEYS[1], 0)
if not tail then return nil end
local job = ARGV[1] .. tail
local data = redis.call('HGET', job, 'data')
if not data or string.sub(data, 1, 12) ~= '{"entries":[' or string.sub(data, -2) ~= ']}' then return nil end
local n = (#ARGV - 4) / 2
local joined = tonumber(redis.call('HGET', job, 'gwJoined') or '0')
if joined + n > tonumber(ARGV[2]) then return nil end
local found = {}
for i = 0, n - 1 do
  local key, id = ARGV[5 + i * 2], ARGV[6 + i * 2]
  local previous = false
  if key ~= '' then previous = redis.call('SET', key, id, 'PX', ARGV[3], 'NX', 'GET') end
  found[i + 1] = previous or ''
end
redis.call('HSET', job, 'data', string.sub(data, 1, -3) .. ',' .. ARGV[4] .. ']}', 'gwJoined', joined + n)
return found
`;

export interface IngestBatcherOptions {
  /** The command client (the append script is defined on it; the queues have a connection of their own). */
  redis: RedisClient;
  queueAt: (shard: number) => Queue;
  jobOptions: JobsOptions;
  dedupeWindowMs: number;
  /** Most messages per write, and most a waiting job takes on: bounds the size of a job (twice this) and of a retry. */
  maxBatch: number;
  /** Opens the connection the write transactions go out on (at the first write: a worker never opens it). */
  connect: () => RedisClient;
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
  /**
   * Shards whose next write first tries to join the waiting job: the last write saw the consumer behind (a job
   * running, or more than ours waiting) or joined one. At low load the consumer takes each job at once, so trying
   * would only cost a round trip before every write.
   */
  private readonly joinNext = new Set<number>();
  /** The connection the write transactions go out on, opened at the first write. */
  private writer: Promise<{ connection: RedisClient; client: ReturnType<typeof createIORedisClient> }> | undefined;

  constructor(private readonly opts: IngestBatcherOptions) {
    opts.redis.defineCommand('gwInboundAppend', { numberOfKeys: 1, lua: APPEND_LUA });
  }

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
      // A join that succeeds keeps the shard in joinNext; one that finds no job with room takes it out.
      const appended = this.joinNext.has(shard) ? await this.appendToWaitingJob(queue, batch) : undefined;
      if (appended) {
        batch.forEach((p, i) => p.resolve(appended[i] !== '' && appended[i] !== p.entry.message.id ? appended[i] : undefined));
        return;
      }
      this.joinNext.delete(shard);
      const multi = await this.transaction(queue);
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
      // Whether the consumer is behind: it is running a job, or ours is not the only one waiting.
      multi.llen(`${queue.qualifiedName}:active`).llen(`${queue.qualifiedName}:wait`);
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
      const [active, waiting] = results.slice(-2).map(([, n]) => Number(n));
      if (active! > 0 || waiting! > 1) this.joinNext.add(shard);
      for (const p of batch) p.resolve(duplicateOf.get(p));
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
    }
  }

  /**
   * A transaction on the write connection. BullMQ's queue connection carries its ≈ 50 scripts, and ioredis copies
   * every script of a connection into each MULTI it builds (two properties and a hash entry per script); the write
   * connection carries only BullMQ's add scripts, copied from the queue connection. Wrapped by BullMQ's own
   * `createIORedisClient`, so `job.addJob` finds the transaction interface it expects.
   */
  private async transaction(queue: Queue): Promise<ChainableCommander> {
    // Shards write concurrently: the first write opens the connection, the others wait for the same one.
    this.writer ??= (async () => {
      const queueConnection = (await queue.backend.client) as unknown as Pick<RedisClient, 'scriptsSet'>;
      const connection = this.opts.connect();
      for (const [name, script] of Object.entries(queueConnection.scriptsSet as Record<string, { lua: string; numberOfKeys: number }>)) {
        if (/^add\w*Job:/.test(name)) connection.defineCommand(name, { lua: script.lua, numberOfKeys: script.numberOfKeys });
      }
      return { connection, client: createIORedisClient(connection) };
    })().catch((err: unknown) => {
      this.writer = undefined; // the next write tries again
      throw err;
    });
    return (await this.writer).client.multi() as unknown as ChainableCommander;
  }

  /** The connection the write transactions go out on, once the first write opened it. */
  async writeConnection(): Promise<RedisClient | undefined> {
    return (await this.writer)?.connection;
  }

  /** Closes the write connection (the queues close their own). */
  async close(): Promise<void> {
    const writer = this.writer;
    this.writer = undefined;
    (await writer?.catch(() => undefined))?.connection.disconnect();
  }

  /** Appends the batch to the shard's newest waiting job; undefined when there is none with room. */
  private async appendToWaitingJob(queue: Queue, batch: Pending[]): Promise<string[] | undefined> {
    const entries = batch.map((p) => JSON.stringify(p.entry)).join(',');
    const args: Array<string | number> = [`${queue.qualifiedName}:`, this.opts.maxBatch, this.opts.dedupeWindowMs, entries];
    for (const { entry } of batch) args.push(dedupeKey(queue, entry.message) ?? '', entry.message.id);
    const script = this.opts.redis as unknown as { gwInboundAppend(key: string, ...args: Array<string | number>): Promise<string[] | null> };
    return (await script.gwInboundAppend(`${queue.qualifiedName}:wait`, ...args)) ?? undefined;
  }
}
