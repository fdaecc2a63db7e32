/**
 * The one place outbound messages pass through before and after any adapter sends them — redaction, blocking,
 * rate limits, transcripts — so no adapter implements its own. Hooks run in order; `before` may rewrite the
 * message, block it (the delivery then fails without retry, visibly) or ask to wait (rate limits).
 */
import type { SendResult } from '../adapters/types.js';
import type { ConversationReference } from './conversation-reference.js';
import type { UnifiedMessage } from './message.js';

/** Go on (possibly rewritten), refuse for good, or wait: the delivery is retried after `retryAfterMs`. */
export type BeforeSendResult = { message: UnifiedMessage } | { blocked: string } | { retryAfterMs: number; reason: string };

export interface OutboundHook {
  name: string;
  beforeSend?(message: UnifiedMessage, reference: ConversationReference): Promise<BeforeSendResult> | BeforeSendResult;
  afterSend?(message: UnifiedMessage, reference: ConversationReference, result: SendResult): Promise<void> | void;
}

export class OutboundHooks {
  private readonly hooks: OutboundHook[] = [];

  use(hook: OutboundHook): this {
    this.hooks.push(hook);
    return this;
  }

  async before(message: UnifiedMessage, reference: ConversationReference): Promise<BeforeSendResult> {
    let current = message;
    for (const hook of this.hooks) {
      if (!hook.beforeSend) continue;
      const result = await hook.beforeSend(current, reference);
      if ('blocked' in result) return { blocked: `${hook.name}: ${result.blocked}` };
      if ('retryAfterMs' in result) return { retryAfterMs: result.retryAfterMs, reason: `${hook.name}: ${result.reason}` };
      current = result.message;
    }
    return { message: current };
  }

  async after(message: UnifiedMessage, reference: ConversationReference, result: SendResult): Promise<void> {
    for (const hook of this.hooks) await hook.afterSend?.(message, reference, result);
  }
}
