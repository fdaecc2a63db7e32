/**
 * A private `redis-server` child process, for `npm run demo` without REDIS_URL and for every test run.
 * Data under its own directory, AOF on (a crash loses no acknowledged message), `noeviction` as BullMQ requires.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';

export interface PrivateRedis {
  url: string;
  port: number;
  process: ChildProcess;
  /** Resolves when the server has exited (stopped, or signalled with its process group by a terminal's Ctrl-C). */
  exited: Promise<unknown>;
  stop(): Promise<void>;
}

export class RedisMissingError extends Error {}

/**
 * Servers this process started and has not stopped. When the process exits without stopping them — a benchmark or a
 * test that failed half-way, a forced exit — they are told to shut down (SIGTERM: Redis flushes its AOF and exits),
 * instead of living on as orphans holding their ports and data directories.
 */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) if (child.exitCode === null) child.kill('SIGTERM');
});

/**
 * Persistence of every Redis the project starts (docker-compose's too): the AOF, fsynced every second; no RDB
 * snapshots; and AOF rewrites only once the file has passed 1 GB (and doubled since the last one). A rewrite forks
 * Redis, and the child writes the whole dataset out again: CPU taken from the gateway while it runs. Redis's default
 * threshold, 64 MB, is reached within seconds at 2,000 msg/s (≈ 2.8 KB of AOF per message); on a 2-core machine a
 * rewrite took the p99 at 1,000 msg/s from ≈ 60–70 to ≈ 430–500 ms (bench/README.md). The price is disk: up to about
 * twice the dataset plus 1 GB.
 */
export const PERSISTENCE_ARGS: readonly string[] = [
  '--appendonly', 'yes',
  '--appendfsync', 'everysec',
  '--save', '',
  '--auto-aof-rewrite-min-size', '1gb',
];

/** Finds redis-server; installs it from Debian's packages when missing and running as root, otherwise explains. */
export function ensureRedisServer(log: (line: string) => void = () => {}): string {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new RedisMissingError(
      'redis-server is not installed. Install it with `sudo apt-get install -y redis-server` (Debian/Ubuntu), ' +
        'or set REDIS_URL to an existing Redis 6.2+ server.',
    );
  }
  log('redis-server not found; installing the Debian package redis-server (apt-get)...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const install = spawnSync('apt-get', ['install', '-y', '-qq', 'redis-server'], { stdio: 'inherit', env });
  const again = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  if (update.status !== 0 || install.status !== 0 || !again) {
    throw new RedisMissingError('installing redis-server with apt-get failed; install the Debian package redis-server by hand.');
  }
  return again;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

export async function startPrivateRedis(opts: {
  dataDir: string;
  port?: number;
  /** Extra `--flag value` pairs, e.g. cluster mode. */
  extraArgs?: string[];
  log?: (line: string) => void;
}): Promise<PrivateRedis> {
  const binary = ensureRedisServer(opts.log);
  const dir = resolve(opts.dataDir);
  mkdirSync(dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    ...PERSISTENCE_ARGS,
    '--maxmemory-policy', 'noeviction',
    '--daemonize', 'no',
    '--protected-mode', 'yes',
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      running.delete(child);
      r(code);
    }),
  );
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}:\n${output}`);
    try {
      await probe.connect();
      // Loading the AOF answers LOADING until done.
      if ((await probe.ping()) === 'PONG') break;
    } catch {
      probe.disconnect();
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on port ${port} within 15 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  probe.disconnect();
  return {
    url,
    port,
    process: child,
    exited,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
