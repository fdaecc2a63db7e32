/**
 * Two versions side by side (`npm run bench:compare -- <rev>`): this checkout, uncommitted changes included, against
 * `<rev>` checked out in a temporary git worktree. Each round runs the same single-process benchmark, pinned, in both
 * trees at the same time — `bench:worker --pin` (default) or `bench:ingress --pin` (`--stage ingress`) — so both
 * measured processes share core 0 and both drivers core 1: whatever the machine's speed does during the round (on the
 * 2-core VM it moves ±15–40 % within minutes) reaches both arms alike, and CPU per message — CPU time read from /proc —
 * compares within about 2 % where runs one after the other drift by up to 20 %.
 *
 *   npm run bench:compare -- HEAD~3                   the worker: 3 rounds, job sizes 4 and 32, 10,000 messages each
 *   npm run bench:compare -- 0e7130f --rounds 5 --sizes 1,8,32 --messages 20000 --channel app
 *   npm run bench:compare -- HEAD~1 --stage ingress   the ingress: encrypted WeCom callbacks at 1,000 and 2,000/s
 *   npm run bench:compare -- HEAD~1 --stage ingress --loads 500,2000 --duration 5
 *
 * Both arms read the same corpus (the datasets beside the main checkout) and run on this checkout's node_modules.
 * Writes bench/results/<date>-compare.json (`--out DIR` for elsewhere).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { defaultDatasets } from './lib/corpus.js';
import { writeReport } from './lib/report.js';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    stage: { type: 'string', default: 'worker' },
    rounds: { type: 'string', default: '3' },
    sizes: { type: 'string', default: '4,32' },
    messages: { type: 'string', default: '10000' },
    channel: { type: 'string', default: 'wecom' },
    warmup: { type: 'string' },
    loads: { type: 'string', default: '1000,2000' },
    duration: { type: 'string', default: '10' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const rev = positionals[0];
if (!rev || positionals.length > 1 || (args.stage !== 'worker' && args.stage !== 'ingress')) {
  console.error(
    'usage: npm run bench:compare -- <git revision> [--rounds 3] [--out DIR]\n' +
      '         worker (default): [--sizes 4,32] [--messages 10000] [--channel wecom|app] [--warmup N]\n' +
      '         --stage ingress:  [--loads 1000,2000] [--duration 10]',
  );
  process.exit(2);
}
const root = fileURLToPath(new URL('..', import.meta.url));
const git = (...gitArgs: string[]) => execFileSync('git', gitArgs, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
const baseCommit = git('rev-parse', '--verify', `${rev}^{commit}`);
const thisCommit = git('rev-parse', 'HEAD');
const thisDirty = git('status', '--porcelain', '--untracked-files=no') !== '';

/** A row of either benchmark's report, as far as the comparison reads it. */
interface Row {
  jobSize?: number;
  offered?: number;
  workerCpuMsPerMessage?: number;
  ingressCpuMsPerMessage?: number;
  redisCommandsPerMessage: number;
  redisCpuMsPerMessage?: number;
}

/**
 * What each stage runs and reads. Only what the user asked for beyond a benchmark's defaults is passed on, so an older
 * benchmark script that lacks an option still runs unless that option is needed.
 */
const stage =
  args.stage === 'ingress'
    ? {
        script: 'bench/ingress.ts',
        args: ['--pin', '--loads', args.loads!, '--duration', args.duration!],
        report: /^wrote (.+-ingress\.json)$/m,
        label: (r: Row) => `${r.offered}/s`,
        cpu: (r: Row) => r.ingressCpuMsPerMessage!,
      }
    : {
        script: 'bench/worker.ts',
        args: [
          '--pin', '--workers', '1', '--sizes', args.sizes!, '--messages', args.messages!,
          ...(args.channel !== 'wecom' ? ['--channel', args.channel!] : []),
          ...(args.warmup !== undefined ? ['--warmup', args.warmup] : []),
        ],
        report: /^wrote (.+-worker\.json)$/m,
        label: (r: Row) => `size ${r.jobSize}`,
        cpu: (r: Row) => r.workerCpuMsPerMessage!,
      };
const env = { ...process.env, DATASETS_DIR: process.env.DATASETS_DIR ?? defaultDatasets(root) };

/** One benchmark run in `tree`; its rows, from the JSON it wrote (removed afterwards: it belongs to this run). */
function runBench(tree: string): Promise<Row[]> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', stage.script, ...stage.args], { cwd: tree, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    child.on('error', fail);
    child.on('exit', (code) => {
      const wrote = stage.report.exec(output)?.[1];
      if (code !== 0 || !wrote) return fail(new Error(`${stage.script} in ${tree} exited with ${code}:\n${output}`));
      const path = resolve(tree, wrote);
      const report = JSON.parse(readFileSync(path, 'utf8')) as { rows: Row[] };
      rmSync(path);
      done(report.rows);
    });
  });
}

/** The change from `base` to `other` in percent, one decimal; null when there is nothing to compare with. */
const percent = (base: number | undefined, other: number | undefined): number | null =>
  base !== undefined && other !== undefined && base > 0 ? Math.round(((other - base) / base) * 1000) / 10 : null;
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
    const [base, current] = await Promise.all([runBench(worktree), runBench(root)]);
    rounds.push({ base, this: current });
    const cells = base.map((b, i) => {
      const t = current[i]!;
      return `${stage.label(b)}: ${stage.cpu(b)} → ${stage.cpu(t)} ms/msg (${signed(percent(stage.cpu(b), stage.cpu(t)))})`;
    });
    console.log(`round ${round}: ${cells.join('; ')}`);
  }
} finally {
  removeWorktree();
}

const summary = rounds[0]!.base.map((first, i) => {
  const base = rounds.map((r) => r.base[i]!);
  const current = rounds.map((r) => r.this[i]!);
  const diffs = base.map((b, k) => percent(stage.cpu(b), stage.cpu(current[k]!)));
  return {
    ...(first.jobSize !== undefined && { jobSize: first.jobSize }),
    ...(first.offered !== undefined && { offered: first.offered }),
    cpuMsPerMessage: { base: base.map(stage.cpu), this: current.map(stage.cpu) },
    diffPercent: diffs,
    medianDiffPercent: medianDiff(diffs),
    redisCommandsPerMessage: { base: median(base.map((r) => r.redisCommandsPerMessage)), this: median(current.map((r) => r.redisCommandsPerMessage)) },
    // Each arm has a redis-server of its own, both on core 1: compared the same way (where the benchmark reports it).
    redisCpuMedianDiffPercent: medianDiff(base.map((b, k) => percent(b.redisCpuMsPerMessage, current[k]!.redisCpuMsPerMessage))),
  };
});
for (const [i, s] of summary.entries()) {
  console.log(
    `${stage.label(rounds[0]!.base[i]!)}: ${args.stage} CPU per message ${signed(s.medianDiffPercent)} (median of ${s.diffPercent.length}; ` +
      `${s.diffPercent.map(signed).join(', ')}); Redis ${s.redisCommandsPerMessage.base} → ${s.redisCommandsPerMessage.this} cmd/msg, ` +
      `its CPU per message ${signed(s.redisCpuMedianDiffPercent)} (median)`,
  );
}
const path = writeReport(args.out!, 'compare', {
  base: { rev, commit: baseCommit },
  this: { commit: thisCommit, uncommittedChanges: thisDirty },
  stage: args.stage,
  benchmark: { script: stage.script, args: stage.args },
  rounds,
  summary,
});
console.log(`wrote ${path}`);
