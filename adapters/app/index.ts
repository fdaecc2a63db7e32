/**
 * App channel, for mobile apps and back ends: they POST signed messages to /webhooks/<id>/messages and get the
 * replies POSTed (signed the same way) to their callback URL, and/or live over /webhooks/<id>/ws.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AxiosInstance } from 'axios';
import { reply, type WebhookReply, type WebhookRequest, type WebhookRoute } from '../http.js';
import { WebSocketServer } from 'ws';
import { z } from 'zod';
import { parseJsonBody, unauthorized } from '../../gateway/errors.js';
import type { ContentType, UnifiedMessage } from '../../gateway/message.js';
import { createHttpClient, deliveryErrorForException, deliveryErrorForStatus, postJson } from '../shared/http-client.js';
import { ConversationSockets, refuseUpgrade } from '../shared/live-socket.js';
import { heartbeat, ReplyStream, watchPongs, type HeartbeatSocket } from '../shared/socket-session.js';
import { defineAdapter, type AdapterContext, type ChannelAdapter } from '../types.js';
import type { ConversationReference } from '../../gateway/conversation-reference.js';
import { AppInbound, appConversationId, decodeAppMessage } from './decode.js';
import { HEADER_APP, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign, signedHeaders, verify } from './signature.js';

export const AppOptions = z.object({
  apps: z
    .array(
      z.object({
        id: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).describe('App id, sent in X-Gateway-App'),
        secret: z.string().min(16).describe('Shared HMAC key of this app'),
        callbackUrl: z.url().optional().describe('Where replies are POSTed; absent: WebSocket only'),
      }),
    )
    .min(1)
    .describe('Apps allowed to post, each with its own key'),
  toleranceSeconds: z.number().int().positive().default(300).describe('Largest clock skew accepted on X-Gateway-Timestamp'),
  timeoutMs: z.number().int().positive().default(10_000).describe('Callback request timeout'),
  heartbeatSeconds: z.number().int().min(1).default(30).describe('WebSocket ping interval; a socket missing one pong is closed'),
});
export type AppOptions = z.infer<typeof AppOptions>;

const CAPABILITIES: ReadonlySet<ContentType> = new Set(['text', 'image', 'file', 'audio', 'video', 'location', 'link', 'event']);

interface AppSocket extends HeartbeatSocket {
  replies?: ReplyStream;
}

class AppAdapter implements ChannelAdapter {
  readonly capabilities = CAPABILITIES;
  private readonly apps: Map<string, AppOptions['apps'][number]>;
  private readonly http: AxiosInstance;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  private readonly sockets = new ConversationSockets<AppSocket>();
  private unsubscribe: (() => Promise<void>) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    readonly id: string,
    readonly type: string,
    private readonly options: AppOptions,
    private readonly ctx: AdapterContext,
  ) {
    this.apps = new Map(options.apps.map((a) => [a.id, a]));
    this.http = createHttpClient(undefined, options.timeoutMs);
  }

  routes(): WebhookRoute[] {
    return [{ method: 'POST', path: '/messages', handle: (req) => this.receive(req) }];
  }

  private async receive(req: WebhookRequest): Promise<WebhookReply> {
    const appId = req.header(HEADER_APP);
    const app = appId === undefined ? undefined : this.apps.get(appId);
    if (!app) throw unauthorized('unknown_app', `unknown or missing ${HEADER_APP} header`);
    const check = verify(app.secret, req.header(HEADER_TIMESTAMP), req.header(HEADER_SIGNATURE), req.body, this.options.toleranceSeconds);
    if (!check.ok) throw unauthorized(check.reason, signatureHint(check.reason));
    const body = AppInbound.parse(parseJsonBody(req.body));
    const message = decodeAppMessage(body, this, app.id);
    const result = await this.ctx.ingest(message, {
      peerId: body.userId,
      ...(body.userName !== undefined && { peerName: body.userName }),
      context: { appId: app.id },
    });
    return reply.json({ id: result.messageId, duplicate: result.duplicate, conversationId: message.conversationId }, 202);
  }

  /** `/webhooks/<id>/ws?app=&user=&ts=&sig=` where sig signs "<ts>.<user>" with the app's key; `after` replays. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== `/webhooks/${this.id}/ws`) return false;
    // A throw is answered with a 500 by the gateway's upgrade dispatch (gateway/gateway.ts), for every adapter.
    this.accept(req, socket, head, url.searchParams);
    return true;
  }

  private accept(req: IncomingMessage, socket: Duplex, head: Buffer, q: URLSearchParams): void {
    const app = this.apps.get(q.get('app') ?? '');
    const user = q.get('user') ?? '';
    if (!app || !user) return refuseUpgrade(socket, 401, 'unknown_app', 'app and user query parameters are required', this.ctx.log);
    const check = verify(app.secret, q.get('ts') ?? undefined, q.get('sig') ?? undefined, user, this.options.toleranceSeconds);
    if (!check.ok) return refuseUpgrade(socket, 401, check.reason, signatureHint(check.reason), this.ctx.log);
    const conversationId = appConversationId(this.id, app.id, user);
    const after = q.get('after') ?? undefined;
    this.wss.handleUpgrade(req, socket, head, (ws) => void this.onConnection(ws, conversationId, after));
  }

  /** Joins the live set first (nothing published meanwhile is lost), then replays; live replies wait for the replay. */
  private async onConnection(ws: AppSocket, conversationId: string, after: string | undefined): Promise<void> {
    watchPongs(ws);
    ws.on('error', (err) => this.ctx.log.debug({ err }, 'app socket error'));
    const replies = new ReplyStream((message) => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: 'message', message: callbackView(message) })));
    ws.replies = replies;
    this.sockets.add(conversationId, ws);
    let missed: UnifiedMessage[];
    try {
      missed = await this.ctx.missedReplies(conversationId, after);
    } catch (err) {
      // A client left without its missed replies would believe it has them all: it must reconnect with `after`.
      this.ctx.log.error({ err, conversationId }, 'could not replay missed replies; app socket closed');
      if (ws.readyState === ws.OPEN) {
        ws.send(JSON.stringify({ type: 'error', error: 'replay_failed', message: 'missed replies could not be read; reconnect with the same after' }));
      }
      ws.close(1011, 'replay failed');
      return;
    }
    replies.replayed(missed);
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.ctx.subscribe(
      (message) => {
        for (const ws of this.sockets.of(message.conversationId)) ws.replies?.live(message);
      },
      (conversationId) => this.sockets.holds(conversationId),
    );
    this.heartbeat = heartbeat(() => this.sockets.all(), this.options.heartbeatSeconds);
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.unsubscribe?.();
    for (const ws of this.sockets.all()) ws.close(1001, 'gateway shutting down');
    this.wss.close();
  }

  async send(message: UnifiedMessage, reference: ConversationReference) {
    const app = this.apps.get(reference.context.appId ?? '');
    if (!app) throw deliveryErrorForStatus(404, `app ${reference.context.appId} is not configured`);
    if (app.callbackUrl) {
      const body = JSON.stringify({ type: 'message', userId: reference.peerId, message: callbackView(message) });
      const what = `callback to app ${app.id}`;
      let status: number;
      let retryAfter: string | undefined;
      try {
        const res = await postJson(this.http, app.callbackUrl, body, { headers: signedHeaders(app.id, app.secret, body) });
        status = res.status;
        retryAfter = res.headers['retry-after'] as string | undefined;
      } catch (err) {
        throw deliveryErrorForException(err, what);
      }
      const error = deliveryErrorForStatus(status, what, retryAfter);
      if (error) throw error;
      // The app has it: the fan-out to its sockets (and outbox) goes with the delivery's record.
      return { live: true };
    }
    // No callback: the sockets and the outbox are the delivery.
    await this.ctx.publish(message);
    return {};
  }

  health() {
    const { sockets, conversations } = this.sockets.counts();
    return { ok: true, detail: `${sockets} sockets in ${conversations} conversations` };
  }
}

function signatureHint(reason: string): string {
  switch (reason) {
    case 'stale_timestamp':
      return `${HEADER_TIMESTAMP} is too far from the gateway's clock (replayed or skewed request)`;
    case 'missing_signature':
      return `${HEADER_TIMESTAMP} (Unix seconds) and ${HEADER_SIGNATURE} are required`;
    default:
      return `${HEADER_SIGNATURE} does not match; expected v1=hex(HMAC-SHA256(secret, "<timestamp>.<raw body>"))`;
  }
}

/** What an app receives for a reply. */
function callbackView(message: UnifiedMessage) {
  return {
    id: message.id,
    conversationId: message.conversationId,
    sender: message.sender,
    content: message.content,
    timestamp: message.timestamp,
    ...(message.replyTo !== undefined && { replyTo: message.replyTo }),
  };
}

export { sign as signAppRequest };

export default defineAdapter({
  type: 'app',
  description: 'Mobile/back-end apps: signed REST in (/webhooks/<id>/messages), signed callback + WebSocket out',
  options: AppOptions,
  create: (instance, ctx) => new AppAdapter(instance.id, instance.type, instance.options, ctx),
});
