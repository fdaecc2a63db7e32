/**
 * Every end-to-end run in bench/results/, judged against the targets (lib/targets.ts), as the tables the READMEs show:
 *
 *   npm run bench:summary             rewrite the generated tables in README.md and bench/README.md
 *   npm run bench:summary -- --check  exit 1 when they are out of date (the test suite checks this)
 *
 * Figures are read from the stored reports, never copied by hand: a run added to bench/results/ shows up here.
 */
import { fileURLToPath } from 'node:url';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { BENCH_CHANNELS as CHANNELS, bestWecomPhase, isSustained, p99AtTargetRate, TARGETS, WEBHOOK_CHANNELS, wholeSteps, type PhaseFigures } from './lib/targets.js';

/** What the summary reads of a report written by e2e.ts (older reports lack the optional fields). */
export interface RunReport {
  date: string;
  machine: { cores: number; cpu?: string };
  /** The commit measured (reports from 2026-12-03 on); `modified` when tracked files had changes on top of it. */
  code?: { commit: string; modified: boolean };
  layout: { processes: string[]; shards: number; redis?: { mode: string; masters?: number } };
  phases: (PhaseFigures & { messagesPerInboundJob?: number; redisCommandsPerMessage: number; cpuMsPerMessage: Record<string, number>; latencyMs: { p50: number; p99: number } })[];
  reference?: { queueCeilingJobsPerSec: number; queueCeilingRuns?: number[]; bareEnqueueRequestsPerSec: number; bareEnqueueRuns?: number[] };
}

export interface Run {
  /** The report's file name without `.json`: its start time, as the results directory names it. */
  id: string;
  report: RunReport;
}

const CHANNEL_LABELS: Record<string, string> = { wecom: 'WeCom', app: 'app', ws: 'widget' };
const RUN_FILE = /^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\.json$/;
const SOCKETS_FILE = /^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-sockets\.json$/;

/** A stored report; a file that is not JSON is named in the error, so a bad commit is found at once. */
function readReport<T>(dir: string, name: string): T {
  try {
    return JSON.parse(readFileSync(join(dir, name), 'utf8')) as T;
  } catch (err) {
    throw new Error(`bench/results/${name} is not a readable report: ${(err as Error).message}`);
  }
}

export function loadRuns(dir: string): Run[] {
  return readdirSync(dir)
    .filter((name) => RUN_FILE.test(name))
    .sort()
    .map((name) => ({ id: name.slice(0, -'.json'.length), report: readReport<RunReport>(dir, name) }));
}

/** A full run measured every channel at the latency target's rate and WeCom at the throughput target's. */
export function isFullRun(report: RunReport): boolean {
  const has = (channel: string, offered: number) => report.phases.some((p) => p.channel === channel && p.offered === offered);
  return CHANNELS.every((c) => has(c, TARGETS.p99AtMsgPerSec)) && has('wecom', TARGETS.sustainedMsgPerSec);
}

/** How one run stands against each target. */
export interface Verdict {
  bestMsgPerSec: number | undefined;
  ratioToBareEnqueue: number | undefined;
  /** Per webhook channel: delivered msg/s at the throughput target's offered rate, and whether it was sustained. */
  atTargetRate: Record<string, { delivered: number; sustained: boolean } | undefined>;
  /** Per channel: p99 at the latency target's rate. */
  p99: Record<string, number | undefined>;
}

export function judge(report: RunReport): Verdict {
  const best = bestWecomPhase(report.phases)?.deliveredPerSec;
  const bare = report.reference?.bareEnqueueRequestsPerSec;
  const atTargetRate = Object.fromEntries(
    WEBHOOK_CHANNELS.map((c) => {
      const phase = report.phases.find((p) => p.channel === c && p.offered === TARGETS.sustainedMsgPerSec);
      return [c, phase && { delivered: phase.deliveredPerSec, sustained: isSustained(phase) }];
    }),
  );
  const p99 = Object.fromEntries(CHANNELS.map((c) => [c, p99AtTargetRate(report.phases, c)]));
  return { bestMsgPerSec: best, ratioToBareEnqueue: best !== undefined && bare ? best / bare : undefined, atTargetRate, p99 };
}

const meetsRatio = (v: Verdict) => v.ratioToBareEnqueue !== undefined && v.ratioToBareEnqueue >= TARGETS.ratioToBareEnqueue;
const meetsP99 = (v: Verdict, c: string) => v.p99[c] !== undefined && v.p99[c]! <= TARGETS.p99Ms;
const sustains = (v: Verdict, c: string) => v.atTargetRate[c]?.sustained === true;

