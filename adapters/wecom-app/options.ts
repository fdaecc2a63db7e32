/** Option pieces shared by the WeCom app and kf channels, with errors that say what to copy from where. */
import { z } from 'zod';
import { encodingAESKeyProblem } from '../shared/wechat-crypto.js';
import { TIMESTAMP_TOLERANCE_SECONDS } from '../shared/wechat-webhook.js';

export const WECOM_API = 'https://qyapi.weixin.qq.com';

export const CorpId = z
  .string()
  .regex(/^(ww|wx)[0-9a-zA-Z]{6,30}$/, 'corpId is the 企业ID from WeCom admin → 我的企业 → 企业信息 (starts with "ww" or "wx")')
  .describe('企业ID (CorpID); also the receiveId checked after decrypting every callback');

export const CallbackToken = z
  .string()
  .regex(/^[A-Za-z0-9]{3,32}$/, 'token is the callback Token (3–32 letters/digits) set next to the callback URL on the console')
  .describe('Callback Token (接收消息服务器配置 → Token)');

export const EncodingAESKey = z
  .string()
  .superRefine((key, ctx) => {
    const problem = encodingAESKeyProblem(key);
    if (problem) ctx.addIssue({ code: 'custom', message: `encodingAESKey: ${problem}` });
  })
  .describe('Callback EncodingAESKey (43 characters)');

export const Secret = z
  .string()
  .min(16, 'the secret is the long string shown once on the console (应用管理 → the app → Secret); it looks too short')
  .describe('The app Secret used for gettoken (never logged)');

export const ApiBaseUrl = z.url().default(WECOM_API).describe('WeCom API host (tests point it at a loopback fake)');

export const common = {
  corpId: CorpId,
  token: CallbackToken,
  encodingAESKey: EncodingAESKey,
  apiBaseUrl: ApiBaseUrl,
  timeoutMs: z.number().int().positive().default(10_000).describe('WeCom API request timeout'),
  rateLimitPauseMs: z
    .number()
    .int()
    .positive()
    .default(60_000)
    .describe('How long delivery pauses after a frequency-limit errcode (WeCom blocks for 60 s per minute-limit)'),
  maxXmlBytes: z.number().int().positive().default(64 * 1024).describe('Largest callback XML accepted; larger → 413'),
  timestampToleranceSeconds: z
    .number()
    .int()
    .min(30)
    .default(TIMESTAMP_TOLERANCE_SECONDS)
    .describe('Largest difference between a callback’s signed timestamp and the gateway clock; older (replayed) callbacks get 401'),
};
