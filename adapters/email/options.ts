/** Options of an `email` channel instance: one mailbox read over IMAP, replies sent over SMTP. */
import { z } from 'zod';

const Auth = z.object({
  user: z.string().min(1),
  pass: z.string().min(1).describe('Password or app password (use ${ENV} in YAML)'),
});

export const EmailOptions = z.object({
  address: z.email().describe('The support address: From of every reply, and mail from it is never answered'),
  name: z.string().optional().describe('Display name of replies, e.g. "Acme Support"'),
  imap: z.object({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(993),
    secure: z.boolean().default(true).describe('Implicit TLS (993); false uses STARTTLS when the server offers it'),
    auth: Auth,
    mailbox: z.string().default('INBOX'),
    idle: z.boolean().default(true).describe('Use IMAP IDLE for push; false polls every pollIntervalMs'),
    pollIntervalMs: z
      .number()
      .int()
      .min(1000)
      .default(60_000)
      .describe('Safety poll; IDLE announces new mail at once, servers without IDLE are polled at this interval'),
    firstStart: z
      .enum(['new', 'all'])
      .default('new')
      .describe('With no saved cursor: "new" answers only mail arriving from now on, "all" imports the whole mailbox'),
    resyncDays: z
      .number()
      .int()
      .min(0)
      .default(7)
      .describe('After a UIDVALIDITY change, mail received this many days (at most 180) before the last processed one is re-read; mail already read is recognised by Message-ID'),
  }),
  smtp: z.object({
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(587),
    secure: z.boolean().default(false).describe('Implicit TLS (465); false upgrades with STARTTLS when offered'),
    requireTLS: z.boolean().default(false).describe('Refuse to send when STARTTLS is not offered'),
    auth: Auth.optional(),
    timeoutMs: z.number().int().positive().default(30_000),
  }),
  attachments: z
    .object({
      maxBytes: z
        .number()
        .int()
        .positive()
        .default(10 * 1024 * 1024)
        .describe('Larger attachments are not stored (passed on by name and size only); server.mediaMaxBytes also applies'),
    })
    .default({ maxBytes: 10 * 1024 * 1024 })
    .describe('Attachments are stored in the gateway media store (server.mediaDir) and served at GET /media/<id>'),
  maxMessageBytes: z
    .number()
    .int()
    .positive()
    .default(25 * 1024 * 1024)
    .describe('Mails larger than this are imported truncated'),
  botReplyLimit: z
    .object({
      count: z.number().int().positive().default(5),
      perSeconds: z.number().int().positive().default(3600),
    })
    .default({ count: 5, perSeconds: 3600 })
    .describe('Most bot replies one address gets per window: the address replies go to (Reply-To when given); each reply counts once however often delivery is retried; agent replies are never limited'),
});
export type EmailOptions = z.infer<typeof EmailOptions>;
