/**
 * Two versions of the worker side by side (`npm run bench:compare -- <rev>`): this checkout, uncommitted changes
 * included, against `<rev>` checked out in a temporary git worktree. Each round runs `bench:worker --pin` in both
 * trees at the same time, so both workers share core 0 and both drivers core 1: whatever the machine's speed does
 * during the round (on the 2-core VM it moves ±15–40 % within minutes) reaches both arms alike, and worker CPU per
 * message — CPU time read from /proc — compares within about 2 % where runs one after the other drift by up to 20 %.
 *
 *   npm run bench:compare -- HEAD~3                   3 rounds, job sizes 4 and 32, 10,000 messages each
 *   npm run bench:compare -- 0e7130f --rounds 5 --sizes 1,8,32 --messages 20000 --channel app
 *
 * Both arms read the same corpus (the datasets beside the main checkout) and run on this checkout's node_modules.
 * Writes bench/results/<date>-compare.json (`--out DIR` for elsewhere).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { defaultDatasets } from './lib/corpus.js';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '3' },
    sizes: { type: 'string', default: '4,32' },
    messages: { type: 'string', default: '10000' },
    channel: { type: 'string', default: 'wecom' },
    warmup: { type: 'string' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const rev = positionals[0];
if (!rev || positionals.length > 1) {
  console.error('usage: npm run bench:compare -- <git revision> [--rounds 3] [--sizes 4,32] [--messages 10000] [--channel wecom|app] [--warmup N] [--out DIR]');
  process.exit(2);
}
const root = fileURLToPath(new URL('..', import.meta.url));
const git = (...gitArgs: string[]) => execFileSync('git', gitArgs, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const baseCommit = git('rev-parse', '--verify', `${rev}^{commit}`);
const thisCommit = git('rev-parse', 'HEAD');
const thisDirty = git('status', '--porcelain', '--untracked-files=no') !== '';

interface Row {
  jobSize: number;
  messages: number;
  workerCpuMsPerMessage: number;
  redisCommandsPerMessage: number;
  redisCpuMsPerMessage: number;
}

// Only what the user asked for beyond the defaults is passed on, so an older bench/worker.ts that lacks an option
// still runs unless that option is needed.
const workerArgs = ['--pin', '--workers', '1', '--sizes', args.sizes!, '--messages', args.messages!];
if (args.channel !== 'wecom') workerArgs.push('--channel', args.channel!);
if (args.warmup !== undefined) workerArgs.push('--warmup', args.warmup);
const env = { ...process.env, DATASETS_DIR: process.env.DATASETS_DIR ?? defaultDatasets(root) };

/** One bench:worker run in `tree`; its rows, from the JSON it wrote (removed afterwards: it belongs to this run). */
function runWorkerBench(tree: string): Promise<Row[]> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/worker.ts', ...workerArgs], { cwd: tree, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    child.on('error', fail);
    child.on('exit', (code) => {
      const wrote = /^wrote (.+-worker\.json)$/m.exec(output)?.[1];
      if (code !== 0 || !wrote) return fail(new Error(`bench:worker in ${tree} exited with ${code}:\n${output}`));
      const path = resolve(tree, wrote);
      const report = JSON.parse(readFileSync(path, 'utf8')) as { rows: Row[] };
      rmSync(path);
      done(report.rows);
    });
  });
}

/** The change from `base` to `other` in percent, one decimal; null when there is nothing to compare with (base 0). */
const percent = (base: number, other: number): number | null => (base > 0 ? Math.round(((other - base) / base) * 1000) / 10 : null);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const medianDiff = (xs: Array<number | null>) => {
  const known = xs.filter((x): x is number => x !== null);
  return known.length > 0 ? median(known) : null;
};
const signed = (x: number | null) => (x === null ? 'n/a' : `${x > 0 ? '+' : x < 0 ? '−' : '±'}${Math.abs(x)} %`);

