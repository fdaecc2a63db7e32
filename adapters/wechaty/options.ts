/** Options of a `wechaty` channel instance: one personal WeChat account driven through a Wechaty puppet. */
import { z } from 'zod';

export const WechatyOptions = z.object({
  puppet: z
    .string()
    .regex(/^(@[a-z0-9-]+\/)?wechaty-puppet-[a-z0-9-]+$/)
    .default('wechaty-puppet-service')
    .describe('Puppet npm module, e.g. wechaty-puppet-service (a hosted puppet reached with a token), wechaty-puppet-wechat4u; it must be installed'),
  puppetToken: z.string().optional().describe('Puppet token (wechaty-puppet-service and other token puppets); use ${ENV}'),
  puppetOptions: z.record(z.string(), z.unknown()).default({}).describe('Extra options handed to the puppet as-is'),
  sessionName: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional()
    .describe('Keeps the login session in <sessionName>.memory-card.json (working directory) so a restart needs no new scan'),
  rooms: z
    .object({
      policy: z.enum(['mention', 'all', 'off']).default('mention').describe('Room messages: answer only when the account is @-mentioned, all, or none'),
      allow: z.array(z.string()).default([]).describe('Room ids or topics answered; empty: every room'),
      mentionSender: z.boolean().default(true).describe('Replies in a room @-mention the person who asked'),
    })
    .default({ policy: 'mention', allow: [], mentionSender: true }),
});
export type WechatyOptions = z.infer<typeof WechatyOptions>;
