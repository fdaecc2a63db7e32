/**
 * Node (V8) flags per process role. Every way a gateway process starts passes them: the package.json scripts, the
 * container (docker-compose.yml) and the benchmark; test/node-flags.test.ts checks that those agree with this file.
 *
 * A process that runs the pipeline (`worker`, and `all`) allocates ≈ 140 KB per message — job JSON, Redis command
 * strings, HTTP bodies — nearly all of it garbage within milliseconds. With V8's defaults its young generation is at
 * most 16 MB per semi-space and shrinks back towards 1 MB while the process idles, as the old generation does (the
 * memory reducer), so on the 2-core benchmark machine at 1,000 msg/s:
 *   - in steady load a worker ran a young-generation collection every ≈ 150 ms, 5–7 ms each;
 *   - the first second after a quiet spell had one every 15–20 ms while the young generation grew back by doubling,
 *     and the old generation, shrunk too, was collected in full until its limit had grown again. That first second
 *     set part of the phase's p99 (much of the rest was Redis rewriting its AOF: see redis-server.ts).
 * A fixed 64 MB semi-space and no memory reducer: 4–5× fewer collections, half the time in GC, no storm after
 * an idle spell (bench/README.md). The price is memory: the young generation holds 128 MB instead of up to 32 MB, and
 * the old generation no longer shrinks when idle — a benchmark worker peaked at ≈ 530 MB of RSS instead of ≈ 400 MB
 * (≈ 470 MB with the young-generation flags alone). Where memory is tighter than latency, drop `--no-memory-reducer`
 * first.
 *
 * The ingress holds the idle widget sockets, so it goes the other way: its young generation is capped at 8 MB per
 * semi-space instead of V8's 16. 10,000 idle sockets then take 234–263 MB of RSS in the stored runs
 * (bench/results/*-sockets.json from 2026-12-01 on) instead of 264–305 MB with the defaults (over the 300 MB budget
 * in two of seven runs), and its CPU per callback and the end-to-end figures stay within the noise
 * (bench/README.md). A fixed 16 MB semi-space had taken them to 316 MB.
 */
import type { Role } from './gateway.js';

const PIPELINE_FLAGS = ['--max-semi-space-size=64', '--min-semi-space-size=64', '--no-memory-reducer'] as const;
const INGRESS_FLAGS = ['--max-semi-space-size=8'] as const;

export function nodeFlagsFor(role: Role): readonly string[] {
  return role === 'ingress' ? INGRESS_FLAGS : PIPELINE_FLAGS;
}

/** The flags of `role` this process was started without (empty when it has them all). */
export function missingNodeFlags(role: Role, execArgv: readonly string[] = process.execArgv): string[] {
  return nodeFlagsFor(role).filter((flag) => !execArgv.includes(flag));
}
