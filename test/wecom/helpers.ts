/** Builds WeCom encrypted callbacks exactly as WeCom does, and a small deterministic bot for the channel tests. */
import { randomBytes } from 'node:crypto';
import type { Bot } from '../../bot/types.js';
import { createWechatCrypto, type WechatCrypto } from '../../adapters/shared/wechat-crypto.js';
import type { TestGateway } from '../helpers/gateway.js';

/** The official WeCom sample configuration (加解密 doc, vectors.json → wecom_app). */
export const OFFICIAL = {
  token: 'QDG6eK',
  encodingAESKey: 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C',
  corpId: 'wx5823bf96d3bd56c7',
};

export function wecomCrypto(): WechatCrypto {
  return createWechatCrypto({ token: OFFICIAL.token, encodingAESKey: OFFICIAL.encodingAESKey, receiveId: OFFICIAL.corpId });
}

/** POSTs `innerXml` encrypted and signed to the channel's callback; returns the response. */
export async function postEncrypted(gw: TestGateway, channelId: string, innerXml: string, opts: { forge?: boolean; agentId?: number } = {}) {
  const crypto = wecomCrypto();
  const encrypt = crypto.encrypt(innerXml);
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = String(randomBytes(4).readUInt32BE());
  let signature = crypto.signature(timestamp, nonce, encrypt);
  if (opts.forge) signature = signature.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'));
  const body = `<xml><ToUserName><![CDATA[${OFFICIAL.corpId}]]></ToUserName><Encrypt><![CDATA[${encrypt}]]></Encrypt><AgentID><![CDATA[${opts.agentId ?? ''}]]></AgentID></xml>`;
  return postRaw(gw, channelId, `msg_signature=${signature}&timestamp=${timestamp}&nonce=${nonce}`, body);
}

export function postRaw(gw: TestGateway, channelId: string, query: string, body: string) {
  return fetch(`${gw.url}/webhooks/${channelId}?${query}`, { method: 'POST', body, headers: { 'content-type': 'text/xml' } });
}

export function textXml(from: string, content: string, msgId: string, agentId = 218): string {
  return `<xml><ToUserName><![CDATA[${OFFICIAL.corpId}]]></ToUserName><FromUserName><![CDATA[${from}]]></FromUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[${content}]]></Content><MsgId>${msgId}</MsgId><AgentID>${agentId}</AgentID></xml>`;
}

/** Sum of jobs ever added to the inbound queues (to prove a refused request queued nothing). */
export async function inboundJobCount(gw: TestGateway): Promise<number> {
  let total = 0;
  for (const q of gw.gateway.pipeline.allQueues().filter((q) => q.name.startsWith('{in-'))) {
    const counts = await q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
    total += Object.values(counts).reduce((a, b) => a + b, 0);
  }
  return total;
}

/**
 * Replies "echo: <text>"; "pic <url>" → an image; "card" → a link; "human" → hand-off; events → "event: <name>",
 * except enter_session from the "poster" scene → a welcome image.
 */
export function testBot(): Bot {
  return {
    async decide({ message }) {
      const trace = { stage: 'rule' };
      const c = message.content;
      if (c.type === 'text') {
        if (c.text.startsWith('pic ')) return { replies: [{ type: 'image', url: c.text.slice(4) }], trace };
        if (c.text === 'card') return { replies: [{ type: 'link', title: 'Docs', url: 'https://example.com/docs', description: 'Read me' }], trace };
        if (c.text === 'human') return { replies: [{ type: 'text', text: 'connecting you' }], handoff: { reason: 'asked for a human' }, trace };
        if (c.text.startsWith('many ')) {
          return { replies: Array.from({ length: Number(c.text.slice(5)) }, (_, i) => ({ type: 'text' as const, text: `part ${i + 1}` })), trace };
        }
        return { replies: [{ type: 'text', text: `echo: ${c.text}` }], trace };
      }
      // A welcome picture for customers arriving from the "poster" scene (kf can only answer a welcome with text).
      if (c.type === 'event' && c.event === 'enter_session' && c.key === 'poster') {
        return { replies: [{ type: 'image', url: 'https://example.com/welcome.png', caption: 'Welcome!' }], trace };
      }
      if (c.type === 'event') return { replies: [{ type: 'text', text: `event: ${c.event}` }], trace };
      return { replies: [{ type: 'text', text: `got ${c.type}${'url' in c && c.url ? ` ${c.url}` : ''}` }], trace };
    },
  };
}
