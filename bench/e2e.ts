/**
 * End-to-end benchmark (`npm run bench`): its own Redis, the gateway as deployed (an ingress process and a worker
 * process), a loopback platform receiving the replies, and fixed offered loads of signed, AES-encrypted WeCom
 * callbacks, signed app-channel webhooks and web-widget WebSocket messages. Every message goes ingress → queue → bot (the shipped config's bot) → delivery.
 *
 *   npm run bench                      loads 500,1000,2000,4000 msg/s + open-loop max, 10 s each
 *   npm run bench -- --quick           short phases (smoke run)
 *   npm run bench -- --loads 1000,3000 --duration 20
 *   npm run bench -- --sockets 10000   idle web-widget sockets held, ingress RSS
 *
 * Writes bench/results/<date>.json and bench/results/<date>.svg and prints a summary table.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { sign } from '../adapters/app/signature.js';
import { createWechatCrypto } from '../adapters/shared/wechat-crypto.js';
import { freePort, startPrivateRedis } from '../gateway/redis-server.js';
import { renderChart } from './lib/chart.js';
import { loadCorpus, textSource } from './lib/corpus.js';
import { redisCounters, rssMb, startRole, type RoleProcess } from './lib/processes.js';
import { startReceiver } from './lib/receiver.js';
import { summarize } from './lib/stats.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    loads: { type: 'string' },
    duration: { type: 'string' },
    sockets: { type: 'string' },
    shards: { type: 'string', default: '16' },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const quick = args.quick!;
const loads = (args.loads ?? (quick ? '250,1000' : '250,500,1000,2000,4000')).split(',').map(Number);
const durationS = Number(args.duration ?? (quick ? 3 : 10));
const shards = Number(args.shards);
const APP_SECRET = 'bench-app-secret-0123456789';
const WECOM = { corpId: 'wwbench0123456789', token: 'benchToken', encodingAESKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', agentId: 1000002 };
const wecomCrypto = createWechatCrypto({ token: WECOM.token, encodingAESKey: WECOM.encodingAESKey, receiveId: WECOM.corpId });

const work = mkdtempSync(join(tmpdir(), 'gw-bench-'));
const redisServer = await startPrivateRedis({ dataDir: join(work, 'redis') });
const redis = new Redis(redisServer.url);
const receiver = await startReceiver();
const port = await freePort();
const base = `http://127.0.0.1:${port}`;

// The shipped bot configuration, so the figures include its real work (rules, KB, intent model when configured).
const shipped = parseYaml(readFileSync('config/gateway.yaml', 'utf8')) as Record<string, any>;
const configPath = join(work, 'bench.yaml');
writeFileSync(
  configPath,
  toYaml({
    server: { host: '127.0.0.1', port, adminKey: 'bench-admin-key-0123456789' },
    redis: { prefix: 'gw' },
    pipeline: { shards, keepCompleted: 100, keepFailed: 10_000 },
    log: { level: 'warn' },
    channels: [
      { id: 'web', type: 'web', options: { secret: 'bench-web-secret-0123456789', heartbeatSeconds: 60 } },
      { id: 'app', type: 'app', options: { apps: [{ id: 'bench', secret: APP_SECRET, callbackUrl: `${receiver.url}/replies` }] } },
      { id: 'wecom', type: 'wecom-app', options: { ...WECOM, corpSecret: 'bench-corp-secret-0123456789', apiBaseUrl: receiver.url } },
    ],
    // The shipped bot, except that web visitors sending dozens of messages are not handed to a human for
    // "unanswered turns" (the widget phase reuses each socket for many messages).
    bot: { ...shipped.bot, policy: { ...shipped.bot?.policy, handoffAfterUnanswered: 0 } },
  }),
);
const env = { REDIS_URL: redisServer.url, LOG_LEVEL: 'warn' };
const profArgs = args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${join('bench', 'results', 'profiles')}`] : [];
const ingress = await startRole('ingress', configPath, env, profArgs);
const worker = await startRole('worker', configPath, env, profArgs);
const gatewayProcesses: RoleProcess[] = [ingress, worker];
const nextText = textSource(loadCorpus());
let seq = 0;

interface PhaseResult {
  channel: string;
  offered: number | 'max';
  sent: number;
  accepted: number;
  delivered: number;
  deliveredPerSec: number;
  errors: number;
  latencyMs: ReturnType<typeof summarize>;
  ackLatencyMs?: ReturnType<typeof summarize>;
  redisCommandsPerMessage: number;
  redisCpuPercent: number;
  /** CPU time each gateway process spent per delivered message: a figure that holds on a busy machine. */
  cpuMsPerMessage: Record<string, number>;
  rssMb: Record<string, number>;
}

