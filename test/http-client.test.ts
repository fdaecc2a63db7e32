import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createHttpClient } from '../adapters/shared/http-client.js';

describe('platform HTTP client', () => {
  let server: Server;
  let base: string;
  const connections: Socket[] = [];
  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(JSON.stringify({ remotePort: req.socket.remotePort })));
    });
    server.on('connection', (socket) => connections.push(socket));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('sends a sequence of requests over one kept-alive connection without setting TCP keep-alive again per request', async () => {
    const client = createHttpClient(base);
    const ports = new Set<number>();
    for (let i = 0; i < 5; i++) ports.add((await client.post('/send', { i })).data.remotePort);
    assert.equal(ports.size, 1, 'one connection for five requests');
    assert.equal(connections.length, 1);

    // The setting sticks to the socket: reusing it must make no setsockopt (the agent and axios both ask each time).
    const agent = client.defaults.httpAgent as import('node:http').Agent;
    const pooled = Object.values(agent.freeSockets).flat()[0] as Socket;
    assert.ok(pooled, 'the socket waits in the pool');
    const calls: string[] = [];
    const handle = (pooled as unknown as { _handle: { setKeepAlive: (on: boolean, delaySeconds: number) => number } })._handle;
    const native = handle.setKeepAlive.bind(handle);
    handle.setKeepAlive = (on, delaySeconds) => (calls.push(`${on}/${delaySeconds}`), native(on, delaySeconds));
    await client.post('/send', { again: true });
    assert.deepEqual(calls, [], 'no setsockopt on reuse');
    agent.destroy();
  });
});
