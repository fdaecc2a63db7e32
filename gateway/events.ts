/**
 * Gateway events: what downstream systems (the hand-off webhooks, metrics, tests) react to. Emitted in-process;
 * the hand-off layer subscribes and turns the ones a subscription asks for into signed webhook deliveries.
 */
import { EventEmitter } from 'node:events';
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

export class GatewayEvents {
  private readonly emitter = new EventEmitter();
  constructor() {
    this.emitter.setMaxListeners(100);
  }
  emit<T extends GatewayEventType>(type: T, payload: GatewayEventMap[T]): void {
    this.emitter.emit(type, payload);
  }
  on<T extends GatewayEventType>(type: T, listener: (payload: GatewayEventMap[T]) => void): () => void {
    this.emitter.on(type, listener);
    return () => this.emitter.off(type, listener);
  }
}
