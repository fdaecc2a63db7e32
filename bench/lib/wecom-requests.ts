/**
 * WeCom self-built-app callbacks as the platform sends them: the message XML, AES-256-CBC encrypted with the
 * EncodingAESKey, in an envelope signed with msg_signature. Built ahead of a load phase, so the load generator's CPU
 * goes into sending, not into crypto the gateway's figures would pay for.
 */
import { createWechatCrypto } from '../../adapters/shared/wechat-crypto.js';

export const WECOM = { corpId: 'wwbench0123456789', token: 'benchToken', encodingAESKey: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', agentId: 1000002 };

/** The channel options of the benchmark's WeCom channel, sending to `apiBaseUrl`. */
export const wecomChannelOptions = (apiBaseUrl: string) => ({ ...WECOM, corpSecret: 'bench-corp-secret-0123456789', apiBaseUrl });

export interface WebhookRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
  /** What the reply will be matched by, when it is known before the answer (WeCom: the user id). */
  key?: string;
}

const crypto = createWechatCrypto({ token: WECOM.token, encodingAESKey: WECOM.encodingAESKey, receiveId: WECOM.corpId });

/** The n-th callback: user `wu<n>` sends `text` (one customer per message, so each opens a conversation). */
export function wecomRequest(channelId: string, n: number, text: string): WebhookRequest {
  const user = `wu${n}`;
  const now = Math.floor(Date.now() / 1000);
  const plain = `<xml><ToUserName><![CDATA[${WECOM.corpId}]]></ToUserName><FromUserName><![CDATA[${user}]]></FromUserName><CreateTime>${now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[${text.replace(/[<&]/g, ' ')}]]></Content><MsgId>${7_000_000_000_000 + n}</MsgId><AgentID>${WECOM.agentId}</AgentID></xml>`;
  const encrypt = crypto.encrypt(plain);
  const nonce = String(n);
  return {
    key: user,
    path: `/webhooks/${channelId}?msg_signature=${crypto.signature(String(now), nonce, encrypt)}&timestamp=${now}&nonce=${nonce}`,
    headers: { 'content-type': 'text/xml' },
    body: `<xml><ToUserName><![CDATA[${WECOM.corpId}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt><AgentID><![CDATA[${WECOM.agentId}]]></AgentID></xml>`,
  };
}
