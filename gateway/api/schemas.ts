/**
 * The REST API's request and response schemas. Handlers validate with these and the OpenAPI document is generated
 * from the very same objects (openapi.ts), so the docs cannot drift from what the server accepts.
 */
import { z } from 'zod';
import { ConversationState } from '../conversations.js';
import { TEXT_MAX_CHARS, UnifiedMessage } from '../message.js';
import { EndpointId, WebhookEndpoint, WebhookEventType, WebhookSecret } from '../webhooks/config.js';

export const ErrorBody = z
  .object({
    error: z.string().describe('Stable machine-readable code, e.g. invalid_api_key, insufficient_scope, rate_limited'),
    message: z.string().describe('What went wrong, for people'),
  })
  .meta({ id: 'Error' });

export const ConversationIdParams = z.object({ id: z.string().min(1).describe('Conversation id, e.g. "web.Xk3..."') });
export const MessageParams = ConversationIdParams.extend({ messageId: z.string().length(26).describe('Message id (ULID)') });

export const AgentContent = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('text'), text: z.string().min(1).max(TEXT_MAX_CHARS) }),
    z.object({ type: z.literal('image'), url: z.url(), caption: z.string().max(2000).optional(), mimeType: z.string().optional() }),
    z.object({ type: z.literal('file'), url: z.url(), name: z.string().max(255).optional(), mimeType: z.string().optional() }),
  ])
  .meta({ id: 'AgentContent' });

export const AgentReplyBody = z
  .object({
    agent: z.object({
      name: z.string().min(1).max(120).describe('Shown to the customer where the channel can, and kept in the transcript'),
      id: z.string().min(1).max(120).optional().describe("The helpdesk's agent id"),
    }),
    content: AgentContent,
  })
  .meta({ id: 'AgentReply' });

export const MessageStatusBody = z
  .object({
    id: z.string(),
    conversationId: z.string(),
    status: z.enum(['queued', 'delivered', 'failed']),
    at: z.number().int().describe('When the status was reached (ms since epoch)'),
    channelMessageId: z.string().optional(),
    error: z.string().optional(),
    code: z.union([z.string(), z.number()]).optional(),
  })
  .meta({ id: 'MessageStatus' });

export const AgentReplyAccepted = MessageStatusBody.extend({
  statusUrl: z.string().describe('GET this for the delivery status (also sent as message.delivered / message.delivery_failed)'),
}).meta({ id: 'AgentReplyAccepted' });

export const HandoffBody = z
  .object({
    reason: z.string().min(1).max(500).default('requested over the API'),
    team: z.string().max(120).optional(),
    priority: z.enum(['low', 'normal', 'high', 'urgent']).default('normal'),
  })
  .meta({ id: 'HandoffRequest' });

export const ReasonBody = z.object({ reason: z.string().min(1).max(500).optional() }).meta({ id: 'Reason' });

export const StateChangeBody = z
  .object({ from: ConversationState, to: ConversationState, by: z.string(), reason: z.string(), at: z.number().int() })
  .meta({ id: 'StateChange' });

export const ConversationBody = z
  .object({
    id: z.string(),
    state: ConversationState,
    channel: z.object({ id: z.string(), type: z.string() }),
    customer: z.object({ id: z.string(), name: z.string().optional() }),
    createdAt: z.number().int(),
    updatedAt: z.number().int(),
    turns: z.number().int().describe('Customer messages so far'),
    handoff: z
      .object({
        reason: z.string().optional(),
        team: z.string().optional(),
        priority: z.enum(['low', 'normal', 'high', 'urgent']).optional(),
        requestedAt: z.number().int().optional(),
        agent: z.string().optional(),
      })
      .describe('Details of the latest hand-off, if any'),
  })
  .meta({ id: 'Conversation' });

export const ConversationDetail = ConversationBody.extend({ history: z.array(StateChangeBody) }).meta({ id: 'ConversationDetail' });

export const TransitionResult = z.object({ conversation: ConversationBody, change: StateChangeBody }).meta({ id: 'TransitionResult' });

export const ListConversationsQuery = z.object({
  state: ConversationState.optional(),
  channel: z.string().optional().describe('Channel id from the config'),
  team: z.string().optional().describe('Team of the latest hand-off'),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().optional().describe('nextCursor of the previous page'),
});

export const ConversationPage = z
  .object({ items: z.array(ConversationBody), nextCursor: z.string().nullable().describe('Absent/null on the last page') })
  .meta({ id: 'ConversationPage' });

export const TranscriptQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(200) });
export const TranscriptBody = z
  .object({ items: z.array(UnifiedMessage.omit({ raw: true })).describe('Oldest first, both directions, bot replies with their decision trace') })
  .meta({ id: 'Transcript' });

// ── Webhook administration ──────────────────────────────────────────────────────────────────────────────────────
export const EndpointBody = WebhookEndpoint.extend({
  source: z.enum(['config', 'api']),
  disabledReason: z.string().optional(),
})
  .omit({ secret: true })
  .meta({ id: 'WebhookEndpoint' });
export const EndpointList = z.object({ items: z.array(EndpointBody) }).meta({ id: 'WebhookEndpointList' });
export const EndpointCreate = z
  .object({
    id: EndpointId,
    url: z.url(),
    secret: WebhookSecret,
    events: z.array(z.union([WebhookEventType, z.literal('*')])).min(1).default(['*']),
    description: z.string().max(500).optional(),
  })
  .meta({ id: 'WebhookEndpointCreate' });
export const EndpointParams = z.object({ endpointId: EndpointId });

export const DeliveryAttemptBody = z.object({
  attempt: z.number().int(),
  at: z.number().int(),
  latencyMs: z.number(),
  status: z.number().int().optional().describe('HTTP status; absent for network errors and timeouts'),
  error: z.string().optional(),
  nextAttemptAt: z.number().int().optional(),
});
export const DeliveryBody = z
  .object({
    id: z.string(),
    eventId: z.string().describe('The webhook-id header'),
    endpointId: z.string(),
    conversationId: z.string(),
    type: WebhookEventType,
    status: z.enum(['pending', 'retrying', 'delivered', 'dead']),
    createdAt: z.number().int(),
    attempts: z.array(DeliveryAttemptBody),
    deliveredAt: z.number().int().optional(),
    deadAt: z.number().int().optional(),
    deadReason: z.string().optional(),
    replays: z.number().int(),
  })
  .meta({ id: 'WebhookDelivery' });
export const DeliveryList = z.object({ items: z.array(DeliveryBody) }).meta({ id: 'WebhookDeliveryList' });
export const DeliveryParams = z.object({ deliveryId: z.string().min(1) });
export const DeliveryListQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) });
