/**
 * UnifiedMessage: the one shape every channel's traffic is turned into, and the job data of every pipeline queue.
 *
 * Kept deliberately narrow. Anything platform specific that a later stage may need (a WeCom `AgentID`, an email's
 * `References` header, a DingTalk `sessionWebhook`) goes either into the conversation reference (when it is needed
 * to reply later) or into `raw` (for audit and debugging) — never into new top-level fields.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import { z } from 'zod';

/** Bumped whenever a field changes meaning; jobs carry it so a worker can refuse data it does not understand. */
export const SCHEMA_VERSION = 1 as const;

/** `raw` payloads larger than this (serialised) are truncated, so one huge webhook cannot bloat every queue copy. */
export const RAW_MAX_BYTES = 16 * 1024;

const media = {
  /** Where the gateway (or the platform) serves the bytes; absent until a media id is resolved. */
  url: z.string().optional().describe('Fetchable URL of the bytes (gateway media URL once resolved)'),
  /** The platform's own media handle (WeChat MediaId, Feishu image_key...), kept so the adapter can resolve it. */
  mediaId: z.string().optional().describe("The platform's media handle"),
  mimeType: z.string().optional(),
  size: z.number().int().nonnegative().optional().describe('Size in bytes when known'),
};

/** The longest text a message holds. */
export const TEXT_MAX_CHARS = 20_000;

/**
 * Text cut to what a message holds. Longer text would fail validation and be refused (inbound) or dead-lettered
 * (a bot reply); cut, the customer is still answered. A cut between the halves of a surrogate pair drops the orphan.
 */
export function capText(text: string): string {
  if (text.length <= TEXT_MAX_CHARS) return text;
  return text.slice(0, TEXT_MAX_CHARS).replace(/[\uD800-\uDBFF]$/, '');
}

export const TextContent = z.object({
  type: z.literal('text'),
  text: z.string().max(TEXT_MAX_CHARS),
});
export const ImageContent = z.object({ type: z.literal('image'), ...media, caption: z.string().optional() });
export const FileContent = z.object({ type: z.literal('file'), ...media, name: z.string().optional() });
export const AudioContent = z.object({
  type: z.literal('audio'),
  ...media,
  durationMs: z.number().nonnegative().optional(),
  /** Some platforms (WeChat) transcribe voice messages themselves. */
  transcript: z.string().optional(),
});
export const VideoContent = z.object({
  type: z.literal('video'),
  ...media,
  thumbUrl: z.string().optional(),
  durationMs: z.number().nonnegative().optional(),
});
export const LocationContent = z.object({
  type: z.literal('location'),
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  label: z.string().optional(),
});
/** A link, article card or mini-program card: all are "a titled pointer somewhere". */
export const LinkContent = z.object({
  type: z.literal('link'),
  url: z.string().optional().describe('Web URL (absent for a mini-program card)'),
  title: z.string(),
  description: z.string().optional(),
  thumbUrl: z.string().optional(),
  /** Mini-program cards: the target app id and page path. */
  appId: z.string().optional(),
  pagePath: z.string().optional(),
});
/** Anything that is not a message a person typed: subscribe, enter-session, menu click, unknown platform types. */
export const EventContent = z.object({
  type: z.literal('event'),
  event: z.string().describe('Event name, e.g. "subscribe", "enter_session", or the platform type when unknown'),
  key: z.string().optional().describe('Event key (menu key, scene value...)'),
  data: z.record(z.string(), z.unknown()).optional(),
});

export const Content = z.discriminatedUnion('type', [
  TextContent,
  ImageContent,
  FileContent,
  AudioContent,
  VideoContent,
  LocationContent,
  LinkContent,
  EventContent,
]);
export type Content = z.infer<typeof Content>;
export type ContentType = Content['type'];
export const CONTENT_TYPES: readonly ContentType[] = [
  'text',
  'image',
  'file',
  'audio',
  'video',
  'location',
  'link',
  'event',
];

export const Sender = z.object({
  /** The channel's own user id: openid, external_userid, e-mail address, visitor id. */
  id: z.string().min(1),
  name: z.string().optional(),
  role: z.enum(['customer', 'bot', 'agent', 'system']),
});
export type Sender = z.infer<typeof Sender>;

/** How a bot decision was reached; travels with the reply and is logged and kept in the transcript. */
export const DecisionTrace = z.object({
  stage: z.string().describe('Which stage answered: rule, kb, intent, clarify, fallback, handoff, sensitive...'),
  ruleId: z.string().optional(),
  faqId: z.string().optional(),
  score: z.number().optional(),
  intent: z
    .object({
      label: z.string(),
      confidence: z.number(),
      top: z.array(z.object({ label: z.string(), score: z.number() })),
      modelVersion: z.string(),
    })
    .optional(),
  reason: z.string().optional(),
  durationMs: z.number().optional(),
});
export type DecisionTrace = z.infer<typeof DecisionTrace>;

export const RawPayload = z.object({
  /** Which decoder produced it, e.g. "wecom-app/xml". */
  format: z.string(),
  /** The decoded platform payload, or a truncated string of it when it exceeded RAW_MAX_BYTES. */
  payload: z.unknown(),
  truncated: z.boolean(),
});
export type RawPayload = z.infer<typeof RawPayload>;

