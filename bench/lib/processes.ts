/** Gateway processes as a user deploys them (one per role), started from a config file, with RSS readings. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Role } from '../../gateway/gateway.js';
import { nodeFlagsFor } from '../../gateway/node-flags.js';

/** Node options for a role process: with `profile`, a V8 CPU profile written to bench/results/profiles/ on exit. */
export function cpuProfileArgs(profile: boolean | undefined): string[] {
  return profile ? ['--cpu-prof', `--cpu-prof-dir=${join('bench', 'results', 'profiles')}`] : [];
}

export interface RoleProcess {
  role: string;
  child: ChildProcess;
  rssMb(): number;
  /** User + system CPU seconds the process has used so far. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export async function startRole(role: Role, configPath: string, env: Record<string, string>, extraNodeArgs: string[] = []): Promise<RoleProcess> {
  // The role's node flags, as `npm run start:<role>` passes them.
  const child = spawn(process.execPath, [...nodeFlagsFor(role), ...extraNodeArgs, '--import', 'tsx', 'gateway/main.ts', '--role', role, '--config', configPath], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (d: Buffer) => (output = (output + d.toString()).slice(-20_000));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start within 60 s:\n${output}`)), 60_000);
    const check = () => {
      if (output.includes('Gateway ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${role} exited with ${code}:\n${output}`));
    });
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    role,
    child,
    rssMb: () => rssMb(child.pid!),
    cpuSeconds: () => cpuSeconds(child.pid!),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

export function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return Math.round(kb / 102.4) / 10;
  } catch {
    return NaN;
  }
}

/** utime + stime from /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Reads the Redis counters the benchmark reports per phase. */
export async function redisCounters(redis: { info(section: string): Promise<string> }) {
  const stats = await redis.info('stats');
  const cpu = await redis.info('cpu');
  const persistence = await redis.info('persistence');
  const num = (text: string, key: string) => Number(new RegExp(`${key}:([\\d.]+)`).exec(text)?.[1] ?? 0);
  // cmdstat_<name>:calls=<n>,... — commands run inside Lua scripts count under their own names too.
  const byCommand = new Map<string, number>();
  for (const [, name, calls] of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) byCommand.set(name!, Number(calls));
  return {
    commands: num(stats, 'total_commands_processed'),
    /** Bytes clients sent to Redis and received from it: what the commands and their replies weigh on the wire. */
    netInputBytes: num(stats, 'total_net_input_bytes'),
    netOutputBytes: num(stats, 'total_net_output_bytes'),
    cpuSeconds: num(cpu, 'used_cpu_user') + num(cpu, 'used_cpu_sys'),
    /** Forks (AOF rewrites) and the longest one: a fork pauses Redis, which shows as a latency spike. */
    forks: num(stats, 'total_forks'),
    latestForkMs: num(stats, 'latest_fork_usec') / 1000,
    /** Writes Redis held back because an fsync of the AOF took over 2 s (a slow disk). */
    delayedFsyncs: num(persistence, 'aof_delayed_fsync'),
    byCommand,
  };
}

/** Commands per message between two counter snapshots, most frequent first. */
export function commandsPerMessage(before: Map<string, number>, after: Map<string, number>, messages: number, top = 12): Record<string, number> {
  const rows = [...after].map(([name, n]) => [name, (n - (before.get(name) ?? 0)) / Math.max(1, messages)] as const);
  return Object.fromEntries(rows.filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, n]) => [name, Math.round(n * 100) / 100]));
}
