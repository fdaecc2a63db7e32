/**
 * Conversation context in Redis, expiring after a quiet period: slots (captured entities), customer attributes and
 * tags set by rules, turn and unanswered-turn counters, the entity the bot is waiting for. The messages themselves are
 * in the conversation's transcript (gateway/transcript.ts), which the gateway writes anyway; a second copy here cost a
 * list key per conversation and a capped push per message that nothing read.
 * The pipeline handles one conversation's messages in order, so a read-modify-write per message is safe.
 */
import type { RedisClient } from '../adapters/types.js';

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

export function emptyContext(): ConversationContext {
  return { slots: {}, attributes: {}, tags: [], turns: 0, unanswered: 0 };
}

export class ContextStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    readonly ttlSeconds: number,
  ) {}

  private key(conversationId: string): string {
    return `${this.prefix}:bot:ctx:{${conversationId}}`;
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

  /** Saves the context, renewing its TTL. */
  async save(conversationId: string, context: ConversationContext): Promise<void> {
    await this.redis.set(this.key(conversationId), JSON.stringify(context), 'EX', this.ttlSeconds);
  }
}
