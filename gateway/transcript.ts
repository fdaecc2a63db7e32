/** Both directions of every conversation, with bot decision traces, kept in Redis for a configured retention. */
import type { RedisClient } from '../adapters/types.js';
import { cappedPush, defineCappedPush } from './capped-list.js';
import { UnifiedMessage } from './message.js';

export class Transcripts {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly maxMessages: number,
    private readonly retentionSeconds: number,
  ) {
    defineCappedPush(redis);
  }

  private key(conversationId: string): string {
    return `${this.prefix}:conv:{${conversationId}}:transcript`;
  }

  async append(message: UnifiedMessage): Promise<void> {
    const key = this.key(message.conversationId);
    // The raw platform payload stays out: transcripts are for people, and raw can be large.
    const { raw: _raw, ...rest } = message;
    await cappedPush(this.redis, key, this.maxMessages, this.retentionSeconds, JSON.stringify(rest));
  }

  async list(conversationId: string, limit = this.maxMessages): Promise<UnifiedMessage[]> {
    const items = await this.redis.lrange(this.key(conversationId), -limit, -1);
    return items.map((s) => UnifiedMessage.parse(JSON.parse(s)));
  }
}
