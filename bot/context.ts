/**
 * Conversation context: slots (captured entities), customer attributes and tags set by rules, turn and
 * unanswered-turn counters, the entity the bot is waiting for. It travels as the bot's state (`BotDecision.state`),
 * which the gateway stores with the conversation and hands back with its next message (`BotInput.state`); the
 * messages themselves are in the gateway's transcript.
 *
 * The context is forgotten after a quiet period (`bot.context.ttlSeconds`): the saved form carries when it was saved,
 * and an older one reads as empty. The gateway keeps the conversation for longer (its transcript's retention), so
 * the expiry cannot be the key's.
 */
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

/** The saved form: the context and when it was saved (ms since the epoch). */
interface SavedContext extends ConversationContext {
  savedAt: number;
}

export function emptyContext(): ConversationContext {
  return { slots: {}, attributes: {}, tags: [], turns: 0, unanswered: 0 };
}

export function encodeContext(context: ConversationContext, now = Date.now()): string {
  return JSON.stringify({ ...context, savedAt: now } satisfies SavedContext);
}

/** The context a saved state holds; empty when there is none, it is older than `ttlSeconds` or it does not parse. */
export function decodeContext(state: string | undefined, ttlSeconds: number, now = Date.now()): ConversationContext {
  if (!state) return emptyContext();
  let saved: Partial<SavedContext>;
  try {
    saved = JSON.parse(state) as Partial<SavedContext>;
  } catch {
    return emptyContext();
  }
  if (typeof saved !== 'object' || saved === null || !(typeof saved.savedAt === 'number' && now - saved.savedAt <= ttlSeconds * 1000)) {
    return emptyContext();
  }
  const { savedAt: _savedAt, ...context } = saved;
  return { ...emptyContext(), ...context };
}
