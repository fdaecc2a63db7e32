/**
 * Every adapter type the gateway knows. To add a channel type: create `adapters/<type>/index.ts` exporting a
 * `defineAdapter({...})` default, and list it here; its options schema becomes part of the config schema.
 */
import type { AdapterDefinition } from './types.js';
import app from './app/index.js';
import web from './web/index.js';
import wechatMiniProgram from './wechat-miniprogram/index.js';
import wechatOfficialAccount from './wechat-official-account/index.js';
import wecomApp from './wecom-app/index.js';
import wecomKf from './wecom-kf/index.js';
import douyin from './douyin/index.js';
import custom from './custom/index.js';
import dingtalk from './dingtalk/index.js';
import feishu from './feishu/index.js';
import email from './email/index.js';
import wechaty from './wechaty/index.js';

export const adapterDefinitions: readonly AdapterDefinition[] = [web, app, wechatMiniProgram, wechatOfficialAccount, wecomApp, wecomKf, douyin, custom, dingtalk, feishu, email, wechaty] as unknown as AdapterDefinition[];

export function adapterDefinition(type: string): AdapterDefinition | undefined {
  return adapterDefinitions.find((d) => d.type === type);
}
