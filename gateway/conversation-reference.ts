/**
 * A conversation reference holds everything needed to reach a customer again later — by the bot now, by an agent
 * through the REST API an hour later, or by a timeout job. It is refreshed on every inbound message, so it always
 * reflects the latest reply window and platform context (Bot Framework's `continueConversation` pattern).
 */
import { z } from 'zod';

export const ConversationReference = z.object({
  conversationId: z.string(),
  /** Adapter instance id and type. */
  channel: z.string(),
  channelType: z.string(),
  /** The customer's id on the channel (openid, external_userid, e-mail address, visitor id). */
  peerId: z.string(),
  peerName: z.string().optional(),
  /** Group/room/kf-account the conversation lives in, when the platform has one. */
  threadId: z.string().optional(),
  /** Until when the platform allows replies (ms since epoch): WeChat's 48 h window, a DingTalk sessionWebhook expiry. */
  replyWindowUntil: z.number().int().optional(),
  /** Platform context needed to reply: WeCom AgentID, e-mail Message-ID/References, sessionWebhook URL... */
  context: z.record(z.string(), z.string()).default({}),
  updatedAt: z.number().int(),
});
export type ConversationReference = z.infer<typeof ConversationReference>;
