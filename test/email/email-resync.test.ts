/**
 * Email channel after a UIDVALIDITY change (mailbox rebuilt or migrated), against real Dovecot, an SMTP sink, the
 * gateway pipeline and Redis: mail read before the change is never answered again, whether or not the pipeline's
 * dedupe window still remembers it, and a mailbox whose old mail the gateway never read is not imported.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { imapOptions, startTestDovecot, type TestDovecot } from '../helpers/dovecot.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { plainMail } from '../helpers/mail.js';
import { startTestRedis } from '../helpers/redis.js';
import { smtpOptions, type SmtpSink, startSmtpSink } from '../helpers/smtp-sink.js';

const SUPPORT = 'support@shop.example';

const mail = (from: string) => plainMail({ from, to: SUPPORT });

describe('email channel after a UIDVALIDITY change', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let dovecot: TestDovecot;
  let smtp: SmtpSink;
  let gw: TestGateway | undefined;
  let mediaDir: string;

  const config = () => ({
    server: { mediaDir },
    // Shorter than the test's pauses: the pipeline's dedupe has forgotten the mail when it is re-read.
    pipeline: { dedupeWindowSeconds: 1 },
    bot: { rules: [], fallback: 'We will get back to you.' },
    channels: [
      {
        id: 'mail',
        type: 'email' as const,
        options: {
          address: SUPPORT,
          imap: { ...imapOptions(dovecot), pollIntervalMs: 1000 },
          smtp: smtpOptions(smtp),
        },
      },
    ],
  });

  before(async () => {
    mediaDir = mkdtempSync(join(tmpdir(), 'gw-media-'));
    [redis, dovecot, smtp] = await Promise.all([startTestRedis(), startTestDovecot(), startSmtpSink()]);
  });
  after(async () => {
    await gw?.stop();
    await Promise.all([smtp?.close(), dovecot?.stop(), redis?.stop()]);
    rmSync(mediaDir, { recursive: true, force: true });
  });

  const repliesTo = (messageId: string) => smtp.mails.filter((m) => m.header('in-reply-to') === messageId).length;
  /** Stops the gateway and gives its saved cursor another UIDVALIDITY, as if the mailbox had been rebuilt meanwhile. */
  async function rebuildMailbox(prefix: string, uidValidity: string): Promise<void> {
    await gw?.stop();
    gw = undefined;
    const r = new Redis(redis.url);
    await r.hset(`${prefix}:ch:mail:imap:INBOX`, { uidValidity });
    await r.quit();
  }

  it('does not answer again a mail read before the change once the dedupe window has passed', async () => {
    gw = await startTestGateway(config(), redis.url, { prefix: 'a' });
    const first = mail('ann@customer.example');
    await dovecot.append(first.raw);
    await eventually(() => repliesTo(first.messageId) === 1, 'reply to the first mail');
    await new Promise((r) => setTimeout(r, 1500));
    await rebuildMailbox('a', '1');
    gw = await startTestGateway(config(), redis.url, { prefix: 'a' });
    const next = mail('ann@customer.example');
    await dovecot.append(next.raw);
    await eventually(() => repliesTo(next.messageId) === 1, 'reply to the mail after the change');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(repliesTo(first.messageId), 1, 'the first mail is answered once');
    assert.ok(gw.logs.some((l) => l.msg === 'mail read before the UIDVALIDITY change: not ingested again'));
  });

  it('with nothing read yet ("new" first start), a change does not import the mailbox', async () => {
    // The previous test's gateway goes first: running, it would answer the mails appended here as new ones.
    await rebuildMailbox('a', '2');
    const history = [1, 2, 3].map(() => mail('old@customer.example'));
    for (const m of history) await dovecot.append(m.raw);
    gw = await startTestGateway(config(), redis.url, { prefix: 'b' });
    await new Promise((r) => setTimeout(r, 1500));
    await rebuildMailbox('b', '1');
    gw = await startTestGateway(config(), redis.url, { prefix: 'b' });
    const next = mail('bob@customer.example');
    await dovecot.append(next.raw);
    await eventually(() => repliesTo(next.messageId) === 1, 'reply to the new mail');
    await new Promise((r) => setTimeout(r, 500));
    for (const m of history) assert.equal(repliesTo(m.messageId), 0, `history ${m.messageId} not answered`);
    assert.ok(gw.logs.some((l) => l.msg === 'imap UIDVALIDITY changed before any mail was read: starting afresh'));
  });
});
