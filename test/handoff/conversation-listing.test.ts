/** GET /v1/conversations pages through the activity index: every conversation once, newest first, whatever the ties. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { conversationRoutes } from '../../gateway/api/conversation-routes.js';
import { ListConversationsQuery } from '../../gateway/api/schemas.js';
import type { RouteSpec } from '../../gateway/api/route.js';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { ConversationStore } from '../../gateway/conversations.js';
import { HttpError } from '../../gateway/errors.js';
import { GatewayEvents } from '../../gateway/events.js';
import { HandoffConfig } from '../../gateway/handoff/config.js';
import { HandoffService } from '../../gateway/handoff/service.js';
import { createMessage } from '../../gateway/message.js';
import { Transcripts } from '../../gateway/transcript.js';
import { startTestRedis } from '../helpers/redis.js';

const DAY = 24 * 3600;
const BURST_AT = 1_700_000_000_000;

describe('conversation listing', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let store: ConversationStore;
  let transcripts: Transcripts;
  let handoff: HandoffService;
  let list: RouteSpec;

  before(async () => {
    server = await startTestRedis();
    redis = new Redis(server.url);
    store = new ConversationStore(redis, 'cl', 30 * DAY);
    transcripts = new Transcripts(redis, 'cl', 500, 30 * DAY);
    handoff = new HandoffService({
      config: HandoffConfig.parse({}),
      redis,
      queueRedis: redis,
      connect: () => new Redis(server.url),
      prefix: 'cl',
      conversations: store,
      transcripts,
      events: new GatewayEvents(),
      pipeline: undefined as never, // listing never queues anything
      log: pino({ level: 'silent' }),
      retentionSeconds: 30 * DAY,
    });
    list = conversationRoutes({ redis, conversations: store, transcripts, handoff }).find((r) => r.operationId === 'listConversations')!;
  });
  after(async () => {
    await handoff.close();
    redis.disconnect();
    await server.stop();
  });

  async function receive(id: string) {
    const reference: ConversationReference = { conversationId: id, channel: 'web', channelType: 'web', peerId: 'u', context: {}, updatedAt: BURST_AT };
    const message = createMessage({
      channel: 'web', channelType: 'web', direction: 'in', conversationId: id,
      channelMessageId: `m-${id}`, sender: { id: 'u', role: 'customer' }, content: { type: 'text', text: 'hello' },
    });
    await store.receive(reference, message, 60_000, transcripts.entry(message));
  }

  /** 250 conversations active in one millisecond and 10 older ones, each older one a millisecond apart. */
  async function burst(): Promise<string[]> {
    await redis.del(store.indexKey);
    const same = Array.from({ length: 250 }, (_, i) => `web.same${String(i).padStart(3, '0')}`);
    const older = Array.from({ length: 10 }, (_, i) => `web.older${i}`);
    for (const id of [...same, ...older]) if (!(await store.get(id))) await receive(id);
    await redis.zadd(store.indexKey, ...same.flatMap((id) => [BURST_AT, id]), ...older.flatMap((id, i) => [BURST_AT - 100 - i, id]));
    return [...same.reverse(), ...older]; // newest first; ties in the index's order (reverse lexicographic)
  }

  async function page(query: Record<string, string>): Promise<{ items: Array<{ id: string; state: string }>; nextCursor: string | null }> {
    const result = await list.handler({ query: ListConversationsQuery.parse(query), params: undefined, body: undefined } as never);
    return result.body as never;
  }

  async function pageThrough(query: Record<string, string>): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { items, nextCursor } = await page({ ...query, ...(cursor !== null && { cursor }) });
      ids.push(...items.map((c) => c.id));
      cursor = nextCursor;
      pages++;
    } while (cursor !== null && pages < 100);
    return { ids, pages };
  }

  it('returns every conversation once, in order, when more than a read batch share one timestamp', async () => {
    const expected = await burst();
    const { ids, pages } = await pageThrough({ limit: '50' });
    assert.equal(new Set(ids).size, ids.length, 'no conversation twice');
    assert.deepEqual(ids, expected);
    assert.ok(pages <= 7, `${pages} pages for 260 conversations at 50 a page`);
  });

  it('keeps a state filter across a page boundary inside a burst', async () => {
    const expected = await burst();
    const closed = expected.filter((_, i) => i % 7 === 3);
    for (const id of closed) if ((await store.state(id)) !== 'closed') await store.transition(id, 'closed', 'test', 'listing test');
    await redis.zadd(store.indexKey, ...expected.slice(0, 250).flatMap((id) => [BURST_AT, id])); // a transition may touch the index
    const { ids } = await pageThrough({ limit: '10', state: 'closed' });
    assert.deepEqual(ids, closed);
    const open = await pageThrough({ limit: '30', state: 'bot' });
    assert.deepEqual(open.ids, expected.filter((id) => !closed.includes(id)));
  });

  it('continues from a cursor whose conversation has since moved or gone', async () => {
    const expected = await burst();
    const first = await page({ limit: '120' });
    assert.deepEqual(first.items.map((c) => c.id), expected.slice(0, 120));
    const last = expected[119]!;
    await redis.zadd(store.indexKey, BURST_AT + 5, last); // active again: now at the top, past the cursor
    const rest = await pageThrough({ limit: '50', cursor: first.nextCursor! });
    assert.deepEqual(rest.ids, expected.slice(120));
    await redis.zrem(store.indexKey, last);
    const again = await pageThrough({ limit: '50', cursor: first.nextCursor! });
    assert.deepEqual(again.ids, expected.slice(120));
  });

  it('refuses a cursor it did not issue', async () => {
    await assert.rejects(page({ cursor: 'not-a-cursor' }), (err: unknown) => err instanceof HttpError && err.status === 400);
  });
});
