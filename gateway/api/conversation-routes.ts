/** /v1/conversations: list, read, transcript, agent replies and their status, hand-off / hand-back / close. */
import { z } from 'zod';
import type { RedisClient } from '../../adapters/types.js';
import type { ConversationStore, Conversation } from '../conversations.js';
import { TransitionError } from '../conversations.js';
import { HttpError, notFound } from '../errors.js';
import type { HandoffService } from '../handoff/service.js';
import { ConflictError } from '../handoff/service.js';
import type { Content } from '../message.js';
import type { Transcripts } from '../transcript.js';
import { route, type RouteSpec } from './route.js';
import {
  AgentReplyAccepted,
  AgentReplyBody,
  ConversationBody,
  ConversationDetail,
  ConversationIdParams,
  ConversationPage,
  HandoffBody,
  ListConversationsQuery,
  MessageParams,
  MessageStatusBody,
  ReasonBody,
  TransitionResult,
  TranscriptBody,
  TranscriptQuery,
} from './schemas.js';

export interface ConversationRouteDeps {
  redis: RedisClient;
  conversations: ConversationStore;
  transcripts: Transcripts;
  handoff: HandoffService;
}

type ConversationView = z.infer<typeof ConversationBody>;

export function conversationRoutes(deps: ConversationRouteDeps): RouteSpec[] {
  const { conversations, transcripts, handoff } = deps;

  async function view(conversation: Conversation): Promise<ConversationView> {
    const info = await handoff.info(conversation.id);
    const { reference } = conversation;
    return {
      id: conversation.id,
      state: conversation.state,
      channel: { id: reference.channel, type: reference.channelType },
      customer: { id: reference.peerId, ...(reference.peerName !== undefined && { name: reference.peerName }) },
      createdAt: conversation.createdAt,
      updatedAt: conversation.updatedAt,
      turns: conversation.turns,
      handoff: {
        ...(info.reason !== undefined && { reason: info.reason }),
        ...(info.team !== undefined && { team: info.team }),
        ...(info.priority !== undefined && { priority: info.priority }),
        ...(info.requestedAt !== undefined && { requestedAt: info.requestedAt }),
        ...(info.agent !== undefined && { agent: info.agent }),
      },
    };
  }

  async function load(id: string): Promise<Conversation> {
    const conversation = await conversations.get(id);
    if (!conversation) throw notFound('unknown_conversation', `no conversation ${id}`);
    return conversation;
  }

  /** Maps state-machine refusals to 409 with the current state in the message. */
  async function transition(id: string, act: () => Promise<unknown>) {
    await load(id);
    try {
      const change = await act();
      return { status: 200, body: { conversation: await view(await load(id)), change } };
    } catch (err) {
      if (err instanceof TransitionError) throw new HttpError(409, 'invalid_transition', err.message);
      throw err;
    }
  }

  /**
   * Up to `count` index entries after `pos`, newest first. Members sharing a score come in reverse lexicographic
   * order, so (score, id) is a total order; the read starts at `pos.score`, past the members of that score already
   * seen, however many a burst put there.
   */
  async function readIndexAfter(pos: IndexPosition | undefined, count: number): Promise<IndexPosition[]> {
    const start = pos ? { max: pos.score, offset: await seenAtScore(pos) } : { max: '+inf' as const, offset: 0 };
    const flat = await deps.redis.zrevrangebyscore(conversations.indexKey, start.max, '-inf', 'WITHSCORES', 'LIMIT', start.offset, count);
    const entries: IndexPosition[] = [];
    for (let i = 0; i < flat.length; i += 2) entries.push({ id: flat[i]!, score: Number(flat[i + 1]) });
    return entries;
  }

  /** How many members of the index sit at `pos.score` at or before `pos` (id ≥ pos.id): those a page already passed. */
  async function seenAtScore(pos: IndexPosition): Promise<number> {
    const key = conversations.indexKey;
    const answers = await deps.redis.multi().zscore(key, pos.id).zrevrank(key, pos.id).zcount(key, `(${pos.score}`, '+inf').exec();
    const [score, rank, higher] = (answers ?? []).map(([err, value]) => (err ? null : value));
    // Usually the cursor's conversation is still where the page left it: its rank places it among its equals.
    if (score !== null && Number(score) === pos.score && typeof rank === 'number' && typeof higher === 'number') return rank - higher + 1;
    // It has moved or gone since: count its former neighbours one batch at a time.
    let seen = 0;
    for (;;) {
      const ids = await deps.redis.zrevrangebyscore(key, pos.score, pos.score, 'LIMIT', seen, INDEX_BATCH);
      // Redis orders equal scores by the members' bytes, which JavaScript's string comparison does not follow.
      const passed = ids.findIndex((id) => Buffer.compare(Buffer.from(id), Buffer.from(pos.id)) < 0);
      if (passed >= 0) return seen + passed;
      seen += ids.length;
      if (ids.length < INDEX_BATCH) return seen;
    }
  }

  return [
    route({
      method: 'get',
      path: '/conversations',
      operationId: 'listConversations',
      summary: 'List conversations, most recently active first',
      tag: 'Conversations',
      scope: 'read',
      query: ListConversationsQuery,
      responses: { 200: { description: 'A page of conversations', schema: ConversationPage } },
      async handler({ query }) {
        // Walks the activity index newest first, ordered by (score, id), from the cursor position, applying the
        // filters, until `limit` matches or 5000 conversations were looked at; the position reached is the next cursor.
        let pos = decodeCursor(query.cursor);
        const items: ConversationView[] = [];
        let scanned = 0;
        let exhausted = false;
        while (items.length < query.limit && scanned < 5000) {
          const batch = await readIndexAfter(pos, INDEX_BATCH);
          let looked = 0;
          for (const entry of batch) {
            scanned++;
            looked++;
            pos = entry;
            const conversation = await conversations.get(entry.id);
            if (!conversation) continue;
            if (query.state && conversation.state !== query.state) continue;
            if (query.channel && conversation.reference.channel !== query.channel) continue;
            const v = await view(conversation);
            if (query.team && v.handoff.team !== query.team) continue;
            items.push(v);
            if (items.length === query.limit) break;
          }
          if (batch.length < INDEX_BATCH && looked === batch.length) {
            exhausted = true;
            break;
          }
        }
        const nextCursor = exhausted || !pos ? null : encodeCursor(pos);
        return { status: 200, body: { items, nextCursor } };
      },
    }),
    route({
      method: 'get',
      path: '/conversations/:id',
      operationId: 'getConversation',
      summary: 'A conversation: state, channel, customer, latest hand-off and the who/why/when history of its state',
      tag: 'Conversations',
      scope: 'read',
      params: ConversationIdParams,
      responses: { 200: { description: 'The conversation', schema: ConversationDetail }, 404: { description: 'No such conversation' } },
      async handler({ params }) {
        const conversation = await load(params.id);
        return { status: 200, body: { ...(await view(conversation)), history: await conversations.history(params.id) } };
      },
    }),
    route({
      method: 'get',
      path: '/conversations/:id/messages',
      operationId: 'getTranscript',
      summary: 'The transcript: both directions, oldest first, bot replies with their decision trace',
      tag: 'Conversations',
      scope: 'read',
      params: ConversationIdParams,
      query: TranscriptQuery,
      responses: { 200: { description: 'Transcript', schema: TranscriptBody }, 404: { description: 'No such conversation' } },
      async handler({ params, query }) {
        await load(params.id);
        const items = (await transcripts.list(params.id, query.limit)).map(({ raw: _raw, ...m }) => m);
        return { status: 200, body: { items } };
      },
    }),
    route({
      method: 'post',
      path: '/conversations/:id/messages',
      operationId: 'sendAgentReply',
      summary: "Reply as an agent: delivered on the customer's own channel",
      description:
        'Queues the reply through the pipeline to the channel the customer used (web widget, app, WeChat, WeCom, e-mail...). A conversation in handoff_pending (or bot) moves to agent. The response carries the message id; the delivery status follows at statusUrl and as message.delivered / message.delivery_failed webhooks.',
      tag: 'Agent replies',
      scope: 'reply',
      params: ConversationIdParams,
      body: AgentReplyBody,
      responses: {
        202: { description: 'Queued for delivery', schema: AgentReplyAccepted },
        404: { description: 'No such conversation' },
        409: { description: 'The conversation is closed' },
      },
      async handler({ params, body, key }) {
        await load(params.id);
        const content: Content =
          body.content.type === 'text'
            ? { type: 'text', text: body.content.text }
            : body.content.type === 'image'
              ? { type: 'image', url: body.content.url, ...(body.content.caption !== undefined && { caption: body.content.caption }), ...(body.content.mimeType !== undefined && { mimeType: body.content.mimeType }) }
              : { type: 'file', url: body.content.url, ...(body.content.name !== undefined && { name: body.content.name }), ...(body.content.mimeType !== undefined && { mimeType: body.content.mimeType }) };
        try {
          const message = await handoff.agentReply(params.id, content, { id: body.agent.id ?? body.agent.name, name: body.agent.name }, `agent:${body.agent.name} (api:${key.id})`);
          const status = (await handoff.messageStatus(message.id)) ?? { status: 'queued' as const, at: message.receivedAt };
          return {
            status: 202,
            body: { id: message.id, conversationId: params.id, ...status, statusUrl: `/v1/conversations/${encodeURIComponent(params.id)}/messages/${message.id}` },
          };
        } catch (err) {
          if (err instanceof ConflictError) throw new HttpError(err.code === 'unknown_conversation' ? 404 : 409, err.code, err.message);
          throw err;
        }
      },
    }),
    route({
      method: 'get',
      path: '/conversations/:id/messages/:messageId',
      operationId: 'getMessageStatus',
      summary: 'Delivery status of an agent reply',
      tag: 'Agent replies',
      scope: 'read',
      params: MessageParams,
      responses: { 200: { description: 'Status', schema: MessageStatusBody }, 404: { description: 'Unknown message' } },
      async handler({ params }) {
        const status = await handoff.messageStatus(params.messageId);
        if (!status) throw notFound('unknown_message', `no agent message ${params.messageId}`);
        return { status: 200, body: { id: params.messageId, conversationId: params.id, ...status } };
      },
    }),
    route({
      method: 'post',
      path: '/conversations/:id/handoff',
      operationId: 'handoffConversation',
      summary: 'Hand the conversation to a human (bot or closed → handoff_pending)',
      description:
        'Answers once the conversation.state_changed and conversation.handoff_requested webhooks are stored for delivery. After a 5xx the same request (same key, same reason) can be sent again: it finds the hand-off made and announces it again instead of answering 409.',
      tag: 'State',
      scope: 'reply',
      params: ConversationIdParams,
      body: HandoffBody,
      responses: { 200: { description: 'Moved', schema: TransitionResult }, 404: { description: 'No such conversation' }, 409: { description: 'Not allowed from the current state' } },
      handler: ({ params, body, key }) =>
        transition(params.id, () =>
          handoff.requestHandoff(params.id, { reason: body.reason, priority: body.priority, ...(body.team !== undefined && { team: body.team }) }, `api:${key.id}`),
        ),
    }),
    route({
      method: 'post',
      path: '/conversations/:id/handback',
      operationId: 'handbackConversation',
      summary: 'Give the conversation back to the bot (handoff_pending or agent → bot)',
      tag: 'State',
      scope: 'reply',
      params: ConversationIdParams,
      body: ReasonBody,
      responses: { 200: { description: 'Moved', schema: TransitionResult }, 404: { description: 'No such conversation' }, 409: { description: 'Not allowed from the current state' } },
      handler: ({ params, body, key }) =>
        transition(params.id, () => handoff.transition(params.id, 'bot', `api:${key.id}`, body.reason ?? 'handed back', ['handoff_pending', 'agent'])),
    }),
    route({
      method: 'post',
      path: '/conversations/:id/close',
      operationId: 'closeConversation',
      summary: 'Close the conversation (it reopens with the bot when the customer writes again)',
      tag: 'State',
      scope: 'reply',
      params: ConversationIdParams,
      body: ReasonBody,
      responses: { 200: { description: 'Closed', schema: TransitionResult }, 404: { description: 'No such conversation' }, 409: { description: 'Already closed' } },
      handler: ({ params, body, key }) =>
        transition(params.id, () => handoff.transition(params.id, 'closed', `api:${key.id}`, body.reason ?? 'closed', ['bot', 'handoff_pending', 'agent'])),
    }),
  ];
}

/** A place in the activity index: a conversation and its last-activity score. */
interface IndexPosition {
  score: number;
  id: string;
}

/** Activity-index entries read per round trip when listing. */
const INDEX_BATCH = 200;

function encodeCursor(c: IndexPosition): string {
  return Buffer.from(JSON.stringify([c.score, c.id])).toString('base64url');
}

function decodeCursor(cursor: string | undefined): IndexPosition | undefined {
  if (cursor === undefined) return undefined;
  try {
    const [score, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [number, string];
    if (Number.isFinite(score) && typeof id === 'string') return { score, id };
  } catch {
    // fall through
  }
  throw new HttpError(400, 'invalid_cursor', 'cursor is not one this API returned');
}
