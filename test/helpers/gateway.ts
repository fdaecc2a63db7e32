/**
 * Starts a real gateway (HTTP on a free loopback port, real Redis, real BullMQ workers) from a config object, and
 * collects its log lines so tests can assert on them.
 */
import { Writable } from 'node:stream';
import { parseConfig } from '../../config/load.js';
import type { GatewayConfigInput } from '../../config/schema.js';
import type { Bot } from '../../bot/types.js';
import { createGateway, type Gateway, type Role } from '../../gateway/gateway.js';
import { createLogger } from '../../gateway/logger.js';

export interface TestGateway {
  gateway: Gateway;
  url: string;
  logs: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function startTestGateway(
  input: Partial<GatewayConfigInput>,
  redisUrl: string,
  opts: { role?: Role; bot?: Bot; prefix?: string } = {},
): Promise<TestGateway> {
  const config = parseConfig({
    ...input,
    server: { port: 0, ...input.server },
    redis: { prefix: opts.prefix ?? 'gw', ...input.redis },
    pipeline: { deliveryBackoffMs: 50, ...input.pipeline },
    log: { level: process.env.TEST_LOG_LEVEL ?? 'debug' },
  });
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
      if (process.env.TEST_LOG) process.stderr.write(chunk);
      cb();
    },
  });
  const log = createLogger(config.log.level, sink);
  const gateway = createGateway({ config, redisUrl, role: opts.role ?? 'all', log, ...(opts.bot && { bot: opts.bot }) });
  try {
    await gateway.start();
  } catch (err) {
    // What did start (connections, a listening server) must not keep the test process alive.
    await gateway.stop().catch(() => undefined);
    throw err;
  }
  return { gateway, url: gateway.url, logs, stop: () => gateway.stop() };
}

/** Polls until `check` returns a truthy value, or fails after `timeoutMs` with `what`. */
export async function eventually<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
