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
import { asId, compileExpression, compileTemplate, type Bindings, type CompiledExpression, type CompiledTemplate } from './expression.js';
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

    if (this.challenge && (await this.challenge.when.evaluate(body, bindings))) {
      const answer = await this.challenge.body.evaluate(body, bindings);
      this.ctx.log.info({ channel: this.id }, 'answered the URL verification challenge');
      return typeof answer === 'string' ? reply.text(answer) : reply.json(answer ?? {});
    }

    const outcome = await mapPayload(this.mapping, body, bindings, this);
    if (outcome.kind === 'unmappable') {
      throw new HttpError(422, 'unmappable_payload', `mapping.${outcome.field}: ${outcome.detail}`);
    }
    let ackBindings: Bindings = { ...bindings, skipped: true };
    if (outcome.kind === 'skip') {
      this.ctx.log.debug({ channel: this.id }, 'event skipped by mapping.skip');
    } else {
      const result = await this.ctx.ingest(outcome.message, outcome.reference);
      ackBindings = { ...bindings, skipped: false, messageId: result.messageId, duplicate: result.duplicate };
    }
    const ack = this.ackBody ? await this.ackBody.evaluate(body, ackBindings) : {};
    const status = this.options.inbound.ack.status;
    return typeof ack === 'string' ? reply.text(ack, status) : reply.json(ack ?? {}, status);
  }

  async send(message: UnifiedMessage, reference: ConversationReference): Promise<SendResult> {
    const s = this.send_;
    const input = { text: contentAsText(message.content), content: message.content, message, reference, apiBaseUrl: this.options.apiBaseUrl ?? '' };
    const url = await s.url.render(input);
    const headers: Record<string, string> = {};
    for (const [name, template] of s.headers) headers[name] = await template.render(input);
    const body = s.body ? await s.body.evaluate(input) : undefined;
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
    const code = s.errorCode ? asId(await s.errorCode.evaluate(json, bindings)) : undefined;

    if (this.options.send.retryableStatus.includes(status)) {
      const rateLimitMs =
        status === 429
          ? (asNumber(s.rateLimitMs && (await s.rateLimitMs.evaluate(json, bindings))) ?? retryAfterMs(retryAfter) ?? 1000)
          : undefined;
      throw new DeliveryError(`${what}: HTTP ${status}${code ? ` (${code})` : ''}`, {
        retryable: true,
        code: code ?? status,
        ...(rateLimitMs !== undefined && { rateLimitMs }),
      });
    }
    if (await s.success.evaluate(json, bindings)) {
      const channelMessageId = s.messageId ? asId(await s.messageId.evaluate(json, bindings)) : undefined;
      return channelMessageId === undefined ? {} : { channelMessageId };
    }
    const retryable = status >= 200 && status < 300 && s.retryable ? Boolean(await s.retryable.evaluate(json, bindings)) : false;
    throw new DeliveryError(`${what}: HTTP ${status}, not a success${code ? ` (${code})` : ''}`, { retryable, code: code ?? status });
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
