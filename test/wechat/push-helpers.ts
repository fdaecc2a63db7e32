/** Builds WeChat pushes the way the platform does: signed query, optional AES envelope, XML or JSON. */
import { randomBytes } from 'node:crypto';
import { buildXml } from '../../adapters/shared/xml.js';
import { createWechatCrypto } from '../../adapters/shared/wechat-crypto.js';
import type { TimestampWindow } from '../../adapters/shared/wechat-webhook.js';

export interface PushApp {
  token: string;
  encodingAESKey: string;
  appId: string;
}

export function signedQuery(app: PushApp, timestamp: string, nonce: string, encrypt?: string): URLSearchParams {
  const c = createWechatCrypto({ token: app.token, receiveId: app.appId });
  const q = new URLSearchParams({ signature: c.signature(timestamp, nonce), timestamp, nonce, openid: 'ignored-by-gateway' });
  if (encrypt !== undefined) {
    q.set('encrypt_type', 'aes');
    q.set('msg_signature', c.signature(timestamp, nonce, encrypt));
  }
  return q;
}

/** An encrypted push: `<xml><ToUserName/><Encrypt/></xml>` (or the JSON equivalent) plus its signed query. */
export function encryptedPush(app: PushApp, inner: string, format: 'xml' | 'json', toUserName = 'gh_0123456789ab') {
  const crypto = createWechatCrypto({ token: app.token, encodingAESKey: app.encodingAESKey, receiveId: app.appId });
  const encrypt = crypto.encrypt(inner);
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = String(randomBytes(4).readUInt32BE());
  const body = format === 'xml' ? buildXml({ ToUserName: toUserName, Encrypt: encrypt }) : JSON.stringify({ ToUserName: toUserName, Encrypt: encrypt });
  return { query: signedQuery(app, timestamp, nonce, encrypt), body };
}

let msgId = 7_300_000_000_000_000_000n;
/** A fresh 64-bit MsgId (above 2^53, so precision loss would show). */
export function nextMsgId(): string {
  msgId += 1n;
  return msgId.toString();
}

export function now(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Runs `send` while the channel's signed-timestamp check sees `unixSeconds` (+1 s) as now: the official samples were
 * signed in 2014/2024, and a request that old is otherwise refused as a replay.
 */
export async function atSampleTime<T>(window: TimestampWindow, unixSeconds: string | number, send: () => Promise<T>): Promise<T> {
  const real = window.now;
  window.now = () => (Number(unixSeconds) + 1) * 1000;
  try {
    return await send();
  } finally {
    window.now = real;
  }
}
