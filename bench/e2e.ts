/**
 * End-to-end benchmark (`npm run bench`): its own Redis, the gateway as deployed (an ingress process and a worker
 * process), a loopback platform receiving the replies, and fixed offered loads of signed, AES-encrypted WeCom
 * callbacks, signed app-channel webhooks and web-widget WebSocket messages. Every message goes ingress → queue → bot (the shipped config's bot) → delivery.
 *
 *   npm run bench                      loads 250,500,1000,2000,4000 msg/s + open-loop max, 10 s each
 *   npm run bench -- --quick           short phases (smoke run)
 *   npm run bench -- --loads 1000,3000 --duration 20
 *   npm run bench -- --channels ws     only some of the load phases (wecom, app, ws), run in the order given
 *   npm run bench -- --workers 2       another number of worker processes (default 1: on 2 cores one process now
 *                                      spends less CPU per message and sustains more WeCom traffic; bench/README.md)
 *   npm run bench -- --sockets 10000   idle web-widget sockets held, ingress RSS
 *
 * Writes bench/results/<date>.json and bench/results/<date>.svg and prints a summary table.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import WebSocket from 'ws';
import { sign } from '../adapters/app/signature.js';
import { conversationIdFor } from '../gateway/message.js';
import { freePort } from '../gateway/redis-server.js';
import { BARE_QUEUE, startBenchRedis, type RedisCounters } from './lib/bench-redis.js';
import { renderChart } from './lib/chart.js';
import { shippedBot, writeBenchConfig } from './lib/config.js';
import { corpusSummary, loadCorpus, textSource } from './lib/corpus.js';
import { commandsPerMessage, cpuProfileArgs, rssMb, startRole, type RoleProcess } from './lib/processes.js';
import { startReceiver } from './lib/receiver.js';
import { stampOf } from './lib/report.js';
import { latencyBySecond, summarize } from './lib/stats.js';
import { BENCH_CHANNELS, bestWecomPhase, reportedRatio, sustainedOf, WEBHOOK_CHANNELS } from './lib/targets.js';
import { closeLoadConnections, evenly, pacedRequests } from './lib/load.js';
import { wecomChannelOptions, wecomRequest, type WebhookRequest } from './lib/wecom-requests.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    loads: { type: 'string' },
    duration: { type: 'string' },
    sockets: { type: 'string' },
    shards: { type: 'string', default: '4' },
    workers: { type: 'string', default: '1' },
    channels: { type: 'string', default: 'wecom,app,ws' },
    'cpu-prof': { type: 'boolean', default: false },
    cluster: { type: 'boolean', default: false },
    masters: { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const quick = args.quick!;
const loads = (args.loads ?? (quick ? '250,1000' : '250,500,1000,2000,4000')).split(',').map(Number);
const durationS = Number(args.duration ?? (quick ? 3 : 10));
const shards = Number(args.shards);
const workerCount = Number(args.workers);
const channels = new Set(args.channels!.split(','));
for (const channel of channels) if (!(BENCH_CHANNELS as readonly string[]).includes(channel)) throw new Error(`--channels takes ${BENCH_CHANNELS.join(', ')}, not ${channel}`);
const APP_SECRET = 'bench-app-secret-0123456789';

/** The code measured: the commit checked out and whether tracked files had changes on top of it (none outside git). */
function codeMeasured(): { commit: string; modified: boolean } | undefined {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return { commit: git('rev-parse', '--short=12', 'HEAD'), modified: git('status', '--porcelain', '--untracked-files=no') !== '' };
  } catch {
    return undefined;
  }
}
const code = codeMeasured();

const work = mkdtempSync(join(tmpdir(), 'gw-bench-'));
// Also when a step throws: the directory holds Redis's AOF, which grows by gigabytes in a full run.
process.once('exit', () => rmSync(work, { recursive: true, force: true }));
const benchRedis = await startBenchRedis(join(work, 'redis'), args.cluster ? Number(args.masters) : undefined);
const redis = benchRedis.client;
const receiver = await startReceiver();
const port = await freePort();
const base = `http://127.0.0.1:${port}`;

