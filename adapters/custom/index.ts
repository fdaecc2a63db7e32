/**
 * `type: custom` — a channel defined by config alone: inbound route + verification + JSONata mapping, and an HTTP
 * send described by templates. See docs/channels-feishu-dingtalk-custom.md and config/examples/{telegram,slack}.yaml.
 */
import type { AxiosInstance } from 'axios';
import { badRequest, HttpError, parseJsonBody, unauthorized } from '../../gateway/errors.js';
import { contentAsText, type ContentType, type UnifiedMessage } from '../../gateway/message.js';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { reply, type WebhookReply, type WebhookRequest, type WebhookRoute } from '../http.js';
import { createHttpClient, deliveryErrorForException, retryAfterMs } from '../shared/http-client.js';
import { defineAdapter, DeliveryError, type AdapterContext, type ChannelAdapter, type SendResult } from '../types.js';
import {
  asId,
  compileExpression,
  compileTemplate,
  evaluateField,
  ExpressionFailed,
  type Bindings,
  type CompiledExpression,
  type CompiledTemplate,
} from './expression.js';
import { compileMapping, mapPayload } from './mapping.js';
import { CustomOptions } from './options.js';
import { createVerifier, type InboundRequestView, type VerifyResult } from './verify.js';

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text']);

function flatHeaders(req: WebhookRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(req.headers)) {
    const value = req.header(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** Form-style decoding ("+" is a space), as a generic platform expects; the last of a repeated name wins. */
function flatQuery(req: WebhookRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(req.rawQuery)) out[name] = value;
  return out;
}

function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

class CustomAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  private readonly http: AxiosInstance;
  private readonly verify: (req: InboundRequestView) => Promise<VerifyResult>;
  private readonly mapping: ReturnType<typeof compileMapping>;
  private readonly challenge: { when: CompiledExpression; body: CompiledExpression } | undefined;
  private readonly ackBody: CompiledExpression | undefined;
  private readonly send_: {
    url: CompiledTemplate;
    headers: Array<[string, CompiledTemplate]>;
    body: CompiledExpression | undefined;
    success: CompiledExpression;
    messageId: CompiledExpression | undefined;
    errorCode: CompiledExpression | undefined;
    retryable: CompiledExpression | undefined;
    rateLimitMs: CompiledExpression | undefined;
  };

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: CustomOptions,
    private readonly ctx: AdapterContext,
  ) {
    this.http = createHttpClient(undefined, options.send.timeoutMs);
    this.verify = createVerifier(options.inbound.verify);
    this.mapping = compileMapping(options.mapping);
    const c = (s: string | undefined) => (s === undefined ? undefined : compileExpression(s));
    this.challenge = options.inbound.challenge && {
      when: compileExpression(options.inbound.challenge.when),
      body: compileExpression(options.inbound.challenge.body),
    };
    this.ackBody = c(options.inbound.ack.body);
    const s = options.send;
    this.send_ = {
      url: compileTemplate(s.url),
      headers: Object.entries(s.headers).map(([name, value]) => [name, compileTemplate(value)]),
      body: c(s.body),
      success: compileExpression(s.success),
      messageId: c(s.messageId),
      errorCode: c(s.errorCode),
      retryable: c(s.retryable),
      rateLimitMs: c(s.rateLimitMs),
    };
  }

  routes(): WebhookRoute[] {
    return [{ method: 'POST', path: this.options.inbound.path, handle: (req) => this.receive(req) }];
  }

  private async receive(req: WebhookRequest): Promise<WebhookReply> {
    const rawBody = req.body.toString('utf8');
    const view: InboundRequestView = { headers: flatHeaders(req), rawBody, body: tryParseJson(rawBody), query: flatQuery(req) };
    // Verify before looking at the content: a forged request learns nothing about what we accept.
    const verified = await this.verify(view);
    if (!verified.ok) throw unauthorized(verified.reason, verified.detail);
    const body = view.body === undefined ? parseJsonBody(req.body) : view.body;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest('not_an_object', 'the request body must be a JSON object');
    const bindings: Bindings = { headers: view.headers, query: view.query };

    const challenge = await this.answerChallenge(body, bindings);
    if (challenge) return challenge;

    const outcome = await mapPayload(this.mapping, body, bindings, this);
    if (outcome.kind === 'unmappable') {
      throw new HttpError(422, 'unmappable_payload', `mapping.${outcome.field}: ${outcome.detail}`);
    }
    if (outcome.kind === 'expression_failed') throw this.refuseFailedExpression(`mapping.${outcome.field}`, outcome.detail);
    let ackBindings: Bindings = { ...bindings, skipped: true };
    if (outcome.kind === 'skip') {
      this.ctx.log.debug({ channel: this.id }, 'event skipped by mapping.skip');
    } else {
      const result = await this.ctx.ingest(outcome.message, outcome.reference);
      ackBindings = { ...bindings, skipped: false, messageId: result.messageId, duplicate: result.duplicate };
    }
    const ack = await this.ackFor(body, ackBindings);
    const status = this.options.inbound.ack.status;
    return typeof ack === 'string' ? reply.text(ack, status) : reply.json(ack ?? {}, status);
  }

  /** The handshake answer when the request is one; an expression failing on it is refused with 422. */
  private async answerChallenge(body: unknown, bindings: Bindings): Promise<WebhookReply | undefined> {
    if (!this.challenge) return undefined;
    try {
      if (!(await evaluateField('inbound.challenge.when', this.challenge.when, body, bindings))) return undefined;
      const answer = await evaluateField('inbound.challenge.body', this.challenge.body, body, bindings);
      this.ctx.log.info({ channel: this.id }, 'answered the URL verification challenge');
      return typeof answer === 'string' ? reply.text(answer) : reply.json(answer ?? {});
    } catch (err) {
      if (err instanceof ExpressionFailed) throw this.refuseFailedExpression(err.field, err.detail);
      throw err;
    }
  }

  /**
   * A payload an expression cannot handle gets the same answer on every retry: 422 (not 500, which platforms retry
   * without end) with the failing field named, and a log line for whoever maintains the config.
   */
  private refuseFailedExpression(field: string, detail: string): HttpError {
    this.ctx.log.warn({ channel: this.id, field, err: detail }, 'a mapping expression failed on an inbound payload; refused with 422');
    return new HttpError(422, 'expression_failed', `${field}: ${detail}`);
  }

  /** The acknowledgement; the message is queued already, so a failing ack expression is logged and `{}` sent. */
  private async ackFor(body: unknown, bindings: Bindings): Promise<unknown> {
    try {
      return this.ackBody ? await evaluateField('inbound.ack.body', this.ackBody, body, bindings) : {};
    } catch (err) {
      this.ctx.log.error({ channel: this.id, err: (err as Error).message }, 'the acknowledgement expression failed; answered {}');
      return {};
    }
  }

  async send(message: UnifiedMessage, reference: ConversationReference): Promise<SendResult> {
    // mapping.replyWindowSeconds: the platform refuses replies this long after the customer's message.
    if (reference.replyWindowUntil !== undefined && Date.now() > reference.replyWindowUntil) {
      throw new DeliveryError(`the reply window closed at ${new Date(reference.replyWindowUntil).toISOString()} (mapping.replyWindowSeconds)`, {
        retryable: false,
        code: 'reply_window_expired',
        reason: 'reply_window_expired',
      });
    }
    const s = this.send_;
    const input = { text: contentAsText(message.content), content: message.content, message, reference, apiBaseUrl: this.options.apiBaseUrl ?? '' };
    const { url, headers, body } = await this.buildRequest(input);
    if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    // The URL may embed a token (Telegram's /bot<token>/): name the host only.
    const what = `${this.options.send.method} ${safeOrigin(url)}`;

    let status: number;
    let text: string;
    let retryAfter: string | undefined;
    try {
      const res = await this.http.request({
        method: this.options.send.method,
        url,
        headers,
        ...(body !== undefined && { data: JSON.stringify(body) }),
        responseType: 'text',
        transformResponse: (x: unknown) => x,
      });
      status = res.status;
      text = typeof res.data === 'string' ? res.data : '';
      retryAfter = res.headers['retry-after'] as string | undefined;
    } catch (err) {
      throw deliveryErrorForException(err, what);
    }
    const json = tryParseJson(text) ?? {};
    const bindings: Bindings = { status };
    // From here on the request was made: an expression failing on the answer must not turn into a retry (the
    // message would be sent twice), so each one falls back to a safe default (see readAnswer).
    const read = (field: string, expression: CompiledExpression | undefined, fallback?: unknown) =>
      this.readAnswer({ field, expression, json, bindings, messageId: message.id, fallback });
    const code = asId(await read('send.errorCode', s.errorCode));

    if (this.options.send.retryableStatus.includes(status)) {
      const rateLimitMs = status === 429 ? (asNumber(await read('send.rateLimitMs', s.rateLimitMs)) ?? retryAfterMs(retryAfter) ?? 1000) : undefined;
      throw new DeliveryError(`${what}: HTTP ${status}${code ? ` (${code})` : ''}`, {
        retryable: true,
        code: code ?? status,
        ...(rateLimitMs !== undefined && { rateLimitMs }),
      });
    }
    if (await read('send.success', s.success, status >= 200 && status < 300)) {
      const channelMessageId = asId(await read('send.messageId', s.messageId));
      return channelMessageId === undefined ? {} : { channelMessageId };
    }
    const retryable = status >= 200 && status < 300 && Boolean(await read('send.retryable', s.retryable));
    throw new DeliveryError(`${what}: HTTP ${status}, not a success${code ? ` (${code})` : ''}`, { retryable, code: code ?? status });
  }

  /** URL, headers and body of the send request. Nothing was sent yet: a failing expression fails the message for good. */
  private async buildRequest(input: Record<string, unknown>): Promise<{ url: string; headers: Record<string, string>; body: unknown }> {
    const s = this.send_;
    try {
      const url = await renderField('send.url', s.url, input);
      const headers: Record<string, string> = {};
      for (const [name, template] of s.headers) headers[name] = await renderField(`send.headers.${name}`, template, input);
      const body = await evaluateField('send.body', s.body, input);
      return { url, headers, body };
    } catch (err) {
      if (!(err instanceof ExpressionFailed)) throw err;
      // The same message would fail the same way on every attempt.
      throw new DeliveryError(err.message, { retryable: false, code: 'expression_failed', reason: 'invalid_request' });
    }
  }

  /**
   * One answer expression's value. When it fails, the failure is logged and `fallback` used: undefined (no id, no
   * error code, not retryable), or for `send.success` whether the HTTP status is a 2xx.
   */
  private async readAnswer(a: {
    field: string;
    expression: CompiledExpression | undefined;
    json: unknown;
    bindings: Bindings;
    messageId: string;
    fallback: unknown;
  }): Promise<unknown> {
    try {
      return await evaluateField(a.field, a.expression, a.json, a.bindings);
    } catch (err) {
      this.ctx.log.error(
        { channel: this.id, field: a.field, messageId: a.messageId, err: (err as Error).message },
        'an expression failed on the send answer; its default is used and the request is not repeated',
      );
      return a.fallback;
    }
  }
}

async function renderField(field: string, template: CompiledTemplate, input: unknown): Promise<string> {
  try {
    return await template.render(input);
  } catch (err) {
    throw new ExpressionFailed(field, template.source, err);
  }
}

function asNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

export default defineAdapter({
  type: 'custom',
  description: 'A channel defined by config alone: verified webhook + JSONata mapping in, templated HTTP request out',
  options: CustomOptions,
  create: (instance, ctx) => new CustomAdapter(instance.id, instance.type, instance.options, ctx),
});
