/** Open-loop load at a fixed rate: the k-th request at t0 + k/rate, whether or not earlier ones were answered. */
import { Pool } from 'undici';
import type { WebhookRequest } from './wecom-requests.js';

/** Calls `fire` rate × seconds times, the k-th at t0 + k/rate (open loop: nothing waits for an answer). */
export function evenly(rate: number, seconds: number, fire: () => void): Promise<void> {
  const total = Math.round(rate * seconds);
  const t0 = performance.now();
  let issued = 0;
  return new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      for (; issued < due; issued++) fire();
      if (issued === total) {
        clearInterval(timer);
        resolve();
      }
    }, 2);
  });
}

/**
 * Open-loop, evenly paced POSTs to the gateway over keep-alive connections; resolves when all are answered. undici's
 * pool rather than node:http: the load generator shares the machine's cores with the gateway, and undici spends
 * about half the CPU per request. The connections outlive the phase (see `poolFor`).
 */
export async function pacedRequests(
  base: string,
  rate: number,
  seconds: number,
  nextRequest: () => WebhookRequest,
  answered: (request: WebhookRequest, sentAt: number, status: number, body: string) => void,
  failed: () => void,
): Promise<void> {
  const pool = poolFor(base);
  const responses: Promise<void>[] = [];
  await evenly(rate, seconds, () => {
    const request = nextRequest();
    const sentAt = performance.now();
    responses.push(
      pool.request({ method: 'POST', path: request.path, headers: request.headers, body: request.body }).then(
        async (res) => answered(request, sentAt, res.statusCode, await res.body.text()),
        () => failed(),
      ),
    );
  });
  await Promise.all(responses);
}

const pools = new Map<string, Pool>();

/**
 * One pool per target for the whole run, as a platform keeps its keep-alive connections to the gateway (which holds
 * them 65 s): a pool opened per phase made every phase open its connections — dozens, in its first second — and that
 * burst of TCP set-ups read as the gateway's first-second latency (bench/README.md). The warm-up opens them.
 */
function poolFor(base: string): Pool {
  let pool = pools.get(base);
  if (!pool) pools.set(base, (pool = new Pool(base, { connections: 512, pipelining: 1 })));
  return pool;
}

/** Closes the load generator's connections (before the gateway stops). */
export async function closeLoadConnections(): Promise<void> {
  await Promise.all([...pools.values()].map((pool) => pool.close()));
  pools.clear();
}
