/**
 * A private redis-server does not outlive the process that started it when that process fails half-way (a benchmark
 * or a test throwing before its cleanup): it is told to shut down as the process exits.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { eventually } from './helpers/gateway.js';
import { isAlive } from './helpers/process.js';

describe('private redis-server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-redis-exit-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is shut down when the process that started it exits without stopping it', async () => {
    const script = join(dir, 'fails.mts');
    writeFileSync(
      script,
      `import { startPrivateRedis } from ${JSON.stringify(resolve('gateway/redis-server.ts'))};\n` +
        `const server = await startPrivateRedis({ dataDir: ${JSON.stringify(join(dir, 'redis'))} });\n` +
        `console.log('redis pid', server.process.pid);\n` +
        `throw new Error('failed half-way');\n`,
    );
    const run = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8' });
    assert.notEqual(run.status, 0);
    const pid = Number(/redis pid (\d+)/.exec(run.stdout)?.[1]);
    assert.ok(pid > 0, run.stdout + run.stderr);
    await eventually(() => !isAlive(pid), 'no orphaned redis-server', 5_000);
    assert.equal(isAlive(pid), false, 'no orphaned redis-server');
  });
});