const configPath = writeBenchConfig(work, {
  port,
  pipeline: { shards, keepCompleted: 100, keepFailed: 10_000 },
  channels: [
    { id: 'web', type: 'web', options: { secret: 'bench-web-secret-0123456789', heartbeatSeconds: 60 } },
    { id: 'app', type: 'app', options: { apps: [{ id: 'bench', secret: APP_SECRET, callbackUrl: `${receiver.url}/replies` }] } },
    { id: 'wecom', type: 'wecom-app', options: wecomChannelOptions(receiver.url) },
  ],
  bot: shippedBot(),
  redis: benchRedis.gatewayConfig,
});
const env = { ...benchRedis.env, LOG_LEVEL: 'warn' };
const profArgs = cpuProfileArgs(args['cpu-prof']);
const ingress = await startRole('ingress', configPath, env, profArgs);
// Worker processes split the shards between them through Redis leases, as `npm run start:worker` ×N would.
const workers: RoleProcess[] = [];
for (let i = 0; i < workerCount; i++) workers.push({ ...(await startRole('worker', configPath, env, profArgs)), role: i === 0 ? 'worker' : `worker-${i + 1}` });
const gatewayProcesses: RoleProcess[] = [ingress, ...workers];
const workerCpu = (r: PhaseResult) => Math.round(workers.reduce((sum, w) => sum + (r.cpuMsPerMessage[w.role] ?? 0), 0) * 100) / 100;
const workerRss = (r: PhaseResult) => workers.map((w) => r.rssMb[w.role]).join('+');
const corpus = loadCorpus();
const { label: corpusLabel, ...corpusFigures } = corpusSummary(corpus);
const nextText = textSource(corpus.texts);
let seq = 0;

interface PhaseResult {
  channel: string;
  offered: number | 'max';
  sent: number;
  accepted: number;
  delivered: number;
  deliveredPerSec: number;
  errors: number;
  /** Accepted messages of conversations a rule or hand-off phrase gave to a human: no bot reply is due. */
  handedOff: number;
  latencyMs: ReturnType<typeof summarize>;
  /** The same per second of the phase, by send time (the first second after an idle spell is often the slowest). */
  latencyBySecond: ReturnType<typeof latencyBySecond>;
  /** Inbound queue jobs created in each second of the phase (compare with latencyBySecond's counts). */
  inboundJobsBySecond: number[];
  ackLatencyMs?: ReturnType<typeof summarize>;
  /** Accepted messages per inbound queue job: how much ingest's group commit batched (1 at low load). */
  messagesPerInboundJob: number;
  redisCommandsPerMessage: number;
  /** The most frequent Redis commands per delivered message (script bodies' commands under their own names). */
  redisTopCommands: Record<string, number>;
  redisCpuPercent: number;
  /** Redis forks (AOF rewrites) during the phase, the last one's pause, and AOF writes held back by a slow fsync. */
  redisPauses: { forks: number; latestForkMs: number; delayedFsyncs: number };
  /** CPU time each gateway process spent per delivered message: a figure that holds on a busy machine. */
  cpuMsPerMessage: Record<string, number>;
  /** The benchmark process itself (load generator + loopback platform): CPU the gateway could not use. */
  loadGeneratorCpuMsPerMessage: number;
  rssMb: Record<string, number>;
}

/** Waits until every accepted message has its reply, or the drain timeout passes. */
async function drain(ids: Iterable<string>, arrivals: Map<string, number>, timeoutMs = 120_000): Promise<void> {
  const list = [...ids];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && list.some((id) => !arrivals.has(id))) await new Promise((r) => setTimeout(r, 50));
}

