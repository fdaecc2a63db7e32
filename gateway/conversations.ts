/**
 * The gateway owns conversation state. Every conversation is one Redis hash (state, reference, counters) plus a
 * capped history of its state changes. Transitions run in one Lua script, so two processes can never both move a
 * conversation (e.g. an agent picking up while the bot hands back). Keys of one conversation share a hash tag so the
 * script also works on Redis Cluster.
 *
 * A conversation is kept as long as its transcript (`handoff.transcript.retentionDays`): each customer message and
 * each state change renews the expiry of its hash and history, and the activity index forgets conversations older
 * than that. Redis runs with `noeviction` (BullMQ requires it), so anything kept forever would one day stop ingest.
 */
import { z } from 'zod';
import type { RedisClient } from '../adapters/types.js';
import { cappedPushLua } from './capped-list.js';
import { ConversationReference } from './conversation-reference.js';
import { livePublishLua, type LiveEntry } from './live.js';
import type { TranscriptEntry } from './transcript.js';

export const ConversationState = z.enum(['bot', 'handoff_pending', 'agent', 'closed']);
export type ConversationState = z.infer<typeof ConversationState>;

/**
 * Which states each state may move to. `closed → bot` happens when the customer writes again; `closed → agent` when
 * a human on the platform takes up an ended session (WeCom kf). Callers name the states they accept a move from.
 */
export const TRANSITIONS: Record<ConversationState, readonly ConversationState[]> = {
  bot: ['handoff_pending', 'agent', 'closed'],
  handoff_pending: ['agent', 'bot', 'closed'],
  agent: ['bot', 'closed'],
  closed: ['bot', 'handoff_pending', 'agent'],
};

export interface StateChange {
  from: ConversationState;
  to: ConversationState;
  /** Who moved it: "bot", "rule:<id>", "agent:<name>", "api:<key>", "timeout", "customer". */
  by: string;
  reason: string;
  at: number;
}

export interface Conversation {
  id: string;
  state: ConversationState;
  reference: ConversationReference;
  createdAt: number;
  updatedAt: number;
  /** Inbound customer messages so far. */
  turns: number;
}

/**
 * What receive() found: the message this one repeats, or the conversation as the message left it, with what the bot
 * saved for it after its last turn (saveBotState).
 */
export type Received =
  | { duplicateOf: string }
  | {
      duplicateOf?: undefined;
      state: ConversationState;
      turns: number;
      created: boolean;
      reopened: boolean;
      queuedOutbound: number;
      /** This message was received before: its job is running again after a failure (see handleInbound). */
      again: boolean;
      /** The inbound message the bot answered last (saveTurn). */
      answered: string | undefined;
      /** The hand-off that answer asked for, while it has not been made (JSON of a HandoffRequest). */
      handoffDue: string | undefined;
      botState: string | undefined;
    };

/** A bot turn: the inbound message it answered, the hand-off it asked for, what the bot saved (see saveTurn). */
export interface Turn {
  answered: string;
  botState?: string | undefined;
  handoffDue?: string | undefined;
}

export class TransitionError extends Error {
  constructor(
    readonly conversationId: string,
    readonly from: ConversationState | null,
    readonly to: ConversationState,
  ) {
    super(from === null ? `conversation ${conversationId} does not exist` : `cannot move conversation from ${from} to ${to}`);
    this.name = 'TransitionError';
  }
}

const HISTORY_MAX = 200;

// KEYS[1] conversation hash, KEYS[2] history list. ARGV: to, allowed-from (comma list), change JSON, now, history cap,
// retention in seconds. Returns the previous state, or an error-ish table {err} when not allowed. Reads and writes in
// one step.
const TRANSITION_LUA = `
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return {0, ''} end
local allowed = ',' .. ARGV[2] .. ','
if not string.find(allowed, ',' .. cur .. ',', 1, true) then return {0, cur} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updatedAt', ARGV[4])
local entry = string.gsub(ARGV[3], '"from":""', '"from":"' .. cur .. '"', 1)
redis.call('LPUSH', KEYS[2], entry)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return {1, cur}
`;

