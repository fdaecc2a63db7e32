/**
 * The loopback "platform" that receives the gateway's replies and stamps their arrival:
 *   POST /replies                    app-channel callbacks (keyed by the inbound message id they answer)
 *   GET  /cgi-bin/gettoken           WeCom token endpoint (errcode 0, 7200 s)
 *   POST /cgi-bin/message/send       WeCom send API (keyed by touser: each benchmark user sends one message)
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function startReceiver() {
  /** gateway id of the inbound message → arrival time (performance.now()) of its first reply. */
  const arrivals = new Map<string, number>();
  /** WeCom user id → arrival time of the first reply sent to them. */
  const wecomArrivals = new Map<string, number>();
  let received = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const now = performance.now();
      received++;
      if (req.url?.startsWith('/cgi-bin/gettoken')) {
        res.setHeader('content-type', 'application/json');
        return void res.end(JSON.stringify({ errcode: 0, errmsg: 'ok', access_token: 'bench-token', expires_in: 7200 }));
      }
      if (req.url?.startsWith('/cgi-bin/message/send')) {
        try {
          const touser = JSON.parse(Buffer.concat(chunks).toString()).touser as string;
          if (!wecomArrivals.has(touser)) wecomArrivals.set(touser, now);
        } catch {}
        res.setHeader('content-type', 'application/json');
        return void res.end(JSON.stringify({ errcode: 0, errmsg: 'ok', msgid: String(received) }));
      }
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
    wecomArrivals,
    get received() {
      return received;
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}
