/**
 * The WeChat push endpoint (mini-program 消息推送, official account 服务器配置): URL-verification handshake and
 * opening a pushed message in plaintext, compatible or safe mode, as XML or JSON.
 *
 * - GET: `signature` = sha1(sort(token, timestamp, nonce)); the answer is `echostr`, unchanged. (If the platform
 *   sends `msg_signature`, the echostr is encrypted: it is verified over the 4 values and decrypted.)
 * - POST, plaintext: `signature` is checked; the body is the message.
 * - POST, safe/compatible: the body carries `Encrypt`; `msg_signature` over (token, timestamp, nonce, Encrypt) is
 *   checked — the doc says not to rely on the plain `signature` then — and the decrypted message must name our appid.
 * In safe mode a body without `Encrypt` is refused: accepting it would let anyone who learnt the token skip the key.
 *
 * The signed `timestamp` must be within a tolerance of the gateway clock (TimestampWindow): the signature covers it,
 * so a captured request replayed later — after dedupe has forgotten its MsgId — is refused instead of processed anew.
 */
import type { Logger } from 'pino';
import { badRequest, HttpError, unauthorized } from '../../gateway/errors.js';
import { createWechatCrypto, WechatCryptoError, type WechatCrypto } from './wechat-crypto.js';
import { parseWechatXml, XML_MAX_BYTES } from './xml.js';

export type MessageMode = 'plain' | 'compatible' | 'safe';
export type DataFormat = 'auto' | 'xml' | 'json';

export interface WechatEndpointOptions {
  token: string;
  encodingAESKey?: string | undefined;
  appId: string;
  messageMode: MessageMode;
  dataFormat: DataFormat;
  maxBytes?: number;
  /** How far the signed timestamp may be from now (default TIMESTAMP_TOLERANCE_SECONDS). */
  timestampToleranceSeconds?: number;
  log?: Logger;
}

type Query = Record<string, unknown>;

/** Default tolerance: WeChat and WeCom retry within seconds (3 tries, 5 s apart), so 5 minutes leaves room for skew. */
export const TIMESTAMP_TOLERANCE_SECONDS = 300;

/**
 * Refuses a signed request whose timestamp is too far from now: a replay of a captured request, or a clock far off.
 * Called after the signature check, so the timestamp is the one the platform signed. `now` is replaceable (tests
 * replaying the official 2014 samples set it to the sample's time).
 */
export class TimestampWindow {
  now: () => number = Date.now;

  constructor(
    private readonly toleranceSeconds: number,
    private readonly log?: Logger,
  ) {}

  check(timestamp: string | undefined, what: string): void {
    const seconds = timestamp !== undefined && /^\d{1,12}$/.test(timestamp) ? Number(timestamp) : NaN;
    const skew = Math.round(this.now() / 1000 - seconds);
    if (Number.isFinite(skew) && Math.abs(skew) <= this.toleranceSeconds) return;
    this.log?.warn({ what, timestamp, skewSeconds: Number.isFinite(skew) ? skew : undefined, toleranceSeconds: this.toleranceSeconds }, 'signed request outside the timestamp window refused (replay or clock skew)');
    throw unauthorized(
      'stale_timestamp',
      Number.isFinite(skew)
        ? `timestamp is ${skew} s from the gateway clock; at most ${this.toleranceSeconds} s is accepted (a replayed request, or a clock that is off)`
        : 'timestamp is missing or not a number of seconds',
    );
  }
}

export interface OpenedPush {
  /** The message fields, every value a string (or nested record/array for the rare structured events). */
  fields: Record<string, unknown>;
  format: 'xml' | 'json';
  encrypted: boolean;
}

export class WechatEndpoint {
  readonly crypto: WechatCrypto;
  readonly timestamps: TimestampWindow;
  private readonly maxBytes: number;

  constructor(private readonly options: WechatEndpointOptions) {
    this.crypto = createWechatCrypto({ token: options.token, encodingAESKey: options.encodingAESKey, receiveId: options.appId });
    this.maxBytes = options.maxBytes ?? XML_MAX_BYTES;
    this.timestamps = new TimestampWindow(options.timestampToleranceSeconds ?? TIMESTAMP_TOLERANCE_SECONDS, options.log);
  }

