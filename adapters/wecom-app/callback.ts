/**
 * The WeCom encrypted callback (接收消息与事件, paths 90930/90968), shared by the self-built app and the kf channel:
 *
 *   GET  ?msg_signature&timestamp&nonce&echostr  → verify sha1(sort(token, timestamp, nonce, echostr)), decrypt
 *        echostr, check the receiveId is our CorpID, answer the plaintext (no quotes, no newline) — URL verification.
 *   POST ?msg_signature&timestamp&nonce + <xml><ToUserName/><Encrypt/><AgentID/></xml>
 *        → verify the signature over Encrypt, decrypt, parse the inner XML (hardened parser), hand the fields over,
 *        and answer an empty 200 only once they are durably accepted (WeCom retries 3 times on anything else).
 * Both refuse a signed timestamp outside the tolerance (TimestampWindow): a replayed capture is not a new message.
 */
import type { Logger } from 'pino';
import { reply, type WebhookRoute } from '../http.js';
import { badRequest, HttpError, unauthorized } from '../../gateway/errors.js';
import { WechatCryptoError, type WechatCrypto } from '../shared/wechat-crypto.js';
import type { TimestampWindow } from '../shared/wechat-webhook.js';
import { parseWechatXml } from '../shared/xml.js';

export type WecomFields = Record<string, unknown>;

export interface WecomCallbackDeps {
  crypto: WechatCrypto;
  log: Logger;
  maxXmlBytes: number;
  timestamps: TimestampWindow;
  /** Resolves once the decrypted message is durably accepted; only then does WeCom get its 200. */
  onMessage(fields: WecomFields): Promise<void>;
}

/** The callback's two routes. Query values arrive decoded with decodeURIComponent (`req.query`): `echostr` and
 *  `Encrypt` are base64, and form-style decoding would turn a literal "+" into a space and break the signature
 *  (WeCom doc: URL-decode first). */
export function wecomCallbackRoutes(deps: WecomCallbackDeps): WebhookRoute[] {
  const { crypto } = deps;
  return [
    {
      method: 'GET',
      path: '/',
      handle: (req) => {
        const q = req.query;
        if (!q.msg_signature || !q.timestamp || !q.nonce || !q.echostr) {
          throw badRequest('missing_parameters', 'URL verification needs msg_signature, timestamp, nonce and echostr');
        }
        if (!crypto.verify(q.msg_signature, q.timestamp, q.nonce, q.echostr)) {
          throw unauthorized('bad_signature', 'msg_signature does not match sha1(sort(Token, timestamp, nonce, echostr)); check the Token');
        }
        deps.timestamps.check(q.timestamp, 'URL verification');
        const { message } = decrypt(crypto, q.echostr);
        deps.log.info('WeCom callback URL verified');
        return reply.text(message);
      },
    },
    {
      method: 'POST',
      path: '/',
      handle: async (req) => {
        const q = req.query;
        if (!q.msg_signature || !q.timestamp || !q.nonce) {
          throw unauthorized('missing_signature', 'msg_signature, timestamp and nonce query parameters are required');
        }
        const outer = parseWechatXml(req.body.toString('utf8'), { maxBytes: deps.maxXmlBytes });
        const encrypt = typeof outer.Encrypt === 'string' ? outer.Encrypt : undefined;
        if (!encrypt) throw badRequest('missing_encrypt', 'the callback XML has no <Encrypt> element (the app must use safe mode)');
        if (!crypto.verify(q.msg_signature, q.timestamp, q.nonce, encrypt)) {
          throw unauthorized('bad_signature', 'msg_signature does not match sha1(sort(Token, timestamp, nonce, Encrypt)); check the Token');
        }
        deps.timestamps.check(q.timestamp, 'callback');
        const { message } = decrypt(crypto, encrypt);
        const fields = parseWechatXml(message, { maxBytes: deps.maxXmlBytes });
        await deps.onMessage(fields);
        // An empty 200 means "received, no passive reply"; replies go out through the send API.
        return reply.text('');
      },
    },
  ];
}

function decrypt(crypto: WechatCrypto, encrypt: string): { message: string } {
  try {
    return crypto.decrypt(encrypt);
  } catch (err) {
    if (err instanceof WechatCryptoError) {
      // A valid signature with undecryptable content means a wrong EncodingAESKey or CorpID in our config.
      throw new HttpError(400, err.reason, `${err.message}; check encodingAESKey and corpId`);
    }
    throw err;
  }
}

/** Plain string field of decoded XML, '' when absent. */
export function field(fields: WecomFields, name: string): string {
  const value = fields[name];
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}
