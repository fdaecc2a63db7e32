/**
 * The web widget adapter's socket handling on its own (real Redis and live hub, a bare HTTP server routing
 * upgrades to it): sockets opened before the adapter started, and replies published while a reconnecting visitor's
 * missed replies are being read.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import web from '../adapters/web/index.js';
import type { AdapterContext, ChannelAdapter, RedisClient } from '../adapters/types.js';
import { createLogger } from '../gateway/logger.js';
import { LiveHub } from '../gateway/live.js';
import { createMessage, type UnifiedMessage } from '../gateway/message.js';
import { connectRedis } from '../gateway/redis.js';
import { startTestRedis } from './helpers/redis.js';
import { TestSocket } from './helpers/ws-client.js';

const SECRET = 'web-test-secret-0123456789';

describe('web widget sockets', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  const clients: RedisClient[] = [];
  const servers: Server[] = [];
  const connect = () => {
    const client = connectRedis(redis.url, { autoPipelining: false });
    clients.push(client);
    return client;
  };
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger('debug', { write: (line: string) => void logs.push(JSON.parse(line)) } as never);

  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => {
    for (const server of servers) server.close();
    for (const client of clients) client.disconnect();
    await redis?.stop();
  });

  /** The adapter behind a loopback HTTP server; `ctx` parts can be replaced to hold a step in flight. */
  async function serve(options: Record<string, unknown>, ctxParts: Partial<AdapterContext> = {}) {
    const hub = new LiveHub(connect(), connect, 'gw', 50, 600, log);
    const ingested: UnifiedMessage[] = [];
    const ctx: AdapterContext = {
      log,
      redis: connect(),
      keyPrefix: 'gw:ch:web:',
      publicBaseUrl: 'http://127.0.0.1',
      ingest: async (message) => (ingested.push(message), { messageId: message.id, duplicate: false }),
      subscribe: (onMessage, holds) => hub.subscribe('web', onMessage, holds),
      publish: (message) => hub.publish(message),
      missedReplies: (conversationId, afterId) => hub.missed(conversationId, afterId),
      media: { setFetcher() {} } as unknown as AdapterContext['media'],
      ...ctxParts,
    };
    const adapter = web.create({ id: 'web', type: 'web', options: web.options.parse(options) }, ctx) as ChannelAdapter;
    const server = createServer().on('upgrade', (req, socket, head) => {
      if (!adapter.upgrade?.(req, socket, head)) socket.destroy();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/web/ws`;
    return { adapter, url, hub, ingested };
  }

  it('refuses a socket with 503 "starting" until the visitor-token key is known, and serves one at once when it is configured', async () => {
    const generated = await serve({});
    await assert.rejects(TestSocket.open(generated.url), (err: { status?: number; body?: string }) => {
      assert.equal(err.status, 503);
      assert.equal(JSON.parse(err.body!).error, 'starting');
      return true;
    });
    await generated.adapter.start?.();
    const afterStart = await TestSocket.open(generated.url);
    assert.match((await afterStart.next((f) => f.type === 'session')).token, /^v1\./);
    await afterStart.close();
    await generated.adapter.stop?.();

    const configured = await serve({ secret: SECRET });
    const beforeStart = await TestSocket.open(configured.url);
    assert.match((await beforeStart.next((f) => f.type === 'session')).token, /^v1\./);
    await beforeStart.close();
  });

  it('sends the missed replies first, then what was published meanwhile, each reply once', async () => {
    const reply = (conversationId: string, text: string) =>
      createMessage({ channel: 'web', channelType: 'web', direction: 'out', conversationId, sender: { id: 'bot', role: 'bot' }, content: { type: 'text', text } });
    let replayStarted: (conversationId: string) => void = () => {};
    let readOutbox: () => void = () => {};
    let hub: LiveHub | undefined;
    const served = await serve(
      { secret: SECRET },
      {
        // Holds the replay in flight: once before the outbox is read, once after.
        missedReplies: async (conversationId, afterId) => {
          replayStarted(conversationId);
          await new Promise<void>((r) => (readOutbox = r));
          const missed = await hub!.missed(conversationId, afterId);
          await new Promise((r) => setTimeout(r, 150));
          return missed;
        },
      },
    );
    hub = served.hub;
    await served.adapter.start?.();
    const firstStarted = new Promise<string>((resolve) => (replayStarted = resolve));
    const first = await TestSocket.open(served.url);
    const { token } = await first.next((f) => f.type === 'session');
    const conversationId = await firstStarted;
    readOutbox();
    await first.close();

    await served.hub.publish(reply(conversationId, 'missed 1'));
    await served.hub.publish(reply(conversationId, 'missed 2'));
    const started = new Promise<void>((resolve) => (replayStarted = () => resolve()));
    const again = await TestSocket.open(`${served.url}?token=${encodeURIComponent(token)}`);
    await started;
    // Published before the outbox is read (so also in the replay), and while the replay is being sent.
    await served.hub.publish(reply(conversationId, 'published before the read'));
    readOutbox();
    await new Promise((r) => setTimeout(r, 50));
    await served.hub.publish(reply(conversationId, 'published during the replay'));
    const texts: string[] = [];
    for (let i = 0; i < 4; i++) texts.push((await again.next((f) => f.type === 'message')).message.content.text);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(texts, ['missed 1', 'missed 2', 'published before the read', 'published during the replay']);
    assert.equal(again.frames.filter((f) => f.type === 'message').length, 0, 'no reply twice');
    await again.close();
    await served.adapter.stop?.();
  });
});
