/**
 * Payload → UnifiedMessage for config-defined channels: each mapping field is a JSONata expression evaluated on
 * the parsed body with `$headers` and `$query` bound. Pure apart from the clock, so tests run it directly.
 */
import { capRaw, capText, Content, conversationIdFor, createMessage, type UnifiedMessage } from '../../gateway/message.js';
import type { ReferenceInput } from '../types.js';
import { asId, compileExpression, evaluateField, ExpressionFailed, type Bindings, type CompiledExpression } from './expression.js';
import type { CustomOptions } from './options.js';

export type MappingOutcome =
  | { kind: 'skip' }
  | { kind: 'message'; message: UnifiedMessage; reference: ReferenceInput }
  | { kind: 'unmappable'; field: string; detail: string }
  /** An expression threw on this payload; `field` is its config path under `mapping`. */
  | { kind: 'expression_failed'; field: string; detail: string };

type Compiled = {
  [K in keyof Omit<CustomOptions['mapping'], 'context' | 'replyWindowSeconds'>]: CompiledExpression | undefined;
} & { context: Array<[string, CompiledExpression]>; replyWindowSeconds: number | undefined };

export function compileMapping(mapping: CustomOptions['mapping']): Compiled {
  const c = (source: string | undefined) => (source === undefined ? undefined : compileExpression(source));
  return {
    skip: c(mapping.skip),
    messageId: c(mapping.messageId),
    senderId: c(mapping.senderId),
    senderName: c(mapping.senderName),
    conversation: c(mapping.conversation),
    threadId: c(mapping.threadId),
    text: c(mapping.text),
    content: c(mapping.content),
    timestamp: c(mapping.timestamp),
    context: Object.entries(mapping.context).map(([name, source]) => [name, compileExpression(source)]),
    replyWindowSeconds: mapping.replyWindowSeconds,
  };
}

export async function mapPayload(
  compiled: Compiled,
  body: unknown,
  bindings: Bindings,
  channel: { id: string; type: string },
  now = Date.now(),
): Promise<MappingOutcome> {
  try {
    return await mapFields(compiled, body, bindings, channel, now);
  } catch (err) {
    if (err instanceof ExpressionFailed) return { kind: 'expression_failed', field: err.field, detail: err.detail };
    throw err;
  }
}

async function mapFields(
  compiled: Compiled,
  body: unknown,
  bindings: Bindings,
  channel: { id: string; type: string },
  now: number,
): Promise<MappingOutcome> {
  const field = (name: string, e: CompiledExpression | undefined) => evaluateField(name, e, body, bindings);
  if (await field('skip', compiled.skip)) return { kind: 'skip' };

  const messageId = asId(await field('messageId', compiled.messageId));
  if (!messageId) return { kind: 'unmappable', field: 'messageId', detail: `${compiled.messageId!.source} gave no id` };
  const senderId = asId(await field('senderId', compiled.senderId));
  if (!senderId) return { kind: 'unmappable', field: 'senderId', detail: `${compiled.senderId!.source} gave no id` };
  const senderName = await field('senderName', compiled.senderName);
  const conversationKey = asId(await field('conversation', compiled.conversation)) ?? senderId;
  const threadId = asId(await field('threadId', compiled.threadId));

  let content: Content | undefined;
  const text = await field('text', compiled.text);
  if (typeof text === 'string' && text.length > 0) content = { type: 'text', text: capText(text) };
  else if (compiled.content) {
    const parsed = Content.safeParse(await field('content', compiled.content));
    if (!parsed.success) return { kind: 'unmappable', field: 'content', detail: parsed.error.issues.map((i) => i.message).join('; ') };
    content = parsed.data;
  }
  if (!content) return { kind: 'unmappable', field: 'text', detail: `${compiled.text?.source ?? '(content)'} gave no text` };

  const ts = await field('timestamp', compiled.timestamp);
  const timestamp = typeof ts === 'number' && Number.isFinite(ts) && ts >= 0 ? Math.floor(ts) : now;

  const context: Record<string, string> = {};
  for (const [name, expression] of compiled.context) {
    const value = await field(`context.${name}`, expression);
    if (value !== undefined && value !== null) context[name] = typeof value === 'object' ? JSON.stringify(value) : String(value);
  }

  const message = createMessage({
    channel: channel.id,
    channelType: channel.type,
    direction: 'in',
    conversationId: conversationIdFor(channel.id, conversationKey),
    channelMessageId: messageId,
    sender: { id: senderId, role: 'customer', ...(typeof senderName === 'string' && senderName && { name: senderName }) },
    timestamp,
    receivedAt: now,
    content,
    raw: capRaw(`${channel.type}/${channel.id}`, body),
  });
  const reference: ReferenceInput = {
    peerId: senderId,
    ...(typeof senderName === 'string' && senderName && { peerName: senderName }),
    ...(threadId !== undefined && { threadId }),
    ...(compiled.replyWindowSeconds !== undefined && { replyWindowUntil: timestamp + compiled.replyWindowSeconds * 1000 }),
    context,
  };
  return { kind: 'message', message, reference };
}
