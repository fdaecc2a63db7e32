/**
 * The bot stage's contract with the pipeline. The pipeline hands the bot one inbound customer message and a snapshot
 * of its conversation (state already checked: the bot only ever sees conversations in state `bot`), and gets back
 * what to say and whether to hand off. Everything else — intents, knowledge base, rules, policy — lives behind it.
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
   * The bot's own writes for this turn (its conversation context). The pipeline runs them as soon as the first reply
   * is delivered — together with that reply's transcript line, in one Redis round trip — or at once when nothing goes
   * out right away, and always before the conversation's next message.
   */
  commit?: () => Promise<void>;
}

export interface Bot {
  /**
   * Starts what decide() will need for this message (reads of the conversation, the intent model's answer). The
   * pipeline calls it together with its own reads and writes for the message (conversation state, transcript), so
   * they share one Redis round trip — and for all the messages of a queue job at once, so work that batches (model
   * runs) can — and hands the result back as `BotInput.prepared`, or drops it when the conversation is not the bot's.
   */
  prepare?(message: UnifiedMessage): Promise<unknown>;
  decide(input: BotInput): Promise<BotDecision>;
  /** Reported on /readyz (e.g. a model that failed to load). */
  health?(): { ok: boolean; detail?: string };
  close?(): Promise<void>;
}
