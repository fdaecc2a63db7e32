/**
 * Chatwoot connector. Outbound it is a webhook "sink" (so it inherits per-conversation order, retries with
 * backoff, the delivery log and dead-letter replay): on `conversation.handoff_requested` it finds or creates the
 * contact and a conversation in the configured API inbox and posts the transcript — customer messages as
 * `incoming`, bot replies and the hand-off context as private notes, so Chatwoot never sends them anywhere; later
 * customer messages (`message.created`) follow as `incoming`; a hand-back or close on the gateway side resolves
 * the Chatwoot conversation. Inbound it accepts Chatwoot's account webhook at /v1/chatwoot/webhook/<token>:
 * `message_created` with message_type `outgoing` (not private) is an agent reply and goes to the customer on their
 * own channel; `conversation_status_changed` to `resolved` hands back to the bot or closes, as configured.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { RedisClient } from '../../../adapters/types.js';
import type { ConversationStore } from '../../conversations.js';
import { HttpError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { contentAsText, type Content, type UnifiedMessage } from '../../message.js';
import type { Transcripts } from '../../transcript.js';
import type { WebhookEventType } from '../../webhooks/config.js';
import type { WebhookEnvelope, WebhookSink } from '../../webhooks/dispatcher.js';
import type { AttemptOutcome } from '../../webhooks/sender.js';
import type { StoredEvent } from '../../webhooks/store.js';
import type { HandoffService } from '../service.js';
import { ChatwootClient, ChatwootError } from './client.js';
import type { ChatwootConfig } from './config.js';

export interface ChatwootDeps {
  config: ChatwootConfig;
  redis: RedisClient;
  prefix: string;
  conversations: ConversationStore;
  transcripts: Transcripts;
  handoff: HandoffService;
  log: Logger;
  client?: ChatwootClient;
}

const SINK_EVENTS: readonly WebhookEventType[] = ['conversation.handoff_requested', 'message.created', 'conversation.state_changed'];
const TTL = 30 * 24 * 3600;

export class ChatwootConnector {
  private readonly client: ChatwootClient;
  constructor(private readonly deps: ChatwootDeps) {
    this.client = deps.client ?? new ChatwootClient(deps.config);
  }

  private key(suffix: string) {
    return `${this.deps.prefix}:chatwoot:${suffix}`;
  }

  sink(): WebhookSink {
    return { id: 'chatwoot', events: SINK_EVENTS, deliver: (event, envelope) => this.deliver(event, envelope) };
  }

  private async deliver(event: StoredEvent, envelope: WebhookEnvelope): Promise<AttemptOutcome> {
    const started = performance.now();
    const latencyMs = () => Math.round(performance.now() - started);
    try {
      const data = envelope.data as Record<string, any>;
      if (event.type === 'conversation.handoff_requested') {
        const cw = await this.ensureConversation(event.conversationId);
        const context = [
          `Hand-off from the bot: ${data.reason}`,
          `priority ${data.priority}${data.team ? `, team ${data.team}` : ''}`,
          data.intent?.label ? `intent ${data.intent.label}` : undefined,
          `channel ${data.channel?.id} (${data.channel?.type})`,
        ].filter(Boolean);
        await this.postOnce(cw, `handoff:${event.id}`, { content: context.join(' · '), message_type: 'outgoing', private: true });
        for (const m of (data.transcript ?? []) as UnifiedMessage[]) await this.postMessage(cw, m);
      } else if (event.type === 'message.created') {
        const cw = await this.ensureConversation(event.conversationId);
        await this.postMessage(cw, data.message as UnifiedMessage);
      } else if (event.type === 'conversation.state_changed') {
        const change = data.change as { to: string; by: string };
        const cw = await this.deps.redis.get(this.key(`conv:${event.conversationId}`));
        // Resolve in Chatwoot when the gateway side ended the hand-off (not when Chatwoot itself did).
        if (cw && (change.to === 'bot' || change.to === 'closed') && !change.by.startsWith('chatwoot')) await this.client.setStatus(Number(cw), 'resolved');
      }
      return { kind: 'delivered', status: 200, latencyMs: latencyMs() };
    } catch (err) {
      if (err instanceof ChatwootError) {
        if (err.retryable) return { kind: 'retry', error: err.message, latencyMs: latencyMs(), ...(err.status !== undefined && { status: err.status }) };
        return { kind: 'rejected', status: err.status ?? 0, error: err.message, latencyMs: latencyMs() };
      }
      throw err;
    }
  }

  /** The Chatwoot conversation for a gateway conversation, created (with its contact) on first need. */
  private async ensureConversation(conversationId: string): Promise<number> {
    const known = await this.deps.redis.get(this.key(`conv:${conversationId}`));
    if (known) return Number(known);
    const conversation = await this.deps.conversations.get(conversationId);
    if (!conversation) throw new ChatwootError(404, `gateway conversation ${conversationId} is gone`);
    const { reference } = conversation;
    const identifier = `${reference.channel}:${reference.peerId}`;
    const found = (await this.client.searchContacts(identifier)).find((c) => c.identifier === identifier);
    let contactId: number;
    let sourceId: string;
    if (found) {
      contactId = found.id;
      sourceId = found.contact_inboxes?.find((ci) => ci.inbox?.id === this.deps.config.inboxId)?.source_id ?? (await this.client.createContactInbox(found.id));
    } else {
      const created = await this.client.createContact({
        name: reference.peerName ?? identifier,
        identifier,
        custom_attributes: { channel: reference.channel, channel_type: reference.channelType },
      });
      contactId = created.contact.id;
      sourceId = created.sourceId;
    }
    const cw = await this.client.createConversation({
      sourceId,
      contactId,
      customAttributes: { gateway_conversation_id: conversationId, channel: reference.channel },
    });
    await this.deps.redis.set(this.key(`conv:${conversationId}`), String(cw), 'EX', TTL);
    await this.deps.redis.set(this.key(`gw:${cw}`), conversationId, 'EX', TTL);
    this.deps.log.info({ conv: conversationId, chatwootConversation: cw, contactId }, 'chatwoot conversation created');
    return cw;
  }

  private async postMessage(cw: number, m: UnifiedMessage): Promise<void> {
    const text = contentAsText(m.content);
    if (m.direction === 'in') return this.postOnce(cw, m.id, { content: text, message_type: 'incoming', private: false });
    const who = m.sender.role === 'agent' ? `agent ${m.sender.name ?? m.sender.id}` : m.sender.role;
    return this.postOnce(cw, m.id, { content: `[${who}] ${text}`, message_type: 'outgoing', private: true });
  }

  /** Posts each gateway message once even when a delivery is retried half-way; remembers Chatwoot's id to ignore the echo. */
  private async postOnce(cw: number, gatewayId: string, message: { content: string; message_type: 'incoming' | 'outgoing'; private: boolean }) {
    const postedKey = this.key(`posted:${cw}`);
    if (await this.deps.redis.sismember(postedKey, gatewayId)) return;
    const id = await this.client.createMessage(cw, message);
    await this.deps.redis.sadd(postedKey, gatewayId);
    await this.deps.redis.expire(postedKey, TTL);
    await this.deps.redis.set(this.key(`ours:${id}`), '1', 'EX', TTL);
  }

  // ── Chatwoot → gateway ──────────────────────────────────────────────────────────────────────────────────────
  routes(router: Router): void {
    const expected = createHash('sha256').update(this.deps.config.webhookToken).digest();
    // The token is checked before the body is read: an unauthenticated request gets no parsing work done for it.
    const checkToken = (req: Request, _res: Response, next: NextFunction) => {
      const given = createHash('sha256').update(String(req.params.token)).digest();
      next(timingSafeEqual(given, expected) ? undefined : new HttpError(401, 'invalid_webhook_token', 'unknown Chatwoot webhook token'));
    };
    router.post('/chatwoot/webhook/:token', checkToken, express.json({ limit: '1mb', type: () => true }), async (req, res) => {
      const body = req.body as Record<string, any> | undefined;
      if (!body || typeof body.event !== 'string') throw new HttpError(400, 'invalid_chatwoot_event', 'expected a Chatwoot webhook payload with "event"');
      const outcome = await this.onWebhook(body);
      res.json({ ok: true, outcome });
    });
  }

  private async onWebhook(body: Record<string, any>): Promise<string> {
    const { log, redis, handoff } = this.deps;
    if (body.event === 'message_created') {
      if (body.message_type !== 'outgoing' && body.message_type !== 1) return 'ignored: not an agent message';
      if (body.private === true) return 'ignored: private note';
      if (await redis.exists(this.key(`ours:${body.id}`))) return 'ignored: posted by the gateway';
      const conversationId = await redis.get(this.key(`gw:${body.conversation?.id}`));
      if (!conversationId) return 'ignored: not a gateway conversation';
      // Chatwoot may deliver a webhook more than once: one reply per Chatwoot message id.
      const fresh = await redis.set(this.key(`seen:${body.id}`), '1', 'EX', TTL, 'NX');
      if (fresh !== 'OK') return 'ignored: already delivered';
      const agentName: string = body.sender?.name ?? 'agent';
      const contents = this.contents(body);
      try {
        for (const content of contents) {
          await handoff.agentReply(conversationId, content, { id: `chatwoot:${body.sender?.id ?? 'agent'}`, name: agentName }, `agent:${agentName} (chatwoot)`);
        }
      } catch (err) {
        await redis.del(this.key(`seen:${body.id}`)); // let Chatwoot's retry (or a replay) try again
        throw err;
      }
      log.info({ conv: conversationId, chatwootMessage: body.id, parts: contents.length }, 'chatwoot agent reply queued');
      return 'delivered';
    }
    if (body.event === 'conversation_status_changed') {
      const conversationId = await redis.get(this.key(`gw:${body.id}`));
      if (!conversationId) return 'ignored: not a gateway conversation';
      if (body.status !== 'resolved') return `ignored: status ${body.status}`;
      const to = this.deps.config.onResolve === 'close' ? 'closed' : 'bot';
      try {
        await handoff.transition(conversationId, to, 'chatwoot', 'resolved in Chatwoot', ['handoff_pending', 'agent']);
      } catch (err) {
        if (err instanceof Error && err.name === 'TransitionError') return 'ignored: not with an agent';
        throw err;
      }
      return to === 'bot' ? 'handed back' : 'closed';
    }
    return `ignored: event ${body.event}`;
  }

  private contents(body: Record<string, any>): Content[] {
    const out: Content[] = [];
    if (typeof body.content === 'string' && body.content.length > 0) out.push({ type: 'text', text: body.content });
    for (const a of (body.attachments ?? []) as Array<{ file_type?: string; data_url?: string }>) {
      if (!a.data_url) continue;
      out.push(a.file_type === 'image' ? { type: 'image', url: a.data_url } : { type: 'file', url: a.data_url });
    }
    return out;
  }
}
