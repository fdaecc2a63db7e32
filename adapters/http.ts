/**
 * What a channel's webhook routes see and answer: plain values, no HTTP framework. The gateway reads the request
 * (the exact body bytes, the raw query) and writes the reply (`gateway/channel-http.ts`); a route only verifies,
 * decodes and says what to answer — or throws an `HttpError`, which becomes `{error, message}` with its status.
 *
 * Webhooks carry the traffic, and a framework's per-request work (routing layers, prototype swaps, response helpers)
 * cost several times what a route itself does, which is why they do not go through express.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface WebhookRequest {
  /** GET, POST…; a HEAD request is served by the GET route and answered without a body. */
  readonly method: string;
  /** The path below `/webhooks/<channel-id>`: `/` for the channel's root, `/messages`, `/widget.js`… */
  readonly path: string;
  /** The query string as sent, without `?` (empty when none). */
  readonly rawQuery: string;
  /**
   * Query values decoded with decodeURIComponent, first value of a repeated name. A literal `+` stays a `+`: WeChat
   * and WeCom put base64 values in the query, and their signatures cover the decoded value (WeCom doc: URL-decode
   * first). Use `rawQuery` with URLSearchParams for form-style decoding.
   */
  readonly query: Readonly<Record<string, string>>;
  /** Header names in lower case, as Node gives them. */
  readonly headers: IncomingHttpHeaders;
  /** One header's value (case-insensitive name); repeated headers joined with ", ". */
  header(name: string): string | undefined;
  /** The exact body bytes — signatures are computed over them, not over a re-serialised object. Empty when none. */
  readonly body: Buffer;
}

export interface WebhookReply {
  status: number;
  /** Response headers; `content-type` among them when there is a body. */
  headers: Record<string, string>;
  body: string | Buffer;
}

export interface WebhookRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Exact path below `/webhooks/<channel-id>`, starting with `/`. */
  path: string;
  handle(request: WebhookRequest): WebhookReply | Promise<WebhookReply>;
}

/** The replies routes give, with the content types and charsets platforms expect. */
export const reply = {
  text: (body: string, status = 200): WebhookReply => ({ status, headers: { 'content-type': 'text/plain; charset=utf-8' }, body }),
  json: (value: unknown, status = 200): WebhookReply => ({ status, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(value) }),
  html: (body: string, status = 200): WebhookReply => ({ status, headers: { 'content-type': 'text/html; charset=utf-8' }, body }),
  /** A status and nothing else (no content type), e.g. Douyin's bare 200. */
  empty: (status = 200): WebhookReply => ({ status, headers: {}, body: '' }),
};
