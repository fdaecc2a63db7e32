/**
 * WebSocket upgrades go to the adapters; one that throws while taking a socket refuses that socket with a 500 and a
 * log line, and the process — with every other socket — keeps running.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startTestRedis } from './helpers/redis.js';

/** Sends a raw WebSocket upgrade request and returns the status line of the answer. */
function upgrade(url: string, path: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) {
        resolve(answer.slice(0, answer.indexOf('\r\n')));
        socket.destroy();
      }
    });
    socket.on('error', reject);
  });
}

describe('WebSocket upgrades', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  before(async () => {
    redis = await startTestRedis();
    gw = await startTestGateway({ channels: [{ id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789' } }] }, redis.url);
  });
  after(async () => {
    await gw.stop();
    await redis.stop();
  });

  it('refuses an unknown endpoint with 404, and a socket an adapter fails to take with 500, and keeps serving', async () => {
    assert.equal(await upgrade(gw.url, '/nowhere'), 'HTTP/1.1 404 Not Found');
    const web = gw.gateway.adapters.get('web')!;
    const original = web.upgrade!.bind(web);
    web.upgrade = () => {
      throw new TypeError('a bug in the adapter');
    };
    try {
      assert.equal(await upgrade(gw.url, '/webhooks/web/ws?token=x'), 'HTTP/1.1 500 Internal Server Error');
      assert.ok(gw.logs.some((l) => l.msg === 'WebSocket upgrade failed' && l.url === '/webhooks/web/ws'), 'logged, without the query');
    } finally {
      web.upgrade = original;
    }
    const health = await fetch(`${gw.url}/healthz`);
    assert.equal(health.status, 200, 'still serving');
  });
});
