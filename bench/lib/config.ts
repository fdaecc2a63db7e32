/** The gateway config file a benchmark starts its processes from: loopback only, warn-level logs, prefix `gw`. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';

export interface BenchConfig {
  port: number;
  pipeline: Record<string, unknown>;
  channels: unknown[];
  /** Default: no bot section (the gateway's defaults). */
  bot?: unknown;
  /** Default: prefix `gw`, Redis from REDIS_URL. */
  redis?: { prefix: string; cluster?: string[] };
}

/** Writes `bench.yaml` into `dir` and returns its path. */
export function writeBenchConfig(dir: string, config: BenchConfig): string {
  const path = join(dir, 'bench.yaml');
  writeFileSync(
    path,
    toYaml({
      server: { host: '127.0.0.1', port: config.port, adminKey: 'bench-admin-key-0123456789' },
      redis: config.redis ?? { prefix: 'gw' },
      pipeline: config.pipeline,
      log: { level: 'warn' },
      channels: config.channels,
      ...(config.bot !== undefined && { bot: config.bot }),
    }),
  );
  return path;
}

/**
 * The shipped bot (config/gateway.yaml: rules, knowledge base, intent model), so the figures include its real work —
 * except that visitors are never handed to a human for "unanswered turns" (a benchmark visitor sends many messages).
 */
export function shippedBot(): Record<string, any> {
  const shipped = parseYaml(readFileSync('config/gateway.yaml', 'utf8')) as Record<string, any>;
  return { ...shipped.bot, policy: { ...shipped.bot?.policy, handoffAfterUnanswered: 0 } };
}
