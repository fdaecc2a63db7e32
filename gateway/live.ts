/**
 * Live delivery to clients connected over WebSocket (web widget, app channel), whichever process holds the socket.
 *
 * An outbound message is appended to its conversation's bounded "outbox" (so a client that reconnects can ask for
 * everything after the last id it saw — ids are ULIDs and sort by time) and published on Redis pub/sub; every
 * ingress process subscribes once and hands the message to the adapter owning the channel.
 */
import type { RedisClient } from '../adapters/types.js';
import type { Logger } from './logger.js';
import { cappedPush, defineCappedPush } from './capped-list.js';
import { UnifiedMessage } from './message.js';

export class LiveHub {
  private subscriber: RedisClient | undefined;
  private readonly handlers = new Map<string, Set<(message: UnifiedMessage) => void>>();

  constructor(
    private readonly redis: RedisClient,
    private readonly connect: () => RedisClient,
    private readonly prefix: string,
    private readonly retention: number,
    private readonly retentionSeconds: number,
    private readonly log: Logger,
  ) {
    defineCappedPush(redis);
  }

  private outboxKey(conversationId: string): string {
    return `${this.prefix}:outbox:{${conversationId}}`;
  }
  private topic(channel: string): string {
    return `${this.prefix}:live:${channel}`;
  }

  async publish(message: UnifiedMessage): Promise<void> {
    const key = this.outboxKey(message.conversationId);
    const json = JSON.stringify(message);
    await Promise.all([
      cappedPush(this.redis, key, this.retention, this.retentionSeconds, json),
      this.redis.publish(this.topic(message.channel), json),
    ]);
  }

  /** Outbound messages of a conversation newer than `afterId` (all kept ones when absent), oldest first. */
  async missed(conversationId: string, afterId: string | undefined): Promise<UnifiedMessage[]> {
    const items = await this.redis.lrange(this.outboxKey(conversationId), 0, -1);
    return items.map((s) => UnifiedMessage.parse(JSON.parse(s))).filter((m) => afterId === undefined || m.id > afterId);
  }

  async subscribe(channel: string, handler: (message: UnifiedMessage) => void): Promise<() => Promise<void>> {
    if (!this.subscriber) {
      this.subscriber = this.connect();
      this.subscriber.on('message', (topic: string, json: string) => {
        const channelId = topic.slice(`${this.prefix}:live:`.length);
        const set = this.handlers.get(channelId);
        if (!set) return;
        let message: UnifiedMessage;
        try {
          message = UnifiedMessage.parse(JSON.parse(json));
        } catch (err) {
          this.log.error({ err, topic }, 'dropping an unreadable live message');
          return;
        }
        for (const h of set) h(message);
      });
    }
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      await this.subscriber.subscribe(this.topic(channel));
    }
    set.add(handler);
    return async () => {
      set.delete(handler);
    };
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }
}