  /** GET handshake → the body to answer with. */
  handshake(query: Query): string {
    const { timestamp, nonce, echostr } = strings(query, 'timestamp', 'nonce', 'echostr');
    if (echostr === undefined) throw badRequest('missing_echostr', 'URL verification needs signature, timestamp, nonce and echostr query parameters');
    const msgSignature = str(query.msg_signature);
    if (msgSignature !== undefined) {
      if (!this.crypto.verify(msgSignature, timestamp, nonce, echostr)) throw unauthorized('bad_signature', 'msg_signature does not match the configured Token');
      this.timestamps.check(timestamp, 'URL verification');
      return this.decrypt(echostr);
    }
    if (!this.crypto.verify(str(query.signature), timestamp, nonce)) {
      throw unauthorized('bad_signature', 'signature does not match sha1(sort(Token, timestamp, nonce)); check the Token set on the console');
    }
    this.timestamps.check(timestamp, 'URL verification');
    return echostr;
  }

  /** POST push → verified, decrypted message fields. Throws HttpError 400/401/413. */
  open(query: Query, raw: Buffer | undefined, contentType: string | undefined): OpenedPush {
    if (!raw || raw.length === 0) throw badRequest('empty_body', 'the push body is empty');
    if (raw.length > this.maxBytes) throw new HttpError(413, 'payload_too_large', `the push body is ${raw.length} bytes; at most ${this.maxBytes} are accepted`);
    const text = raw.toString('utf8');
    const format = this.formatOf(text, contentType);
    const envelope = parseBody(text, format, this.maxBytes);
    const { timestamp, nonce } = strings(query, 'timestamp', 'nonce');
    const encrypt = str(envelope.Encrypt);

    if (encrypt === undefined) {
      if (this.options.messageMode === 'safe') {
        throw badRequest('encryption_required', 'this channel is in safe mode: the push must carry Encrypt (check the message mode on the console)');
      }
      if (!this.crypto.verify(str(query.signature), timestamp, nonce)) {
        throw unauthorized('bad_signature', 'signature does not match sha1(sort(Token, timestamp, nonce))');
      }
      this.timestamps.check(timestamp, 'push');
      return { fields: envelope, format, encrypted: false };
    }
    if (this.options.encodingAESKey === undefined) {
      throw badRequest('encryption_not_configured', 'the push is encrypted but the channel has no encodingAESKey; set messageMode and encodingAESKey as on the console');
    }
    if (!this.crypto.verify(str(query.msg_signature), timestamp, nonce, encrypt)) {
      throw unauthorized('bad_signature', 'msg_signature does not match sha1(sort(Token, timestamp, nonce, Encrypt))');
    }
    this.timestamps.check(timestamp, 'push');
    const inner = this.decrypt(encrypt);
    const innerFormat = inner.trimStart().startsWith('<') ? 'xml' : 'json';
    return { fields: parseBody(inner, innerFormat, this.maxBytes), format: innerFormat, encrypted: true };
  }

  private decrypt(encrypt: string): string {
    try {
      return this.crypto.decrypt(encrypt).message;
    } catch (err) {
      if (err instanceof WechatCryptoError) {
        throw err.reason === 'receive_id_mismatch' ? unauthorized('bad_receive_id', err.message) : badRequest('bad_ciphertext', err.message);
      }
      throw err;
    }
  }

  private formatOf(text: string, contentType: string | undefined): 'xml' | 'json' {
    if (this.options.dataFormat !== 'auto') return this.options.dataFormat;
    const first = text.trimStart()[0];
    if (first === '<') return 'xml';
    if (first === '{') return 'json';
    return /xml/i.test(contentType ?? '') ? 'xml' : 'json';
  }
}

/** XML through the hardened parser; JSON with 64-bit ids kept as strings. Both give a flat record of fields. */
export function parseBody(text: string, format: 'xml' | 'json', maxBytes: number): Record<string, unknown> {
  if (format === 'xml') return parseWechatXml(text, { maxBytes });
  let parsed: unknown;
  try {
    // MsgId is a 64-bit integer: quote it before JSON.parse rounds it to the nearest double.
    parsed = JSON.parse(text.replace(/(?<!\\)"(MsgId|msgid|MsgID)"\s*:\s*(-?\d+)/g, '"$1":"$2"'));
  } catch (err) {
    throw badRequest('malformed_json', `the push body is not valid JSON: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw badRequest('malformed_json', 'the push body must be a JSON object');
  return parsed as Record<string, unknown>;
}

function str(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function strings<K extends string>(query: Query, ...keys: K[]): Record<K, string | undefined> {
  return Object.fromEntries(keys.map((k) => [k, str(query[k])])) as Record<K, string | undefined>;
}