/** Waits until every accepted message has its reply, or the drain timeout passes. */
async function drain(ids: Iterable<string>, arrivals: Map<string, number>, timeoutMs = 120_000): Promise<void> {
  const list = [...ids];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && list.some((id) => !arrivals.has(id))) await new Promise((r) => setTimeout(r, 50));
}

/** Queued and running jobs of the gateway's pipeline, all shards and stages. */
async function backlog(): Promise<number> {
  const keys = (stage: string, i: number) => [`gw:{${stage}-${i}}:wait`, `gw:{${stage}-${i}}:active`, `gw:{${stage}-${i}}:delayed`];
  const pipe = redis.pipeline();
  for (const stage of ['in', 'out']) {
    for (let i = 0; i < shards; i++) {
      const [wait, active, delayed] = keys(stage, i);
      pipe.llen(wait!).llen(active!).zcard(delayed!);
    }
  }
  return ((await pipe.exec()) ?? []).reduce((n, [, v]) => n + Number(v ?? 0), 0);
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

async function phase(channel: string, offered: number | 'max', run: () => Promise<{ sent: Map<string, number>; errors: number; ack?: number[] }>, arrivals: Map<string, number>): Promise<PhaseResult> {
  const leftOver = await settle();
  if (leftOver > 0) console.log(`(${leftOver} jobs still queued from the previous phase)`);
  const before = await redisCounters(redis);
  const cpuBefore = gatewayProcesses.map((p) => p.cpuSeconds());
  const t0 = performance.now();
  const { sent, errors, ack } = await run();
  await drain(sent.keys(), arrivals);
  const latencies: number[] = [];
  let lastArrival = t0;
  for (const [id, at] of sent) {
    const arrived = arrivals.get(id);
    if (arrived === undefined) continue;
    latencies.push(arrived - at);
    lastArrival = Math.max(lastArrival, arrived);
  }
  const after = await redisCounters(redis);
  const wall = (lastArrival - t0) / 1000;
  const result: PhaseResult = {
    channel,
    offered,
    sent: sent.size + errors,
    accepted: sent.size,
    delivered: latencies.length,
    deliveredPerSec: Math.round(latencies.length / Math.max(wall, 0.001)),
    errors: errors + (sent.size - latencies.length),
    latencyMs: summarize(latencies),
    ...(ack && { ackLatencyMs: summarize(ack) }),
    redisCommandsPerMessage: Math.round(((after.commands - before.commands) / Math.max(1, latencies.length)) * 10) / 10,
    redisCpuPercent: Math.round(((after.cpuSeconds - before.cpuSeconds) / Math.max(wall, 0.001)) * 1000) / 10,
    cpuMsPerMessage: Object.fromEntries(
      gatewayProcesses.map((p, i) => [p.role, Math.round(((p.cpuSeconds() - cpuBefore[i]!) * 1000 / Math.max(1, latencies.length)) * 100) / 100]),
    ),
    rssMb: Object.fromEntries(gatewayProcesses.map((p) => [p.role, p.rssMb()])),
  };
  console.log(
    `${channel.padEnd(5)} offered ${String(offered).padStart(5)}/s → delivered ${String(result.deliveredPerSec).padStart(5)}/s` +
      `  p50 ${result.latencyMs.p50} ms  p99 ${result.latencyMs.p99} ms  errors ${result.errors}  redis ${result.redisCommandsPerMessage} cmd/msg` +
      `  cpu ${result.cpuMsPerMessage.ingress}+${result.cpuMsPerMessage.worker} ms/msg`,
  );
  return result;
}

interface WebhookRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
  /** What the reply will be matched by, when it is known before the answer (WeCom: the user id). */
  key?: string;
}

/**
 * Webhooks through autocannon at a fixed overall rate (or as fast as possible, 64 connections). `build` makes the
 * n-th request; the key a reply is matched by comes from `key` or, once acknowledged, from `keyFromAck`.
 */
