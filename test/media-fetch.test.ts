/**
 * Outbound media (`load`) fetches URLs an API client or a bot chose and sends the bytes to a customer: it may only
 * reach public addresses, on every redirect hop, unless an operator allows a private network.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { MediaRefusedError, MediaStore, type MediaStoreOptions } from '../adapters/shared/media-store.js';
import { redisClientForTests } from './helpers/redis.js';

/** A loopback HTTP server on `host`, recording the paths asked for. */
async function serve(host: string, handler: http.RequestListener): Promise<{ url: string; paths: string[]; close(): void }> {
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { url: `http://${host}:${(server.address() as AddressInfo).port}`, paths, close: () => server.close() };
}

describe('outbound media fetch', () => {
  const test = redisClientForTests();
  const dir = mkdtempSync(join(tmpdir(), 'gw-media-fetch-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const store = (options: Partial<MediaStoreOptions> = {}) =>
    new MediaStore({ dir, maxBytes: 1024, redis: test.client, prefix: 'mf', log: pino({ level: 'silent' }), baseUrl: () => 'http://gw.test', ...options });
  const png = (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'image/png' });
    res.end('png bytes');
  };

  it('refuses loopback, private, link-local, CGNAT and unspecified addresses, named or literal, before connecting', async () => {
    const internal = await serve('127.0.0.1', png);
    const port = new URL(internal.url).port;
    try {
      const media = store();
      const refusals: Array<[url: string, addressClass: RegExp]> = [
        [`${internal.url}/a.png`, /loopback address \(127\.0\.0\.1\)/],
        [`http://localhost:${port}/a.png`, /host localhost resolves to a loopback address/],
        [`http://[::ffff:127.0.0.1]:${port}/a.png`, /loopback address/],
        ['http://169.254.169.254/latest/meta-data/', /link-local address \(169\.254\.169\.254\)/],
        ['http://10.0.0.5/a.png', /private address/],
        ['http://192.168.1.1/a.png', /private address/],
        ['http://[fd00::1]/a.png', /private address/],
        ['http://[fe80::1]/a.png', /link-local address/],
        ['http://100.64.0.1/a.png', /shared \(CGNAT\) address/],
        ['http://0.0.0.0/a.png', /unspecified address/],
        ['http://[::ffff:a00:1]/a.png', /private address/],
      ];
      for (const [url, addressClass] of refusals) {
        await assert.rejects(media.load(url), (err: Error) => err instanceof MediaRefusedError && addressClass.test(err.message), url);
      }
      assert.deepEqual(internal.paths, [], 'no request reached the internal server');
    } finally {
      internal.close();
    }
  });

  it('checks every redirect hop: an allowed host redirecting to an internal one is refused', async () => {
    const internal = await serve('127.0.0.2', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"secret":"instance credentials"}');
    });
    const outside = await serve('127.0.0.1', (req, res) => {
      if (req.url === '/cat.png') res.writeHead(302, { location: `${internal.url}/latest/meta-data/iam` }).end();
      else png(req, res);
    });
    try {
      const media = store({ allowPrivateNetworks: ['127.0.0.1'] });
      await assert.rejects(media.load(`${outside.url}/cat.png`), /media URL points to a loopback address \(127\.0\.0\.2\): refused/);
      assert.deepEqual(internal.paths, [], 'the redirect to the internal address was not followed');
      const loaded = await media.load(`${outside.url}/ok.png`);
      assert.equal(loaded.data.toString(), 'png bytes');
      assert.equal(loaded.fileName, 'ok.png');
    } finally {
      internal.close();
      outside.close();
    }
  });

  it('gives a download downloadTimeoutMs in all, however steadily a slow server trickles its bytes', async () => {
    const slow = await serve('127.0.0.1', (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png' });
      let sent = 0;
      const drip = setInterval(() => {
        res.write('x');
        if (++sent === 12) {
          clearInterval(drip);
          res.end();
        }
      }, 150);
      res.on('close', () => clearInterval(drip));
    });
    try {
      const media = store({ allowPrivateNetworks: ['127.0.0.1'], downloadTimeoutMs: 600 });
      const started = Date.now();
      await assert.rejects(media.load(`${slow.url}/slow.png`), /took longer than 600 ms/);
      const took = Date.now() - started;
      assert.ok(took < 1200, `gave up after ${took} ms, not ≈ 600 (the whole body takes 1800)`);
    } finally {
      slow.close();
    }
  });

  it('loads from an allowed private network through redirects, up to three', async () => {
    const origin = await serve('127.0.0.1', (req, res) => {
      const hop = Number(/^\/hop(\d)/.exec(req.url ?? '')?.[1] ?? -1);
      if (hop > 0) res.writeHead(302, { location: `/hop${hop - 1}.png` }).end();
      else png(req, res);
    });
    try {
      const media = store({ allowPrivateNetworks: ['127.0.0.0/8', '::1'] });
      assert.equal((await media.load(`${origin.url}/hop3.png`)).data.toString(), 'png bytes');
      await assert.rejects(media.load(`${origin.url}/hop4.png`), /more than 3 redirects/);
      assert.throws(() => store({ allowPrivateNetworks: ['10.0.0.0/40'] }), /not an IP address or CIDR range/);
    } finally {
      origin.close();
    }
  });
});