/** Queued and running jobs of the gateway's pipeline, all shards and stages (a pipeline per queue: one slot each). */
async function backlog(): Promise<number> {
  const counts = ['in', 'out'].flatMap((stage) =>
    Array.from({ length: shards }, async (_, i) => {
      const key = `gw:{${stage}-${i}}`;
      const replies = (await redis.pipeline().llen(`${key}:wait`).llen(`${key}:active`).zcard(`${key}:delayed`).exec()) ?? [];
      return replies.reduce((n, [, v]) => n + Number(v ?? 0), 0);
    }),
  );
  return (await Promise.all(counts)).reduce((a, b) => a + b, 0);
}

/** Inbound jobs created so far over all shards (BullMQ's per-queue id counters): messages per job = group commit's effect. */
async function inboundJobsCreated(): Promise<number> {
  // One GET per queue: on a cluster the counters live in different slots.
  const ids = await Promise.all(Array.from({ length: shards }, (_, i) => redis.get(`gw:{in-${i}}:id`)));
  return ids.reduce((n, v) => n + Number(v ?? 0), 0);
}

/** Lets the previous phase's backlog drain, so each phase starts from an idle gateway. */
async function settle(timeoutMs = 180_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let left = await backlog();
  while (left > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    left = await backlog();
  }
  await new Promise((r) => setTimeout(r, 500));
  return left;
}

