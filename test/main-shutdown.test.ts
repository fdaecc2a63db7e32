/**
 * The gateway started as `npm run demo` starts it (gateway/main.ts with its own private redis-server): a terminal's
 * Ctrl-C signals the redis-server too, and the gateway must then stop at once instead of waiting on a Redis that is
 * gone until the 30 s safety exit.
 */
import assert from 'node:assert/strict';
import { execSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort } from '../gateway/redis-server.js';
import { eventually } from './helpers/gateway.js';
import { isAlive } from './helpers/process.js';

describe('gateway/main.ts shutdown', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-main-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('stops without draining when its private redis-server was signalled with it, and says so', async () => {
    const config = join(dir, 'gateway.yaml');
    writeFileSync(config, `server: { port: ${await freePort()}, adminKey: admin-key-0123456789abcdef }\nredis: { dataDir: ${join(dir, 'redis')} }\nchannels: []\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await eventually(() => output.includes('Gateway ready') || child.exitCode !== null, 'the gateway ready', 60_000);
    assert.match(output, /Gateway ready/, output);
    assert.match(output, /started a private redis-server/);
    // The process group's Ctrl-C, as a terminal sends it, with the redis-server the quicker to go.
    const redisPid = Number(execSync(`pgrep -P ${child.pid} redis-server`).toString().trim());
    process.kill(redisPid, 'SIGINT');
    await eventually(() => !isAlive(redisPid), 'the redis-server gone');
    process.kill(child.pid!, 'SIGINT');
    const code = await exited;
    assert.equal(code, 0, output.slice(-2000));
    assert.doesNotMatch(output, /graceful shutdown took over 30 s/);
  });
});
