/**
 * The performance targets (README, "Performance") and how a benchmark report is judged against them. The benchmark
 * (e2e.ts) writes its headline figures with these rules, and the run summary (summary.ts) judges every stored report
 * with them, so an old report and a new one are read the same way.
 */

export const TARGETS = {
  /** Sustained end to end, per webhook channel. */
  sustainedMsgPerSec: 2_000,
  /** p99 from webhook arrival to the reply at the platform, at this offered rate, per channel. */
  p99Ms: 50,
  p99AtMsgPerSec: 1_000,
  /** The gateway's best rate against a bare express route doing one BullMQ `add`, measured in the same run. */
  ratioToBareEnqueue: 0.5,
  /** Idle web-widget sockets one ingress process holds within this RSS. */
  idleSockets: 10_000,
  idleSocketsRssMb: 300,
} as const;

/** What a judgement needs of a phase (every report since the first has these fields). */
export interface PhaseFigures {
  channel: string;
  offered: number | 'max';
  deliveredPerSec: number;
  errors: number;
  latencyMs: { p99: number };
}

/** The channels the benchmark drives (`--channels`), each judged against the latency target. */
export const BENCH_CHANNELS = ['wecom', 'app', 'ws'] as const;

/** Channels whose every accepted message is due one reply; a widget visitor's may rightly get fewer (a hand-off). */
export const WEBHOOK_CHANNELS = ['wecom', 'app'] as const;

/**
 * A fixed rate is sustained when it is carried without a backlog: nothing lost, nearly all of it delivered within the
 * phase, and the tail under half a second (a queue that grows through the phase shows as a p99 of seconds).
 */
export function isSustained(phase: PhaseFigures): boolean {
  return phase.offered !== 'max' && phase.errors === 0 && phase.deliveredPerSec >= 0.97 * phase.offered && phase.latencyMs.p99 <= 500;
}

/** The highest fixed rate a channel sustained in a run (0 when none). */
export function sustainedOf(phases: readonly PhaseFigures[], channel: string): number {
  return Math.max(0, ...phases.filter((p) => p.channel === channel && isSustained(p)).map((p) => Number(p.offered)));
}

/**
 * The gateway's throughput: the most WeCom replies/s delivered in any phase. Under fixed overload (2,000–4,000
 * offered) jobs grow and it delivers more than in the 64-connection open-loop phase, whose closed loop keeps jobs
 * small.
 */
export function bestWecomPhase<P extends PhaseFigures>(phases: readonly P[]): P | undefined {
  const wecom = phases.filter((p) => p.channel === 'wecom');
  return wecom.length ? wecom.reduce((a, b) => (b.deliveredPerSec > a.deliveredPerSec ? b : a)) : undefined;
}

/**
 * How many whole 1/`steps` a ratio holds, rounded down so a figure never reads as meeting a target the raw rates miss;
 * the epsilon keeps a ratio that sits exactly on a step there despite float noise (201 / 200 × 1,000 = 1,004.999…).
 */
export function wholeSteps(ratio: number, steps: number): number {
  return Math.floor(ratio * steps + 1e-9);
}

/**
 * A ratio as a report stores it: rounded down to a tenth of a per cent (0.4975 is kept as 0.497, where rounding to two
 * places wrote 0.5).
 */
export function reportedRatio(rate: number, reference: number): number {
  return wholeSteps(rate / reference, 1000) / 1000;
}

/** The p99 a channel had at the target's offered rate, if the run had that phase. */
export function p99AtTargetRate(phases: readonly PhaseFigures[], channel: string): number | undefined {
  return phases.find((p) => p.channel === channel && p.offered === TARGETS.p99AtMsgPerSec)?.latencyMs.p99;
}