async function phase(
  channel: string,
  offered: number | 'max',
  run: (start: () => Promise<void>) => Promise<{ sent: Map<string, number>; errors: number; ack?: number[]; handedOff?: number }>,
  arrivals: Map<string, number>,
): Promise<PhaseResult> {
  const leftOver = await settle();
  if (leftOver > 0) console.log(`(${leftOver} jobs still queued from the previous phase)`);
  // The phase's clock and counters start with its first message (`start`, called by the load): requests are built
  // and widget sockets opened before it, so neither counts in the delivered rate, the per-second figures or the CPU.
  let started: { before: RedisCounters; jobsBefore: number; cpuBefore: number[]; ownCpuBefore: NodeJS.CpuUsage; t0: number } | undefined;
  // Inbound jobs created by the end of each second: with the messages sent in it, how much group commit batched as
  // the phase got going.
  const jobsBySecondEnd: number[] = [];
  let sampler: NodeJS.Timeout | undefined;
  const start = async () => {
    const before = await benchRedis.counters();
    const jobsBefore = await inboundJobsCreated();
    started = { before, jobsBefore, cpuBefore: gatewayProcesses.map((p) => p.cpuSeconds()), ownCpuBefore: process.cpuUsage(), t0: performance.now() };
    let second = 0;
    sampler = setInterval(() => {
      const at = second++;
      inboundJobsCreated().then((n) => (jobsBySecondEnd[at] = n - jobsBefore), () => undefined);
    }, 1000);
  };
  const { sent, errors, ack, handedOff = 0 } = await run(start).finally(() => clearInterval(sampler));
  if (!started) throw new Error(`${channel} phase: the load never started`);
  const { before, jobsBefore, cpuBefore, ownCpuBefore, t0 } = started;
  await drain(sent.keys(), arrivals);
  const latencies: number[] = [];
  const timeline: { sentAtMs: number; latencyMs: number }[] = [];
  let lastArrival = t0;
  for (const [id, at] of sent) {
    const arrived = arrivals.get(id);
    if (arrived === undefined) continue;
    latencies.push(arrived - at);
    timeline.push({ sentAtMs: at - t0, latencyMs: arrived - at });
    lastArrival = Math.max(lastArrival, arrived);
  }
  const ownCpu = process.cpuUsage(ownCpuBefore);
  const after = await benchRedis.counters();
  const jobs = (await inboundJobsCreated()) - jobsBefore;
  const wall = (lastArrival - t0) / 1000;
  const result: PhaseResult = {
    channel,
    offered,
    sent: sent.size + handedOff + errors,
    accepted: sent.size + handedOff,
    delivered: latencies.length,
    deliveredPerSec: Math.round(latencies.length / Math.max(wall, 0.001)),
    errors: errors + (sent.size - latencies.length),
    handedOff,
    latencyMs: summarize(latencies),
    latencyBySecond: latencyBySecond(timeline),
    inboundJobsBySecond: jobsBySecondEnd.map((n, i) => n - (jobsBySecondEnd[i - 1] ?? 0)),
    ...(ack && { ackLatencyMs: summarize(ack) }),
    messagesPerInboundJob: Math.round(((sent.size + handedOff) / Math.max(1, jobs)) * 100) / 100,
    redisCommandsPerMessage: Math.round(((after.commands - before.commands) / Math.max(1, latencies.length)) * 10) / 10,
    redisTopCommands: commandsPerMessage(before.byCommand, after.byCommand, latencies.length),
    redisCpuPercent: Math.round(((after.cpuSeconds - before.cpuSeconds) / Math.max(wall, 0.001)) * 1000) / 10,
    redisPauses: { forks: after.forks - before.forks, latestForkMs: after.latestForkMs, delayedFsyncs: after.delayedFsyncs - before.delayedFsyncs },
    cpuMsPerMessage: Object.fromEntries(
      gatewayProcesses.map((p, i) => [p.role, Math.round(((p.cpuSeconds() - cpuBefore[i]!) * 1000 / Math.max(1, latencies.length)) * 100) / 100]),
    ),
    loadGeneratorCpuMsPerMessage: Math.round(((ownCpu.user + ownCpu.system) / 1000 / Math.max(1, latencies.length)) * 100) / 100,
    rssMb: Object.fromEntries(gatewayProcesses.map((p) => [p.role, p.rssMb()])),
  };
  console.log(
    `${channel.padEnd(5)} offered ${String(offered).padStart(5)}/s → delivered ${String(result.deliveredPerSec).padStart(5)}/s` +
      `  p50 ${result.latencyMs.p50} ms  p99 ${result.latencyMs.p99} ms (per second: ${result.latencyBySecond.map((s) => Math.round(s.p99)).join(' ')}; jobs ${result.inboundJobsBySecond.join(' ')})  errors ${result.errors}${result.handedOff ? ` (+${result.handedOff} after a hand-off)` : ''}  ${result.messagesPerInboundJob} msg/job  redis ${result.redisCommandsPerMessage} cmd/msg` +
      `  cpu ${result.cpuMsPerMessage.ingress}+${workerCpu(result)} ms/msg (load generator ${result.loadGeneratorCpuMsPerMessage})` +
      (result.redisPauses.forks || result.redisPauses.delayedFsyncs ? `  redis forks ${result.redisPauses.forks} (last ${result.redisPauses.latestForkMs} ms), delayed fsyncs ${result.redisPauses.delayedFsyncs}` : ''),
  );
  return result;
}

/** Requests prebuilt for an open-loop phase, per second of it (more than the gateway can take on this machine). */
const PREBUILT_MAX_RATE = 1500;

/**
 * Webhooks at a fixed rate, or as fast as possible. Fixed rates are sent open-loop on an even schedule (request k at
 * t0 + k/rate, whether or not earlier ones were answered) over keep-alive connections: autocannon's rate limit sends
 * each second's quota back to back and then pauses, which measures queueing of its own bursts. The open-loop maximum
 * uses autocannon with 64 connections. `build` makes the n-th request; the key a reply is matched by comes from
 * `key` or, once acknowledged, from `keyFromAck`.
 */
