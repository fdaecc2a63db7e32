/**
 * The pipeline workers on their own (`npm run bench:worker`): inbound jobs are written straight into the shard
 * queues — k messages per job, as ingest's group commit writes them — while the worker processes are paused; then the
 * queues resume and the workers drain them: bot (the shipped rules, knowledge base and intent model) and delivery of
 * every reply to a loopback WeCom API. Nothing else runs meanwhile (no ingress, no load generator), so the figures —
 * worker CPU and Redis commands per message at a given job size — hold still between runs on a busy machine, which
 * is what comparing two versions of the worker needs. The end-to-end benchmark (`npm run bench`) shows where the
 * whole gateway stands; this one shows what a worker change bought.
 *
 *   npm run bench:worker                          job sizes 1 and 8, 10,000 messages each, one worker process
 *   npm run bench:worker -- --sizes 1,4,16 --messages 10000 --workers 2
 *   npm run bench:worker -- --workers 1 --pin    the worker on core 0, Redis and the benchmark on core 1 (taskset):
 *                                               the steadiest CPU figures on a 2-core machine, for A/B comparisons
 *   npm run bench:worker -- --cpu-prof           V8 CPU profiles of the workers in bench/results/profiles/
 *   npm run bench:worker -- --warmup 500         messages per warm-up round (three rounds, default 4,000 each)
 *   npm run bench:worker -- --channel app        app-channel messages instead (each reply a signed callback to the
 *                                               loopback app, plus its outbox append and live publish)
 *
 * Writes bench/results/<date>-worker.json.
 */
import { execSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { decodeAppMessage } from '../adapters/app/decode.js';
import type { InboundEntry, InboundJob } from '../gateway/ingest-batcher.js';
import { conversationIdFor, createMessage } from '../gateway/message.js';
import { queueName, shardOf } from '../gateway/queues.js';
import { freePort, startPrivateRedis } from '../gateway/redis-server.js';
import { shippedBot, writeBenchConfig } from './lib/config.js';
import { corpusSummary, loadCorpus, textSource } from './lib/corpus.js';
import { commandsPerMessage, cpuProfileArgs, redisCounters, startRole, type RoleProcess } from './lib/processes.js';
import { startReceiver } from './lib/receiver.js';
import { writeReport } from './lib/report.js';
import { WECOM, wecomChannelOptions } from './lib/wecom-requests.js';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1,8' },
    messages: { type: 'string', default: '10000' },
    workers: { type: 'string', default: '1' },
    shards: { type: 'string', default: '4' },
    channel: { type: 'string', default: 'wecom' },
    warmup: { type: 'string', default: '4000' },
    pin: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const sizes = args.sizes!.split(',').map(Number);
const messages = Number(args.messages);
const workerCount = Number(args.workers);
const shards = Number(args.shards);
const CHANNEL = args.channel!;
if (CHANNEL !== 'wecom' && CHANNEL !== 'app') throw new Error(`--channel takes wecom or app, not ${CHANNEL}`);
const AGENT_ID = WECOM.agentId;
const APP_ID = 'bench';

const work = mkdtempSync(join(tmpdir(), 'gw-bench-worker-'));
const redisServer = await startPrivateRedis({ dataDir: join(work, 'redis') });
const redis = new Redis(redisServer.url);
const receiver = await startReceiver();
const configPath = writeBenchConfig(work, {
  port: await freePort(),
  pipeline: { shards, keepCompleted: 100, keepFailed: 10_000 },
  channels: [
    { id: 'wecom', type: 'wecom-app', options: wecomChannelOptions(receiver.url) },
    { id: 'app', type: 'app', options: { apps: [{ id: APP_ID, secret: 'bench-app-secret-0123456789', callbackUrl: `${receiver.url}/replies` }] } },
  ],
  bot: shippedBot(),
});
const queues = Array.from({ length: shards }, (_, i) => new Queue(queueName('in', i), { connection: redis as never, prefix: 'gw' }));
const corpus = loadCorpus();
const { label: corpusLabel, ...corpusFigures } = corpusSummary(corpus);
const nextText = textSource(corpus.texts);
let user = 0;

/**
 * One inbound text message as the adapter hands it to ingest (one customer each, so one conversation each), and the
 * key its reply arrives under at the loopback platform.
 */
function entry(): { entry: InboundEntry; key: string } {
  return CHANNEL === 'app' ? appEntry() : wecomEntry();
}

function appEntry(): { entry: InboundEntry; key: string } {
  const peer = `au${user++}`;
  const message = decodeAppMessage({ userId: peer, messageId: `m${user}`, text: nextText() }, { id: CHANNEL, type: 'app' }, APP_ID);
  return { entry: { message, reference: { peerId: peer, context: { appId: APP_ID } } }, key: message.id };
}

function wecomEntry(): { entry: InboundEntry; key: string } {
  const peer = `wu${user++}`;
  const now = Date.now();
  const text = nextText();
  const message = createMessage({
    channel: CHANNEL,
    channelType: 'wecom-app',
    direction: 'in',
    conversationId: conversationIdFor(CHANNEL, peer),
    channelMessageId: `msg:${7_000_000_000_000 + user}`,
    sender: { id: peer, role: 'customer' },
    timestamp: now,
    content: { type: 'text', text },
    metadata: { agentId: String(AGENT_ID), msgType: 'text' },
    raw: { format: 'wecom-app/xml', truncated: false, payload: { ToUserName: WECOM.corpId, FromUserName: peer, CreateTime: String(Math.floor(now / 1000)), MsgType: 'text', Content: text, MsgId: String(7_000_000_000_000 + user), AgentID: String(AGENT_ID) } },
  });
  return { entry: { message, reference: { peerId: peer, context: { agentId: String(AGENT_ID) } } }, key: peer };
}

/** Arrival times of replies at the loopback platform, by the key entry() gave. */
const arrivals = CHANNEL === 'app' ? receiver.arrivals : receiver.wecomArrivals;

/** Writes `count` messages as jobs of `size` entries per shard, with their dedupe marks, as ingest would. */
async function fill(count: number, size: number): Promise<string[]> {
  const byShard = new Map<number, InboundEntry[]>();
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    const { entry: e, key } = entry();
    keys.push(key);
    const shard = shardOf(e.message.conversationId, shards);
    const list = byShard.get(shard);
    if (list) list.push(e);
    else byShard.set(shard, [e]);
  }
  for (const [shard, list] of byShard) {
    const queue = queues[shard]!;
    const jobs: Array<{ name: string; data: InboundJob; opts: { jobId: string; attempts: number } }> = [];
    const marks = redis.pipeline();
    for (let i = 0; i < list.length; i += size) {
      const entries = list.slice(i, i + size);
      jobs.push({ name: 'inbound', data: { entries }, opts: { jobId: entries[0]!.message.id, attempts: 3 } });
      for (const { message } of entries) marks.set(`${queue.qualifiedName}:dd:${message.channel}|${message.channelMessageId}`, message.id, 'PX', 3_600_000);
    }
    await marks.exec();
    for (let i = 0; i < jobs.length; i += 500) await queue.addBulk(jobs.slice(i, i + 500));
  }
  return keys;
}

