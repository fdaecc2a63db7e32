import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { AxiosError } from 'axios';
import { createHttpClient, postJson } from '../adapters/shared/http-client.js';
import { proxyConfigured } from '../adapters/shared/http-transport.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  remotePort: number;
}

describe('platform HTTP client', () => {
  let server: Server;
  let base: string;
  const connections: Socket[] = [];
  const seen: Seen[] = [];
  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body, remotePort: req.socket.remotePort! });
        const path = new URL(req.url!, 'http://x').pathname;
        if (path === '/slow') return void setTimeout(() => res.end('{}'), 500);
        if (path === '/busy') return void res.writeHead(429, { 'retry-after': '7', 'content-type': 'application/json' }).end('{"error":"slow down"}');
        if (path === '/moved') return void res.writeHead(302, { location: '/send' }).end();
        if (path === '/bytes') return void res.end(Buffer.from([0, 1, 2, 255]));
        if (path === '/text') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ remotePort: req.socket.remotePort, path }));
      });
    });
    server.on('connection', (socket) => connections.push(socket));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('sends plain requests over kept-alive connections, with the base URL, params, headers and body axios would send', async () => {
    const client = createHttpClient(`${base}/api/`);
    connections.length = 0;
    seen.length = 0;
    const ports = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const res = await client.post('/send', { i, text: '你好 & bye' }, { params: { access_token: 'a b+c', n: i }, headers: { 'x-trace': 't1' } });
      assert.equal(res.status, 200);
      assert.equal(res.data.path, '/api/send', 'JSON answers are parsed');
      ports.add(res.data.remotePort);
    }
    // The pool may open a second socket while the first is still finishing; what matters is that sockets are reused.
    assert.ok(ports.size <= 2 && connections.length <= 2, `kept-alive sockets reused (${connections.length} for five requests)`);
    const first = seen[0]!;
    assert.equal(first.method, 'POST');
    const url = new URL(first.url, base);
    assert.equal(url.pathname, '/api/send');
    assert.equal(url.searchParams.get('access_token'), 'a b+c');
    assert.equal(url.searchParams.get('n'), '0');
    assert.equal(first.headers['x-trace'], 't1');
    assert.match(String(first.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(first.body), { i: 0, text: '你好 & bye' });

    const absolute = await client.get(`${base}/elsewhere`, { responseType: 'text' });
    assert.equal(typeof absolute.data, 'string', 'text answers stay text');
    assert.equal(JSON.parse(absolute.data).path, '/elsewhere', 'an absolute URL ignores the base URL');
    const bytes = await client.get('/bytes', { baseURL: base, responseType: 'arraybuffer' });
    assert.deepEqual([...Buffer.from(bytes.data)], [0, 1, 2, 255]);
  });

  it('answers statuses and failures the way axios does: validateStatus, headers, ECONNREFUSED, ETIMEDOUT', async () => {
    const client = createHttpClient(base, 100);
    const busy = await client.get('/busy');
    assert.equal(busy.status, 429, 'the gateway client takes every status (validateStatus)');
    assert.equal(busy.headers['retry-after'], '7');
    assert.deepEqual(busy.data, { error: 'slow down' });

    const strict = createHttpClient(base);
    strict.defaults.validateStatus = (s) => s < 400;
    await assert.rejects(strict.get('/busy'), (err: AxiosError) => {
      assert.ok(err instanceof AxiosError);
      assert.equal(err.code, AxiosError.ERR_BAD_REQUEST);
      assert.equal(err.response?.status, 429);
      return true;
    });

    await assert.rejects(client.get('/slow'), (err: AxiosError) => err instanceof AxiosError && err.code === 'ETIMEDOUT');
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await assert.rejects(createHttpClient(`http://127.0.0.1:${port}`).get('/'), (err: AxiosError) => err instanceof AxiosError && err.code === 'ECONNREFUSED');
  });

  it('leaves uploads, streams and redirects to axios own adapter, which reuses its socket without setting TCP keep-alive again', async () => {
    const client = createHttpClient(base);
    seen.length = 0;
    const form = new FormData();
    form.append('media', new Blob([Buffer.from('file bytes')]), 'a.txt');
    await client.post('/upload', form);
    assert.match(String(seen[0]!.headers['content-type']), /^multipart\/form-data; boundary=/);
    assert.match(seen[0]!.body, /file bytes/);

    const stream = await client.get<Readable>('/bytes', { responseType: 'stream' });
    const chunks: Buffer[] = [];
    for await (const c of stream.data) chunks.push(c as Buffer);
    assert.deepEqual([...Buffer.concat(chunks)], [0, 1, 2, 255]);

    const followed = await client.get('/moved', { maxRedirects: 2 });
    assert.equal(followed.data.path, '/send', 'redirects are followed when asked for');

    // The keep-alive setting sticks to the socket: reusing it must make no setsockopt (the agent and axios both ask).
    const agent = client.defaults.httpAgent as import('node:http').Agent;
    const pooled = Object.values(agent.freeSockets).flat()[0] as Socket;
    assert.ok(pooled, 'the socket waits in the pool');
    const calls: string[] = [];
    const handle = (pooled as unknown as { _handle: { setKeepAlive: (on: boolean, delaySeconds: number) => number } })._handle;
    const native = handle.setKeepAlive.bind(handle);
    handle.setKeepAlive = (on, delaySeconds) => (calls.push(`${on}/${delaySeconds}`), native(on, delaySeconds));
    await client.get('/moved', { maxRedirects: 2 });
    assert.deepEqual(calls, [], 'no setsockopt on reuse');
    agent.destroy();
  });

  it('sends a message-send call (postJson) through the same pool with the base URL, params, headers and timeout of the client', async () => {
    const client = createHttpClient(`${base}/api`, 100);
    seen.length = 0;
    const res = await postJson<{ path: string }>(client, '/send', { touser: 'u1', text: '你好' }, { params: { access_token: 'a b+c' }, headers: { 'X-Trace': 't2' } });
    assert.equal(res.status, 200);
    assert.equal(res.data.path, '/api/send', 'a JSON answer is parsed');
    const first = seen[0]!;
    assert.equal(first.method, 'POST');
    assert.equal(new URL(first.url, base).searchParams.get('access_token'), 'a b+c');
    assert.equal(first.headers['x-trace'], 't2');
    assert.equal(first.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(first.body), { touser: 'u1', text: '你好' });

    // A signed body goes out byte for byte; the caller's content type wins; every status comes back as it is.
    const signed = '{"b":1,  "a":2}';
    const busy = await postJson(client, `${base}/busy`, signed, { headers: { 'Content-Type': 'application/json; charset=utf-8' } });
    assert.equal(seen[1]!.body, signed);
    assert.equal(seen[1]!.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(busy.status, 429);
    assert.equal(busy.headers['retry-after'], '7');
    const text = await postJson(client, `${base}/bytes`, {});
    assert.equal(typeof text.data, 'string', 'an answer that is not JSON stays text');

    await assert.rejects(postJson(client, `${base}/slow`, {}), (err: AxiosError) => err instanceof AxiosError && err.code === 'ETIMEDOUT');
    assert.equal((await postJson(client, '/send', {})).status, 200, 'the pool goes on after a request it timed out');
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await assert.rejects(postJson(createHttpClient(`http://127.0.0.1:${port}`), '/', {}), (err: AxiosError) => err instanceof AxiosError && err.code === 'ECONNREFUSED');
  });

  it('gives a postJson answer as JSON when it is JSON and as text otherwise, without running plain text through JSON.parse', async () => {
    const client = createHttpClient(base);
    const answer = async (text: string) => (await postJson(client, '/text', text)).data;
    assert.deepEqual(await answer(' \n[1, {"a": null}]'), [1, { a: null }]);
    assert.equal(await answer('true'), true);
    assert.equal(await answer('-2.5'), -2.5);
    assert.equal(await answer('"quoted"'), 'quoted');
    assert.equal(await answer('nope'), 'nope', 'text that only starts like a JSON literal');
    assert.equal(await answer('{"cut": '), '{"cut": ');
    // An app's callback answering "ok" on every reply: a failing JSON.parse throws, and that SyntaxError is costly.
    const parse = JSON.parse;
    let parsed = 0;
    JSON.parse = ((...args: Parameters<typeof JSON.parse>) => (parsed++, parse(...args))) as typeof JSON.parse;
    try {
      for (const text of ['ok', 'OK', '', '<xml/>', 'success']) assert.equal(await answer(text), text);
    } finally {
      JSON.parse = parse;
    }
    assert.equal(parsed, 0, 'no plain-text answer went through JSON.parse');
  });

  it("cancels a request when the caller's AbortSignal fires, and times out by itself otherwise", async () => {
    const client = createHttpClient(base, 2_000);
    const controller = new AbortController();
    const started = Date.now();
    const pending = client.get('/slow', { signal: controller.signal });
    setTimeout(() => controller.abort(), 30);
    await assert.rejects(pending, (err: AxiosError) => err instanceof AxiosError && err.code === 'ERR_CANCELED');
    assert.ok(Date.now() - started < 400, 'cancelled before the answer came');
    // A signal that fired before the call: nothing is sent.
    const sent = seen.length;
    await assert.rejects(client.get('/slow', { signal: AbortSignal.abort() }), (err: AxiosError) => err instanceof AxiosError && err.code === 'ERR_CANCELED');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(seen.length, sent, 'a request cancelled before it started never reached the server');
    // A signal that never fires leaves the request to its timeout, and the answer comes back.
    const answered = await client.get('/slow', { signal: new AbortController().signal });
    assert.equal(answered.status, 200);
    await assert.rejects(createHttpClient(base, 50).get('/slow', { signal: new AbortController().signal }), (err: AxiosError) => err instanceof AxiosError && err.code === 'ETIMEDOUT');
  });

  it('sends everything through axios own adapter when a proxy is configured in the environment', () => {
    assert.equal(proxyConfigured({}), false);
    assert.equal(proxyConfigured({ HTTPS_PROXY: 'http://proxy:3128' }), true);
    assert.equal(proxyConfigured({ http_proxy: 'http://proxy:3128' }), true);
  });
});