function webhookLoad(
  rate: number | 'max',
  seconds: number,
  okStatus: number,
  build: (n: number) => WebhookRequest,
  keyFromAck?: (body: string) => string,
) {
  return async (start: () => Promise<void>) => {
    const sent = new Map<string, number>();
    const ack: number[] = [];
    let errors = 0;
    // Requests are built (encrypted, signed) before the clock starts, so the load generator spends its CPU on
    // sending, not on crypto the gateway's own figures would pay for; it builds more on the fly if they run out.
    const prebuilt = Array.from({ length: Math.ceil((rate === 'max' ? PREBUILT_MAX_RATE : rate) * seconds * 1.05) }, () => build(seq++));
    let next = 0;
    const answered = (request: WebhookRequest, sentAt: number, status: number, body: string) => {
      if (status !== okStatus) return void errors++;
      ack.push(performance.now() - sentAt);
      sent.set(keyFromAck ? keyFromAck(body) : request.key!, sentAt);
    };
    await start();
    if (rate !== 'max') {
      await pacedRequests(base, rate, seconds, () => prebuilt[next++] ?? build(seq++), answered, () => errors++);
      return { sent, errors, ack };
    }
    await autocannon({
      url: base,
      connections: 64,
      duration: seconds,
      requests: [
        {
          method: 'POST',
          setupRequest: (req: any, context: any) => {
            const request = prebuilt[next++] ?? build(seq++);
            context.request = request;
            context.sentAt = performance.now();
            return { ...req, path: request.path, headers: request.headers, body: request.body };
          },
          onResponse: (status: number, body: string, context: any) => answered(context.request, context.sentAt, status, body),
        },
      ],
    } as any);
    return { sent, errors, ack };
  };
}

/** Signed app-channel webhooks; one message per customer, so hand-off rules never silence one mid-run. */
const appLoad = (rate: number | 'max', seconds: number) =>
  webhookLoad(rate, seconds, 202, (n) => {
    const body = JSON.stringify({ userId: `u${n}`, messageId: `m${n}`, text: nextText() });
    const ts = Math.floor(Date.now() / 1000);
    const headers = { 'content-type': 'application/json', 'x-gateway-app': 'bench', 'x-gateway-timestamp': String(ts), 'x-gateway-signature': sign(APP_SECRET, ts, body) };
    return { path: '/webhooks/app/messages', headers, body };
  }, (body) => JSON.parse(body).id);

/** WeCom self-built-app callbacks: XML, AES-256-CBC encrypted with the EncodingAESKey, msg_signature signed. */
const wecomLoad = (rate: number | 'max', seconds: number) => webhookLoad(rate, seconds, 200, (n) => wecomRequest('wecom', n, nextText()));

/**
 * Web-widget visitors over WebSocket, sending at a fixed overall rate. About five messages per visitor: a visitor
 * sending dozens would mostly measure conversations already handed to a human by a rule or hand-off phrase.
 */
