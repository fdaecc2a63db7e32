/** Small statistics helpers for benchmark figures. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1] ?? NaN),
  };
}

/**
 * Latency per second of the phase, by when each message was sent: shows how the gateway got going (its heaps and
 * caches after the idle spell before the phase) apart from how it kept up.
 */
export function latencyBySecond(samples: ReadonlyArray<{ sentAtMs: number; latencyMs: number }>) {
  const seconds: number[][] = [];
  for (const { sentAtMs, latencyMs } of samples) (seconds[Math.max(0, Math.floor(sentAtMs / 1000))] ??= []).push(latencyMs);
  return Array.from(seconds, (values = [], second) => {
    const { count, p50, p99, max } = summarize(values);
    return { second, count, p50, p99, max };
  });
}
