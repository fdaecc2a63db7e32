/**
 * DingTalk robot callback payload → UnifiedMessage + conversation reference. Pure.
 *
 * Fields (open.dingtalk.com "机器人接收消息"; dingtalk-stream-sdk chatbot.py): msgId, msgtype (text, richText,
 * picture, audio, video, file), text.content / content{downloadCode, fileName, duration, recognition, richText[]},
 * conversationId, conversationType "1" single | "2" group, senderStaffId (empty for external users), senderId,
 * senderNick, robotCode, createAt (ms), sessionWebhook + sessionWebhookExpiredTime (ms), atUsers, isInAtList.
 */
import { z } from 'zod';
import { capRaw, capText, conversationIdFor, createMessage, type Content, type UnifiedMessage } from '../../gateway/message.js';
import type { ReferenceInput } from '../types.js';

export const RobotCallback = z
  .object({
    msgId: z.string().min(1),
    msgtype: z.string().min(1),
    conversationId: z.string().min(1),
    conversationType: z.union([z.literal('1'), z.literal('2')]),
    conversationTitle: z.string().optional(),
    senderId: z.string().optional(),
    senderStaffId: z.string().optional(),
    senderNick: z.string().optional(),
    senderCorpId: z.string().optional(),
    robotCode: z.string().optional(),
    chatbotUserId: z.string().optional(),
    // The field table types it as a String, the documented example has a number: both are accepted.
    createAt: z.union([z.number(), z.string()]).optional(),
    sessionWebhook: z.string().optional(),
    sessionWebhookExpiredTime: z.number().optional(),
    text: z.object({ content: z.string() }).optional(),
    content: z.record(z.string(), z.unknown()).optional(),
    isInAtList: z.boolean().optional(),
  })
  .passthrough()
  .refine((b) => b.senderStaffId || b.senderId, { message: 'senderStaffId or senderId is required' });
export type RobotCallback = z.infer<typeof RobotCallback>;

export function decodeRobotContent(body: RobotCallback): Content {
  const c = (body.content ?? {}) as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const num = (v: unknown) => (typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined);
  switch (body.msgtype) {
    case 'text':
      return { type: 'text', text: capText((body.text?.content ?? '').trim()) || '[empty]' };
    case 'richText': {
      // Entries are objects ({text} or a picture); anything else in the list is skipped, not trusted.
      const parts = Array.isArray(c.richText) ? (c.richText as unknown[]).filter(isPlainObject) : [];
      const text = parts
        .map((p) => (typeof p.text === 'string' ? p.text : p.type === 'picture' || p.pictureDownloadCode ? '[image]' : ''))
        .join('')
        .trim();
      return { type: 'text', text: capText(text) || '[richText]' };
    }
    case 'picture':
      return { type: 'image', ...(str(c.downloadCode) && { mediaId: str(c.downloadCode) }) };
    case 'audio': {
      const duration = num(c.duration);
      return {
        type: 'audio',
        ...(str(c.downloadCode) && { mediaId: str(c.downloadCode) }),
        ...(duration !== undefined && { durationMs: duration }),
        // DingTalk transcribes voice messages itself.
        ...(str(c.recognition) && { transcript: str(c.recognition) }),
      };
    }
    case 'video': {
      const duration = num(c.duration);
      return { type: 'video', ...(str(c.downloadCode) && { mediaId: str(c.downloadCode) }), ...(duration !== undefined && { durationMs: duration }) };
    }
    case 'file':
      return { type: 'file', ...(str(c.downloadCode) && { mediaId: str(c.downloadCode) }), ...(str(c.fileName) && { name: str(c.fileName) }) };
    default:
      return { type: 'event', event: body.msgtype, data: c };
  }
}

export function decodeRobotCallback(
  body: RobotCallback,
  channel: { id: string; type: string },
  opts: { robotCode: string; webhookAllowed: (url: string) => boolean },
  now = Date.now(),
): { message: UnifiedMessage; reference: ReferenceInput; webhookRefused: boolean } {
  const peerId = body.senderStaffId || body.senderId!;
  const message = createMessage({
    channel: channel.id,
    channelType: channel.type,
    direction: 'in',
    // A single chat's conversationId is one person with the robot; a group's is the whole group.
    conversationId: conversationIdFor(channel.id, body.conversationId),
    channelMessageId: body.msgId,
    sender: { id: peerId, role: 'customer', ...(body.senderNick && { name: body.senderNick }) },
    timestamp: createdAt(body.createAt) ?? now,
    receivedAt: now,
    content: decodeRobotContent(body),
    metadata: { conversationType: body.conversationType === '2' ? 'group' : 'single' },
    raw: capRaw('dingtalk/robot', body),
  });
  const context: Record<string, string> = {
    conversationType: body.conversationType,
    robotCode: body.robotCode || opts.robotCode,
  };
  if (body.senderStaffId) context.staffId = body.senderStaffId;
  let webhookRefused = false;
  let replyWindowUntil: number | undefined;
  if (body.sessionWebhook && body.sessionWebhookExpiredTime) {
    if (opts.webhookAllowed(body.sessionWebhook)) {
      context.sessionWebhook = body.sessionWebhook;
      replyWindowUntil = Math.floor(body.sessionWebhookExpiredTime);
    } else webhookRefused = true;
  }
  const reference: ReferenceInput = {
    peerId,
    ...(body.senderNick && { peerName: body.senderNick }),
    threadId: body.conversationId,
    ...(replyWindowUntil !== undefined && { replyWindowUntil }),
    context,
  };
  return { message, reference, webhookRefused };
}

/**
 * `createAt` in whole ms, or undefined when it is no time. A fraction is rounded down: message validation wants whole
 * ms, and refusing the message would lose it after DingTalk's retries.
 */
function createdAt(value: number | string | undefined): number | undefined {
  const ms = typeof value === 'string' ? (/^\d+$/.test(value) ? Number(value) : NaN) : value;
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? Math.floor(ms) : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
