/**
 * Conversation context in Redis, expiring after a quiet period: slots (captured entities), customer attributes and
 * tags set by rules, turn and unanswered-turn counters, the entity the bot is waiting for, and the last N messages.
 * The pipeline handles one conversation's messages in order, so a read-modify-write per message is safe.
 */
import type { RedisClient } from '../adapters/types.js';
import { cappedPush, defineCappedPush } from '../gateway/capped-list.js';

export type Scalar = string | number | boolean;

export interface ConversationContext {
  slots: Record<string, string>;
  attributes: Record<string, Scalar>;
  tags: string[];
  /** Customer turns the bot handled. */
  turns: number;
  /** Consecutive turns that ended in a clarifying question or a fallback. */
  unanswered: number;
  /** The entity the bot last asked for. */
  awaiting?: string;
  lastStage?: string;
  /** Texts of a burst still waiting to be answered as one turn. */
  pendingBurst?: string[];
}

export interface ContextMessage {
  direction: 'in' | 'out';
  text: string;
  at: number;
}

export function emptyContext(): ConversationContext {
  return { slots: {}, attributes: {}, tags: [], turns: 0, unanswered: 0 };
}

export class ContextStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    readonly ttlSeconds: number,
    readonly maxMessages: number,
  ) {
    defineCappedPush(redis);
  }

  private key(conversationId: string): string {
    return `${this.prefix}:bot:ctx:{${conversationId}}`;
  }
  private historyKey(conversationId: string): string {
    return `${this.prefix}:bot:ctx:{${conversationId}}:messages`;
  }

  async load(conversationId: string): Promise<ConversationContext> {
    const json = await this.redis.get(this.key(conversationId));
    if (!json) return emptyContext();
    try {
      return { ...emptyContext(), ...(JSON.parse(json) as Partial<ConversationContext>) };
    } catch {
      return emptyContext();
    }
  }

  async history(conversationId: string): Promise<ContextMessage[]> {
    const items = await this.redis.lrange(this.historyKey(conversationId), 0, -1);
    return items.map((s) => JSON.parse(s) as ContextMessage);
  }

  /** Saves the context and appends messages to the history, renewing the TTL of both. */
  async save(conversationId: string, context: ConversationContext, messages: ContextMessage[]): Promise<void> {
    // Two commands in one round trip (auto-pipelined); both keys share the conversation's hash tag.
    const history = this.historyKey(conversationId);
    await Promise.all([
      this.redis.set(this.key(conversationId), JSON.stringify(context), 'EX', this.ttlSeconds),
      messages.length
        ? cappedPush(this.redis, history, this.maxMessages, this.ttlSeconds, ...messages.map((m) => JSON.stringify(m)))
        : this.redis.expire(history, this.ttlSeconds),
    ]);
  }
}
