/**
 * `npm run bench:compare` in its shortest form: this checkout against HEAD in a temporary worktree, a round or two of a
 * few messages, for the worker and for the ingress. Asserts what it ran and reported, and that it leaves nothing behind — never how fast.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));
const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();

describe('bench:compare', () => {
  const out = mkdtempSync(join(tmpdir(), 'gw-compare-out-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  /** Runs bench/compare.ts against HEAD as `npm run bench:compare` does (not under the test runner's NODE_ENV). */
  function compare(...args: string[]): string {
    const { NODE_ENV: _, ...env } = process.env;
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'bench/compare.ts', 'HEAD', ...args], { cwd: root, encoding: 'utf8', timeout: 300_000, env });
    assert.equal(run.status, 0, `compare exited with ${run.status}:\n${run.stdout}\n${run.stderr}`);
    return run.stdout;
  }

  it('runs both versions of the worker side by side, reports each round and the median difference, and removes its worktree', () => {
    const worktreesBefore = git('worktree', 'list', '--porcelain');
    const resultsBefore = readdirSync(join(root, 'bench', 'results'));
    const stdout = compare('--rounds', '2', '--sizes', '2,4', '--messages', '16', '--warmup', '8', '--out', out);
    assert.match(stdout, /^round 1: size 2: .* ms\/msg \(.+\); size 4: /m);
    assert.match(stdout, /^round 2: /m);
    assert.match(stdout, /^size 4: worker CPU per message .* \(median of 2; .*\); Redis .* cmd\/msg, its CPU per message .* \(median\)$/m);

    const [json] = readdirSync(out).filter((f) => f.endsWith('-compare.json'));
    assert.ok(json, 'the report is written');
    const report = JSON.parse(readFileSync(join(out, json), 'utf8'));
    assert.equal(report.base.commit, git('rev-parse', 'HEAD'));
    assert.equal(report.this.commit, git('rev-parse', 'HEAD'));
    assert.equal(report.rounds.length, 2);
    for (const round of report.rounds) {
      for (const arm of [round.base, round.this]) {
        assert.deepEqual(arm.map((r: { jobSize: number }) => r.jobSize), [2, 4]);
        for (const row of arm) {
          assert.equal(row.messages, 16, 'every message answered in both arms');
          assert.ok(row.workerCpuMsPerMessage > 0 && row.redisCommandsPerMessage > 0);
        }
      }
    }
    assert.deepEqual(report.summary.map((s: { jobSize: number }) => s.jobSize), [2, 4]);
    assert.equal(report.summary[0].diffPercent.length, 2);
    assert.ok('redisCpuMedianDiffPercent' in report.summary[0]);

    assert.equal(git('worktree', 'list', '--porcelain'), worktreesBefore, 'the temporary worktree is gone');
    assert.deepEqual(readdirSync(join(root, 'bench', 'results')), resultsBefore, 'the arms leave no worker reports behind');
  });

  it('compares the ingress the same way (--stage ingress): encrypted callbacks at the given loads in both arms', () => {
    const resultsBefore = readdirSync(join(root, 'bench', 'results'));
    const ingressOut = join(out, 'ingress');
    const stdout = compare('--stage', 'ingress', '--rounds', '1', '--loads', '40,80', '--duration', '1', '--out', ingressOut);
    assert.match(stdout, /^round 1: 40\/s: .* ms\/msg \(.+\); 80\/s: /m);
    assert.match(stdout, /^80\/s: ingress CPU per message .* \(median of 1; .*\); Redis .* cmd\/msg, its CPU per message n\/a \(median\)$/m);
    const [json] = readdirSync(ingressOut).filter((f) => f.endsWith('-compare.json'));
    const report = JSON.parse(readFileSync(join(ingressOut, json!), 'utf8'));
    assert.equal(report.stage, 'ingress');
    assert.deepEqual(report.summary.map((s: { offered: number }) => s.offered), [40, 80]);
    for (const arm of [report.rounds[0].base, report.rounds[0].this]) {
      for (const row of arm) assert.equal(row.acknowledged, row.offered, 'every callback acknowledged in both arms');
    }
    assert.deepEqual(readdirSync(join(root, 'bench', 'results')), resultsBefore, 'the arms leave no ingress reports behind');
  });
});