const workers: RoleProcess[] = [];
const env = { REDIS_URL: redisServer.url, LOG_LEVEL: 'warn' };
const profArgs = cpuProfileArgs(args['cpu-prof']);
for (let i = 0; i < workerCount; i++) workers.push({ ...(await startRole('worker', configPath, env, profArgs)), role: `worker-${i + 1}` });

interface Row {
  jobSize: number;
  messages: number;
  messagesPerSec: number;
  workerCpuMsPerMessage: number;
  redisCommandsPerMessage: number;
  redisCpuMsPerMessage: number;
  redisBytesPerMessage: { toRedis: number; fromRedis: number };
  redisTopCommands: Record<string, number>;
}

async function drain(count: number, size: number): Promise<Row> {
  await Promise.all(queues.map((q) => q.pause()));
  const keys = await fill(count, size);
  const before = await redisCounters(redis);
  const cpuBefore = workers.map((w) => w.cpuSeconds());
  const t0 = performance.now();
  await Promise.all(queues.map((q) => q.resume()));
  const deadline = Date.now() + 300_000;
  while (keys.some((k) => !arrivals.has(k)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const wall = (Math.max(...keys.map((k) => arrivals.get(k) ?? performance.now())) - t0) / 1000;
  const after = await redisCounters(redis);
  const delivered = keys.filter((k) => arrivals.has(k)).length;
  const cpu = workers.reduce((sum, w, i) => sum + (w.cpuSeconds() - cpuBefore[i]!), 0);
  const row: Row = {
    jobSize: size,
    messages: delivered,
    messagesPerSec: Math.round(delivered / wall),
    workerCpuMsPerMessage: Math.round((cpu * 1000 * 1000) / delivered) / 1000,
    redisCommandsPerMessage: Math.round(((after.commands - before.commands) / delivered) * 10) / 10,
    redisCpuMsPerMessage: Math.round(((after.cpuSeconds - before.cpuSeconds) * 1000 * 1000) / delivered) / 1000,
    redisBytesPerMessage: {
      toRedis: Math.round((after.netInputBytes - before.netInputBytes) / delivered),
      fromRedis: Math.round((after.netOutputBytes - before.netOutputBytes) / delivered),
    },
    redisTopCommands: commandsPerMessage(before.byCommand, after.byCommand, delivered),
  };
  console.log(
    `job size ${String(size).padStart(3)}: ${row.messagesPerSec} msg/s, worker CPU ${row.workerCpuMsPerMessage} ms/msg, ` +
      `Redis ${row.redisCommandsPerMessage} cmd/msg, ${row.redisCpuMsPerMessage} ms CPU/msg, ${row.redisBytesPerMessage.toRedis}/${row.redisBytesPerMessage.fromRedis} bytes/msg in/out${delivered < count ? ` (${count - delivered} undelivered)` : ''}`,
  );
  return row;
}

const rows: Row[] = [];
try {
  if (args.pin) {
    // Workers on core 0, everything else on core 1: the scheduler then moves nothing between cores mid-run.
    for (const w of workers) execSync(`taskset -a -cp 0 ${w.child.pid}`);
    for (const pid of [process.pid, redisServer.process.pid]) execSync(`taskset -a -cp 1 ${pid}`);
  }
  console.log(`worker benchmark: ${CHANNEL} messages, ${cpus().length} cores, ${workerCount} worker process(es), ${shards} shards, ${corpusLabel}`);
  // Warm-up (JIT, connections, model): after a short one the first measured size ran at up to twice its later CPU.
  for (const size of [1, 8, 1]) await drain(Number(args.warmup), size);
  for (const size of sizes) rows.push(await drain(messages, size));
} finally {
  await Promise.all(workers.map((w) => w.stop()));
  await Promise.all(queues.map((q) => q.close()));
  redis.disconnect();
  await receiver.close();
  await redisServer.stop();
  rmSync(work, { recursive: true, force: true });
}
const path = writeReport('bench/results', 'worker', { channel: CHANNEL, corpus: corpusFigures, workers: workerCount, shards, pinned: args.pin, rows });
console.log(`wrote ${path}`);
process.exit(0);
