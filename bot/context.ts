/**
 * Conversation context in Redis, expiring after a quiet period: slots (captured entities), customer attributes and
 * tags set by rules, turn and unanswered-turn counters, the entity the bot is waiting for, and the last N messages.
 * The pipeline handles one conversation's messages in order, so a read-modify-write per message is safe.
 */
import type { RedisClient } from '../adapters/types.js';
import { cappedPushLua } from '../gateway/capped-list.js';

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

// KEYS[1] the context, KEYS[2] its message history. ARGV: context JSON, TTL in seconds, history cap, then the messages
// to append. Both keys get the TTL; one script instead of a SET and a capped push.
const SAVE_LUA = `
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if #ARGV > 3 then
${cappedPushLua('KEYS[2]', 'ARGV[3]', 'ARGV[2]', 'unpack(ARGV, 4)')}
else
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return 1
`;

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
    redis.defineCommand('gwContextSave', { numberOfKeys: 2, lua: SAVE_LUA });
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

  /** Saves the context and appends messages to the history, renewing the TTL of both (one script: both keys share
   *  the conversation's hash tag). */
  async save(conversationId: string, context: ConversationContext, messages: ContextMessage[]): Promise<void> {
    const save = (this.redis as unknown as { gwContextSave(...args: Array<string | number>): Promise<number> }).gwContextSave;
    await save.call(
      this.redis,
      this.key(conversationId),
      this.historyKey(conversationId),
      JSON.stringify(context),
      this.ttlSeconds,
      this.maxMessages,
      ...messages.map((m) => JSON.stringify(m)),
    );
  }
}
