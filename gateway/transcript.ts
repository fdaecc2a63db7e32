/** Both directions of every conversation, with bot decision traces, kept in Redis for a configured retention. */
import type { RedisClient } from '../adapters/types.js';
import { UnifiedMessage } from './message.js';

/** One transcript line and where it goes: the conversation's capped, expiring list. */
export interface TranscriptEntry {
  key: string;
  json: string;
  max: number;
  ttlSeconds: number;
}

export class Transcripts {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly maxMessages: number,
    private readonly retentionSeconds: number,
  ) {}

  private key(conversationId: string): string {
    return `${this.prefix}:conv:{${conversationId}}:transcript`;
  }

  /**
   * A message's transcript line, for the scripts that append it as one of their steps: ConversationStore.receive
   * (inbound) and ConversationStore.delivered (outbound).
   */
  entry(message: UnifiedMessage): TranscriptEntry {
    // The raw platform payload stays out: transcripts are for people, and raw can be large. (An undefined field is left
    // out of the JSON; a copy with raw undefined serialises faster than one without the key, built by a rest pattern.)
    const json = JSON.stringify(message.raw === undefined ? message : { ...message, raw: undefined });
    return { key: this.key(message.conversationId), json, max: this.maxMessages, ttlSeconds: this.retentionSeconds };
  }

  async list(conversationId: string, limit = this.maxMessages): Promise<UnifiedMessage[]> {
    const items = await this.redis.lrange(this.key(conversationId), -limit, -1);
    return items.map((s) => UnifiedMessage.parse(JSON.parse(s)));
  }
}
