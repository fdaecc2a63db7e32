/** Reads the YAML config, substitutes `${ENV}` references, validates it and explains every problem by path. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { GatewayConfig } from './schema.js';

export const DEFAULT_CONFIG_PATH = 'config/gateway.yaml';

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `${NAME}` or `${NAME:-default}`; `$${` escapes a literal `${`. */
const ENV_REF = /\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, path: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (whole, escaped: string | undefined, name: string, fallback: string | undefined) => {
      if (escaped) return whole.slice(1);
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      problems.push(`${path || '(root)'}: environment variable ${name} is not set (use \${${name}:-default} for a default)`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, `${path}[${i}]`, problems));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, path ? `${path}.${k}` : k, problems)]),
    );
  }
  return value;
}

export function formatIssuePath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)),
    '',
  );
}

export function describeIssues(error: z.ZodError, root: unknown): string[] {
  return error.issues.map((issue) => {
    const where = formatIssuePath(issue.path) || '(root)';
    const channel = channelLabel(issue.path, root);
    return `${where}${channel}: ${issue.message}`;
  });
}

/** Names the channel an issue is in ("channels[2] (id wecom-sales)") so the reader finds it in the file. */
function channelLabel(path: readonly PropertyKey[], root: unknown): string {
  if (path[0] !== 'channels' || typeof path[1] !== 'number') return '';
  const channels = (root as { channels?: Array<{ id?: unknown; type?: unknown }> } | null)?.channels;
  const channel = channels?.[path[1]];
  if (!channel) return '';
  return ` (channel id ${String(channel.id)}, type ${String(channel.type)})`;
}

/** Validates an already-parsed config object. */
export function parseConfig(input: unknown, source = '(inline)', env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const problems: string[] = [];
  const substituted = substituteEnv(input ?? {}, env, '', problems);
  if (problems.length) throw new ConfigError(source, problems);
  const result = GatewayConfig.safeParse(substituted);
  if (!result.success) throw new ConfigError(source, describeIssues(result.error, substituted));
  return result.data;
}

export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as Error).message}`]);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError(path, [`not valid YAML: ${(err as Error).message}`]);
  }
  return parseConfig(parsed, path, env);
}
