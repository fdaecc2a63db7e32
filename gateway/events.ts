/**
 * Gateway events: what downstream systems (the hand-off webhooks, metrics, tests) react to. Emitted in-process;
 * the hand-off layer subscribes and turns the ones a subscription asks for into signed webhook deliveries.
 */
import type { UnifiedMessage } from './message.js';
import type { StateChange } from './conversations.js';
import type { HandoffRequest } from '../bot/types.js';
import type { DeliveryFailureReason } from '../adapters/types.js';

export interface GatewayEventMap {
  /** The bot or a rule asked for a human. */
  'conversation.handoff_requested': { conversationId: string; request: HandoffRequest; message: UnifiedMessage };
  'conversation.state_changed': { conversationId: string; change: StateChange };
  /** A customer message that did not go to the bot (conversation with or waiting for an agent). */
  'message.created': { conversationId: string; message: UnifiedMessage };
  /** A customer message containing words from the bot's sensitive-word list (flagged; the bot still decides). */
  'message.sensitive': { conversationId: string; message: UnifiedMessage; words: string[] };
  'message.delivered': { conversationId: string; message: UnifiedMessage; channelMessageId?: string };
  'message.delivery_failed': {
    conversationId: string;
    message: UnifiedMessage;
    error: string;
    code?: string | number;
    /** Platform-neutral cause when the adapter knows it (reply window expired, recipient unreachable...). */
    reason?: DeliveryFailureReason;
    final: boolean;
  };
  /** No agent picked up a hand-off in time; the customer got the configured message. */
  'conversation.pickup_timeout': { conversationId: string; waitedSeconds: number; action: 'wait' | 'bot' | 'close' };
  /** An inbound message failed for good in the inbound stage (the bot threw and the job's attempts ran out). */
  'message.processing_failed': { conversationId: string; message: UnifiedMessage; error: string };
}
export type GatewayEventType = keyof GatewayEventMap;

/** A listener may return a promise: emitAndWait() waits for it, emit() does not (and ignores its failure). */
type Listener<T extends GatewayEventType> = (payload: GatewayEventMap[T]) => unknown;

export class GatewayEvents {
  private readonly listeners = new Map<GatewayEventType, Set<Listener<GatewayEventType>>>();

  /** Tells the listeners; what they do asynchronously is theirs to report (the webhook dispatcher logs failures). */
  emit<T extends GatewayEventType>(type: T, payload: GatewayEventMap[T]): void {
    for (const listener of [...(this.listeners.get(type) ?? [])]) {
      const result = listener(payload);
      if (result instanceof Promise) result.catch(() => undefined);
    }
  }

  /**
   * Tells the listeners and resolves once what they started is done — for an event that must not be lost, e.g. a
   * customer message for the helpdesk: the webhook dispatcher resolves once the event is stored in Redis. Rejects
   * with the first failure, so the caller (a queue job) can fail and be tried again.
   */
  async emitAndWait<T extends GatewayEventType>(type: T, payload: GatewayEventMap[T]): Promise<void> {
    await Promise.all([...(this.listeners.get(type) ?? [])].map(async (listener) => listener(payload)));
  }

  on<T extends GatewayEventType>(type: T, listener: Listener<T>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as Listener<GatewayEventType>);
    return () => set.delete(listener as Listener<GatewayEventType>);
  }
}
