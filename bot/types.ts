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
}

export interface Bot {
  decide(input: BotInput): Promise<BotDecision>;
  /** Reported on /readyz (e.g. a model that failed to load). */
  health?(): { ok: boolean; detail?: string };
  close?(): Promise<void>;
}