function wsLoad(rate: number, seconds: number, sockets = Math.min(5000, Math.max(200, Math.ceil((rate * seconds) / 5)))) {
  return async (start: () => Promise<void>) => {
    const sent = new Map<string, number>();
    const pending = new Map<string, { at: number; conversationId: string }>();
    /** Accepted message id → its visitor's conversation. */
    const conversationOf = new Map<string, string>();
    let errors = 0;
    const clients = await Promise.all(
      Array.from({ length: sockets }, () =>
        new Promise<{ ws: WebSocket; conversationId: string }>((resolve, reject) => {
          const ws = new WebSocket(`${base.replace('http', 'ws')}/webhooks/web/ws`);
          ws.on('message', (data) => {
            const frame = JSON.parse(data.toString());
            if (frame.type === 'session') resolve({ ws, conversationId: conversationIdFor('web', frame.visitorId) });
            else if (frame.type === 'ack') {
              const p = pending.get(frame.clientMessageId);
              pending.delete(frame.clientMessageId);
              if (p !== undefined) {
                sent.set(frame.id, p.at);
                conversationOf.set(frame.id, p.conversationId);
              }
            } else if (frame.type === 'message' && frame.message.replyTo && !wsArrivals.has(frame.message.replyTo)) {
              wsArrivals.set(frame.message.replyTo, performance.now());
            } else if (frame.type === 'error') {
              // A refused message (rate limit, gateway unavailable) names it: one error, no longer pending.
              errors++;
              if (frame.clientMessageId !== undefined) pending.delete(frame.clientMessageId);
            }
          });
          ws.once('error', reject);
        }),
      ),
    );
    let i = 0;
    await start();
    await evenly(rate, seconds, () => {
      const id = `w${seq++}`;
      const client = clients[i++ % clients.length]!;
      pending.set(id, { at: performance.now(), conversationId: client.conversationId });
      client.ws.send(JSON.stringify({ type: 'message', clientMessageId: id, text: nextText() }));
    });
    // A visitor talks to one conversation for the whole phase; once a rule or hand-off phrase hands it to a human,
    // its later messages rightly get no bot reply. Those are counted apart, not as errors, and not waited for.
    const withHuman = new Set<string>();
    const unanswered = () => [...sent.keys()].filter((id) => !wsArrivals.has(id) && !withHuman.has(conversationOf.get(id)!));
    const deadline = Date.now() + 120_000;
    for (let left = unanswered(); left.length > 0 && Date.now() < deadline; left = unanswered()) {
      for (const c of new Set(left.map((id) => conversationOf.get(id)!))) {
        if ((await redis.hget(`gw:conv:{${c}}`, 'state')) !== 'bot') withHuman.add(c);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const { ws } of clients) ws.terminate();
    const handedOff = [...sent.keys()].filter((id) => !wsArrivals.has(id) && withHuman.has(conversationOf.get(id)!));
    for (const id of handedOff) sent.delete(id);
    return { sent, errors: errors + pending.size, handedOff: handedOff.length };
  };
}
const wsArrivals = new Map<string, number>();

/** Idle sockets held by the ingress process (visitors with the widget open, nothing typed). */
async function holdSockets(count: number) {
  const before = ingress.rssMb();
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i += 500) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(500, count - i) }, () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${base.replace('http', 'ws')}/webhooks/web/ws`);
          ws.once('message', () => resolve(ws));
          ws.once('error', reject);
        }),
      ),
    );
    sockets.push(...batch);
  }
  await new Promise((r) => setTimeout(r, 2000));
  const held = ingress.rssMb();
  const ready = (await (await fetch(`${base}/readyz`)).json()) as any;
  for (const ws of sockets) ws.terminate();
  return { sockets: count, ingressRssBeforeMb: before, ingressRssHeldMb: held, reportedByGateway: ready.checks['channel:web']?.detail };
}

async function queueCeiling(): Promise<{ jobsPerSec: number; jobs: number }> {
  const children = Array.from({ length: workerCount }, (_, k) =>
    spawn(process.execPath, ['--import', 'tsx', 'bench/ceiling.ts', 'noop-workers', benchRedis.spec, String(shards), String(k), String(workerCount)], { stdio: ['ignore', 'pipe', 'inherit'] }),
  );
  await Promise.all(children.map((child) => new Promise<void>((r) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && r()))));
  const { Queue } = await import('bullmq');
  const { queueName } = await import('../gateway/queues.js');
  const queues = Array.from({ length: shards }, (_, i) => new Queue(queueName('in', i), { connection: redis as never, prefix: 'ceiling' }));
  // Written while the queues are paused, so the ready workers take nothing before the clock starts.
  await Promise.all(queues.map((q) => q.pause()));
  const perShard = Math.ceil((quick ? 20_000 : 60_000) / shards / 250) * 250;
  for (let n = 0; n < perShard; n += 250) {
    await Promise.all(queues.map((q, i) => q.addBulk(Array.from({ length: 250 }, (_, k) => ({ name: 'noop', data: { n: n + k, shard: i } })))));
  }
  const jobs = perShard * shards;
  const t0 = performance.now();
  await Promise.all(queues.map((q) => q.resume()));
  for (;;) {
    const counts = await Promise.all(queues.map((q) => q.getJobCountByTypes('wait', 'active', 'delayed', 'prioritized')));
    if (counts.every((n) => n === 0)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const jobsPerSec = Math.round(jobs / ((performance.now() - t0) / 1000));
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(queues.map((q) => q.obliterate({ force: true }).then(() => q.close())));
  console.log(`queue ceiling (no-op jobs, ${shards} shard workers in ${workerCount} process(es), concurrency 1): ${jobsPerSec} jobs/s`);
  return { jobsPerSec, jobs };
}

async function bareEnqueue(): Promise<{ requestsPerSec: number }> {
  const p = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/ceiling.ts', 'bare-enqueue', benchRedis.spec, String(shards), String(p)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && r()));
  const result = await autocannon({
    url: `http://127.0.0.1:${p}/enqueue`,
    method: 'POST',
    connections: 64,
    duration: durationS,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId: 'u1', text: 'hello there' }),
  });
  child.kill('SIGTERM');
  // Nothing consumes these jobs: drop them, so the next measurement (and the gateway's phases) find Redis as before.
  const { Queue } = await import('bullmq');
  const queue = new Queue(BARE_QUEUE, { connection: redis as never, prefix: 'ceiling' });
  await queue.obliterate({ force: true });
  await queue.close();
  const requestsPerSec = Math.round(result.requests.average);
  console.log(`bare express route + one BullMQ add: ${requestsPerSec} req/s`);
  return { requestsPerSec };
}

