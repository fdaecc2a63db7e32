/**
 * Reference points measured in the same run as the gateway, on the same Redis:
 *   noop-workers   BullMQ workers with the gateway's layout (one per shard queue and stage, shards split between
 *                  worker processes like the gateway's leases do) doing nothing;
 *   bare-enqueue   a bare express 5 JSON route that does one BullMQ `add` and answers 202.
 * Started as child processes by bench/e2e.ts:
 *   node --import tsx bench/ceiling.ts noop-workers <redis> <shards> <process index> <processes>
 *   node --import tsx bench/ceiling.ts bare-enqueue <redis> <shards> <port>
 * <redis> is a redis:// URL or `cluster:host:port,…` (bench/lib/bench-redis.ts). Queue names carry a hash tag, as the
 * gateway's do, so each queue stays in one slot of a cluster.
 */
import express from 'express';
import { Queue, Worker } from 'bullmq';
import { queueName } from '../gateway/queues.js';
import { connectRedis } from '../gateway/redis.js';
import { BARE_QUEUE, targetFromSpec } from './lib/bench-redis.js';

const [mode, redisSpec, shardsArg, portOrIndex, processesArg] = process.argv.slice(2);
const target = targetFromSpec(redisSpec!);
const shards = Number(shardsArg ?? 8);
const prefix = 'ceiling';

if (mode === 'noop-workers') {
  const workers: Worker[] = [];
  for (const stage of ['in', 'out'] as const) {
    for (let i = 0; i < shards; i++) {
      if (i % Number(processesArg ?? 1) !== Number(portOrIndex ?? 0)) continue;
      workers.push(new Worker(queueName(stage, i), async () => {}, {
        connection: connectRedis(target, { autoPipelining: false }) as never,
        prefix,
        concurrency: 1,
        removeOnComplete: { count: 1000 },
      }));
    }
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  console.log('ready');
  process.on('SIGTERM', async () => {
    await Promise.all(workers.map((w) => w.close()));
    process.exit(0);
  });
} else if (mode === 'bare-enqueue') {
  const connection = connectRedis(target, { autoPipelining: true });
  const queue = new Queue(BARE_QUEUE, { connection: connection as never, prefix, defaultJobOptions: { removeOnComplete: true } });
  const app = express();
  app.use(express.json());
  app.post('/enqueue', async (req, res) => {
    const job = await queue.add('m', req.body);
    res.status(202).json({ id: job.id });
  });
  app.listen(Number(portOrIndex), '127.0.0.1', () => console.log('ready'));
  process.on('SIGTERM', () => process.exit(0));
} else {
  console.error('usage: ceiling.ts noop-workers|bare-enqueue <redis URL or cluster:host:port,…> <shards> [port]');
  process.exit(2);
}
