/**
 * The bot stage's contract with the pipeline. The pipeline hands the bot one inbound customer message and a snapshot
 * of its conversation (state already checked: the bot only ever sees conversations in state `bot`), and gets back
 * what to say and whether to hand off. Everything else — intents, knowledge base, rules, policy — lives behind it.
 * What the bot remembers between turns it hands back as an opaque `state`, which the gateway keeps with the
 * conversation (Bot Framework's conversation state): the bot keeps no per-conversation keys of its own.
 */
import type { ConversationReference } from '../gateway/conversation-reference.js';
import type { Content, DecisionTrace, UnifiedMessage } from '../gateway/message.js';

export interface BotInput {
  message: UnifiedMessage;
  conversation: {
    id: string;
    /** Inbound customer messages so far, this one included. */
    turns: number;
    reference: ConversationReference;
  };
  /**
   * What this bot kept about the conversation after its last turn (`BotDecision.state`), as the gateway stored it
   * with the conversation; undefined before the first one. The gateway reads it in the same Redis script that
   * records the message, so the bot needs no read of its own before it can start.
   */
  state?: string;
  /** What this bot's prepare() started for the message, when the pipeline called it. */
  prepared?: Promise<unknown>;
}

export type HandoffPriority = 'low' | 'normal' | 'high' | 'urgent';

export interface HandoffRequest {
  reason: string;
  team?: string;
  priority?: HandoffPriority;
}

export interface BotDecision {
  /** Zero or more replies, sent in order. */
  replies: Content[];
  /** Set when the conversation should go to a human. */
  handoff?: HandoffRequest;
  /** Why: travels with every reply and into the log and transcript. */
  trace: DecisionTrace;
  /**
   * What the bot keeps about the conversation for its next turn (opaque to the gateway; undefined keeps what is
   * stored). The gateway stores it with the conversation as soon as the first reply is delivered — in the round trip
   * of that reply's transcript line — or at once when nothing goes out right away, and always before the
   * conversation's next message. Not before the delivery: a job retried after a failed send would count the turn
   * twice.
   */
  state?: string;
}

export interface Bot {
  /**
   * Starts what decide() will need for this message and does not depend on the conversation (the intent model's
   * answer). The pipeline calls it for all the messages of a queue job in the same turn of the event loop, so work
   * that batches (model runs) can, and hands the result back as `BotInput.prepared` — or drops it when the
   * conversation is not the bot's.
   */
  prepare?(message: UnifiedMessage): Promise<unknown>;
  decide(input: BotInput): Promise<BotDecision>;
  /** Reported on /readyz (e.g. a model that failed to load). */
  health?(): { ok: boolean; detail?: string };
  close?(): Promise<void>;
}
