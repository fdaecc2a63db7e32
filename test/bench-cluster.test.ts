/**
 * `npm run bench -- --cluster` end to end, in its shortest form: a local 3-master Redis Cluster, the gateway's
 * ingress and two workers on it (shard leases across processes), encrypted WeCom callbacks, the reference
 * measurements. Asserts what the run delivered and what it reports, never how fast.
 */
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('the benchmark on a Redis Cluster', () => {
  const out = mkdtempSync(join(tmpdir(), 'gw-bench-out-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  it('runs every phase against the cluster and reports Redis summed over its masters', () => {
    // As `npm run bench` runs it: not under the test runner's NODE_ENV.
    const { NODE_ENV: _, ...env } = process.env;
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'bench/e2e.ts', '--quick', '--cluster', '--workers', '2', '--channels', 'wecom', '--loads', '50', '--duration', '1', '--out', out],
      { cwd: root, encoding: 'utf8', timeout: 300_000, env },
    );
    assert.equal(run.status, 0, `bench exited with ${run.status}:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /Redis Cluster of 3 masters/);

    const files = readdirSync(out);
    const json = files.find((f) => f.endsWith('.json'));
    assert.ok(json, `no JSON report in ${files.join(', ')}`);
    assert.ok(files.includes(json.replace(/\.json$/, '.svg')), 'the chart is written beside the JSON');
    const report = JSON.parse(readFileSync(join(out, json), 'utf8'));
    assert.deepEqual(report.layout.redis, { mode: 'cluster', masters: 3 });
    assert.deepEqual(report.layout.processes, ['ingress', 'worker', 'worker-2']);

    // The fixed load and the open-loop maximum, every message answered.
    assert.deepEqual(report.phases.map((p: { offered: number | string }) => p.offered), [50, 'max']);
    for (const p of report.phases) {
      assert.equal(p.channel, 'wecom');
      assert.ok(p.sent > 0);
      assert.equal(p.errors, 0, `phase ${p.offered}: errors`);
      assert.equal(p.delivered, p.sent, `phase ${p.offered}: every callback answered`);
      // The gateway's commands reached the cluster's masters (a gateway on some other Redis would leave them at 0):
      // a message costs dozens of commands, job and conversation scripts included.
      assert.ok(p.redisCommandsPerMessage > 10, `phase ${p.offered}: ${p.redisCommandsPerMessage} Redis commands per message`);
    }
    // Both references ran on the cluster too (hash-tagged queues; a cross-slot error would have ended the run).
    assert.equal(report.reference.queueCeilingRuns.length, 2);
    assert.equal(report.reference.bareEnqueueRuns.length, 2);
    for (const n of [...report.reference.queueCeilingRuns, ...report.reference.bareEnqueueRuns]) assert.ok(n > 0);
  });
});