const worktree = mkdtempSync(join(tmpdir(), 'gw-compare-'));
rmSync(worktree, { recursive: true });
git('worktree', 'add', '--detach', '--quiet', worktree, baseCommit);
const removeWorktree = () => {
  try {
    git('worktree', 'remove', '--force', worktree);
  } catch {
    rmSync(worktree, { recursive: true, force: true });
    git('worktree', 'prune');
  }
};
process.once('SIGINT', () => {
  removeWorktree();
  process.exit(130);
});

const rounds: Array<{ base: Row[]; this: Row[] }> = [];
try {
  symlinkSync(join(root, 'node_modules'), join(worktree, 'node_modules'), 'dir');
  const lock = (dir: string) => (existsSync(join(dir, 'package-lock.json')) ? readFileSync(join(dir, 'package-lock.json'), 'utf8') : '');
  if (lock(worktree) !== lock(root)) console.warn(`note: ${rev} has other dependencies than this checkout; its arm runs on this checkout's node_modules`);
  console.log(`compare: this checkout (${thisCommit.slice(0, 7)}${thisDirty ? ' + uncommitted changes' : ''}) against ${rev} (${baseCommit.slice(0, 7)}), side by side, ${args.rounds} round(s)`);
  for (let round = 1; round <= Number(args.rounds); round++) {
    const [base, current] = await Promise.all([runWorkerBench(worktree), runWorkerBench(root)]);
    rounds.push({ base, this: current });
    const cells = base.map((b, i) => {
      const t = current[i]!;
      return `size ${b.jobSize}: ${b.workerCpuMsPerMessage} → ${t.workerCpuMsPerMessage} ms/msg (${signed(percent(b.workerCpuMsPerMessage, t.workerCpuMsPerMessage))})`;
    });
    console.log(`round ${round}: ${cells.join('; ')}`);
  }
} finally {
  removeWorktree();
}

const summary = rounds[0]!.base.map((first, i) => {
  const base = rounds.map((r) => r.base[i]!);
  const current = rounds.map((r) => r.this[i]!);
  const diffs = base.map((b, k) => percent(b.workerCpuMsPerMessage, current[k]!.workerCpuMsPerMessage));
  return {
    jobSize: first.jobSize,
    workerCpuMsPerMessage: { base: base.map((r) => r.workerCpuMsPerMessage), this: current.map((r) => r.workerCpuMsPerMessage) },
    diffPercent: diffs,
    medianDiffPercent: medianDiff(diffs),
    redisCommandsPerMessage: { base: median(base.map((r) => r.redisCommandsPerMessage)), this: median(current.map((r) => r.redisCommandsPerMessage)) },
    // Each arm has a redis-server of its own, both on core 1: compared the same way as the workers.
    redisCpuMedianDiffPercent: medianDiff(base.map((b, k) => percent(b.redisCpuMsPerMessage, current[k]!.redisCpuMsPerMessage))),
  };
});
for (const s of summary) {
  console.log(
    `job size ${String(s.jobSize).padStart(3)}: worker CPU per message ${signed(s.medianDiffPercent)} (median of ${s.diffPercent.length}; ` +
      `${s.diffPercent.map(signed).join(', ')}); Redis ${s.redisCommandsPerMessage.base} → ${s.redisCommandsPerMessage.this} cmd/msg, ` +
      `its CPU per message ${signed(s.redisCpuMedianDiffPercent)} (median)`,
  );
}
mkdirSync(args.out!, { recursive: true });
const date = new Date().toISOString();
const path = join(args.out!, `${date.slice(0, 19).replace(/[:T]/g, '-')}-compare.json`);
writeFileSync(
  path,
  JSON.stringify(
    {
      date,
      machine: { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version },
      base: { rev, commit: baseCommit },
      this: { commit: thisCommit, uncommittedChanges: thisDirty },
      worker: { args: workerArgs },
      rounds,
      summary,
    },
    null,
    2,
  ) + '\n',
);
console.log(`wrote ${path}`);
