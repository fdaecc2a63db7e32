/** Open-loop load at a fixed rate: the k-th request at t0 + k/rate, whether or not earlier ones were answered. */
import http from 'node:http';
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

/** Open-loop, evenly paced POSTs to the gateway over keep-alive connections; resolves when all are answered. */
export async function pacedRequests(
  base: string,
  rate: number,
  seconds: number,
  nextRequest: () => WebhookRequest,
  answered: (request: WebhookRequest, sentAt: number, status: number, body: string) => void,
  failed: () => void,
): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const { hostname, port } = new URL(base);
  const responses: Promise<void>[] = [];
  await evenly(rate, seconds, () => {
    const request = nextRequest();
    const sentAt = performance.now();
    responses.push(
      new Promise<void>((settle) => {
        const req = http.request({ agent, hostname, port, method: 'POST', path: request.path, headers: request.headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            answered(request, sentAt, res.statusCode ?? 0, Buffer.concat(chunks).toString());
            settle();
          });
        });
        req.on('error', () => {
          failed();
          settle();
        });
        req.end(request.body);
      }),
    );
  });
  await Promise.all(responses);
  agent.destroy();
}