// ── Formatting ────────────────────────────────────────────────────────────────────────────────────────────────
const num = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (n < 10 ? String(Math.round(n * 10) / 10) : num(n));
/** Whole per cent, rounded down (past float noise), so a ratio shown as 50 % has met a 50 % target. */
const wholePercent = (ratio: number) => wholeSteps(ratio, 100);
const percent = (ratio: number) => `${wholePercent(ratio)} %`;
/** Figures that meet their target are bold. */
const mark = (text: string, met: boolean) => (met ? `**${text}**` : text);

/** "AMD EPYC", "Intel Xeon": the processor family, which is what tells the machines of the runs apart. */
export function processor(cpu: string | undefined): string {
  if (!cpu) return '?';
  const words = cpu.replace(/\((R|TM)\)/g, '').split(/\s+/).filter(Boolean);
  return words.slice(0, 2).join(' ');
}

function gateway(report: RunReport): string {
  const workers = report.layout.processes.filter((p) => p.startsWith('worker')).length;
  const redis = report.layout.redis?.mode === 'cluster' ? `, cluster of ${report.layout.redis.masters}` : '';
  return `${workers} worker${workers === 1 ? '' : 's'}, ${report.layout.shards} shards${redis}`;
}

function phasesLabel(report: RunReport): string {
  if (isFullRun(report)) return 'full';
  const byChannel = new Map<string, string[]>();
  for (const p of report.phases) byChannel.set(p.channel, [...(byChannel.get(p.channel) ?? []), p.offered === 'max' ? 'max' : num(p.offered)]);
  return [...byChannel].map(([c, loads]) => `${CHANNEL_LABELS[c] ?? c} ${loads.join(', ')}`).join('; ');
}

/** The run's name, with the commit it measured when the report has one ("+": with changes on top). */
const runName = ({ id, report }: Run) => `\`${id}\`${report.code ? ` (${report.code.commit}${report.code.modified ? '+' : ''})` : ''}`;

/** A reference's two measurements (before → after the phases), or the one older reports kept. */
const referenceFigures = (runs: number[] | undefined, mean: number | undefined) => (runs?.length ? runs.map(num).join(' → ') : mean ? num(mean) : '');

/** One row per end-to-end run, oldest first. */
export function renderRunTable(runs: readonly Run[]): string {
  const lines = [
    `| run | processor | gateway | phases | bare route req/s | queue ceiling jobs/s | best msg/s | of bare route | WeCom / app delivered at ${num(TARGETS.sustainedMsgPerSec)} offered | p99 ms at ${num(TARGETS.p99AtMsgPerSec)} msg/s: WeCom / app / widget |`,
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const run of runs) {
    const { report } = run;
    const v = judge(report);
    const ref = report.reference;
    const atRate = WEBHOOK_CHANNELS.map((c) => (v.atTargetRate[c] ? mark(num(v.atTargetRate[c]!.delivered), sustains(v, c)) : '–')).join(' / ');
    const p99 = CHANNELS.map((c) => (v.p99[c] === undefined ? '–' : mark(ms(v.p99[c]!), meetsP99(v, c)))).join(' / ');
    lines.push(
      `| ${runName(run)} | ${processor(report.machine.cpu)} | ${gateway(report)} | ${phasesLabel(report)} | ${referenceFigures(ref?.bareEnqueueRuns, ref?.bareEnqueueRequestsPerSec)} | ` +
        `${referenceFigures(ref?.queueCeilingRuns, ref?.queueCeilingJobsPerSec)} | ${v.bestMsgPerSec === undefined ? '' : num(v.bestMsgPerSec)} | ` +
        `${v.ratioToBareEnqueue === undefined ? '' : mark(percent(v.ratioToBareEnqueue), meetsRatio(v))} | ${atRate} | ${p99} |`,
    );
  }
  return lines.join('\n');
}

const count = (runs: Verdict[], met: (v: Verdict) => boolean) => `${runs.filter(met).length} of ${runs.length}`;
const range = (values: number[], format: (n: number) => string) => {
  if (values.length === 0) return '';
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo === hi ? format(lo) : `${format(lo)}–${format(hi)}`;
};

