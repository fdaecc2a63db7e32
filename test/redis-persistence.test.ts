/** The persistence every Redis the project starts runs with: the private redis-server and docker-compose's. */
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { PERSISTENCE_ARGS } from '../gateway/redis-server.js';
import { redisClientForTests } from './helpers/redis.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** `--flag value` pairs → { flag: value }. */
function flags(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) if (args[i]!.startsWith('--')) out[args[i]!.slice(2)] = args[i + 1] ?? '';
  return out;
}

describe('Redis persistence', () => {
  const test = redisClientForTests();

  it('the private redis-server: AOF fsynced every second, no RDB snapshots, rewrites only past 1 GB', async () => {
    const config = async (name: string) => ((await test.client.config('GET', name)) as string[])[1];
    assert.equal(await config('appendonly'), 'yes');
    assert.equal(await config('appendfsync'), 'everysec');
    assert.equal(await config('save'), '');
    assert.equal(await config('auto-aof-rewrite-min-size'), String(2 ** 30));
    assert.equal(await config('maxmemory-policy'), 'noeviction');
  });

  it('docker-compose starts its Redis with the same persistence', () => {
    const compose = parse(readFileSync(`${root}/docker-compose.yml`, 'utf8'));
    const command = compose.services.redis.command as string[];
    assert.equal(command[0], 'redis-server');
    const given = flags(command.slice(1));
    for (const [flag, value] of Object.entries(flags(PERSISTENCE_ARGS))) assert.equal(given[flag], value, `--${flag}`);
    assert.equal(given['maxmemory-policy'], 'noeviction');
  });
});
