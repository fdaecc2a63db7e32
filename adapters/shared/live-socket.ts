/** Helpers for adapters that hold WebSockets (web widget, app channel). */
import { randomBytes } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { AdapterContext } from '../types.js';

/** Answers a refused WebSocket upgrade with a plain HTTP error and the gateway's JSON error body. */
export function refuseUpgrade(socket: Duplex, status: number, error: string, message: string, log: Logger): void {
  log.warn({ status, error, reason: message }, 'websocket upgrade refused');
  const body = JSON.stringify({ error, message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** A random secret created once per channel and shared by every process through Redis (SET NX). */
export async function sharedSecret(ctx: AdapterContext, name: string): Promise<string> {
  const key = `${ctx.keyPrefix}${name}`;
  await ctx.redis.set(key, randomBytes(32).toString('base64url'), 'NX');
  const secret = await ctx.redis.get(key);
  if (!secret) throw new Error(`could not read ${key}`);
  return secret;
}

/**
 * The open sockets of each conversation this process holds. A socket leaves when it closes, and a conversation with
 * it when its last socket does, so the map never outgrows the connections actually open.
 */
export class ConversationSockets<S extends { on(event: 'close', listener: () => void): unknown }> {
  private readonly byConversation = new Map<string, Set<S>>();

  add(conversationId: string, socket: S): void {
    let set = this.byConversation.get(conversationId);
    if (!set) this.byConversation.set(conversationId, (set = new Set()));
    set.add(socket);
    socket.on('close', () => {
      set.delete(socket);
      if (set.size === 0 && this.byConversation.get(conversationId) === set) this.byConversation.delete(conversationId);
    });
  }

  /** The conversation's open sockets (empty when this process holds none). */
  of(conversationId: string): Iterable<S> {
    return this.byConversation.get(conversationId) ?? [];
  }

  holds(conversationId: string): boolean {
    return this.byConversation.has(conversationId);
  }

  *all(): Iterable<S> {
    for (const set of this.byConversation.values()) yield* set;
  }

  /** Open sockets, and the conversations they belong to. */
  counts(): { sockets: number; conversations: number } {
    let sockets = 0;
    for (const set of this.byConversation.values()) sockets += set.size;
    return { sockets, conversations: this.byConversation.size };
  }
}
