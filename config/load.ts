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
  return channel.type === undefined ? ` (channel id ${String(channel.id)})` : ` (channel id ${String(channel.id)}, type ${String(channel.type)})`;
}

/** Validates an already-parsed config object. */
export function parseConfig(input: unknown, source = '(inline)', env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const problems: string[] = [];
  const substituted = substituteEnv(input ?? {}, env, '', problems);
  if (problems.length) throw new ConfigError(source, problems);
  const result = GatewayConfig.safeParse(substituted);
  if (!result.success) throw new ConfigError(source, describeIssues(result.error, substituted));
  // Top-level `x-…` keys are the file's own (a place for YAML anchors, as in Compose files): not settings.
  const unknown = unknownKeys(substituted, result.data, []).filter((path) => !(path.length === 1 && String(path[0]).startsWith('x-')));
  if (unknown.length) throw new ConfigError(source, unknown.map((path) => describeUnknownKey(path, result.data, substituted)));
  return result.data;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Keys of the input that validation dropped: zod objects strip what they do not know, so a misspelt or retired setting
 * would otherwise be ignored in silence. Found by walking the input beside the validated result — every schema
 * (channel options included) is checked this way without marking each one strict. Where a schema turned a value into
 * something else (a transform), there is nothing to compare and the walk stops.
 */
export function unknownKeys(input: unknown, output: unknown, path: PropertyKey[]): PropertyKey[][] {
  if (Array.isArray(input) && Array.isArray(output) && input.length === output.length) {
    return input.flatMap((item, i) => unknownKeys(item, output[i], [...path, i]));
  }
  if (!isPlainObject(input) || !isPlainObject(output)) return [];
  return Object.keys(input).flatMap((key) =>
    Object.hasOwn(output, key) ? unknownKeys(input[key], output[key], [...path, key]) : input[key] === undefined ? [] : [[...path, key]],
  );
}

/** Settings that existed once, with what to do instead: found in an old file, they get this instead of a guess. */
const RETIRED_SETTINGS: Record<string, string> = {
  'bot.context.messages':
    'retired: the bot keeps no copy of the messages; every message is in the conversation transcript (handoff.transcript.maxMessages) — delete the line',
};

function describeUnknownKey(path: PropertyKey[], output: unknown, root: unknown): string {
  const retired = RETIRED_SETTINGS[path.filter((part) => typeof part === 'string').join('.')];
  if (retired) return `${formatIssuePath(path)}${channelLabel(path, root)}: ${retired}`;
  const key = String(path.at(-1));
  const known = settingsAt(GatewayConfig, path.slice(0, -1), root) ?? keysOf(valueAt(output, path.slice(0, -1)));
  const near = known.filter((k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= Math.max(1, Math.floor(key.length / 4)));
  const hint = near.length ? `; did you mean ${near.map((k) => JSON.stringify(k)).join(' or ')}?` : known.length ? `; known here: ${known.join(', ')}` : '';
  return `${formatIssuePath(path)}${channelLabel(path, root)}: unknown setting, not in the schema (docs/config.md)${hint}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((node, key) => (node !== null && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[key] : undefined), root);
}

function keysOf(value: unknown): string[] {
  return isPlainObject(value) ? Object.keys(value) : [];
}

/** What the unknown-key walk needs of a zod schema's definition. */
interface SchemaDef {
  type: string;
  innerType?: SchemaNode;
  in?: SchemaNode;
  getter?: () => SchemaNode;
  options?: SchemaNode[];
  shape?: Record<string, SchemaNode>;
  element?: SchemaNode;
}
interface SchemaNode {
  _zod: { def: SchemaDef };
  safeParse(value: unknown): { success: boolean };
}

/** The object schema a value meets under wrappers (optional, default, pipe…), the union member the value matches. */
function unwrapSchema(schema: SchemaNode, value: unknown): SchemaNode | undefined {
  let node: SchemaNode | undefined = schema;
  for (let depth = 0; node && depth < 32; depth++) {
    const def: SchemaDef = node._zod.def;
    if (def.innerType) node = def.innerType;
    else if (def.type === 'pipe') node = def.in;
    else if (def.type === 'lazy') node = def.getter?.();
    else if (def.type === 'union') node = def.options?.find((option) => option.safeParse(value).success);
    else return node;
  }
  return undefined;
}

/**
 * Every setting the schema has at `path` — the optional ones a file left out included, so a typo of one is still
 * recognised. The input decides which member of a union (a channel's type) applies. Undefined where the schema is not
 * an object there.
 */
function settingsAt(schema: z.ZodType, path: readonly PropertyKey[], root: unknown): string[] | undefined {
  let node: SchemaNode | undefined = schema as unknown as SchemaNode;
  for (let depth = 0; depth <= path.length; depth++) {
    node = node && unwrapSchema(node, valueAt(root, path.slice(0, depth)));
    if (!node || depth === path.length) break;
    const def: SchemaDef = node._zod.def;
    const key = path[depth];
    node = typeof key === 'number' && def.type === 'array' ? def.element : typeof key === 'string' && def.type === 'object' ? def.shape?.[key] : undefined;
  }
  const def: SchemaDef | undefined = node?._zod.def;
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : undefined;
}

/** Levenshtein distance, for suggesting the setting a typo meant. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
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
    // Merge keys (`<<: *defaults`) share a block between channels; without `merge` they would read as a setting "<<".
    parsed = parseYaml(text, { prettyErrors: true, merge: true });
  } catch (err) {
    throw new ConfigError(path, [`not valid YAML: ${(err as Error).message}`]);
  }
  return parseConfig(parsed, path, env);
}
