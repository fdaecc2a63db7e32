/**
 * Renders docs/config.md from the zod config schema — the schema is the single source of truth, the docs follow it.
 *   npm run config:docs            write docs/config.md
 *   npm run config:docs -- --check exit 1 when docs/config.md is out of date
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { z } from 'zod';
import { adapterDefinitions } from '../adapters/index.js';
import { GatewayConfig, SendRateLimit } from '../config/schema.js';

type Json = { [k: string]: any };

function typeOf(s: Json): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((v: unknown) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  if (s.anyOf || s.oneOf) return (s.anyOf ?? s.oneOf).map(typeOf).join(' \\| ');
  if (s.type === 'array') return `${s.items ? typeOf(s.items) : 'any'}[]`;
  if (s.type === 'object' && s.additionalProperties && !s.properties) return `map of ${typeOf(s.additionalProperties)}`;
  return s.type ?? 'any';
}

function rows(schema: Json, path: string, out: string[], required: boolean): void {
  const s = schema;
  if (s.type === 'object' && s.properties) {
    const req = new Set<string>(s.required ?? []);
    for (const [key, child] of Object.entries<Json>(s.properties)) rows(child, path ? `${path}.${key}` : key, out, req.has(key));
    return;
  }
  if (s.type === 'array' && s.items?.type === 'object' && s.items.properties) {
    out.push(row(path, s, required));
    rows(s.items, `${path}[]`, out, true);
    return;
  }
  out.push(row(path, s, required));
}

function row(path: string, s: Json, required: boolean): string {
  const def = s.default === undefined ? (required ? '**required**' : '') : `\`${JSON.stringify(s.default)}\``;
  const desc = (s.description ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return `| \`${path}\` | ${typeOf(s)} | ${def} | ${desc} |`;
}

function table(schema: Json, prefix: string): string {
  const out: string[] = ['| key | type | default | description |', '|---|---|---|---|'];
  rows(schema, prefix, out, true);
  return out.join('\n');
}

export function renderConfigDocs(): string {
  const toJson = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Json;
  const root = toJson(GatewayConfig);
  const sections = Object.entries<Json>(root.properties).filter(([k]) => k !== 'channels');
  const parts = [
    '# Configuration reference',
    '',
    '<!-- Generated from config/schema.ts by `npm run config:docs`; do not edit by hand. -->',
    '',
    'One YAML file, `config/gateway.yaml` by default (`--config <path>` or `GATEWAY_CONFIG` to change it).',
    'Any string may use `${ENV_VAR}` or `${ENV_VAR:-default}`; `$${` writes a literal `${`. The file is validated at',
    'start-up and by `npm run config:check`; every problem is reported with its path, e.g.',
    '`channels[1].options.apps[0].secret (channel id app, type app): Too small: expected string to have >=16 characters`.',
    'A setting not listed here is an error too (a misspelt key would otherwise be ignored), with the nearest known',
    'name when there is one: `pipeline.shard: unknown setting, not in the schema (docs/config.md); did you mean "shards"?`.',
    'Top-level keys starting with `x-` are the file\'s own, a place for YAML anchors that merge keys (`<<: *web`) reuse.',
    '',
  ];
  for (const [name, schema] of sections) parts.push(`## \`${name}\``, '', table(schema, name), '');
  parts.push(
    '## `channels`',
    '',
    'A list of channel instances. Every instance has `id` (lower-case letters, digits and `-`; it becomes',
    '`/webhooks/<id>`), `type` (one of the types below), `enabled` (default `true`), an optional `rateLimit` and',
    '`options` for its type.',
    '',
    table(toJson(SendRateLimit), 'rateLimit'),
    '',
    "`rateLimit` caps what the gateway sends on this channel instance (set it to the platform's per-app quota).",
    'Replies over the quota wait — the shard pauses until the window frees — and none is dropped.',
    '',
  );
  for (const def of adapterDefinitions) {
    parts.push(`### type \`${def.type}\``, '', def.description, '', table(toJson(def.options), 'options'), '');
  }
  return parts.join('\n');
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, ''));
if (isMain) {
  const target = 'docs/config.md';
  const text = renderConfigDocs();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(target, 'utf8');
    } catch {}
    if (current !== text) {
      console.error(`${target} is out of date: run npm run config:docs`);
      process.exit(1);
    }
    console.log(`${target} is up to date`);
  } else {
    mkdirSync('docs', { recursive: true });
    writeFileSync(target, text);
    console.log(`wrote ${target}`);
  }
}
