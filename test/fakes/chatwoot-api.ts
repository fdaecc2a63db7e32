/**
 * A loopback Chatwoot that follows the application API documentation (developers.chatwoot.com/api-reference):
 * `api_access_token` header (401 without it), /api/v1/accounts/{account_id}/contacts (+ /search, /{id}/contact_inboxes),
 * /conversations, /conversations/{id}/messages, /conversations/{id}/toggle_status, with the documented response
 * shapes. `agentReplies()` / `resolve()` act like an agent in the dashboard and POST the account webhook payloads
 * (`message_created`, `conversation_status_changed`) Chatwoot sends.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';

interface Contact {
  id: number;
  name: string;
  identifier: string;
  custom_attributes: Record<string, string>;
  contact_inboxes: Array<{ source_id: string; inbox: { id: number } }>;
}
interface Message {
  id: number;
  content: string;
  message_type: 'incoming' | 'outgoing';
  private: boolean;
  conversation_id: number;
}
interface Conversation {
  id: number;
  inbox_id: number;
  contact_id: number;
  source_id: string;
  status: 'open' | 'resolved' | 'pending';
  custom_attributes: Record<string, string>;
  messages: Message[];
}

export async function startFakeChatwoot(opts: { accountId: number; inboxId: number; token: string }) {
  const contacts: Contact[] = [];
  const conversations: Conversation[] = [];
  const calls: Array<{ method: string; path: string; body: any }> = [];
  let ids = 100;
  let webhookUrl = '';

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  async function handle(req: IncomingMessage, res: ServerResponse, raw: string) {
    const url = new URL(req.url ?? '/', 'http://x');
    const body = raw ? JSON.parse(raw) : undefined;
    calls.push({ method: req.method ?? '', path: url.pathname + url.search, body });
    if (req.headers['api_access_token'] !== opts.token) return send(res, 401, { error: 'You need to sign in or sign up before continuing.' });
    const base = `/api/v1/accounts/${opts.accountId}`;
    if (!url.pathname.startsWith(base)) return send(res, 404, { error: 'account not found' });
    const path = url.pathname.slice(base.length);
    let m: RegExpMatchArray | null;

    if (req.method === 'GET' && path === '/contacts/search') {
      const q = url.searchParams.get('q') ?? '';
      return send(res, 200, { meta: { count: 0 }, payload: contacts.filter((c) => c.identifier === q || c.name.includes(q)) });
    }
    if (req.method === 'POST' && path === '/contacts') {
      if (body.inbox_id !== opts.inboxId) return send(res, 422, { message: 'Inbox not found' });
      const contact: Contact = { id: ids++, name: body.name, identifier: body.identifier, custom_attributes: body.custom_attributes ?? {}, contact_inboxes: [] };
      const contactInbox = { source_id: randomUUID(), inbox: { id: opts.inboxId } };
      contact.contact_inboxes.push(contactInbox);
      contacts.push(contact);
      return send(res, 200, { payload: { contact, contact_inbox: contactInbox } });
    }
    if (req.method === 'POST' && (m = path.match(/^\/contacts\/(\d+)\/contact_inboxes$/))) {
      const contact = contacts.find((c) => c.id === Number(m![1]));
      if (!contact) return send(res, 404, { error: 'not found' });
      const contactInbox = { source_id: body.source_id ?? randomUUID(), inbox: { id: body.inbox_id } };
      contact.contact_inboxes.push(contactInbox);
      return send(res, 200, contactInbox);
    }
    if (req.method === 'POST' && path === '/conversations') {
      const contact = contacts.find((c) => c.id === body.contact_id);
      if (!contact || !contact.contact_inboxes.some((ci) => ci.source_id === body.source_id)) return send(res, 422, { message: 'source_id does not belong to the contact' });
      const conversation: Conversation = {
        id: ids++,
        inbox_id: body.inbox_id,
        contact_id: body.contact_id,
        source_id: body.source_id,
        status: body.status ?? 'open',
        custom_attributes: body.custom_attributes ?? {},
        messages: [],
      };
      conversations.push(conversation);
      return send(res, 200, { id: conversation.id, account_id: opts.accountId, inbox_id: conversation.inbox_id });
    }
    if (req.method === 'POST' && (m = path.match(/^\/conversations\/(\d+)\/messages$/))) {
      const conversation = conversations.find((c) => c.id === Number(m![1]));
      if (!conversation) return send(res, 404, { error: 'not found' });
      const message: Message = { id: ids++, content: body.content, message_type: body.message_type ?? 'outgoing', private: body.private ?? false, conversation_id: conversation.id };
      conversation.messages.push(message);
      send(res, 200, { ...message, content_type: body.content_type ?? 'text' });
      // Like Chatwoot, every created message is also announced on the account webhook.
      void emit({ event: 'message_created', ...message, sender: { id: 1, name: 'api' }, conversation: { id: conversation.id, status: conversation.status } });
      return;
    }
    if (req.method === 'POST' && (m = path.match(/^\/conversations\/(\d+)\/toggle_status$/))) {
      const conversation = conversations.find((c) => c.id === Number(m![1]));
      if (!conversation) return send(res, 404, { error: 'not found' });
      conversation.status = body.status;
      return send(res, 200, { meta: {}, payload: { success: true, conversation_id: conversation.id, current_status: conversation.status } });
    }
    send(res, 404, { error: `no route ${req.method} ${path}` });
  }

  async function emit(payload: Record<string, unknown>): Promise<number> {
    if (!webhookUrl) return 0;
    const res = await fetch(webhookUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
    await res.arrayBuffer();
    return res.status;
  }

  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c));
    req.on('end', () => void handle(req, res, raw).catch((err) => send(res, 500, { error: String(err) })));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    contacts,
    conversations,
    calls,
    setWebhookUrl(u: string) {
      webhookUrl = u;
    },
    /** An agent answers in the dashboard: an outgoing message and its message_created webhook. */
    async agentReplies(conversationId: number, content: string, agent = { id: 7, name: 'Chen' }) {
      const conversation = conversations.find((c) => c.id === conversationId)!;
      const message: Message = { id: ids++, content, message_type: 'outgoing', private: false, conversation_id: conversationId };
      conversation.messages.push(message);
      const status = await emit({ event: 'message_created', ...message, sender: { ...agent, type: 'user' }, conversation: { id: conversationId, status: conversation.status }, account: { id: opts.accountId } });
      return { message, status };
    },
    /** An agent resolves the conversation: conversation_status_changed with the conversation attributes. */
    async resolve(conversationId: number) {
      const conversation = conversations.find((c) => c.id === conversationId)!;
      conversation.status = 'resolved';
      return emit({ event: 'conversation_status_changed', id: conversationId, inbox_id: conversation.inbox_id, status: 'resolved', account_id: opts.accountId });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