function webhookLoad(
  rate: number | 'max',
  seconds: number,
  okStatus: number,
  build: (n: number) => WebhookRequest,
  keyFromAck?: (body: string) => string,
) {
  return async () => {
    const sent = new Map<string, number>();
    const ack: number[] = [];
    let errors = 0;
    await autocannon({
      url: base,
      connections: rate === 'max' ? 64 : Math.min(64, Math.max(8, Math.ceil(Number(rate) / 100))),
      duration: seconds,
      ...(rate !== 'max' && { overallRate: rate }),
      requests: [
        {
          method: 'POST',
          setupRequest: (req: any, context: any) => {
            const request = build(seq++);
            context.key = request.key;
            context.sentAt = performance.now();
            return { ...req, path: request.path, headers: request.headers, body: request.body };
          },
          onResponse: (status: number, body: string, context: any) => {
            if (status !== okStatus) return void errors++;
            ack.push(performance.now() - context.sentAt);
            sent.set(keyFromAck ? keyFromAck(body) : context.key, context.sentAt);
          },
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
const wecomLoad = (rate: number | 'max', seconds: number) =>
  webhookLoad(rate, seconds, 200, (n) => {
    const user = `wu${n}`;
    const now = Math.floor(Date.now() / 1000);
    const text = nextText().replace(/[<&]/g, ' ');
    const plain = `<xml><ToUserName><![CDATA[${WECOM.corpId}]]></ToUserName><FromUserName><![CDATA[${user}]]></FromUserName><CreateTime>${now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[${text}]]></Content><MsgId>${7_000_000_000_000 + n}</MsgId><AgentID>${WECOM.agentId}</AgentID></xml>`;
    const encrypt = wecomCrypto.encrypt(plain);
    const nonce = String(n);
    return {
      key: user,
      path: `/webhooks/wecom?msg_signature=${wecomCrypto.signature(String(now), nonce, encrypt)}&timestamp=${now}&nonce=${nonce}`,
      headers: { 'content-type': 'text/xml' },
      body: `<xml><ToUserName><![CDATA[${WECOM.corpId}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt><AgentID><![CDATA[${WECOM.agentId}]]></AgentID></xml>`,
    };
  });

/** Web-widget visitors over WebSocket, sending at a fixed overall rate. */
function wsLoad(rate: number, seconds: number, sockets = 200) {
  return async () => {
    const sent = new Map<string, number>();
    const pending = new Map<string, number>();
    let errors = 0;
    const clients = await Promise.all(
      Array.from({ length: sockets }, () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${base.replace('http', 'ws')}/webhooks/web/ws`);
          ws.on('message', (data) => {
            const frame = JSON.parse(data.toString());
            if (frame.type === 'ack') {
              const at = pending.get(frame.clientMessageId);
              pending.delete(frame.clientMessageId);
              if (at !== undefined) sent.set(frame.id, at);
            } else if (frame.type === 'message' && frame.message.replyTo && !wsArrivals.has(frame.message.replyTo)) {
              wsArrivals.set(frame.message.replyTo, performance.now());
            } else if (frame.type === 'error') errors++;
          });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
      ),
    );
    const tickMs = 10;
    const perTick = rate / (1000 / tickMs);
    let budget = 0;
    let i = 0;
    const end = performance.now() + seconds * 1000;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (performance.now() >= end) {
          clearInterval(timer);
          return resolve();
        }
        budget += perTick;
        for (; budget >= 1; budget--) {
          const id = `w${seq++}`;
          pending.set(id, performance.now());
          clients[i++ % clients.length]!.send(JSON.stringify({ type: 'message', clientMessageId: id, text: nextText() }));
        }
      }, tickMs);
    });
    await drain(sent.keys(), wsArrivals);
    for (const ws of clients) ws.terminate();
    return { sent, errors: errors + pending.size };
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
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/ceiling.ts', 'noop-workers', redisServer.url, String(shards)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && r()));
  const { Queue } = await import('bullmq');
  const { queueName } = await import('../gateway/queues.js');
  const queues = Array.from({ length: shards }, (_, i) => new Queue(queueName('in', i), { connection: redis as never, prefix: 'ceiling' }));
  const jobs = quick ? 20_000 : 60_000;
  for (let n = 0; n < jobs; n += 1000) {
    await Promise.all(queues.map((q, i) => q.addBulk(Array.from({ length: 1000 / shards }, (_, k) => ({ name: 'noop', data: { n: n + i + k } })))));
  }
  const t0 = performance.now();
  for (;;) {
    const left = (await Promise.all(queues.map((q) => q.count()))).reduce((a, b) => a + b, 0);
    if (left === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const jobsPerSec = Math.round(jobs / ((performance.now() - t0) / 1000));
  child.kill('SIGTERM');
  await Promise.all(queues.map((q) => q.obliterate({ force: true }).then(() => q.close())));
  console.log(`queue ceiling (no-op jobs, ${shards} shard workers, concurrency 1): ${jobsPerSec} jobs/s`);
  return { jobsPerSec, jobs };
}

async function bareEnqueue(): Promise<{ requestsPerSec: number }> {
  const p = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/ceiling.ts', 'bare-enqueue', redisServer.url, String(shards), String(p)], { stdio: ['ignore', 'pipe', 'inherit'] });
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
  const requestsPerSec = Math.round(result.requests.average);
  console.log(`bare express route + one BullMQ add: ${requestsPerSec} req/s`);
  return { requestsPerSec };
}

const results: PhaseResult[] = [];
let sockets: Awaited<ReturnType<typeof holdSockets>> | undefined;
try {
  console.log(`benchmark: ${cpus().length} cores, ${cpus()[0]?.model}; phases of ${durationS} s; shards ${shards}`);
  await phase('app', 200, appLoad(200, 2), receiver.arrivals); // warm-up: JIT, connections, model load
  results.length = 0;
  if (args.sockets) sockets = await holdSockets(Number(args.sockets));
  else {
    for (const load of loads) results.push(await phase('wecom', load, wecomLoad(load, durationS), receiver.wecomArrivals));
    results.push(await phase('wecom', 'max', wecomLoad('max', durationS), receiver.wecomArrivals));
    for (const load of loads) results.push(await phase('app', load, appLoad(load, durationS), receiver.arrivals));
    results.push(await phase('app', 'max', appLoad('max', durationS), receiver.arrivals));
    for (const load of loads.filter((l) => l <= 1000)) results.push(await phase('ws', load, wsLoad(load, durationS), wsArrivals));
  }
} finally {
  await ingress.stop();
  await worker.stop();
}
const ceiling = args.sockets ? undefined : await queueCeiling();
const bare = args.sockets ? undefined : await bareEnqueue();
redis.disconnect();
await receiver.close();
await redisServer.stop();
rmSync(work, { recursive: true, force: true });

const sustained = Math.max(0, ...results.filter((r) => r.channel === 'wecom' && r.offered !== 'max' && r.errors === 0 && r.deliveredPerSec >= 0.95 * Number(r.offered)).map((r) => Number(r.offered)));
const max = results.find((r) => r.channel === 'wecom' && r.offered === 'max');
const report = {
  date: new Date().toISOString(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version },
  layout: { processes: ['ingress', 'worker'], shards, bot: 'config/gateway.yaml bot section' },
  phases: results,
  sockets,
  reference: ceiling && bare && {
    queueCeilingJobsPerSec: ceiling.jobsPerSec,
    bareEnqueueRequestsPerSec: bare.requestsPerSec,
    // Each message is two jobs (inbound + outbound), so the comparable queue figure is half the job rate.
    maxDeliveredPerSec: max?.deliveredPerSec,
    ratioToQueueCeiling: max ? Math.round((max.deliveredPerSec / (ceiling.jobsPerSec / 2)) * 100) / 100 : undefined,
    ratioToBareEnqueue: max ? Math.round((max.deliveredPerSec / bare.requestsPerSec) * 100) / 100 : undefined,
    sustainedMsgPerSec: sustained,
  },
};
mkdirSync('bench/results', { recursive: true });
const stamp = report.date.slice(0, 19).replace(/[:T]/g, '-');
const jsonPath = `bench/results/${stamp}${args.sockets ? '-sockets' : ''}.json`;
writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
if (!args.sockets) {
  const points = results.filter((r) => r.channel === 'wecom').map((r) => ({ offered: r.offered === 'max' ? r.sent / durationS : r.offered, delivered: r.deliveredPerSec, p99: r.latencyMs.p99 }));
  writeFileSync(`bench/results/${stamp}.svg`, renderChart(`Gateway end to end (${cpus().length} cores): encrypted WeCom callbacks`, points));
}

console.log('\n| channel | offered msg/s | delivered msg/s | p50 ms | p95 ms | p99 ms | max ms | errors | Redis cmd/msg | Redis CPU % | CPU ms/msg ingress+worker | RSS ingress/worker MB |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.channel} | ${r.offered} | ${r.deliveredPerSec} | ${r.latencyMs.p50} | ${r.latencyMs.p95} | ${r.latencyMs.p99} | ${r.latencyMs.max} | ${r.errors} | ${r.redisCommandsPerMessage} | ${r.redisCpuPercent} | ${r.cpuMsPerMessage.ingress}+${r.cpuMsPerMessage.worker} | ${r.rssMb.ingress}/${r.rssMb.worker} |`);
}
if (report.reference) console.log('\nreference:', JSON.stringify(report.reference));
if (sockets) console.log('\nsockets:', JSON.stringify(sockets));
console.log(`\nwrote ${jsonPath}`);
process.exit(0);
