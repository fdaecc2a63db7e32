/**
 * The web widget's WebSocket protocol (JSON text frames) and the pure decoder from a client frame to a
 * UnifiedMessage.
 *
 *   client → gateway   {type:"message", clientMessageId, text} | {type:"message", clientMessageId, content}
 *                      {type:"ping"}
 *   gateway → client   {type:"session", visitorId, token, expiresAt}   first frame after connecting
 *                      {type:"ack", clientMessageId, id, duplicate}     after the message is durably queued
 *                      {type:"message", message}                        a reply (also the missed ones on reconnect)
 *                      {type:"pong"} | {type:"error", error, message}
 *   error "rate_limited" (with the clientMessageId when readable): the socket sends faster than its budget
 *   (options.rateLimit) or has too many messages being queued; the message was not queued, send it again later.
 *   A socket that keeps sending over its budget is closed with 1008.
 *   A socket opened with an expired or forged token gets {type:"error", error:"expired_token"|"invalid_token"} and
 *   is closed with code 4401: connect again without a token (a new visitor).
 */
import { z } from 'zod';
import { capRaw, Content, conversationIdFor, createMessage, type UnifiedMessage } from '../../gateway/message.js';

export const ClientFrame = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('message'),
      /** Client-generated id; a resend after a lost ack is dropped as a duplicate. */
      clientMessageId: z.string().min(1).max(64),
      text: z.string().min(1).max(4000).optional(),
      content: Content.optional(),
      name: z.string().max(100).optional(),
    })
    .refine((f) => (f.text === undefined) !== (f.content === undefined), { message: 'send either text or content' }),
  z.object({ type: z.literal('ping') }),
]);
export type ClientFrame = z.infer<typeof ClientFrame>;
export type ClientMessageFrame = Extract<ClientFrame, { type: 'message' }>;

/** Outbound view of a message for the browser: no raw payload, no trace internals. */
export function toClientMessage(message: UnifiedMessage) {
  return {
    id: message.id,
    conversationId: message.conversationId,
    direction: message.direction,
    sender: message.sender,
    content: message.content,
    timestamp: message.timestamp,
    ...(message.replyTo !== undefined && { replyTo: message.replyTo }),
  };
}

export function decodeClientMessage(
  frame: ClientMessageFrame,
  channel: { id: string; type: string },
  visitorId: string,
  now = Date.now(),
): UnifiedMessage {
  return createMessage({
    channel: channel.id,
    channelType: channel.type,
    direction: 'in',
    conversationId: conversationIdFor(channel.id, visitorId),
    channelMessageId: `${visitorId}/${frame.clientMessageId}`,
    sender: { id: visitorId, role: 'customer', ...(frame.name !== undefined && { name: frame.name }) },
    timestamp: now,
    receivedAt: now,
    content: frame.content ?? { type: 'text', text: frame.text! },
    raw: capRaw('web/ws', frame),
  });
}