// An inbound message reaching its conversation, in one step. KEYS[1] conversation hash, KEYS[2] its queued outbound
// jobs (sorted set), KEYS[3] its transcript, KEYS[4] the message's dedupe mark. ARGV: reference JSON, now, message
// id, dedupe window in ms ('' when the platform gave the message no id), transcript line, transcript cap, transcript
// TTL, the conversation's retention in seconds. A platform retry of a message already received (its mark names
// another message) changes nothing and returns {'duplicate', that message's id}. Otherwise: creates the conversation
// in state "bot" when new, reopens a closed one, refreshes the reference, counts the turn, renews its expiry, appends
// the transcript line, and returns {state, turns, created, reopened, queued outbound jobs, again, the message the bot
// last answered, a hand-off of that answer still to be made, the bot's saved state} (the last is missing when the bot
// saved none). `again` is 1 when this message is the one received last — a retry of its own job after a failure — and
// then neither the turn nor the transcript line is counted twice. The hash is read with one HMGET and written with one
// HSET (state, creation time, reference, turn count together): a command inside a script costs Redis about as much as
// a small one from a client, and this script runs for every message.
const RECEIVE_LUA = `
if ARGV[4] ~= '' then
  local previous = redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4], 'NX', 'GET')
  if previous and previous ~= ARGV[3] then return {'duplicate', previous} end
end
local h = redis.call('HMGET', KEYS[1], 'state', 'in', 'turns', 'answered', 'handoffDue', 'bot')
local state = h[1]
local created, reopened, again = 0, 0, 0
if not state then created = 1; state = 'bot'
elseif state == 'closed' then reopened = 1; state = 'bot' end
if h[2] == ARGV[3] then again = 1 end
local turns = tonumber(h[3] or '0')
if again == 0 then
  turns = turns + 1
  ${cappedPushLua('KEYS[3]', 'ARGV[6]', 'ARGV[7]', 'ARGV[5]')}
end
if created == 1 then
  redis.call('HSET', KEYS[1], 'state', state, 'createdAt', ARGV[2], 'ref', ARGV[1], 'updatedAt', ARGV[2], 'in', ARGV[3], 'turns', turns)
else
  redis.call('HSET', KEYS[1], 'state', state, 'ref', ARGV[1], 'updatedAt', ARGV[2], 'in', ARGV[3], 'turns', turns)
end
redis.call('EXPIRE', KEYS[1], ARGV[8])
return {state, turns, created, reopened, redis.call('ZCARD', KEYS[2]), again, h[4] or '', h[5] or '', h[6]}
`;

// A delivered outbound message, recorded in one step: the mirror of RECEIVE_LUA. KEYS[1] its transcript, KEYS[2] the
// conversation hash, KEYS[3] the live outbox. ARGV: the message JSON, transcript cap, transcript TTL, then — '' for
// none — the outbox cap, its TTL, the topic and the payload framing of a live fan-out, then the fields of the turn the
// message answered (HSET pairs; none after a turn's first reply). Three commands from the client before (transcript
// line, fan-out, turn), for three parts of one conversation's slot that the same delivery writes.
const DELIVERED_LUA = `
${cappedPushLua('KEYS[1]', 'ARGV[2]', 'ARGV[3]', 'ARGV[1]')}
if ARGV[4] ~= '' then
  ${livePublishLua('KEYS[3]', 'ARGV[4]', 'ARGV[5]', 'ARGV[1]', 'ARGV[6]', 'ARGV[7]')}
end
if #ARGV > 7 then redis.call('HSET', KEYS[2], unpack(ARGV, 8)) end
return 1
`;

// A conversation past its retention, found in the activity index. KEYS[1] conversation hash, KEYS[2] its history.
// ARGV: the cutoff (ms). A conversation active since the cutoff (a customer wrote or its state changed after the index
// was read) is left alone and its last activity returned; otherwise both keys are deleted and 0 returned. The hash has
// usually expired by itself; one written before conversations expired never would.
const FORGET_LUA = `
local updated = tonumber(redis.call('HGET', KEYS[1], 'updatedAt') or '0')
if updated >= tonumber(ARGV[1]) then return updated end
redis.call('UNLINK', KEYS[1], KEYS[2])
return 0
`;

