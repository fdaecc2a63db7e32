/**
 * Knowledge-base command line for bot trainers:
 *
 *   npm run kb:import -- <file.csv|json|md> [--replace]          import into the live KB (all processes pick it up)
 *   npm run kb:import -- export <file.csv|json|md>               export the live KB
 *   npm run kb:import -- calibrate <questions.csv> [--kb <file>] suggest bot.kb.threshold from labelled questions
 *   npm run kb:import -- check <file>                            validate a file without importing
 *
 * Where the KB lives: `--gateway <url> --key <admin key>` talks to a running gateway's admin API (works with the
 * private redis-server of `npm run demo`); otherwise `--redis <url>` (or REDIS_URL, or redis.url in --config)
 * writes to Redis directly. `--prefix` defaults to redis.prefix of the config.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { calibrate, parseCalibrationCsv } from '../bot/kb/calibrate.js';
import { FaqEntry } from '../bot/kb/entry.js';
import { formatFromName, parseKb, serializeKb, type KbFormat } from '../bot/kb/formats.js';
import { KbIndex, KnowledgeBase } from '../bot/kb/knowledge-base.js';
import { loadConfigFile, DEFAULT_CONFIG_PATH } from '../config/load.js';
import { createLogger } from '../gateway/logger.js';
import { connectRedis } from '../gateway/redis.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    replace: { type: 'boolean', default: false },
    gateway: { type: 'string' },
    key: { type: 'string', default: process.env.ADMIN_KEY },
    redis: { type: 'string', default: process.env.REDIS_URL },
    prefix: { type: 'string' },
    config: { type: 'string', default: DEFAULT_CONFIG_PATH },
    kb: { type: 'string' },
    'wrong-answer-cost': { type: 'string', default: '2' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

function usage(code: number): never {
  const text = readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*?|^ \* ?/gm, '');
  (code ? console.error : console.log)(text.trim());
  process.exit(code);
}

function fail(message: string): never {
  console.error(`kb: ${message}`);
  process.exit(1);
}

function formatOf(path: string): KbFormat {
  return formatFromName(path) ?? fail(`${path}: the file name must end in .csv, .json or .md`);
}

function readEntries(path: string): FaqEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    fail(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return parseKb(text, formatOf(path));
  } catch (err) {
    fail((err as Error).message);
  }
}

/** Reads and writes the live KB, either through a gateway's admin API or straight in Redis. */
interface KbTarget {
  list(): Promise<FaqEntry[]>;
  import(entries: FaqEntry[], replace: boolean): Promise<{ version: number; count: number }>;
  close(): Promise<void>;
}

async function target(): Promise<KbTarget> {
  if (values.gateway) {
    const base = values.gateway.replace(/\/$/, '');
    if (!values.key) fail('--gateway needs --key <admin key> (or ADMIN_KEY)');
    const headers = { authorization: `Bearer ${values.key}` };
    const call = async (path: string, init: RequestInit = {}) => {
      const res = await fetch(`${base}/admin${path}`, { ...init, headers: { ...headers, ...(init.headers as object) } });
      const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      if (!res.ok) fail(`${res.status} ${String(body.error ?? '')}: ${String(body.message ?? res.statusText)}`);
      return body;
    };
    return {
      list: async () => ((await call('/kb')).entries as unknown[]).map((e) => FaqEntry.parse(e)),
      import: async (entries, replace) => {
        const body = await call(`/kb/import?format=json${replace ? '&replace=true' : ''}`, { method: 'POST', body: JSON.stringify(entries) });
        return { version: Number(body.version), count: Number(body.count) };
      },
      close: async () => undefined,
    };
  }
  let config;
  try {
    config = loadConfigFile(values.config!);
  } catch {
    config = undefined;
  }
  const url = values.redis || config?.redis.url;
  if (!url) fail('no Redis to talk to: pass --redis <url> (or REDIS_URL), or --gateway <url> --key <admin key> for a running gateway');
  const redis = connectRedis(url);
  const kb = new KnowledgeBase({ redis, prefix: values.prefix ?? config?.redis.prefix ?? 'gw', log: createLogger('warn') });
  await kb.start();
  return {
    list: async () => kb.list(),
    import: async (entries, replace) => ({ version: await kb.upsert(entries, { replace }), count: kb.size }),
    close: async () => {
      await kb.close();
      await redis.quit();
    },
  };
}

async function main(): Promise<void> {
  if (values.help || positionals.length === 0) usage(values.help ? 0 : 1);
  const [command, arg] = positionals;
  switch (command) {
    case 'check': {
      const entries = readEntries(arg ?? fail('check needs a file'));
      console.log(`${arg}: ${entries.length} valid entries`);
      return;
    }
    case 'export': {
      const out = arg ?? fail('export needs an output file (.csv, .json or .md)');
      const kb = await target();
      const entries = await kb.list();
      await kb.close();
      writeFileSync(out, serializeKb(entries, formatOf(out)));
      console.log(`exported ${entries.length} entries to ${out}`);
      return;
    }
    case 'calibrate': {
      const samples = parseCalibrationCsv(readFileSync(arg ?? fail('calibrate needs a CSV of query,expected'), 'utf8'));
      let entries: FaqEntry[];
      if (values.kb) entries = readEntries(values.kb);
      else {
        const kb = await target();
        entries = await kb.list();
        await kb.close();
      }
      const index = KbIndex.of(entries);
      const result = calibrate(
        (q) => {
          const m = index.search(q, '');
          return m && { id: m.entry.id, score: m.score };
        },
        samples,
        Number(values['wrong-answer-cost']),
      );
      console.log(JSON.stringify(result, null, 2));
      console.log(`\nsuggested setting:  bot.kb.threshold: ${result.threshold}`);
      return;
    }
    default: {
      const entries = readEntries(command!);
      const kb = await target();
      const { version, count } = await kb.import(entries, values.replace!);
      await kb.close();
      console.log(`imported ${entries.length} entries from ${command}${values.replace ? ' (replacing the KB)' : ''}: KB version ${version}, ${count} entries`);
    }
  }
}

await main();
