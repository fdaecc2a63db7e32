/**
 * The ingress process on its own (`npm run bench:ingress`): encrypted, signed WeCom callbacks at fixed rates, sent
 * open-loop on an even schedule, into an ingress process with no workers behind it — verification, decryption, XML,
 * validation, dedupe and the durable enqueue, up to the 200 that acknowledges. Its CPU per message and the
 * acknowledgement latency are what an ingress change moves; the end-to-end benchmark (`npm run bench`) shows where
 * the whole gateway stands.
 *
 *   npm run bench:ingress                         1,000 and 2,000 callbacks/s, 10 s each
 *   npm run bench:ingress -- --loads 500,3000 --duration 5 --pin
 *       --pin: the ingress process on core 0, Redis and the load generator on core 1 (taskset), for A/B comparisons
 *   npm run bench:ingress -- --cpu-prof           a V8 CPU profile of the ingress in bench/results/profiles/
 *
 * Writes bench/results/<date>-ingress.json.
 */
import { execSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, startPrivateRedis } from '../gateway/redis-server.js';
import { writeBenchConfig } from './lib/config.js';
import { corpusSummary, loadCorpus, textSource } from './lib/corpus.js';
import { closeLoadConnections, pacedRequests } from './lib/load.js';
import { commandsPerMessage, cpuProfileArgs, redisCounters, startRole } from './lib/processes.js';
import { writeReport } from './lib/report.js';
import { summarize } from './lib/stats.js';
import { wecomChannelOptions, wecomRequest } from './lib/wecom-requests.js';

const { values: args } = parseArgs({
  options: {
    loads: { type: 'string', default: '1000,2000' },
    duration: { type: 'string', default: '10' },
    pin: { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
  },
});
const loads = args.loads!.split(',').map(Number);
const durationS = Number(args.duration);

const work = mkdtempSync(join(tmpdir(), 'gw-bench-ingress-'));
const redisServer = await startPrivateRedis({ dataDir: join(work, 'redis') });
const redis = new Redis(redisServer.url);
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
// Nothing is sent in this benchmark; the API base URL only has to be valid.
const configPath = writeBenchConfig(work, {
  port,
  pipeline: { shards: 4 },
  channels: [{ id: 'wecom', type: 'wecom-app', options: wecomChannelOptions('http://127.0.0.1:9') }],
});
const profArgs = cpuProfileArgs(args['cpu-prof']);
const ingress = await startRole('ingress', configPath, { REDIS_URL: redisServer.url, LOG_LEVEL: 'warn' }, profArgs);
const corpus = loadCorpus();
const { label: corpusLabel, ...corpusFigures } = corpusSummary(corpus);
const nextText = textSource(corpus.texts);
let seq = 0;

interface Row {
  offered: number;
  acknowledged: number;
  errors: number;
  ingressCpuMsPerMessage: number;
  ackLatencyMs: ReturnType<typeof summarize>;
  redisCommandsPerMessage: number;
  redisTopCommands: Record<string, number>;
}

async function phase(rate: number, seconds: number): Promise<Row> {
  const requests = Array.from({ length: Math.ceil(rate * seconds) }, () => wecomRequest('wecom', seq++, nextText()));
  let next = 0;
  const ack: number[] = [];
  let errors = 0;
  const before = await redisCounters(redis);
  const cpuBefore = ingress.cpuSeconds();
  await pacedRequests(
    base,
    rate,
    seconds,
    () => requests[next++] ?? wecomRequest('wecom', seq++, nextText()),
    (_request, sentAt, status) => (status === 200 ? ack.push(performance.now() - sentAt) : errors++),
    () => errors++,
  );
  const after = await redisCounters(redis);
  const row: Row = {
    offered: rate,
    acknowledged: ack.length,
    errors,
    ingressCpuMsPerMessage: Math.round(((ingress.cpuSeconds() - cpuBefore) * 1000 * 1000) / Math.max(1, ack.length)) / 1000,
    ackLatencyMs: summarize(ack),
    redisCommandsPerMessage: Math.round(((after.commands - before.commands) / Math.max(1, ack.length)) * 10) / 10,
    redisTopCommands: commandsPerMessage(before.byCommand, after.byCommand, ack.length),
  };
  console.log(
    `${String(rate).padStart(5)}/s: ingress CPU ${row.ingressCpuMsPerMessage} ms/msg, ack p50 ${row.ackLatencyMs.p50} ms p99 ${row.ackLatencyMs.p99} ms, ` +
      `Redis ${row.redisCommandsPerMessage} cmd/msg, errors ${errors}`,
  );
  return row;
}

const rows: Row[] = [];
try {
  if (args.pin) {
    execSync(`taskset -a -cp 0 ${ingress.child.pid}`);
    for (const pid of [process.pid, redisServer.process.pid]) execSync(`taskset -a -cp 1 ${pid}`);
  }
  console.log(`ingress benchmark: ${cpus().length} cores, one ingress process, no workers${args.pin ? ', pinned' : ''}, ${corpusLabel}`);
  await phase(1000, 5); // warm-up: JIT, connections
  for (const load of loads) rows.push(await phase(load, durationS));
} finally {
  await closeLoadConnections();
  await ingress.stop();
  redis.disconnect();
  await redisServer.stop();
  rmSync(work, { recursive: true, force: true });
}
const path = writeReport('bench/results', 'ingress', { corpus: corpusFigures, pinned: args.pin, rows });
console.log(`wrote ${path}`);
process.exit(0);
