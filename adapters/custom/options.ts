/**
 * The config schema of a `type: custom` channel. Every JSONata expression and `{{ }}` template is compiled during
 * validation, so `npm run config:check` reports e.g. `channels[2].options.mapping.text: invalid JSONata expression
 * at position 7 ...` instead of the channel failing on its first message.
 */
import { z } from 'zod';
import { checkExpression, checkTemplate } from './expression.js';

/** A JSONata expression, compiled at validation time. */
export const Expression = (what: string) =>
  z
    .string()
    .min(1)
    .superRefine((source, ctx) => {
      const problem = checkExpression(source);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .describe(`JSONata expression: ${what}`);

/** Text with `{{ expression }}` holes, compiled at validation time. */
export const Template = (what: string) =>
  z
    .string()
    .superRefine((source, ctx) => {
      const problem = checkTemplate(source);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .describe(`template with {{ JSONata }} holes: ${what}`);

const TimestampCheck = z
  .object({
    header: z.string().min(1).describe('Header carrying the request time'),
    unit: z.enum(['s', 'ms']).default('s').describe('Unix seconds or milliseconds'),
    toleranceSeconds: z.number().int().positive().default(300).describe('Largest accepted clock difference (replay window)'),
  })
  .describe('Refuse requests whose timestamp header is missing or too far from the gateway clock');

const HmacVerify = z.object({
  kind: z.literal('hmac'),
  secret: z.string().min(1).describe('HMAC key (use ${ENV})'),
  algorithm: z.enum(['sha1', 'sha256', 'sha512']).default('sha256'),
  encoding: z.enum(['hex', 'base64', 'base64url']).default('hex'),
  header: z.string().min(1).describe('Header carrying the signature'),
  prefix: z.string().default('').describe('Literal text before the digest in the header, e.g. "v0=" or "sha256="'),
  payload: Template('the signed string; $rawBody is the exact request body, $headers the lower-cased headers').default(
    '{{ $rawBody }}',
  ),
  timestamp: TimestampCheck.optional(),
});

const TokenVerify = z.object({
  kind: z.literal('token'),
  header: z.string().min(1).default('authorization').describe('Header carrying the shared token'),
  token: z.string().min(1).describe('Expected token (use ${ENV})'),
  prefix: z.string().default('').describe('Literal text before the token, e.g. "Bearer "'),
  timestamp: TimestampCheck.optional(),
});

const NoVerify = z.object({ kind: z.literal('none') });

export const CustomVerify = z.discriminatedUnion('kind', [HmacVerify, TokenVerify, NoVerify]);
export type CustomVerify = z.infer<typeof CustomVerify>;

export const CustomInbound = z
  .object({
    path: z
      .string()
      .regex(/^\/[A-Za-z0-9/_.-]*$/)
      .default('/')
      .describe('Route under /webhooks/<id> that receives the platform POSTs'),
    verify: CustomVerify.describe('How a request proves it comes from the platform'),
    challenge: z
      .object({
        when: Expression('true for a URL-verification request'),
        body: Expression('the answer: an object is sent as JSON, a string as text/plain'),
      })
      .optional()
      .describe('URL verification handshake, answered after the request is verified'),
    ack: z
      .object({
        status: z.number().int().min(200).max(299).default(200),
        body: Expression('the acknowledgement body ($messageId, $duplicate are bound)').optional(),
      })
      .default({ status: 200 })
      .describe('What the platform gets once the message is safely queued (or skipped)'),
  })
  .describe('Inbound route, verification and handshake');

export const CustomMapping = z
  .object({
    skip: Expression('true for events that are not customer messages (acknowledged, not queued)').optional(),
    messageId: Expression("the platform's message/event id; repeats are dropped as duplicates"),
    senderId: Expression("the customer's id on the platform"),
    senderName: Expression('display name').optional(),
    conversation: Expression('what identifies the conversation (chat/channel id); default: the sender id').optional(),
    threadId: Expression('the chat/channel/room a reply goes to; available to send as reference.threadId').optional(),
    text: Expression('the message text').optional(),
    content: Expression('a UnifiedMessage content object, for non-text messages (used when text is empty)').optional(),
    timestamp: Expression('platform time in ms since the epoch; default: arrival time').optional(),
    context: z
      .record(z.string(), Expression('a value kept with the conversation for replies (reference.context.<name>)'))
      .default({})
      .describe('Extra values kept in the conversation reference'),
    replyWindowSeconds: z.number().int().positive().optional().describe('How long after a message replies are allowed'),
  })
  .refine((m) => m.text !== undefined || m.content !== undefined, { message: 'map at least text or content' })
  .describe('JSON payload → UnifiedMessage; expressions run on the parsed body with $headers and $query bound');

export const CustomSend = z
  .object({
    method: z.enum(['POST', 'PUT', 'PATCH', 'GET']).default('POST'),
    url: Template('the request URL; input: {text, content, message, reference, apiBaseUrl}'),
    headers: z.record(z.string(), Template('a header value (secrets via ${ENV})')).default({}),
    body: Expression('the JSON request body; input: {text, content, message, reference, apiBaseUrl}').optional(),
    success: Expression('true when the JSON response means "sent"; $status is the HTTP status').default('$status >= 200 and $status < 300'),
    messageId: Expression("the platform's id of the sent message, from the response").optional(),
    errorCode: Expression('the error code in a failed response, for logs and dead letters').optional(),
    retryable: Expression('true when a failed 2xx response is worth retrying').optional(),
    retryableStatus: z
      .array(z.number().int().min(400).max(599))
      .default([408, 429, 500, 502, 503, 504])
      .describe('HTTP statuses that are retried; other 4xx/5xx fail at once'),
    rateLimitMs: Expression('how long to pause on a 429 when the platform says it in the body (else Retry-After)').optional(),
    timeoutMs: z.number().int().positive().default(10_000),
  })
  .describe('How a reply is sent');

export const CustomOptions = z
  .object({
    apiBaseUrl: z.url().optional().describe('Platform API base URL, available in send templates as apiBaseUrl'),
    inbound: CustomInbound,
    mapping: CustomMapping,
    send: CustomSend,
  })
  .superRefine((o, ctx) => {
    const problem = sendUrlProblem(o.send.url, o.apiBaseUrl);
    if (problem) ctx.addIssue({ code: 'custom', path: ['send', 'url'], message: problem });
  });
export type CustomOptions = z.infer<typeof CustomOptions>;

const ABSOLUTE_HTTP = /^https?:\/\//i;

/**
 * A send URL that cannot be absolute would fail every delivery (retried, as "Invalid URL") instead of stopping
 * start-up: its literal start must be `http(s)://`, or `{{ apiBaseUrl }}` with an http(s) apiBaseUrl set. A URL that
 * starts with another hole is only known per message and is not checked here.
 */
function sendUrlProblem(url: string, apiBaseUrl: string | undefined): string | undefined {
  const holeAt = url.indexOf('{{');
  const literal = (holeAt === -1 ? url : url.slice(0, holeAt)).trim();
  if (literal) {
    if (ABSOLUTE_HTTP.test(literal)) return undefined;
    return `must be an absolute http(s) URL, but starts with "${literal.slice(0, 40)}": write e.g. "https://${literal.replace(/^\/+/, '').slice(0, 40)}", or "{{ apiBaseUrl }}/path" with apiBaseUrl set`;
  }
  const firstHole = /^\{\{\s*([\s\S]*?)\s*\}\}/.exec(url.trim())?.[1];
  if (firstHole !== 'apiBaseUrl') return undefined;
  if (apiBaseUrl === undefined) return 'starts with {{ apiBaseUrl }}, but options.apiBaseUrl is not set (e.g. apiBaseUrl: https://api.example.com)';
  if (!ABSOLUTE_HTTP.test(apiBaseUrl)) return `starts with {{ apiBaseUrl }}, but apiBaseUrl "${apiBaseUrl}" is not an http(s) URL`;
  return undefined;
}
