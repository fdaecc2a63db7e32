/**
 * Turns in-process gateway events into webhook events. `conversation.handoff_requested` is enriched with what an
 * agent needs to pick up: the customer, the channel, the transcript (both directions, with the bot's decision
 * traces), the intent and entities the bot detected, and the priority and team from the rule.
 */
import type { HandoffRequest } from '../../bot/types.js';
import type { ConversationStore } from '../conversations.js';
import type { GatewayEvents } from '../events.js';
import type { UnifiedMessage } from '../message.js';
import type { Transcripts } from '../transcript.js';
import type { WebhookDispatcher } from './dispatcher.js';

/** Drops the raw platform payload: webhooks carry the unified message only. */
export function publicMessage(message: UnifiedMessage): Omit<UnifiedMessage, 'raw'> {
  const { raw: _raw, ...rest } = message;
  return rest;
}

export interface EventSourceDeps {
  events: GatewayEvents;
  dispatcher: WebhookDispatcher;
  conversations: ConversationStore;
  transcripts: Transcripts;
  transcriptMessages: number;
}

export function forwardGatewayEvents(deps: EventSourceDeps): () => void {
  const { events, dispatcher, conversations, transcripts } = deps;
  const offs = [
    events.on('conversation.handoff_requested', (e) =>
      dispatcher.publish('conversation.handoff_requested', e.conversationId, async () => {
        const [conversation, transcript] = await Promise.all([
          conversations.get(e.conversationId),
          deps.transcriptMessages > 0 ? transcripts.list(e.conversationId, deps.transcriptMessages) : Promise.resolve([]),
        ]);
        // The bot may attach intent/entities to its request; otherwise the latest decision trace in the transcript has the intent.
        const request = e.request as HandoffRequest & { intent?: unknown; entities?: unknown };
        const traced = [e.message, ...transcript].reverse().find((m) => m.trace?.intent)?.trace?.intent;
        const reference = conversation?.reference;
        return {
          conversation: conversation && {
            id: conversation.id,
            state: conversation.state,
            createdAt: conversation.createdAt,
            turns: conversation.turns,
          },
          customer: reference && { id: reference.peerId, ...(reference.peerName !== undefined && { name: reference.peerName }) },
          channel: reference ? { id: reference.channel, type: reference.channelType } : { id: e.message.channel, type: e.message.channelType },
          reason: e.request.reason,
          priority: e.request.priority ?? 'normal',
          team: e.request.team ?? null,
          intent: request.intent ?? traced ?? null,
          entities: request.entities ?? null,
          message: publicMessage(e.message),
          transcript: transcript.map(publicMessage),
        };
      }),
    ),
    events.on('conversation.state_changed', (e) =>
      Promise.all([
        dispatcher.publish('conversation.state_changed', e.conversationId, () => ({ change: e.change })),
        e.change.to === 'closed' && dispatcher.publish('conversation.closed', e.conversationId, () => ({ change: e.change })),
      ]),
    ),
    events.on('conversation.pickup_timeout', (e) =>
      dispatcher.publish('conversation.pickup_timeout', e.conversationId, () => ({ waitedSeconds: e.waitedSeconds, action: e.action })),
    ),
    events.on('message.created', (e) => dispatcher.publish('message.created', e.conversationId, () => ({ message: publicMessage(e.message) }))),
    events.on('message.delivered', (e) =>
      dispatcher.publish('message.delivered', e.conversationId, () => ({
        message: publicMessage(e.message),
        ...(e.channelMessageId !== undefined && { channelMessageId: e.channelMessageId }),
      })),
    ),
    events.on('message.delivery_failed', (e) =>
      e.final
        ? dispatcher.publish('message.delivery_failed', e.conversationId, () => ({
            message: publicMessage(e.message),
            error: e.error,
            ...(e.code !== undefined && { code: e.code }),
            ...(e.reason !== undefined && { reason: e.reason }),
          }))
        : undefined,
    ),
  ];
  return () => offs.forEach((off) => off());
}