/** The full runs grouped by day, processor and gateway layout: how often each target was met. */
export function renderTargetTable(runs: readonly Run[]): string {
  const groups = new Map<string, { day: string; cpu: string; layout: string; verdicts: Verdict[]; bare: number[] }>();
  for (const { id, report } of runs.filter((r) => isFullRun(r.report))) {
    const day = id.slice(0, 10);
    const cpu = processor(report.machine.cpu);
    const layout = gateway(report);
    const key = `${day} ${cpu} ${layout}`;
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { day, cpu, layout, verdicts: [], bare: [] }));
    group.verdicts.push(judge(report));
    if (report.reference) group.bare.push(report.reference.bareEnqueueRequestsPerSec);
  }
  const lines = [
    `| day | processor | gateway | full runs | bare route req/s | best msg/s | of bare route (target ≥ ${percent(TARGETS.ratioToBareEnqueue)}) | ${num(TARGETS.sustainedMsgPerSec)} msg/s sustained: WeCom, app | p99 ≤ ${TARGETS.p99Ms} ms at ${num(TARGETS.p99AtMsgPerSec)} msg/s: WeCom, app, widget |`,
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const { day, cpu, layout, verdicts, bare } of groups.values()) {
    const ratios = verdicts.flatMap((v) => (v.ratioToBareEnqueue === undefined ? [] : [wholePercent(v.ratioToBareEnqueue)]));
    lines.push(
      `| ${day} | ${cpu} | ${layout} | ${verdicts.length} | ${range(bare, num)} | ${range(verdicts.flatMap((v) => (v.bestMsgPerSec === undefined ? [] : [v.bestMsgPerSec])), num)} | ` +
        `${range(ratios, String)} %, met in ${count(verdicts, meetsRatio)} | ` +
        `${WEBHOOK_CHANNELS.map((c) => count(verdicts, (v) => sustains(v, c))).join(', ')} | ` +
        `${CHANNELS.map((c) => count(verdicts, (v) => meetsP99(v, c))).join(', ')} |`,
    );
  }
  return lines.join('\n');
}

/** Every phase of one run, as the README shows its latest full run. */
export function renderPhaseTable(run: Run): string {
  const { report } = run;
  const ref = report.reference;
  const lines = [
    `Run ${runName(run)}: ${report.machine.cores}-core ${processor(report.machine.cpu)}, ${gateway(report)}; bare express + BullMQ \`add\` route ` +
      `${referenceFigures(ref?.bareEnqueueRuns, ref?.bareEnqueueRequestsPerSec)} req/s and queue ceiling ${referenceFigures(ref?.queueCeilingRuns, ref?.queueCeilingJobsPerSec)} ` +
      `no-op jobs/s, measured before and after the phases.`,
    '',
    '| channel | offered msg/s | delivered msg/s | p50 ms | p99 ms | errors | msg per queue job | Redis cmd/msg | CPU ms/msg ingress + workers |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const p of report.phases) {
    const workers = Object.entries(p.cpuMsPerMessage).filter(([role]) => role.startsWith('worker')).reduce((sum, [, n]) => sum + n, 0);
    lines.push(
      `| ${CHANNEL_LABELS[p.channel] ?? p.channel} | ${p.offered === 'max' ? 'open-loop max' : num(p.offered)} | ${num(p.deliveredPerSec)} | ${ms(p.latencyMs.p50)} | ` +
        `${ms(p.latencyMs.p99)} | ${p.errors} | ${p.messagesPerInboundJob ?? ''} | ${p.redisCommandsPerMessage} | ${p.cpuMsPerMessage.ingress} + ${Math.round(workers * 100) / 100} |`,
    );
  }
  const v = judge(report);
  lines.push(
    '',
    `Best rate ${v.bestMsgPerSec === undefined ? '–' : `${num(v.bestMsgPerSec)} msg/s`}` +
      (v.ratioToBareEnqueue === undefined ? '' : `, ${percent(v.ratioToBareEnqueue)} of the bare route`) +
      (v.bestMsgPerSec !== undefined && ref ? ` and ${percent(v.bestMsgPerSec / ref.queueCeilingJobsPerSec)} of the queue ceiling` : '') +
      '.',
  );
  return lines.join('\n');
}

// ── Idle sockets ──────────────────────────────────────────────────────────────────────────────────────────────
/** What a `--sockets` report says: idle widget sockets held by the ingress, its RSS before and with them. */
export interface SocketsRun {
  id: string;
  machine: { cpu?: string };
  sockets: { sockets: number; ingressRssBeforeMb: number; ingressRssHeldMb: number };
}

