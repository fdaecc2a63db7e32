/** The pure parts of the email channel: guards, subjects, references, body text, SMTP error mapping, decoding. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { mailBodyText, stripQuotedAndSignature } from '../../adapters/email/body-text.js';
import { composeReply } from '../../adapters/email/compose.js';
import { readInboundMail } from '../../adapters/email/decode.js';
import { guardReason } from '../../adapters/email/guards.js';
import { smtpDeliveryError } from '../../adapters/email/index.js';
import { messageIds, replyReferences, replySubject } from '../../adapters/email/threads.js';
import { createMessage } from '../../gateway/message.js';

const own = 'support@shop.example';
const headers = (h: Record<string, string>) => (name: string) => h[name];

describe('email loop and noise guards (RFC 3834)', () => {
  const cases: Array<[string, Record<string, string>, string | undefined, string?]> = [
    ['person', {}, undefined],
    ['Auto-Submitted: no', { 'auto-submitted': 'no' }, undefined],
    ['Auto-Submitted: auto-replied', { 'auto-submitted': 'auto-replied' }, 'auto_submitted'],
    ['Auto-Submitted: auto-generated; with params', { 'auto-submitted': 'auto-generated; owner-email="x@y"' }, 'auto_submitted'],
    ['Precedence: bulk', { precedence: 'bulk' }, 'precedence'],
    ['Precedence: junk', { precedence: 'Junk' }, 'precedence'],
    ['Precedence: list', { precedence: 'list' }, 'precedence'],
    ['List-Id', { 'list-id': '<a.b>' }, 'list'],
    ['X-Autoreply', { 'x-autoreply': 'yes' }, 'auto_submitted'],
    ['empty Return-Path (bounce)', { 'return-path': '<>' }, 'bounce'],
  ];
  for (const [name, h, expected] of cases) {
    it(name, () => assert.equal(guardReason({ from: 'ann@customer.example', ownAddress: own, header: headers(h), returnPath: h['return-path'] }), expected));
  }
  it('bounces and own address', () => {
    assert.equal(guardReason({ from: 'MAILER-DAEMON@mx.example', ownAddress: own, header: headers({}) }), 'bounce');
    assert.equal(guardReason({ from: 'postmaster@mx.example', ownAddress: own, header: headers({}) }), 'bounce');
    assert.equal(guardReason({ from: 'Support@Shop.example', ownAddress: own, header: headers({}) }), 'own_address');
    assert.equal(guardReason({ from: undefined, ownAddress: own, header: headers({}) }), 'no_sender');
  });
});

describe('email threading helpers', () => {
  it('"Re:" never stacks, whatever the client wrote', () => {
    assert.equal(replySubject('Order 42'), 'Re: Order 42');
    assert.equal(replySubject('Re: Order 42'), 'Re: Order 42');
    assert.equal(replySubject('RE: re:Re[2]: Order 42'), 'Re: Order 42');
    assert.equal(replySubject('AW: Bestellung'), 'Re: Bestellung');
    assert.equal(replySubject('回复：订单'), 'Re: 订单');
    assert.equal(replySubject('Fwd: invoice'), 'Re: Fwd: invoice');
    assert.equal(replySubject(''), 'Re: your message');
  });
  it('References keep the root and the newest ids, bounded', () => {
    assert.deepEqual(replyReferences(['<a@x>', '<b@x>'], '<c@x>'), ['<a@x>', '<b@x>', '<c@x>']);
    const long = Array.from({ length: 40 }, (_, i) => `<${i}@x>`);
    const refs = replyReferences(long, '<new@x>');
    assert.equal(refs.length, 20);
    assert.equal(refs[0], '<0@x>');
    assert.equal(refs.at(-1), '<new@x>');
    assert.deepEqual(messageIds('<a@x>\r\n <b@x> junk'), ['<a@x>', '<b@x>']);
  });
  it('composes a bot reply with threading headers and Auto-Submitted, an agent reply without', () => {
    const reference = {
      conversationId: 'c', channel: 'mail', channelType: 'email', peerId: 'ann@customer.example', updatedAt: 0,
      context: { lastMessageId: '<m2@c>', references: '<m1@c> <m2@c>', subject: 'Re: Order', root: '<m1@c>' },
    };
    const out = (role: 'bot' | 'agent') =>
      createMessage({ channel: 'mail', channelType: 'email', direction: 'out', conversationId: 'c', sender: { id: role, role }, content: { type: 'text', text: 'a <b>\n\nsee https://x.example' } });
    const bot = composeReply(out('bot'), reference, { address: own, name: 'Shop' }, '<r@shop.example>');
    assert.equal(bot.inReplyTo, '<m2@c>');
    assert.equal(bot.references, '<m1@c> <m2@c>');
    assert.equal(bot.subject, 'Re: Order');
    assert.equal(bot.to, 'ann@customer.example');
    assert.deepEqual(bot.headers, { 'Auto-Submitted': 'auto-replied', 'X-Auto-Response-Suppress': 'All' });
    assert.match(String(bot.html), /<p>a &lt;b&gt;<\/p>\n<p>see <a href="https:\/\/x.example">/);
    const agent = composeReply(out('agent'), reference, { address: own }, '<r2@shop.example>');
    assert.deepEqual(agent.headers, {});
  });
});

describe('email body text', () => {
  it('strips quoted history and signatures (English, Outlook, Chinese)', () => {
    assert.equal(stripQuotedAndSignature('Thanks!\n\n-- \nAnn\n\nOn Mon, Jan 1, 2024 at 10:00 AM Shop <s@shop.example> wrote:\n> old'), 'Thanks!');
    assert.equal(stripQuotedAndSignature('Hello\n\n-----Original Message-----\nFrom: x\nold'), 'Hello');
    assert.equal(stripQuotedAndSignature('请帮我查询\n\n在 2024年1月1日 10:00，Shop <s@shop.example> 写道：\n> 旧'), '请帮我查询');
    assert.equal(stripQuotedAndSignature('Hi\n\nSent from my iPhone'), 'Hi');
  });
  it('keeps everything when stripping would leave nothing', () => {
    assert.equal(stripQuotedAndSignature('> only a quote'), '> only a quote');
  });
  it('prefers text/plain, converts HTML-only mail', () => {
    assert.equal(mailBodyText({ text: 'plain', html: '<p>html</p>' }), 'plain');
    assert.equal(mailBodyText({ text: '', html: '<p>Hello <b>there</b></p><p>Visit <a href="https://x.example">our site</a></p>' }), 'Hello there\n\nVisit our site [https://x.example]');
  });
  it('decodes a real MIME mail: ids, sender, Reply-To, list headers from the raw lines', async () => {
    const parsed = await simpleParser(
      'From: "Ann" <Ann@Customer.example>\r\nReply-To: orders@customer.example\r\nTo: support@shop.example\r\nSubject: Hi\r\n' +
        'Message-ID: <x1@c>\r\nIn-Reply-To: <r1@shop.example>\r\nReferences: <m0@c>\r\n <r1@shop.example>\r\nList-Id: Talk <talk.c>\r\n' +
        'Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hello</p>\r\n',
    );
    const mail = readInboundMail(parsed, { ownAddress: own, fallbackId: 'f' });
    assert.equal(mail.messageId, '<x1@c>');
    assert.equal(mail.inReplyTo, '<r1@shop.example>');
    assert.deepEqual(mail.references, ['<m0@c>', '<r1@shop.example>']);
    assert.deepEqual(mail.from, { address: 'ann@customer.example', name: 'Ann' });
    assert.equal(mail.replyTo, 'orders@customer.example');
    assert.equal(mail.text, 'Hello');
    assert.equal(mail.guard, 'list');
  });
  it('dates a mail by its Date header, or by when the mailbox received it when that header is before 1970 or missing', async () => {
    const receivedAt = Date.UTC(2026, 0, 2);
    const dated = async (date: string | undefined) => {
      const raw = `From: ann@customer.example\r\n${date === undefined ? '' : `Date: ${date}\r\n`}Subject: x\r\n\r\nhi\r\n`;
      return readInboundMail(await simpleParser(raw), { ownAddress: own, fallbackId: 'f', receivedAt }).date;
    };
    assert.equal(await dated('Thu, 1 Jan 2026 10:00:00 +0000'), Date.UTC(2026, 0, 1, 10));
    assert.equal(await dated('Wed, 31 Dec 1969 23:00:00 +0000'), receivedAt);
    assert.equal(await dated(undefined), receivedAt);
  });
});

describe('SMTP reply codes → delivery errors', () => {
  it('4xx and network faults retry, 5xx fail for good', () => {
    const temp = smtpDeliveryError(Object.assign(new Error('x'), { responseCode: 451, response: '451 try later' }));
    assert.equal(temp.retryable, true);
    const perm = smtpDeliveryError(Object.assign(new Error('x'), { responseCode: 550, response: '550 no such user' }));
    assert.deepEqual([perm.retryable, perm.code, perm.reason], [false, 550, 'recipient_unreachable']);
    const net = smtpDeliveryError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ESOCKET' }));
    assert.deepEqual([net.retryable, net.code], [true, 'ESOCKET']);
    assert.equal(smtpDeliveryError(Object.assign(new Error('auth'), { code: 'EAUTH', responseCode: 535 })).retryable, false);
  });
});