/**
 * Both references, measured twice: before the measured phases and after them. This machine's speed drifts over a
 * run, so a ratio against one measurement taken minutes away from the gateway's best phase can be off by a third;
 * the report keeps both and takes the ratio against their mean.
 */
const referenceRuns = { ceiling: [] as number[], bare: [] as number[] };
async function measureReferences(): Promise<void> {
  referenceRuns.ceiling.push((await queueCeiling()).jobsPerSec);
  referenceRuns.bare.push((await bareEnqueue()).requestsPerSec);
}
const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);

const results: PhaseResult[] = [];
let sockets: Awaited<ReturnType<typeof holdSockets>> | undefined;
try {
  const redisLayout = benchRedis.describe.mode === 'cluster' ? `Redis Cluster of ${benchRedis.describe.masters} masters` : 'one Redis';
  console.log(`benchmark: ${cpus().length} cores, ${cpus()[0]?.model}; phases of ${durationS} s; shards ${shards}; ${redisLayout}; ${corpusLabel}`);
  // Warm-up: JIT, connections, model load, on the code paths of every channel measured (a channel not warmed up, such
  // as WeCom's XML and AES, ran its first phase at several times its later latency). Shorter warm-ups left the first
  // measured phase at twice the CPU per message.
  await phase('app', 300, appLoad(300, quick ? 3 : 8), receiver.arrivals);
  if (channels.has('wecom') && !args.sockets) await phase('wecom', 300, wecomLoad(300, quick ? 2 : 5), receiver.wecomArrivals);
  if (channels.has('ws') && !args.sockets) await phase('ws', 300, wsLoad(300, quick ? 2 : 5), wsArrivals);
  results.length = 0;
  if (args.sockets) sockets = await holdSockets(Number(args.sockets));
  else {
    // While the gateway idles (its queues use another prefix).
    await measureReferences();
    // In the order --channels names them: a later channel runs on the Redis the earlier ones filled.
    for (const channel of channels) {
      if (channel === 'wecom') {
        for (const load of loads) results.push(await phase('wecom', load, wecomLoad(load, durationS), receiver.wecomArrivals));
        results.push(await phase('wecom', 'max', wecomLoad('max', durationS), receiver.wecomArrivals));
      } else if (channel === 'app') {
        for (const load of loads) results.push(await phase('app', load, appLoad(load, durationS), receiver.arrivals));
        results.push(await phase('app', 'max', appLoad('max', durationS), receiver.arrivals));
      } else if (channel === 'ws') {
        for (const load of loads.filter((l) => l <= 1000)) results.push(await phase('ws', load, wsLoad(load, durationS), wsArrivals));
      }
    }
  }
} finally {
  await closeLoadConnections();
  await ingress.stop();
  await Promise.all(workers.map((w) => w.stop()));
}
if (!args.sockets) await measureReferences();
const ceiling = referenceRuns.ceiling.length ? mean(referenceRuns.ceiling) : undefined;
const bare = referenceRuns.bare.length ? mean(referenceRuns.bare) : undefined;
await receiver.close();
await benchRedis.stop();
rmSync(work, { recursive: true, force: true });

