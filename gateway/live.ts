/**
 * Live delivery to clients connected over WebSocket (web widget, app channel), whichever process holds the socket.
 *
 * An outbound message is appended to its conversation's bounded "outbox" (so a client that reconnects can ask for
 * everything after the last id it saw — ids are ULIDs and sort by time) and published on Redis pub/sub, by one script;
 * every ingress process subscribes once per channel and hands the message to the adapter owning the channel.
 *
 * Every ingress process receives every reply of the channel, but holds the sockets of only some conversations (or of
 * none: an app answered by callback). So the published payload names its conversation in front of the message —
 * `<length of the id>:<conversation id><message JSON>` — and a process reads and validates the message only when a
 * subscriber holds that conversation; the rest it drops after reading the id. An ingress process older than this
 * format cannot read it (it logs the message as unreadable; the client still gets it from the outbox when it
 * reconnects), so in a rolling upgrade the ingress processes go first: this one still reads bare JSON.
 *
 * Pub/sub keeps no backlog: a reply published while the subscriber connection is re-connecting reaches nobody live,
 * and a socket that stayed open would never ask the outbox for it. So the hub remembers, for each conversation a
 * client asked about (missed()), the newest reply it handed on; when the subscriber is back it reads those
 * conversations' outboxes from there and hands on what was missed (the adapters drop a reply a socket already had).
 */
import type { RedisClient } from '../adapters/types.js';
import type { Logger } from './logger.js';
import { cappedPushLua } from './capped-list.js';
import { UnifiedMessage } from './message.js';

/**
 * The script steps that append a reply to its conversation's outbox and publish it to the channel's subscribers (Lua
 * expressions in: the outbox key, its cap and TTL, the message JSON, the topic, the payload's framing — what
 * livePayload() puts in front of the JSON), for this hub's script and for one that records a delivery as a whole
 * (ConversationStore.delivered). The JSON crosses the wire once.
 */
export function livePublishLua(key: string, max: string, ttlSeconds: string, json: string, topic: string, framing: string): string {
  return `${cappedPushLua(key, max, ttlSeconds, json)}
redis.call('PUBLISH', ${topic}, ${framing} .. ${json})`;
}

// KEYS[1] the outbox. ARGV: the outbox cap, its TTL, the message JSON, the channel's topic, the payload's framing.
const PUBLISH_LUA = `${livePublishLua('KEYS[1]', 'ARGV[1]', 'ARGV[2]', 'ARGV[3]', 'ARGV[4]', 'ARGV[5]')}
return n
`;

/** Where a message's live fan-out goes, for a script that publishes it as one of its steps (livePublishLua). */
export interface LiveEntry {
  outboxKey: string;
  max: number;
  ttlSeconds: number;
  topic: string;
  framing: string;
}

/** Below this many remembered conversations they are never swept for ones no longer held. */
const SWEEP_FLOOR = 1000;

/** A channel's subscriber: what it does with a message, and which conversations it holds live connections for. */
interface Subscription {
  deliver: (message: UnifiedMessage) => void;
  holds?: (conversationId: string) => boolean;
}