export const UnifiedMessage = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  /** Gateway id: a ULID, so ids sort by creation time (used for "replies since" on reconnect). */
  id: z.string().length(26),
  /** The adapter instance id from config (`channels[].id`), e.g. "wecom-sales". */
  channel: z.string().min(1),
  /** The adapter type, e.g. "wecom-app". */
  channelType: z.string().min(1),
  direction: z.enum(['in', 'out']),
  /** Stable per channel instance + peer; see conversationIdFor(). */
  conversationId: z.string().min(1),
  /** The platform's message id (MsgId, msgid, Message-ID...), used to drop platform retries. */
  channelMessageId: z.string().optional(),
  sender: Sender,
  /** Platform time of the message in ms since the epoch (gateway time when the platform gives none). */
  timestamp: z.number().int().nonnegative(),
  /** When the gateway received (in) or created (out) it, ms since the epoch; used for latency figures. */
  receivedAt: z.number().int().nonnegative(),
  content: Content,
  /** The message this one answers: a gateway id or a channelMessageId. */
  replyTo: z.string().optional(),
  /** Small scalar tags for routing and templates (locale, team, agent name); never platform payloads. */
  metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  /** Bot replies carry the decision trace. */
  trace: DecisionTrace.optional(),
  raw: RawPayload.optional(),
});
export type UnifiedMessage = z.infer<typeof UnifiedMessage>;
export type UnifiedMessageInput = z.input<typeof UnifiedMessage>;

/**
 * ulid's default PRNG calls crypto.getRandomValues once per character (16 calls per id); drawing the same
 * cryptographic bytes from a pool refilled 4 KiB at a time keeps ids just as unguessable at a fraction of the cost.
 */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
function pooledRandom(): number {
  if (poolAt >= pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  return pool[poolAt++]! / 256;
}
const nextUlid = monotonicFactory(pooledRandom);
export function newMessageId(): string {
  return nextUlid();
}

/**
 * A conversation is one peer on one channel instance (plus, where a platform has them, one group/room or one
 * open_kfid). Hashing keeps the id URL- and key-safe whatever the platform ids contain (e-mail addresses, '@chatroom').
 */
export function conversationIdFor(channel: string, ...peer: string[]): string {
  const digest = createHash('sha256').update(peer.join('\u0000')).digest('base64url').slice(0, 22);
  return `${channel}.${digest}`;
}

/** Caps a platform payload for `raw`: kept whole when small, otherwise a truncated JSON/text string. */
export function capRaw(format: string, payload: unknown, maxBytes = RAW_MAX_BYTES): RawPayload {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  if (text === undefined || Buffer.byteLength(text) <= maxBytes) return { format, payload, truncated: false };
  return { format, payload: Buffer.from(text).subarray(0, maxBytes).toString('utf8'), truncated: true };
}

type Draft = Omit<UnifiedMessageInput, 'schemaVersion' | 'id' | 'receivedAt' | 'timestamp'> &
  Partial<Pick<UnifiedMessageInput, 'id' | 'receivedAt' | 'timestamp'>>;

/** Builds and validates a message; throws a ZodError naming the bad field. */
export function createMessage(draft: Draft): UnifiedMessage {
  const now = Date.now();
  return UnifiedMessage.parse({
    schemaVersion: SCHEMA_VERSION,
    id: newMessageId(),
    receivedAt: now,
    timestamp: now,
    ...draft,
  });
}

/**
 * A reply to a validated inbound message, built without validating the whole envelope again (a full parse is a
 * measurable share of a worker's time per message): its fields come from `inbound` and from typed gateway code. Only
 * the content is checked — a bot template or rule may have produced it — and its text is cut to what a message holds.
 */
export function replyMessage(inbound: UnifiedMessage, content: Content, sender: Sender, trace?: DecisionTrace): UnifiedMessage {
  const now = Date.now();
  const checked = Content.parse(content.type === 'text' ? { ...content, text: capText(content.text) } : content);
  return {
    schemaVersion: SCHEMA_VERSION,
    id: newMessageId(),
    channel: inbound.channel,
    channelType: inbound.channelType,
    direction: 'out',
    conversationId: inbound.conversationId,
    sender,
    timestamp: now,
    receivedAt: now,
    content: checked,
    replyTo: inbound.id,
    metadata: {},
    ...(trace && { trace }),
  };
}

/** A plain-text rendering of any content, used when a channel cannot send the content type itself. */
export function contentAsText(content: Content): string {
  switch (content.type) {
    case 'text':
      return content.text;
    case 'image':
      return [content.caption, content.url].filter(Boolean).join('\n') || '[image]';
    case 'file':
      return [content.name ?? 'file', content.url].filter(Boolean).join(': ');
    case 'audio':
      return content.transcript ?? (content.url ? `[audio] ${content.url}` : '[audio]');
    case 'video':
      return content.url ? `[video] ${content.url}` : '[video]';
    case 'location':
      return `${content.label ? content.label + ' ' : ''}(${content.latitude}, ${content.longitude})`;
    case 'link':
      return [content.title, content.description, content.url].filter(Boolean).join('\n');
    case 'event':
      return `[${content.event}]`;
  }
}
