/**
 * Command line: `tsx gateway/main.ts [--config path] [--role all|ingress|worker] [--check]`.
 * Without REDIS_URL (or redis.url in the config) it runs its own private redis-server and stops it on exit.
 */
import { parseArgs } from 'node:util';
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfigFile } from '../config/load.js';
import { createGateway, type Role } from './gateway.js';
import { missingNodeFlags, nodeFlagsFor } from './node-flags.js';
import { createLogger } from './logger.js';
import { RedisMissingError, startPrivateRedis, type PrivateRedis } from './redis-server.js';

const { values } = parseArgs({
  options: {
    config: { type: 'string', default: process.env.GATEWAY_CONFIG ?? DEFAULT_CONFIG_PATH },
    role: { type: 'string', default: process.env.GATEWAY_ROLE ?? 'all' },
    check: { type: 'boolean', default: false },
  },
});

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfigFile(values.config!);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  if (values.check) {
    console.log(`${values.config}: valid (${config.channels.length} channels: ${config.channels.map((c) => `${c.id}/${c.type}`).join(', ')})`);
    return;
  }
  const role = values.role as Role;
  if (!['all', 'ingress', 'worker'].includes(role)) {
    console.error(`--role must be all, ingress or worker (got "${role}")`);
    process.exit(2);
  }
  const log = createLogger(config.log.level);
  const missing = missingNodeFlags(role);
  if (missing.length > 0) {
    // Started some other way than the npm scripts or the image: it works, with more and longer GC pauses.
    log.warn({ missing }, `role ${role} runs best with these node flags (gateway/node-flags.ts): node ${nodeFlagsFor(role).join(' ')} …`);
  }
  let privateRedis: PrivateRedis | undefined;
  let redisUrl = process.env.REDIS_URL || config.redis.url;
  if (!redisUrl && !config.redis.cluster?.length) {
    try {
      privateRedis = await startPrivateRedis({ dataDir: config.redis.dataDir, log: (line) => log.info(line) });
    } catch (err) {
      if (err instanceof RedisMissingError) {
        console.error(err.message);
        process.exit(3);
      }
      throw err;
    }
    redisUrl = privateRedis.url;
    log.info({ url: redisUrl, dataDir: config.redis.dataDir }, 'started a private redis-server');
  }

  const gateway = createGateway({ config, role, log, ...(redisUrl && { redisUrl }) });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error('graceful shutdown took over 30 s; exiting');
      process.exit(1);
    }, 30_000);
    force.unref();
    try {
      // A terminal's Ctrl-C signals the private redis-server too (same process group). Once it is gone nothing can
      // drain — the jobs are in its AOF, and unfinished ones run again at the next start — so do not wait for it.
      const redisGone = privateRedis?.exited.then(() => log.warn('the private redis-server has exited; not draining'));
      await Promise.race([gateway.stop(), ...(redisGone ? [redisGone] : [])]);
    } finally {
      await privateRedis?.stop();
      process.exit(0);
    }
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  try {
    await gateway.start();
  } catch (err) {
    log.fatal({ err }, 'gateway failed to start');
    await gateway.stop().catch(() => {});
    await privateRedis?.stop();
    process.exit(1);
  }
  // A worker serves no HTTP: it has no URL to show. ("Gateway ready" is what scripts wait for.)
  const where = role === 'worker' ? `(shards ${gateway.pipeline.ownedShards.join(', ') || 'none yet'}; no HTTP)` : `on ${gateway.url}`;
  console.log(`\n  Gateway ready ${where}  (role ${role}; Ctrl-C stops it)\n`);
}

void main();
