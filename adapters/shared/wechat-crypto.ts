/**
 * The WeChat-family message crypto ("WXBizMsgCrypt"), shared by the mini-program, official account, WeCom app and
 * WeCom customer-service channels: SHA-1 signatures over the sorted (token, timestamp, nonce[, Encrypt]) strings and
 * AES-256-CBC with the EncodingAESKey (IV = first 16 key bytes, PKCS#7 padding to 32-byte blocks, plaintext =
 * random(16) ‖ uint32be(len) ‖ msg ‖ receiveId).
 *
 * Built on `@wecom/crypto`, which implements the cipher but checks nothing: it returns whatever receiveId the
 * plaintext names and silently keeps an impossible padding. So this wrapper validates the key up front, refuses
 * ciphertext that cannot be a padded block sequence, and compares the receiveId, which is what actually proves the
 * message was encrypted for this app (a wrong key or tampered ciphertext cannot produce it).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { decrypt as wecomDecrypt, encrypt as wecomEncrypt } from '@wecom/crypto';

export interface WechatCryptoOptions {
  /** The Token set on the platform console. */
  token: string;
  /** The 43-character EncodingAESKey; may be absent for plaintext-only channels (then decrypt/encrypt throw). */
  encodingAESKey?: string | undefined;
  /** appid (mini-program, official account), corpid (WeCom) or component appid (third-party platform). */
  receiveId: string;
}

export interface WechatCrypto {
  /** sha1 hex of the sorted [token, timestamp, nonce, (encrypt)] joined. */
  signature(timestamp: string, nonce: string, encrypt?: string): string;
  /** Constant-time comparison of a received signature / msg_signature. */
  verify(signature: string | undefined, timestamp: string | undefined, nonce: string | undefined, encrypt?: string): boolean;
  /** Decrypts an `Encrypt` value; throws WechatCryptoError when it is not a message for this receiveId. */
  decrypt(encrypt: string): { message: string; receiveId: string };
  /** Encrypts a message for a passive encrypted reply (random 16-byte prefix unless given). */
  encrypt(message: string, random?: Buffer): string;
}

export class WechatCryptoError extends Error {
  constructor(
    readonly reason: 'bad_key' | 'bad_ciphertext' | 'receive_id_mismatch' | 'no_key',
    message: string,
  ) {
    super(message);
    this.name = 'WechatCryptoError';
  }
}

const ENCODING_AES_KEY = /^[A-Za-z0-9+/]{43}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Checks an EncodingAESKey's shape; returns a human message when it is wrong (used by option schemas too). */
export function encodingAESKeyProblem(key: string): string | undefined {
  if (!ENCODING_AES_KEY.test(key)) return 'EncodingAESKey must be exactly 43 characters of A-Z, a-z, 0-9, + and / (copy it from the console)';
  if (Buffer.from(`${key}=`, 'base64').length !== 32) return 'EncodingAESKey does not decode to a 32-byte AES key';
  return undefined;
}

export function wechatSignature(token: string, timestamp: string, nonce: string, encrypt?: string): string {
  const parts = encrypt === undefined ? [token, timestamp, nonce] : [token, timestamp, nonce, encrypt];
  return createHash('sha1').update(parts.sort().join('')).digest('hex');
}

export function createWechatCrypto(options: WechatCryptoOptions): WechatCrypto {
  const { token, encodingAESKey, receiveId } = options;
  if (encodingAESKey !== undefined) {
    const problem = encodingAESKeyProblem(encodingAESKey);
    if (problem) throw new WechatCryptoError('bad_key', problem);
  }
  const key = (): string => {
    if (encodingAESKey === undefined) throw new WechatCryptoError('no_key', 'this channel has no EncodingAESKey configured, so it cannot decrypt safe-mode messages');
    return encodingAESKey;
  };

  return {
    signature: (timestamp, nonce, encrypt) => wechatSignature(token, timestamp, nonce, encrypt),

    verify(signature, timestamp, nonce, encrypt) {
      if (!signature || timestamp === undefined || nonce === undefined) return false;
      const expected = Buffer.from(wechatSignature(token, timestamp, nonce, encrypt));
      const given = Buffer.from(signature.toLowerCase());
      return expected.length === given.length && timingSafeEqual(expected, given);
    },

    decrypt(encrypt) {
      const encodingKey = key();
      const compact = encrypt.trim();
      const bytes = BASE64.test(compact) ? Buffer.from(compact, 'base64') : undefined;
      // random(16)+len(4) padded to 32-byte blocks: at least one block, always a whole number of them.
      if (!bytes || bytes.length < 32 || bytes.length % 32 !== 0) {
        throw new WechatCryptoError('bad_ciphertext', 'Encrypt is not base64 of whole 32-byte AES blocks');
      }
      let plain: { message: string; id: string };
      try {
        plain = wecomDecrypt(encodingKey, compact);
      } catch (err) {
        throw new WechatCryptoError('bad_ciphertext', `Encrypt could not be decrypted: ${(err as Error).message}`);
      }
      if (plain.id !== receiveId) {
        throw new WechatCryptoError('receive_id_mismatch', 'the decrypted message is not addressed to this app (receiveId differs: wrong key, app id or a forged payload)');
      }
      return { message: plain.message, receiveId: plain.id };
    },

    encrypt(message, random) {
      return wecomEncrypt(key(), message, receiveId, random);
    },
  };
}
