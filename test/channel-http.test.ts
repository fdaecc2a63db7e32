/**
 * The webhook dispatcher on a real HTTP server: what a route receives (exact bytes, raw and decoded query, headers),
 * what the client gets back, and how bad requests are refused — with the same `{error, message}`, log line and metric
 * as the rest of the HTTP surface, and the server still serving afterwards.
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { reply, type WebhookRequest, type WebhookRoute } from '../adapters/http.js';
import type { ChannelAdapter } from '../adapters/types.js';
import { createChannelHttp } from '../gateway/channel-http.js';
import { HttpError } from '../gateway/errors.js';
import { createLogger } from '../gateway/logger.js';
import { Metrics } from '../gateway/metrics.js';

describe('channel webhook dispatcher', () => {
  let server: Server;
  let base: string;
  const seen: WebhookRequest[] = [];
  const logLines: Record<string, unknown>[] = [];
  const metrics = new Metrics();

  const routes: WebhookRoute[] = [
    { method: 'GET', path: '/', handle: (req) => (seen.push(req), reply.text(`echo ${req.query.echostr ?? ''}`)) },
    { method: 'POST', path: '/', handle: (req) => (seen.push(req), reply.json({ bytes: req.body.length }, 202)) },
    { method: 'POST', path: '/slow-down', handle: () => Promise.reject(new HttpError(429, 'rate_limited', 'wait', { 'retry-after': '3' })) },
    { method: 'POST', path: '/broken', handle: () => Promise.reject(new Error('secret internals')) },
    { method: 'POST', path: '/empty', handle: () => reply.empty(204) },
    // A header value Node refuses to write: even the error answer cannot go out.
    { method: 'POST', path: '/unanswerable', handle: () => Promise.reject(new HttpError(429, 'rate_limited', 'wait', { 'retry-after': 'bad\nvalue' })) },
  ];
  const adapter = { id: 'hook', type: 'test', capabilities: new Set(), routes: () => routes } as unknown as ChannelAdapter;

  before(async () => {
    const sink = new Writable({ write: (chunk, _enc, done) => (logLines.push(JSON.parse(String(chunk))), done()) });
    const webhooks = createChannelHttp({ log: createLogger('info', sink), metrics, adapters: new Map([['hook', adapter]]), bodyLimitBytes: 1024 });
    server = createServer((req, res) => {
      if (!webhooks(req, res)) res.writeHead(418).end('not a webhook');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('hands the route the exact body bytes, the raw query and the query decoded without turning "+" into a space', async () => {
    seen.length = 0;
    const body = Buffer.from('<xml><a>é</a></xml>\r\n');
    const res = await fetch(`${base}/webhooks/hook?msg_signature=ab%2Bc+d&nonce=1&nonce=2&__proto__=x&flag`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml', 'X-Custom': 'yes' },
      body,
    });
    assert.equal(res.status, 202);
    assert.match(res.headers.get('content-type')!, /^application\/json; charset=utf-8$/);
    assert.deepEqual(await res.json(), { bytes: body.length });
    const req = seen[0]!;
    assert.deepEqual(req.body, body);
    assert.equal(req.path, '/');
    assert.equal(req.rawQuery, 'msg_signature=ab%2Bc+d&nonce=1&nonce=2&__proto__=x&flag');
    assert.equal(req.query.msg_signature, 'ab+c+d');
    assert.equal(req.query.nonce, '1', 'the first of a repeated name');
    assert.equal(req.query.__proto__, 'x', 'a value like any other, not a prototype');
    assert.equal(req.query.flag, '');
    assert.equal(req.header('X-CUSTOM'), 'yes');
  });

  it('serves "/webhooks/<id>" and "/webhooks/<id>/" as the root, and HEAD through the GET route without a body', async () => {
    for (const path of ['/webhooks/hook?echostr=42', '/webhooks/hook/?echostr=42']) {
      const res = await fetch(base + path);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.equal(await res.text(), 'echo 42');
    }
    const head = await fetch(`${base}/webhooks/hook?echostr=42`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '7');
    assert.equal(await head.text(), '');
  });

  it('inflates gzip bodies and refuses encodings it cannot read', async () => {
    seen.length = 0;
    const plain = Buffer.from('{"a":"' + 'x'.repeat(500) + '"}');
    const res = await fetch(`${base}/webhooks/hook`, { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: gzipSync(plain) });
    assert.equal(res.status, 202);
    assert.deepEqual(seen[0]!.body, plain);
    const br = await fetch(`${base}/webhooks/hook`, { method: 'POST', headers: { 'content-encoding': 'br' }, body: 'x' });
    assert.equal(br.status, 415);
    assert.equal(((await br.json()) as { error: string }).error, 'unsupported_body');
    const bad = await fetch(`${base}/webhooks/hook`, { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: 'not gzip' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: string }).error, 'malformed_body');
  });

  it('refuses unknown channels and routes, oversized bodies and malformed queries with a reason, a log line and a metric', async () => {
    logLines.length = 0;
    const cases: [string, RequestInit, number, string][] = [
      ['/webhooks/nope', { method: 'POST', body: 'x' }, 404, 'unknown_channel'],
      ['/webhooks/hook/elsewhere', { method: 'POST', body: 'x' }, 404, 'unknown_route'],
      ['/webhooks/hook', { method: 'DELETE' }, 404, 'unknown_route'],
      ['/webhooks/hook', { method: 'POST', body: 'x'.repeat(2000) }, 413, 'payload_too_large'],
      ['/webhooks/hook?a=%E0%A4%A', { method: 'POST', body: 'x' }, 400, 'malformed_query'],
      ['/webhooks/hook/slow-down', { method: 'POST', body: 'x' }, 429, 'rate_limited'],
    ];
    for (const [path, init, status, error] of cases) {
      const res = await fetch(base + path, init);
      assert.equal(res.status, status, path);
      assert.equal(((await res.json()) as { error: string }).error, error, path);
      if (status === 429) assert.equal(res.headers.get('retry-after'), '3');
    }
    assert.deepEqual(
      logLines.filter((l) => l.msg === 'request refused').map((l) => l.error),
      cases.map((c) => c[3]),
    );
    // A query string may carry a credential (a custom channel's `?token=`): the log names the path only.
    assert.equal(logLines.find((l) => l.error === 'malformed_query')?.url, '/webhooks/hook');
    const counted = (await metrics.rejected.get()).values.find((v) => v.labels.error === 'payload_too_large');
    assert.equal(counted?.value, 1);
  });

  it('answers a failing route with a 500 that names no internals, logs the error and keeps serving', async () => {
    logLines.length = 0;
    const res = await fetch(`${base}/webhooks/hook/broken`, { method: 'POST', body: 'x' });
    assert.equal(res.status, 500);
    const body = (await res.json()) as { error: string; message: string };
    assert.equal(body.error, 'internal_error');
    assert.doesNotMatch(body.message, /secret internals/);
    assert.ok(logLines.some((l) => l.msg === 'request failed'));
    assert.equal((await fetch(`${base}/webhooks/hook/empty`, { method: 'POST' })).status, 204);
  });

  it('drops the connection when not even the error can be written, logs it, and keeps serving', async () => {
    logLines.length = 0;
    await assert.rejects(fetch(`${base}/webhooks/hook/unanswerable`, { method: 'POST', body: 'x' }));
    assert.ok(logLines.some((l) => l.msg === 'could not answer a webhook request'));
    assert.equal((await fetch(`${base}/webhooks/hook?echostr=2`)).status, 200);
  });

  it('closes the connection after refusing a body it did not read, and the next request is served', async () => {
    const port = (server.address() as AddressInfo).port;
    const answer = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/webhooks/hook', headers: { 'content-length': 100_000 } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode!, connection: res.headers.connection });
      });
      req.on('error', reject);
      req.write('x'.repeat(10));
    });
    assert.deepEqual(answer, { status: 413, connection: 'close' });
    assert.equal((await fetch(`${base}/webhooks/hook?echostr=1`)).status, 200);
  });

  it('leaves every other URL to the rest of the HTTP surface', async () => {
    const res = await fetch(`${base}/webhooksx/hook`);
    assert.equal(res.status, 418);
  });
});
