/**
 * The few Chatwoot application-API calls the connector needs (https://developers.chatwoot.com/api-reference):
 * every call carries the `api_access_token` header and lives under /api/v1/accounts/{account_id}.
 */
import { isRetryableStatus } from '../../webhooks/sender.js';
import type { ChatwootConfig } from './config.js';

export class ChatwootError extends Error {
  constructor(
    readonly status: number | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'ChatwootError';
  }
  /** Network failures and the answers a webhook receiver is retried on are worth retrying; other 4xx are not. */
  get retryable(): boolean {
    return this.status === undefined || isRetryableStatus(this.status);
  }
}

export interface ChatwootContact {
  id: number;
  name?: string;
  identifier?: string | null;
  contact_inboxes?: Array<{ source_id: string; inbox?: { id: number } }>;
}

export class ChatwootClient {
  constructor(private readonly config: ChatwootConfig) {}

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const url = `${this.config.baseUrl.replace(/\/$/, '')}/api/v1/accounts/${this.config.accountId}${path}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { api_access_token: this.config.apiAccessToken, 'content-type': 'application/json', accept: 'application/json' },
        ...(body !== undefined && { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.config.timeoutMs),
      });
    } catch (err) {
      throw new ChatwootError(undefined, `${method} ${path}: ${(err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) throw new ChatwootError(res.status, `${method} ${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
    return (text ? JSON.parse(text) : {}) as T;
  }

  /** GET /contacts/search?q= — matches name, e-mail, phone and identifier. */
  async searchContacts(q: string): Promise<ChatwootContact[]> {
    const res = await this.call<{ payload: ChatwootContact[] }>('GET', `/contacts/search?q=${encodeURIComponent(q)}`);
    return res.payload ?? [];
  }

  /** POST /contacts with inbox_id: creates the contact and its contact inbox (whose source_id starts conversations). */
  async createContact(input: { name: string; identifier: string; custom_attributes: Record<string, string> }): Promise<{ contact: ChatwootContact; sourceId: string }> {
    const res = await this.call<{ payload: { contact: ChatwootContact; contact_inbox: { source_id: string } } }>('POST', '/contacts', {
      inbox_id: this.config.inboxId,
      ...input,
    });
    return { contact: res.payload.contact, sourceId: res.payload.contact_inbox.source_id };
  }

  /** POST /contacts/{id}/contact_inboxes — links an existing contact to the inbox. */
  async createContactInbox(contactId: number): Promise<string> {
    const res = await this.call<{ source_id: string }>('POST', `/contacts/${contactId}/contact_inboxes`, { inbox_id: this.config.inboxId });
    return res.source_id;
  }

  /** POST /conversations — returns the conversation id used in later paths. */
  async createConversation(input: { sourceId: string; contactId: number; customAttributes: Record<string, string> }): Promise<number> {
    const res = await this.call<{ id: number }>('POST', '/conversations', {
      source_id: input.sourceId,
      inbox_id: this.config.inboxId,
      contact_id: input.contactId,
      status: 'open',
      custom_attributes: input.customAttributes,
    });
    return res.id;
  }

  /** POST /conversations/{id}/messages — `incoming` for the customer, private notes for history and context. */
  async createMessage(conversationId: number, message: { content: string; message_type: 'incoming' | 'outgoing'; private: boolean }): Promise<number> {
    const res = await this.call<{ id: number }>('POST', `/conversations/${conversationId}/messages`, { ...message, content_type: 'text' });
    return res.id;
  }

  /** POST /conversations/{id}/toggle_status */
  async setStatus(conversationId: number, status: 'open' | 'resolved' | 'pending'): Promise<void> {
    await this.call('POST', `/conversations/${conversationId}/toggle_status`, { status });
  }
}
