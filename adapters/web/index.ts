/**
 * Web widget channel: visitors chat from an embeddable script over a WebSocket at /webhooks/<id>/ws.
 *
 * A visitor token (see visitor-token.ts) keeps the same visitor — hence the same conversation — across reloads
 * and reconnects; after a reconnect the client sends the last message id it saw and gets every reply it missed.
 * Replies reach the socket through the gateway's live hub, so the process that runs the bot need not be the one
 * holding the socket.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { badRequest, parseJsonBody } from '../../gateway/errors.js';
import type { ContentType, UnifiedMessage } from '../../gateway/message.js';
import { reply, type WebhookReply, type WebhookRoute } from '../http.js';
import { defineAdapter, type AdapterContext, type ChannelAdapter } from '../types.js';
import { FrameBudget, type FrameVerdict } from './frame-budget.js';
import { heartbeat, ReplyStream, watchPongs, type HeartbeatSocket } from '../shared/socket-session.js';
import { ClientFrame, decodeClientMessage, toClientMessage } from './protocol.js';
import { issueVisitorToken, newVisitorId, verifyVisitorToken } from './visitor-token.js';
import { ConversationSockets, refuseUpgrade, sharedSecret } from '../shared/live-socket.js';

const WIDGET_JS = readFileSync(new URL('./widget.js', import.meta.url), 'utf8');
const WIDGET_ETAG = `"${createHash('sha1').update(WIDGET_JS).digest('base64url')}"`;
const WIDGET_CACHE = 'public, max-age=300';
const DEMO_HTML = readFileSync(new URL('./demo.html', import.meta.url), 'utf8');
const STARTING_MESSAGE = 'the chat is starting; try again in a moment';
const DEFAULT_RATE_LIMIT = { burst: 10, perSecond: 1, maxInFlight: 4, closeAfterRefused: 20 };
/** WebSocket close code: the visitor token is expired or forged (the widget then starts a new visitor). */
const TOKEN_REFUSED = 4401;

export const WebOptions = z
  .object({
    secret: z
      .string()
      .min(16)
      .optional()
      .describe('HMAC key for visitor tokens; absent: a random key is created once and kept in Redis'),
    tokenTtlSeconds: z.number().int().positive().default(30 * 24 * 3600).describe('Visitor token lifetime'),
    allowedOrigins: z
      .array(z.string())
      .default([])
      .describe('Origins allowed to open the socket (e.g. https://shop.example.com); empty allows any'),
    heartbeatSeconds: z.number().int().min(1).default(30).describe('Ping interval; a socket missing one pong is closed'),
    maxFrameBytes: z.number().int().positive().default(64 * 1024),
    demoPage: z.boolean().default(false).describe('Serve a demo chat page at /webhooks/<id>/'),
    title: z.string().default('Chat with us').describe('Widget header text'),
    rateLimit: z
      .object({
        burst: z.number().int().min(1).default(10).describe('Frames one socket may send at once'),
        perSecond: z.number().positive().default(1).describe('Frames per second one socket may send in the long run'),
        maxInFlight: z.number().int().min(1).default(4).describe('Messages of one socket being queued at the same time'),
        closeAfterRefused: z.number().int().min(1).default(20).describe('Refused frames in a row after which the socket is closed (1008)'),
      })
      .default(DEFAULT_RATE_LIMIT)
      .describe('Per-socket limits; a frame over them is answered with a rate_limited error frame and not queued'),
  })
  .default({
    tokenTtlSeconds: 30 * 24 * 3600,
    allowedOrigins: [],
    heartbeatSeconds: 30,
    maxFrameBytes: 64 * 1024,
    demoPage: false,
    title: 'Chat with us',
    rateLimit: DEFAULT_RATE_LIMIT,
  });
export type WebOptions = z.infer<typeof WebOptions>;

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text', 'image', 'file', 'audio', 'video', 'location', 'link']);

interface VisitorSocket extends HeartbeatSocket {
  replies?: ReplyStream;
}

class WebAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  private readonly wss: WebSocketServer;
  private readonly sockets = new ConversationSockets<VisitorSocket>();
  private heartbeat: NodeJS.Timeout | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  private secret: string | undefined;

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: WebOptions,
    private readonly ctx: AdapterContext,
  ) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: options.maxFrameBytes });
    // The HTTP server listens before the adapters start: a configured key serves sockets from the first moment.
    this.secret = options.secret;
  }

  routes(): WebhookRoute[] {
    const routes: WebhookRoute[] = [
      {
        method: 'GET',
        path: '/widget.js',
        // Pages load it on every visit: a revalidation that matches costs a 304 and no body.
        handle: (req): WebhookReply => {
          const headers: Record<string, string> = { etag: WIDGET_ETAG, 'cache-control': WIDGET_CACHE };
          if (req.header('if-none-match') === WIDGET_ETAG) return { status: 304, headers, body: '' };
          return { status: 200, headers: { ...headers, 'content-type': 'application/javascript; charset=utf-8' }, body: WIDGET_JS };
        },
      },
      // A token before the first socket, for pages that want the visitor id early. Body: {} or {token} to renew.
      {
        method: 'POST',
        path: '/session',
        handle: (req) => {
          const body = req.body.length ? (parseJsonBody(req.body) as { token?: unknown }) : {};
          if (body.token !== undefined && typeof body.token !== 'string') throw badRequest('invalid_token', 'token must be a string');
          const session = this.session(body.token);
          if (!session.ok && session.reason === 'starting') return reply.json({ error: 'starting', message: STARTING_MESSAGE }, 503);
          if (!session.ok) return reply.json({ error: session.reason, message: 'the visitor token is not valid; connect without one' }, 401);
          return reply.json(session.frame);
        },
      },
    ];
    if (this.options.demoPage) {
      const page = DEMO_HTML.replaceAll('{{CHANNEL}}', this.id).replaceAll('{{TITLE}}', escapeHtml(this.options.title));
      routes.push({ method: 'GET', path: '/', handle: () => reply.html(page) });
    }
    return routes;
  }

  private session(token: string | undefined): { ok: true; visitorId: string; frame: object } | { ok: false; reason: string } {
    const secret = this.secret;
    if (secret === undefined) return { ok: false, reason: 'starting' };
    let visitorId: string;
    if (token === undefined) visitorId = newVisitorId();
    else {
      const check = verifyVisitorToken(secret, token);
      if (!check.ok) return { ok: false, reason: check.reason === 'expired' ? 'expired_token' : 'invalid_token' };
      visitorId = check.visitorId;
    }
    const fresh = issueVisitorToken(secret, visitorId, this.options.tokenTtlSeconds);
    const expiresAt = Number(fresh.split('.')[2]) * 1000;
    return { ok: true, visitorId, frame: { type: 'session', visitorId, token: fresh, expiresAt } };
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== `/webhooks/${this.id}/ws`) return false;
    // A throw is answered with a 500 by the gateway's upgrade dispatch (gateway/gateway.ts), for every adapter.
    this.accept(req, socket, head, url);
    return true;
  }

  private accept(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    const origin = req.headers.origin;
    if (this.options.allowedOrigins.length && (!origin || !this.options.allowedOrigins.includes(origin))) {
      refuseUpgrade(socket, 403, 'origin_not_allowed', `origin ${origin ?? '(none)'} may not open this socket`, this.ctx.log);
      return;
    }
    const session = this.session(url.searchParams.get('token') ?? undefined);
    if (!session.ok && session.reason === 'starting') return refuseUpgrade(socket, 503, 'starting', STARTING_MESSAGE, this.ctx.log);
    if (!session.ok) return this.refuseToken(req, socket, head, session.reason);
    const after = url.searchParams.get('after') ?? undefined;
    this.wss.handleUpgrade(req, socket, head, (ws) => void this.onConnection(ws, session.visitorId, session.frame, after));
  }

  /**
   * A browser cannot read the HTTP status of a refused upgrade, so it could not tell a bad token from an outage: the
   * socket is accepted, told why in an error frame, and closed with 4401, after which the client starts afresh.
   */
  private refuseToken(req: IncomingMessage, socket: Duplex, head: Buffer, reason: string): void {
    this.ctx.log.info({ reason }, 'visitor token refused');
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', (err) => this.ctx.log.debug({ err }, 'visitor socket error'));
      ws.send(JSON.stringify({ type: 'error', error: reason, message: 'the visitor token is not valid; reconnect without a token' }));
      ws.close(TOKEN_REFUSED, reason);
    });
  }

  private async onConnection(ws: VisitorSocket, visitorId: string, sessionFrame: object, after: string | undefined): Promise<void> {
    const conversationId = decodeClientMessage({ type: 'message', clientMessageId: 'x', text: 'x' }, this, visitorId).conversationId;
    watchPongs(ws);
    const replies = new ReplyStream((message) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: 'message', message: toClientMessage(message) })));
    ws.replies = replies;
    this.sockets.add(conversationId, ws);
    const budget = new FrameBudget(this.options.rateLimit);
    ws.on('message', (data, isBinary) => {
      const verdict = budget.take();
      if (verdict === 'accept') return void this.onFrame(ws, visitorId, isBinary ? null : data.toString(), budget);
      this.refuseFrame(ws, visitorId, verdict, isBinary ? null : data.toString());
    });
    ws.on('error', (err) => this.ctx.log.debug({ err }, 'visitor socket error'));

    ws.send(JSON.stringify(sessionFrame));
    let missed: UnifiedMessage[] = [];
    try {
      missed = await this.ctx.missedReplies(conversationId, after);
    } catch (err) {
      // The widget still gets live replies; the missed ones come with its next reconnect.
      this.ctx.log.error({ err, conversationId }, 'could not replay missed replies');
    }
    replies.replayed(missed);
  }

  /** A frame over the socket's budget: answered, not read further; the socket is closed when the flood goes on. */
  private refuseFrame(ws: WebSocket, visitorId: string, verdict: FrameVerdict, text: string | null): void {
    if (verdict === 'close') {
      this.ctx.log.warn({ visitorId }, 'web widget socket closed: too many frames');
      return void ws.close(1008, 'too many frames');
    }
    if (ws.readyState !== ws.OPEN) return;
    const clientMessageId = text === null ? undefined : clientMessageIdOf(text);
    ws.send(JSON.stringify({ type: 'error', error: 'rate_limited', ...(clientMessageId && { clientMessageId }), message: 'too many messages; send it again in a moment' }));
  }

  private async onFrame(ws: WebSocket, visitorId: string, text: string | null, budget: FrameBudget): Promise<void> {
    const reply = (frame: object) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(frame));
    if (text === null) return void reply({ type: 'error', error: 'binary_frame', message: 'send JSON text frames' });
    let frame: ClientFrame;
    try {
      frame = ClientFrame.parse(JSON.parse(text));
    } catch (err) {
      this.ctx.log.warn({ visitorId, reason: (err as Error).message }, 'web widget frame refused');
      return void reply({ type: 'error', error: 'invalid_frame', message: (err as Error).message.slice(0, 500) });
    }
    if (frame.type === 'ping') return void reply({ type: 'pong' });
    if (!budget.startIngest()) {
      if (budget.refuse() === 'close') return this.refuseFrame(ws, visitorId, 'close', null);
      return void reply({ type: 'error', error: 'rate_limited', clientMessageId: frame.clientMessageId, message: 'too many messages in flight; send it again in a moment' });
    }
    try {
      const message = decodeClientMessage(frame, this, visitorId);
      const result = await this.ctx.ingest(message, { peerId: visitorId, ...(frame.name && { peerName: frame.name }), context: {} });
      reply({ type: 'ack', clientMessageId: frame.clientMessageId, id: result.messageId, duplicate: result.duplicate });
    } catch (err) {
      // Not acknowledged: the widget keeps the message and sends it again, so nothing is lost.
      this.ctx.log.error({ err, visitorId }, 'web widget message not queued');
      reply({ type: 'error', error: 'unavailable', clientMessageId: frame.clientMessageId, message: 'try again' });
    } finally {
      budget.endIngest();
    }
  }

  async start(): Promise<void> {
    this.secret = this.options.secret ?? (await sharedSecret(this.ctx, 'visitor-token-secret'));
    this.unsubscribe = await this.ctx.subscribe(
      (message) => this.push(message),
      (conversationId) => this.sockets.holds(conversationId),
    );
    this.heartbeat = heartbeat(() => this.sockets.all(), this.options.heartbeatSeconds);
  }

  private push(message: UnifiedMessage): void {
    for (const ws of this.sockets.of(message.conversationId)) ws.replies?.live(message);
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.unsubscribe?.();
    for (const ws of this.sockets.all()) ws.close(1001, 'gateway shutting down');
    this.wss.close();
  }

  /** Delivery = keep in the conversation's outbox + publish to whichever process holds the visitor's sockets. */
  async send(message: UnifiedMessage) {
    await this.ctx.publish(message);
    return {};
  }

  health() {
    return { ok: true, detail: `${this.sockets.counts().sockets} sockets` };
  }
}

/** The clientMessageId of a frame not parsed in full (refused before reading), when it has a usable one. */
function clientMessageIdOf(text: string): string | undefined {
  try {
    const id = (JSON.parse(text) as { clientMessageId?: unknown }).clientMessageId;
    return typeof id === 'string' && id.length <= 64 ? id : undefined;
  } catch {
    return undefined;
  }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export default defineAdapter({
  type: 'web',
  description: 'Embeddable web chat widget over WebSocket (/webhooks/<id>/ws, script at /webhooks/<id>/widget.js)',
  options: WebOptions,
  create: (instance, ctx) => new WebAdapter(instance.id, instance.type, instance.options, ctx),
});