export class LiveHub {
  private subscriber: RedisClient | undefined;
  private readonly handlers = new Map<string, Set<Subscription>>();
  /** Conversation → id of the newest reply handed on, for the conversations clients of this process asked about. */
  private readonly lastHandedOn = new Map<string, string>();
  private sweepAt = SWEEP_FLOOR;
  /** Live messages that arrive while catching up after a reconnect wait here, so older missed ones go first. */
  private heldWhileCatchingUp: Array<[topic: string, payload: string]> | undefined;
  private catchUpAgain = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly connect: () => RedisClient,
    private readonly prefix: string,
    private readonly retention: number,
    private readonly retentionSeconds: number,
    private readonly log: Logger,
  ) {
    redis.defineCommand('gwLivePublish', { numberOfKeys: 1, lua: PUBLISH_LUA });
  }

  private outboxKey(conversationId: string): string {
    return `${this.prefix}:outbox:{${conversationId}}`;
  }
  private topic(channel: string): string {
    return `${this.prefix}:live:${channel}`;
  }

  async publish(message: UnifiedMessage): Promise<void> {
    const { outboxKey, max, ttlSeconds, topic, framing } = this.entry(message);
    await (this.redis as unknown as { gwLivePublish(...args: Array<string | number>): Promise<number> }).gwLivePublish(
      outboxKey,
      max,
      ttlSeconds,
      JSON.stringify(message),
      topic,
      framing,
    );
  }

  /** Where publish() puts a message, for a script that does it as one of its steps. */
  entry(message: Pick<UnifiedMessage, 'conversationId' | 'channel'>): LiveEntry {
    return {
      outboxKey: this.outboxKey(message.conversationId),
      max: this.retention,
      ttlSeconds: this.retentionSeconds,
      topic: this.topic(message.channel),
      framing: livePayload(message.conversationId, ''),
    };
  }

  /**
   * Outbound messages of a conversation newer than `afterId` (all kept ones when absent), oldest first. An entry that
   * no longer reads (written by another version, damaged) is skipped with a log line rather than failing the replay.
   */
  async missed(conversationId: string, afterId: string | undefined): Promise<UnifiedMessage[]> {
    const items = await this.redis.lrange(this.outboxKey(conversationId), 0, -1);
    const messages: UnifiedMessage[] = [];
    for (const item of items) {
      const message = this.readOutboxEntry(conversationId, item);
      if (message && (afterId === undefined || message.id > afterId)) messages.push(message);
    }
    this.handedOn(conversationId, messages.at(-1)?.id ?? afterId ?? '');
    if (this.lastHandedOn.size >= this.sweepAt) this.sweep();
    return messages;
  }

  private handedOn(conversationId: string, id: string): void {
    if ((this.lastHandedOn.get(conversationId) ?? '') <= id) this.lastHandedOn.set(conversationId, id);
  }

  /** The subscriptions holding a conversation's sockets (those that deliver everything hold none in particular). */
  private holders(conversationId: string): Subscription[] {
    const holders: Subscription[] = [];
    for (const set of this.handlers.values()) for (const s of set) if (s.holds?.(conversationId)) holders.push(s);
    return holders;
  }

  /** Forgets the conversations no subscription holds any more. */
  private sweep(): void {
    for (const conversationId of this.lastHandedOn.keys()) {
      if (this.holders(conversationId).length === 0) this.lastHandedOn.delete(conversationId);
    }
    this.sweepAt = Math.max(SWEEP_FLOOR, this.lastHandedOn.size * 2);
  }

  /** After the subscriber re-connected: hands on what the held conversations' outboxes got during the gap. */
  private async catchUp(): Promise<void> {
    if (this.heldWhileCatchingUp) return void (this.catchUpAgain = true);
    const subscriber = this.subscriber;
    if (!subscriber) return;
    this.heldWhileCatchingUp = [];
    const caughtUp = new Set<string>();
    try {
      // Subscribed again before the outboxes are read: a reply is then either in what is read or arrives live.
      await subscriber.subscribe(...[...this.handlers.keys()].map((channel) => this.topic(channel)));
      this.sweep();
      for (const [conversationId, lastId] of [...this.lastHandedOn]) {
        const holders = this.holders(conversationId);
        for (const message of await this.missed(conversationId, lastId || undefined)) {
          caughtUp.add(message.id);
          for (const s of holders) s.deliver(message);
        }
      }
      if (caughtUp.size) this.log.info({ replies: caughtUp.size }, 'live subscriber back: replies published meanwhile handed on');
    } catch (err) {
      this.log.error({ err }, 'live subscriber back, but the replies published meanwhile could not be read; clients get them when they reconnect');
    } finally {
      const held = this.heldWhileCatchingUp;
      this.heldWhileCatchingUp = undefined;
      // Published after the re-subscribe but before its outbox was read: already handed on above.
      for (const [topic, payload] of held) this.receive(topic, payload, caughtUp);
    }
    if (this.catchUpAgain) {
      this.catchUpAgain = false;
      await this.catchUp();
    }
  }

  private readOutboxEntry(conversationId: string, item: string): UnifiedMessage | undefined {
    try {
      return UnifiedMessage.parse(JSON.parse(item));
    } catch (err) {
      this.log.error({ err, conversationId, entry: item.slice(0, 200) }, 'skipping an unreadable outbox entry');
      return undefined;
    }
  }

  /**
   * Hands `deliver` the channel's outbound messages published by any process; with `holds`, only those of the
   * conversations it holds (the others are not even parsed).
   */
  async subscribe(
    channel: string,
    deliver: (message: UnifiedMessage) => void,
    holds?: (conversationId: string) => boolean,
  ): Promise<() => Promise<void>> {
    if (!this.subscriber) {
      this.subscriber = this.connect();
      this.subscriber.on('message', (topic: string, payload: string) => this.receive(topic, payload));
      let connectedBefore = false;
      this.subscriber.on('ready', () => {
        if (connectedBefore) void this.catchUp();
        connectedBefore = true;
      });
    }
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      await this.subscriber.subscribe(this.topic(channel));
    }
    const subscription: Subscription = { deliver, ...(holds && { holds }) };
    set.add(subscription);
    return async () => {
      set.delete(subscription);
    };
  }

  private receive(topic: string, payload: string, alreadyHandedOn?: ReadonlySet<string>): void {
    if (this.heldWhileCatchingUp) return void this.heldWhileCatchingUp.push([topic, payload]);
    const set = this.handlers.get(topic.slice(`${this.prefix}:live:`.length));
    if (!set) return;
    const framed = readLivePayload(payload);
    if (!framed) return void this.log.error({ topic }, 'dropping a live message whose conversation id cannot be read');
    const { conversationId } = framed;
    const wanted = [...set].filter((s) => s.holds === undefined || conversationId === undefined || s.holds(conversationId));
    if (wanted.length === 0) return;
    let message: UnifiedMessage;
    try {
      message = UnifiedMessage.parse(JSON.parse(framed.json));
    } catch (err) {
      this.log.error({ err, topic }, 'dropping an unreadable live message');
      return;
    }
    if (alreadyHandedOn?.has(message.id)) return;
    if (this.lastHandedOn.has(message.conversationId)) this.handedOn(message.conversationId, message.id);
    for (const s of wanted) s.deliver(message);
  }

  async close(): Promise<void> {
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }
}

/** `<length of the id>:<conversation id><message JSON>`: the id can be read without parsing the message. */
export function livePayload(conversationId: string, json: string): string {
  return `${conversationId.length}:${conversationId}${json}`;
}

/**
 * The conversation id and message JSON of a published payload. A bare JSON message (as published before the id was
 * put in front, by a process not yet upgraded) has no id and goes to every subscriber. Undefined when the framing is
 * broken.
 */
export function readLivePayload(payload: string): { conversationId?: string; json: string } | undefined {
  if (payload.startsWith('{')) return { json: payload };
  const colon = payload.indexOf(':');
  if (colon < 1 || colon > 6 || !/^\d+$/.test(payload.slice(0, colon))) return undefined;
  const length = Number(payload.slice(0, colon));
  if (colon + 1 + length > payload.length) return undefined;
  return { conversationId: payload.slice(colon + 1, colon + 1 + length), json: payload.slice(colon + 1 + length) };
}
