/** Loads a shipped example from config/examples/ (the file itself), with its ${ENV} references pointed at fakes. */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { GatewayConfigInput } from '../../config/schema.js';

export function loadExample(name: 'telegram' | 'slack', env: Record<string, string>): Partial<GatewayConfigInput> {
  Object.assign(process.env, env);
  const parsed = parse(readFileSync(new URL(`../../config/examples/${name}.yaml`, import.meta.url), 'utf8')) as Record<string, unknown>;
  // Channels and bot come from the example; server/redis are the test harness's (free port, test Redis).
  return { channels: parsed.channels, bot: parsed.bot } as Partial<GatewayConfigInput>;
}

/** Log lines written when a message was durably enqueued (not a duplicate). */
export const enqueuedCount = (logs: Array<Record<string, unknown>>) => logs.filter((l) => l.msg === 'enqueued').length;