export function loadSocketsRuns(dir: string): SocketsRun[] {
  return readdirSync(dir)
    .filter((name) => SOCKETS_FILE.test(name))
    .sort()
    .map((name) => ({ id: name.slice(0, -'.json'.length), ...readReport<Omit<SocketsRun, 'id'>>(dir, name) }));
}

/** The idle-socket target: the latest `--sockets` run and the range over all of them. */
export function renderSocketsLine(runs: readonly SocketsRun[]): string {
  const latest = runs.at(-1);
  if (!latest) return 'Idle sockets: no `--sockets` run yet.';
  const held = runs.map((r) => r.sockets.ingressRssHeldMb);
  const met = (mb: number) => mb <= TARGETS.idleSocketsRssMb;
  const within = runs.filter((r) => met(r.sockets.ingressRssHeldMb)).length;
  return (
    `Idle widget sockets (\`npm run bench -- --sockets ${latest.sockets.sockets}\`; target: ${num(TARGETS.idleSockets)} in ≤ ${TARGETS.idleSocketsRssMb} MB of ingress RSS): ` +
    `the latest run, \`bench/results/${latest.id}.json\` on ${processor(latest.machine.cpu)}, held ${num(latest.sockets.sockets)} in ` +
    `${mark(`${num(latest.sockets.ingressRssHeldMb)} MB`, met(latest.sockets.ingressRssHeldMb))} (${num(latest.sockets.ingressRssBeforeMb)} MB before they connected); ` +
    `${range(held, num)} MB over the ${runs.length} stored runs, ${within === runs.length ? 'all' : `${within} of them`} within the target.`
  );
}

// ── The generated sections of the READMEs ─────────────────────────────────────────────────────────────────────
interface Section {
  file: string;
  name: string;
  render: (runs: readonly Run[], sockets: readonly SocketsRun[]) => string;
}

const SECTIONS: Section[] = [
  { file: 'README.md', name: 'targets', render: (runs, sockets) => `${renderTargetTable(runs)}\n\n${renderSocketsLine(sockets)}` },
  {
    file: 'README.md',
    name: 'latest-run',
    render: (runs) => {
      const latest = runs.filter((r) => isFullRun(r.report)).at(-1);
      return latest ? renderPhaseTable(latest) : '(no full run yet)';
    },
  },
  { file: 'bench/README.md', name: 'runs', render: renderRunTable },
];

const begin = (name: string) => `<!-- bench-summary:${name} (generated by \`npm run bench:summary\` from bench/results; do not edit) -->`;
const end = (name: string) => `<!-- /bench-summary:${name} -->`;

/** `text` with the named section's body replaced; the markers must be there already. */
export function replaceSection(text: string, name: string, body: string, file = 'the file'): string {
  // The opening marker is found by its name alone; its wording is rewritten with the section.
  const from = text.indexOf(`<!-- bench-summary:${name} `);
  const to = text.indexOf(end(name));
  if (from === -1 || to < from) throw new Error(`${file} has no generated section "${name}": add the lines\n${begin(name)}\n${end(name)}`);
  return `${text.slice(0, from)}${begin(name)}\n${body}\n${text.slice(to)}`;
}

/** The files whose generated sections differ from what bench/results gives now, with their new text. */
export function staleDocs(root: string): Map<string, string> {
  const dir = join(root, 'bench', 'results');
  const runs = loadRuns(dir);
  const sockets = loadSocketsRuns(dir);
  const current = new Map<string, string>();
  const texts = new Map<string, string>();
  for (const { file, name, render } of SECTIONS) {
    if (!current.has(file)) current.set(file, readFileSync(join(root, file), 'utf8'));
    texts.set(file, replaceSection(texts.get(file) ?? current.get(file)!, name, render(runs, sockets), file));
  }
  return new Map([...texts].filter(([file, text]) => text !== current.get(file)));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { check: { type: 'boolean', default: false } } });
  const root = fileURLToPath(new URL('..', import.meta.url));
  const stale = staleDocs(root);
  if (values.check) {
    if (stale.size > 0) {
      console.error(`out of date: ${[...stale.keys()].join(', ')}; run \`npm run bench:summary\``);
      process.exit(1);
    }
    console.log('the benchmark tables are up to date');
  } else {
    for (const [file, text] of stale) writeFileSync(join(root, file), text);
    console.log(stale.size ? `rewrote ${[...stale.keys()].join(', ')}` : 'the benchmark tables were up to date');
  }
}
