/**
 * Email intake and the per-recipient bot reply limit against real servers on loopback (Dovecot IMAP, an SMTP sink,
 * the gateway pipeline and Redis): a mail that can never be read the normal way must not hold up the mail behind it,
 * and the reply limit counts mails actually sent, to the address they were sent to.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bot, BotInput } from '../../bot/types.js';
import type { UnifiedMessage } from '../../gateway/message.js';
import { imapOptions, startTestDovecot, type TestDovecot } from '../helpers/dovecot.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { plainMail, type PlainMail } from '../helpers/mail.js';
import { startTestRedis } from '../helpers/redis.js';
import { smtpOptions, type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.js';

const SUPPORT = 'support@shop.example';

class RecordingBot implements Bot {
  readonly seen: UnifiedMessage[] = [];
  async decide({ message }: BotInput) {
    this.seen.push(message);
    return { replies: [{ type: 'text' as const, text: 'Thanks, we are on it.' }], trace: { stage: 'rule' } };
  }
}

const mail = (opts: Omit<PlainMail, 'to'>) => plainMail({ ...opts, to: SUPPORT });

describe('email intake and reply limit', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let dovecot: TestDovecot;
  let smtp: SmtpSink;
  let gw: TestGateway;
  let mediaDir: string;
  const bot = new RecordingBot();

  before(async () => {
    mediaDir = mkdtempSync(join(tmpdir(), 'gw-media-'));
    [redis, dovecot, smtp] = await Promise.all([startTestRedis(), startTestDovecot(), startSmtpSink()]);
    gw = await startTestGateway(
      {
        server: { mediaDir },
        channels: [
          {
            id: 'mail',
            type: 'email' as const,
            options: {
              address: SUPPORT,
              imap: { ...imapOptions(dovecot), pollIntervalMs: 1000 },
              smtp: smtpOptions(smtp),
              botReplyLimit: { count: 3, perSeconds: 3600 },
            },
          },
        ],
      },
      redis.url,
      { bot },
    );
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([smtp?.close(), dovecot?.stop(), redis?.stop()]);
    rmSync(mediaDir, { recursive: true, force: true });
  });

  const repliesTo = (messageId: string) => smtp.mails.filter((m) => m.header('in-reply-to') === messageId);
  const mailsTo = (address: string) => smtp.mails.filter((m) => m.envelope.to.includes(address));

  it('reads a mail dated before 1970 with its received time, and the mail behind it as usual', async () => {
    const old = mail({ from: 'ann@customer.example', date: 'Wed, 31 Dec 1969 23:00:00 +0000' });
    const next = mail({ from: 'bob@customer.example' });
    await dovecot.append(old.raw);
    await dovecot.append(next.raw);
    await eventually(() => repliesTo(next.messageId).length === 1, 'reply to the mail behind it');
    const read = bot.seen.find((m) => m.channelMessageId === old.messageId);
    assert.ok(read, 'the old-dated mail is ingested');
    assert.ok(read.timestamp > Date.now() - 3600_000, 'timestamped with the time the mailbox received it');
    assert.ok(!gw.logs.some((l) => l.msg === 'imap read failed; retried on the next wake-up'));
  });

  it('counts a bot reply against the limit once, however many SMTP attempts it takes', async () => {
    const failed: string[] = [];
    const off = gw.gateway.events.on('message.delivery_failed', (e) => failed.push(String(e.code)));
    smtp.failNext(4, 451, 'Temporary local problem - please try later');
    const m = mail({ from: 'carl@customer.example' });
    await dovecot.append(m.raw);
    await eventually(() => repliesTo(m.messageId).length === 1, 'reply after four temporary failures');
    off();
    assert.deepEqual(failed, []);
    assert.equal(await gw.gateway.redis.get('gw:ch:mail:botlimit:carl@customer.example'), '1');
  });

  it('limits bot replies per address they are sent to, so Reply-To cannot spread one address over many senders', async () => {
    const failed: string[] = [];
    const off = gw.gateway.events.on('message.delivery_failed', (e) => failed.push(String(e.code)));
    const victim = 'victim@elsewhere.example';
    for (let i = 0; i < 5; i++) await dovecot.append(mail({ from: `sender${i}@customer.example`, headers: { 'Reply-To': victim } }).raw);
    await eventually(() => failed.filter((code) => code === 'sender_rate_limited').length === 2, 'two replies refused');
    await new Promise((r) => setTimeout(r, 300));
    off();
    assert.equal(mailsTo(victim).length, 3, 'botReplyLimit.count mails reach the Reply-To address');
  });
});
