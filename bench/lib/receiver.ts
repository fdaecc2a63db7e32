/** The loopback "platform" that receives the gateway's replies and stamps their arrival. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function startReceiver() {
  /** gateway id of the inbound message → arrival time (performance.now()) of its first reply. */
  const arrivals = new Map<string, number>();
  let received = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const now = performance.now();
      received++;
      try {
        const replyTo = JSON.parse(Buffer.concat(chunks).toString()).message?.replyTo as string | undefined;
        if (replyTo && !arrivals.has(replyTo)) arrivals.set(replyTo, now);
      } catch {}
      res.end('ok');
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrivals,
    get received() {
      return received;
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}
