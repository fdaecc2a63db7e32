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