const sustained = sustainedOf(results, 'wecom');
// Webhook channels only (targets.ts): the headline figure is WeCom's, whose callbacks cost the most.
const sustainedByChannel = Object.fromEntries(WEBHOOK_CHANNELS.filter((c) => results.some((r) => r.channel === c)).map((c) => [c, sustainedOf(results, c)]));
const max = bestWecomPhase(results);
const report = {
  date: new Date().toISOString(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version },
  code,
  layout: { processes: gatewayProcesses.map((p) => p.role), shards, redis: benchRedis.describe, bot: 'config/gateway.yaml bot section' },
  corpus: corpusFigures,
  phases: results,
  sockets,
  reference: ceiling && bare && {
    // Means of the measurements before and after the phases (each in the *Runs list, in that order).
    queueCeilingJobsPerSec: ceiling,
    queueCeilingRuns: referenceRuns.ceiling,
    bareEnqueueRequestsPerSec: bare,
    bareEnqueueRuns: referenceRuns.bare,
    // A message is one queue job when its reply goes out on the first attempt (the outbound queue holds retries).
    maxDeliveredPerSec: max?.deliveredPerSec,
    maxDeliveredAtOffered: max?.offered,
    ratioToQueueCeiling: max ? reportedRatio(max.deliveredPerSec, ceiling) : undefined,
    ratioToBareEnqueue: max ? reportedRatio(max.deliveredPerSec, bare) : undefined,
    sustainedMsgPerSec: sustained,
    sustainedMsgPerSecByChannel: sustainedByChannel,
  },
};
const outDir = args.out!;
mkdirSync(outDir, { recursive: true });
const stamp = stampOf(report.date);
const jsonPath = join(outDir, `${stamp}${args.sockets ? '-sockets' : ''}.json`);
writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
if (!args.sockets) {
  const points = results.filter((r) => r.channel === 'wecom').map((r) => ({ offered: r.offered === 'max' ? r.sent / durationS : r.offered, delivered: r.deliveredPerSec, p99: r.latencyMs.p99 }));
  writeFileSync(join(outDir, `${stamp}.svg`), renderChart(`Gateway end to end (${cpus().length} cores): encrypted WeCom callbacks`, points));
}

console.log('\n| channel | offered msg/s | delivered msg/s | p50 ms | p95 ms | p99 ms | max ms | errors | Redis cmd/msg | Redis CPU % | CPU ms/msg ingress+workers | RSS ingress/workers MB |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.channel} | ${r.offered} | ${r.deliveredPerSec} | ${r.latencyMs.p50} | ${r.latencyMs.p95} | ${r.latencyMs.p99} | ${r.latencyMs.max} | ${r.errors} | ${r.redisCommandsPerMessage} | ${r.redisCpuPercent} | ${r.cpuMsPerMessage.ingress}+${workerCpu(r)} | ${r.rssMb.ingress}/${workerRss(r)} |`);
}
if (report.reference) console.log('\nreference:', JSON.stringify(report.reference));
if (sockets) console.log('\nsockets:', JSON.stringify(sockets));
console.log(`\nwrote ${jsonPath}`);
if (!args.sockets && outDir === 'bench/results') console.log('`npm run bench:summary` judges it against the targets in the README tables');
process.exit(0);
