/** App channel: the REST payload an app posts, and the pure decoder to a UnifiedMessage. */
import { z } from 'zod';
import { capRaw, Content, conversationIdFor, createMessage, TEXT_MAX_CHARS, type UnifiedMessage } from '../../gateway/message.js';

export const AppInbound = z
  .object({
    /** The app's own id for its user. */
    userId: z.string().min(1).max(200),
    userName: z.string().max(200).optional(),
    /** The app's id for this message; a retried POST with the same id is dropped as a duplicate. */
    messageId: z.string().min(1).max(200),
    text: z.string().min(1).max(TEXT_MAX_CHARS).optional(),
    content: Content.optional(),
    /** Unix ms; defaults to arrival time. */
    timestamp: z.number().int().nonnegative().optional(),
    metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .refine((b) => (b.text === undefined) !== (b.content === undefined), { message: 'send either text or content' });
export type AppInbound = z.infer<typeof AppInbound>;

export function decodeAppMessage(
  body: AppInbound,
  channel: { id: string; type: string },
  appId: string,
  now = Date.now(),
): UnifiedMessage {
  return createMessage({
    channel: channel.id,
    channelType: channel.type,
    direction: 'in',
    conversationId: appConversationId(channel.id, appId, body.userId),
    channelMessageId: `${appId}/${body.messageId}`,
    sender: { id: body.userId, role: 'customer', ...(body.userName !== undefined && { name: body.userName }) },
    timestamp: body.timestamp ?? now,
    receivedAt: now,
    content: body.content ?? { type: 'text', text: body.text! },
    metadata: { appId, ...body.metadata },
    raw: capRaw('app/json', body),
  });
}

export function appConversationId(channelId: string, appId: string, userId: string): string {
  return conversationIdFor(channelId, appId, userId);
}
