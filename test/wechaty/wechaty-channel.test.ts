/**
 * Personal WeChat channel end to end: a REAL Wechaty instance running wechaty-puppet-mock (loaded by name from the
 * channel config, exactly as a production puppet is), driven through the puppet's Mocker, through the real gateway
 * pipeline and Redis.
 */
import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileBox } from 'file-box';
import type { PuppetMock, mock } from 'wechaty-puppet-mock';
import * as PUPPET_TYPES from 'wechaty-puppet/types';
import type { WechatyAdapter } from '../../adapters/wechaty/index.js';
import type { Bot, BotInput } from '../../bot/types.js';
import type { UnifiedMessage } from '../../gateway/message.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';

class RecordingBot implements Bot {
  readonly seen: UnifiedMessage[] = [];
  async decide({ message }: BotInput) {
    this.seen.push(message);
    const text = message.content.type === 'text' ? message.content.text : `[${message.content.type}]`;
    return { replies: [{ type: 'text' as const, text: `Echo: ${text}` }], trace: { stage: 'rule' } };
  }
}

describe('wechaty channel: real Wechaty + wechaty-puppet-mock', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let mediaDir: string;
  let mocker: mock.Mocker;
  let me: mock.ContactMock;
  let ann: mock.ContactMock;
  let ben: mock.ContactMock;
  let room: mock.RoomMock;
  const bot = new RecordingBot();
  /** Every message the logged-in account sent, as the mock server saw it. */
  const outgoing: Array<{ text?: string | undefined; to?: string | undefined; roomId?: string | undefined; mentionIdList?: string[] | undefined }> = [];

  before(async () => {
    mediaDir = mkdtempSync(join(tmpdir(), 'gw-media-'));
    redis = await startTestRedis();
    gw = await startTestGateway(
      {
        server: { mediaDir },
        channels: [{ id: 'wx', type: 'wechaty', options: { puppet: 'wechaty-puppet-mock', puppetToken: 'mock-token', rooms: { policy: 'mention' } } }],
      },
      redis.url,
      { bot },
    );
    const adapter = gw.gateway.adapters.get('wx') as WechatyAdapter;
    mocker = (adapter.bot!.puppet as unknown as PuppetMock).mocker;
  });
  after(async () => {
    await gw?.stop();
    await redis?.stop();
    rmSync(mediaDir, { recursive: true, force: true });
  });

  /** A message arriving from the WeChat side with a payload the test chooses (what ContactMock.say does inside). */
  const arrive = (payload: Record<string, unknown>) => {
    const msg = mocker.MessageMock.create(payload as never);
    mocker.puppet.emit('message', { messageId: msg.id });
  };

  const readyz = async () =>
    ((await (await fetch(`${gw.url}/readyz`)).json()) as { checks: Record<string, { ok: boolean; detail?: string }> }).checks['channel:wx']!;

  it('shows the QR code while waiting for the scan, then the login, on /readyz', async () => {
    mocker.scan('https://login.weixin.qq.com/l/mock-qr', PUPPET_TYPES.ScanStatus.Waiting);
    const waiting = await eventually(async () => {
      const c = await readyz();
      return c.detail?.includes('mock-qr') ? c : undefined;
    }, 'QR code on /readyz');
    assert.equal(waiting.ok, false);
    assert.match(waiting.detail!, /^waiting_for_scan: scan the QR code .*Waiting.*https:\/\/login\.weixin\.qq\.com\/l\/mock-qr/);
    assert.ok(gw.logs.some((l) => l.msg?.toString().includes('scan this QR code') && l.qrcode === 'https://login.weixin.qq.com/l/mock-qr'));

    me = mocker.createContact({ name: 'Support Bot' });
    ann = mocker.createContact({ name: 'Ann' });
    ben = mocker.createContact({ name: 'Ben' });
    room = mocker.createRoom({ topic: 'VIP customers', memberIdList: [me.id, ann.id, ben.id] });
    // The mock's contacts and rooms are event emitters (typed-emitter, whose types omit `on`).
    for (const party of [ann, ben, room] as unknown as EventEmitter[]) {
      party.on('message', (m: mock.MessageMock) => m.talker().id === me.id && outgoing.push({ ...m.payload }));
    }
    mocker.login(me);
    const loggedIn = await eventually(async () => ((await readyz()).ok ? readyz() : undefined), 'logged in');
    assert.match(loggedIn.detail!, /^logged_in: logged in as Support Bot/);
  });

  it('answers a contact through the same Wechaty instance; the message id dedupes', async () => {
    ann.say('hello there').to(me);
    const reply = await eventually(() => outgoing.find((m) => m.text === 'Echo: hello there'), 'reply to Ann');
    assert.equal(reply.roomId, undefined);
    const seen = bot.seen.find((m) => m.content.type === 'text' && m.content.text === 'hello there')!;
    assert.equal(seen.sender.id, ann.id);
    assert.equal(seen.sender.name, 'Ann');
    assert.equal(seen.channelType, 'wechaty');
    assert.ok(seen.channelMessageId, 'the Wechaty message id is the channel message id');

    // The same Wechaty message seen twice (a puppet re-emitting after a reconnect) is ingested once.
    const before = bot.seen.length;
    mocker.puppet.emit('message', { messageId: seen.channelMessageId! });
    ben.say('after the repeat').to(me);
    await eventually(() => outgoing.find((m) => m.text === 'Echo: after the repeat'), 'reply to Ben');
    assert.equal(bot.seen.length, before + 1, 'the repeated message was dropped as a duplicate');
    assert.ok(gw.logs.some((l) => l.msg === 'duplicate dropped' && l.channel === 'wx'));
    assert.equal(outgoing.filter((m) => m.text === 'Echo: hello there').length, 1);
  });

  it("skips messages sent from the bot's own account (e.g. typed on the phone), so it never answers itself", async () => {
    const before = bot.seen.length;
    me.say('typed on the phone').to(ann);
    await eventually(() => gw.logs.find((l) => l.msg === 'wechaty message not for the bot' && l.reason === 'self'), 'own message skipped');
    ann.say('and now me').to(me);
    await eventually(() => outgoing.find((m) => m.text === 'Echo: and now me'), 'reply to Ann');
    assert.deepEqual(
      bot.seen.slice(before).map((m) => m.content.type === 'text' && m.content.text),
      ['and now me'],
      'only the contact message reached the bot',
    );
    assert.equal(outgoing.filter((m) => m.text === 'Echo: typed on the phone').length, 0);
  });

  it('in rooms answers only when mentioned, with the mention stripped, and @-mentions the asker in the reply', async () => {
    ben.say('just chatting, no mention').to(room);
    ann.say('@Support Bot\u2005where is my order?', [me]).to(room);
    const reply = await eventually(() => outgoing.find((m) => m.roomId === room.id), 'room reply');
    assert.match(reply.text ?? '', /Echo: where is my order\?/);
    const seen = bot.seen.filter((m) => m.metadata.roomId === room.id);
    assert.equal(seen.length, 1, 'the message without a mention was not given to the bot');
    assert.deepEqual(seen[0]!.content, { type: 'text', text: 'where is my order?' });
    assert.equal(seen[0]!.metadata.roomTopic, 'VIP customers');
    assert.ok(gw.logs.some((l) => l.msg === 'wechaty message not for the bot' && l.reason === 'not_mentioned'));
  });

  it('maps files (stored, with a gateway URL), url links and mini-programs', async () => {
    const pdf = Buffer.from('%PDF-1.4 mock invoice');
    const base = { talkerId: ann.id, listenerId: me.id, timestamp: Date.now() };
    // The mock types a said FileBox by media type and knows no documents: hand it the attachment the way it stores
    // one itself (FileBox JSON by message id), with the Attachment type a real puppet reports.
    mocker.cacheFileBoxPayload.set('file-1', FileBox.fromBase64(pdf.toString('base64'), 'invoice.pdf').toJSON());
    arrive({ ...base, id: 'file-1', type: PUPPET_TYPES.Message.Attachment, filename: 'invoice.pdf' });
    const file = await eventually(() => bot.seen.find((m) => m.channelMessageId === 'file-1'), 'file message');
    assert.equal(file.content.type === 'file' && file.content.name, 'invoice.pdf');
    const url = file.content.type === 'file' ? file.content.url! : '';
    assert.ok(url.startsWith(`${gw.url}/media/`));
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/pdf');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), pdf);

    // An image: the mock puppet serves every image as a generated QR-code PNG.
    ben.say(FileBox.fromBase64(Buffer.from('not really').toString('base64'), 'photo.png')).to(me);
    const image = await eventually(() => bot.seen.find((m) => m.content.type === 'image'), 'image message');
    const imageRes = await fetch(image.content.type === 'image' ? image.content.url! : '');
    assert.equal(imageRes.status, 200);
    assert.equal(imageRes.headers.get('content-type'), 'image/png');
    assert.deepEqual(Buffer.from(await imageRes.arrayBuffer()).subarray(1, 4).toString(), 'PNG');

    // The mock puppet answers messageUrl/messageMiniProgram with its own fixed payloads.
    arrive({ ...base, id: 'url-1', type: PUPPET_TYPES.Message.Url });
    arrive({ ...base, id: 'mp-1', type: PUPPET_TYPES.Message.MiniProgram });
    const link = await eventually(() => bot.seen.find((m) => m.channelMessageId === 'url-1'), 'url link');
    assert.deepEqual(link.content, { type: 'link', url: 'https://mock.url', title: 'mock title for url-1' });
    const mp = await eventually(() => bot.seen.find((m) => m.channelMessageId === 'mp-1'), 'mini program');
    assert.deepEqual(mp.content, { type: 'link', title: 'mock title for mp-1' });
  });

  it('shows the logout on /readyz and refuses to send until logged in again', async () => {
    const adapter = gw.gateway.adapters.get('wx') as WechatyAdapter;
    await adapter.bot!.logout();
    const out = await eventually(async () => ((await readyz()).ok ? undefined : readyz()), 'logged out');
    assert.match(out.detail!, /^logged_out/);
    const reference = (await gw.gateway.conversations.reference(bot.seen[0]!.conversationId))!;
    await assert.rejects(
      adapter.send({ ...bot.seen[0]!, direction: 'out', sender: { id: 'bot', role: 'bot' } }, reference),
      (err: any) => err.name === 'DeliveryError' && err.retryable === true && err.code === 'not_logged_in',
    );
  });
});