// Marks outbound jobs queued for a conversation. KEYS[1] conversation hash, KEYS[2] its outbound set. ARGV: the set's
// TTL in seconds, '1' to mark only while the conversation is open (else '0'), then score/member pairs. Returns 1 when
// marked; 0 (nothing written) when asked for an open conversation and it is closed or gone, so a message accepted for
// it cannot slip in after a close.
const MARK_QUEUED_LUA = `
if ARGV[2] == '1' then
  local state = redis.call('HGET', KEYS[1], 'state')
  if not state or state == 'closed' then return 0 end
end
redis.call('ZADD', KEYS[2], 'NX', unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
`;

/** How long a queued-outbound marker outlives a job that never reported back (crash, admin removal). */
const OUTBOUND_MARK_TTL_SECONDS = 3600;
/** How often a process drops conversations past their retention from the activity index (with a message's writes). */
const INDEX_TRIM_INTERVAL_MS = 60_000;
/** Index entries looked at per trim batch, and batches per trim: a backlog is worked off over several minutes. */
const INDEX_TRIM_BATCH = 500;
const INDEX_TRIM_BATCHES = 10;

export class ConversationStore {
  private indexTrimmedAt = 0;
  /** Activity-index entries of this event-loop turn not sent yet (score, member, …), and the promise of their ZADD. */
  private indexPending: (number | string)[] = [];
  private indexWritten: Promise<unknown> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    /** How long a conversation outlives its last customer message or state change. */
    private readonly retentionSeconds: number,
  ) {
    redis.defineCommand('gwConvTransition', { numberOfKeys: 2, lua: TRANSITION_LUA });
    redis.defineCommand('gwConvReceive', { numberOfKeys: 4, lua: RECEIVE_LUA });
    redis.defineCommand('gwConvDelivered', { numberOfKeys: 3, lua: DELIVERED_LUA });
    redis.defineCommand('gwConvForget', { numberOfKeys: 2, lua: FORGET_LUA });
    redis.defineCommand('gwConvMarkQueued', { numberOfKeys: 2, lua: MARK_QUEUED_LUA });
  }

  key(id: string): string {
    return `${this.prefix}:conv:{${id}}`;
  }
  private historyKey(id: string): string {
    return `${this.prefix}:conv:{${id}}:history`;
  }
  /** Outbound jobs of this conversation waiting in the queue (a first delivery attempt may not overtake them). */
  private outboundKey(id: string): string {
    return `${this.prefix}:conv:{${id}}:outq`;
  }
  /** All conversations by last activity, for listing (the REST API filters on it). */
  get indexKey(): string {
    return `${this.prefix}:conversations`;
  }

  /** A platform message id's mark in the conversation's slot: a retry of the same message finds it. */
  private dedupeKey(id: string, channelMessageId: string): string {
    return `${this.prefix}:conv:{${id}}:dd:${channelMessageId}`;
  }

  /**
   * Called for every inbound message: drop a platform retry of a message already received, create or reopen, refresh
   * the reference, count the turn and append the message to the transcript — one script, so a retry can never count
   * a turn or write a transcript line. `queuedOutbound` is how many of the conversation's outbound messages wait in
   * the queue (retries, agent replies): while there are any, new replies queue behind them instead of going out at
   * once. The conversation's expiry is renewed with the transcript's; about once a minute per process the call also
   * forgets the conversations past that retention (trimIndex, in the background).
   */
  async receive(
    reference: ConversationReference,
    message: { id: string; channelMessageId?: string | undefined },
    dedupeWindowMs: number,
    transcript: TranscriptEntry,
  ): Promise<Received> {
    const now = reference.updatedAt;
    const id = reference.conversationId;
    const dedupe = message.channelMessageId === undefined ? undefined : this.dedupeKey(id, message.channelMessageId);
    const [result] = await Promise.all([
      (this.redis as any).gwConvReceive(
        this.key(id),
        this.outboundKey(id),
        transcript.key,
        dedupe ?? this.dedupeKey(id, ''),
        JSON.stringify(reference),
        now,
        message.id,
        dedupe === undefined ? '' : dedupeWindowMs,
        transcript.json,
        transcript.max,
        transcript.ttlSeconds,
        this.retentionSeconds,
      ) as Promise<[string, number | string, number, number, number, number, string, string, string | null]>,
      this.touch(id, now),
    ]);
    if (now - this.indexTrimmedAt >= INDEX_TRIM_INTERVAL_MS) {
      this.indexTrimmedAt = now;
      // In the background: a backlog takes several round trips, which this message need not wait for. A trim that
      // fails (Redis down: the message's own writes failed too) is tried again with the next message.
      void this.trimIndex(now).catch(() => (this.indexTrimmedAt = 0));
    }
    if (result[0] === 'duplicate') return { duplicateOf: String(result[1]) };
    const [state, turns, created, reopened, queuedOutbound, again, answered, handoffDue, botState] = result;
    return {
      state: ConversationState.parse(state),
      turns: Number(turns),
      created: created === 1,
      reopened: reopened === 1,
      queuedOutbound,
      again: again === 1,
      answered: answered || undefined,
      handoffDue: handoffDue || undefined,
      botState: botState ?? undefined,
    };
  }

  /**
   * Records a bot turn in the conversation's hash: which inbound message it answered, the hand-off it asked for (until
   * handoffMade), and the bot's state (`BotDecision.state`), which the next receive() reads — no key of its own to
   * create, expire or read with a command of its own. The state lives as long as the conversation; the bot applies its
   * own, shorter expiry to what it saved. A job that runs again after a failure finds the message answered and does
   * not answer it twice.
   */
  async saveTurn(id: string, turn: Turn): Promise<void> {
    await this.redis.hset(this.key(id), ...turnFields(turn));
  }

  /**
   * What a delivered outbound message leaves behind, in one script: its transcript line, its live fan-out (outbox and
   * pub/sub) when its channel asked for one, and — with a turn's first reply — the turn (saveTurn). All are keys of the
   * conversation's slot, and the JSON crosses the wire once.
   */
  async delivered(id: string, transcript: TranscriptEntry, live?: LiveEntry, turn?: Turn): Promise<void> {
    // A channel without live fan-out still names a key of the slot, as Redis Cluster wants of every key a script gets.
    await (this.redis as any).gwConvDelivered(
      transcript.key,
      this.key(id),
      live?.outboxKey ?? transcript.key,
      transcript.json,
      transcript.max,
      transcript.ttlSeconds,
      ...(live ? [live.max, live.ttlSeconds, live.topic, live.framing] : ['', '', '', '']),
      ...(turn ? turnFields(turn) : []),
    );
  }

  /** The hand-off a bot turn asked for has been made (state changed, helpdesk told). */
  async handoffMade(id: string): Promise<void> {
    await this.redis.hdel(this.key(id), 'handoffDue');
  }

  /**
   * Records activity in the index; the entries of one event-loop turn go out as one ZADD. A queue job's
   * conversations reach receive() in the same turn, and the index is one key (one Cluster slot, so it cannot join the
   * conversations' own scripts): a job of 32 messages wrote it 32 times. The ZADD is issued in a microtask, before
   * ioredis sends the turn's auto-pipelined commands (it waits for setImmediate), so it shares their round trip.
   * Resolves when Redis has the entry; where a conversation comes twice in one turn, its later entry stands.
   */
  touch(id: string, at: number): Promise<unknown> {
    this.indexPending.push(at, id);
    this.indexWritten ??= Promise.resolve().then(() => {
      const entries = this.indexPending;
      this.indexPending = [];
      this.indexWritten = undefined;
      return this.redis.zadd(this.indexKey, ...entries);
    });
    return this.indexWritten;
  }

  /**
   * Forgets the conversations past the retention: their index entries, and their keys where those have not expired
   * by themselves (conversations written before conversations expired). The entries leave the index before the
   * conversations are checked, and a conversation found active meanwhile is put back: a customer writing at that
   * moment is never left out of the index. Index and conversation keys live in different Cluster slots, so each step
   * is a command of its own.
   */
  async trimIndex(now = Date.now()): Promise<void> {
    const cutoff = now - this.retentionSeconds * 1000;
    for (let batch = 0; batch < INDEX_TRIM_BATCHES; batch++) {
      const ids = await this.redis.zrangebyscore(this.indexKey, '-inf', `(${cutoff}`, 'LIMIT', 0, INDEX_TRIM_BATCH);
      if (ids.length === 0) return;
      await this.redis.zrem(this.indexKey, ...ids);
      const active = await Promise.all(ids.map((id) => (this.redis as any).gwConvForget(this.key(id), this.historyKey(id), cutoff) as Promise<number>));
      const back = ids.flatMap((id, i) => (active[i]! > 0 ? [active[i]!, id] : []));
      if (back.length > 0) await this.redis.zadd(this.indexKey, 'GT', ...back);
      if (ids.length < INDEX_TRIM_BATCH) return;
    }
  }

  /**
   * Records outbound jobs queued for the conversation, in queue order (see receive and outboundHead). With
   * `ifOpen`, only while the conversation is open (checked in the same script): false, and nothing recorded, when it
   * is closed or gone.
   */
  async markOutboundQueued(id: string, jobIds: readonly string[], opts: { ifOpen?: boolean } = {}): Promise<boolean> {
    if (jobIds.length === 0) return true;
    const key = this.outboundKey(id);
    // Scores keep the order of the call and of later calls (milliseconds × 1000 + position).
    const base = Date.now() * 1000;
    const members = jobIds.flatMap((jobId, i) => [String(base + i), jobId]);
    const ifOpen = opts.ifOpen ? '1' : '0';
    return (await (this.redis as any).gwConvMarkQueued(this.key(id), key, OUTBOUND_MARK_TTL_SECONDS, ifOpen, ...members)) === 1;
  }

  /** The oldest outbound job of the conversation still queued: the only one that may be delivered now. */
  async outboundHead(id: string): Promise<string | undefined> {
    const [head] = await this.redis.zrange(this.outboundKey(id), '0', '0');
    return head;
  }

  /** An outbound job finished (delivered or dead-lettered). */
  async markOutboundDone(id: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.outboundKey(id), jobId);
  }

  async get(id: string): Promise<Conversation | null> {
    const h = await this.redis.hgetall(this.key(id));
    if (!h.state || !h.ref) return null;
    return {
      id,
      state: ConversationState.parse(h.state),
      reference: ConversationReference.parse(JSON.parse(h.ref)),
      createdAt: Number(h.createdAt ?? 0),
      updatedAt: Number(h.updatedAt ?? 0),
      turns: Number(h.turns ?? 0),
    };
  }

  async state(id: string): Promise<ConversationState | null> {
    const s = await this.redis.hget(this.key(id), 'state');
    return s ? ConversationState.parse(s) : null;
  }

  async reference(id: string): Promise<ConversationReference | null> {
    const ref = await this.redis.hget(this.key(id), 'ref');
    return ref ? ConversationReference.parse(JSON.parse(ref)) : null;
  }

  /**
   * Atomically moves the conversation to `to` if its current state may go there (and is in `from` when given).
   * Returns the change, or throws TransitionError naming the current state.
   */
  async transition(
    id: string,
    to: ConversationState,
    by: string,
    reason: string,
    from: readonly ConversationState[] = ConversationState.options.filter((s) => TRANSITIONS[s].includes(to)),
  ): Promise<StateChange> {
    const allowed = from.filter((s) => TRANSITIONS[s].includes(to));
    const at = Date.now();
    const change = { from: '', to, by, reason, at };
    const [ok, cur] = (await (this.redis as any).gwConvTransition(
      this.key(id),
      this.historyKey(id),
      to,
      allowed.join(','),
      JSON.stringify(change),
      at,
      HISTORY_MAX,
      this.retentionSeconds,
    )) as [number, string];
    if (ok !== 1) throw new TransitionError(id, cur ? ConversationState.parse(cur) : null, to);
    return { ...change, from: ConversationState.parse(cur) };
  }

  async history(id: string): Promise<StateChange[]> {
    const items = await this.redis.lrange(this.historyKey(id), 0, -1);
    return items.map((s) => JSON.parse(s) as StateChange).reverse();
  }
}

/** A turn as fields of the conversation hash. */
function turnFields(turn: Turn): string[] {
  // handoffDue is always written: a hand-off left over from an earlier turn must not be taken for this one's.
  const fields = ['answered', turn.answered, 'handoffDue', turn.handoffDue ?? ''];
  if (turn.botState !== undefined) fields.push('bot', turn.botState);
  return fields;
}
