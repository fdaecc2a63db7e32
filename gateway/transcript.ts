/** Both directions of every conversation, with bot decision traces, kept in Redis for a configured retention. */
import type { RedisClient } from '../adapters/types.js';
import { UnifiedMessage } from './message.js';

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

  async append(message: UnifiedMessage): Promise<void> {
    const key = this.key(message.conversationId);
    // The raw platform payload stays out: transcripts are for people, and raw can be large.
    const { raw: _raw, ...rest } = message;
    await Promise.all([
      this.redis.rpush(key, JSON.stringify(rest)),
      this.redis.ltrim(key, -this.maxMessages, -1),
      this.redis.expire(key, this.retentionSeconds),
    ]);
  }

  async list(conversationId: string, limit = this.maxMessages): Promise<UnifiedMessage[]> {
    const items = await this.redis.lrange(this.key(conversationId), -limit, -1);
    return items.map((s) => UnifiedMessage.parse(JSON.parse(s)));
  }
}
