import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeKfItem, type KfItem } from '../../adapters/wecom-kf/decode.js';
import type { UnifiedMessage } from '../../gateway/message.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { startFakeWecom, type FakeWecom } from '../fakes/wecom-api.js';
import { inboundJobCount, OFFICIAL, postEncrypted, testBot } from './helpers.js';

const channel = { id: 'kf', type: 'wecom-kf' };
const KF_SECRET = 'wecom-kf-secret-0123456789ab';
const OPEN_KFID = 'wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyJTw';

/** Items as sync_msg returns them (field layouts from the kf docs, path 94670). */
const item = (over: Partial<KfItem> & { msgtype: string }): KfItem => ({
  msgid: `m${Math.random().toString(36).slice(2, 12)}`,
  open_kfid: OPEN_KFID,
  external_userid: 'wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw',
  send_time: 1615478585,
  origin: 3,
  ...over,
});

describe('wecom-kf decode (pure)', () => {
  const decode = (i: KfItem) => decodeKfItem(i, channel, 1);
  const content = (i: KfItem) => {
    const d = decode(i);
    assert.equal(d.kind, 'message');
    return d.kind === 'message' ? d.message.content : undefined;
  };

  it('maps customer messages of every documented shape', () => {
    assert.deepEqual(content(item({ msgtype: 'text', text: { content: 'hello', menu_id: '101' } })), { type: 'text', text: 'hello' });
    assert.deepEqual(content(item({ msgtype: 'image', image: { media_id: 'MI' } })), { type: 'image', mediaId: 'MI' });
    assert.deepEqual(content(item({ msgtype: 'voice', voice: { media_id: 'MV' } })), { type: 'audio', mediaId: 'MV' });
    assert.deepEqual(content(item({ msgtype: 'video', video: { media_id: 'MD' } })), { type: 'video', mediaId: 'MD' });
    assert.deepEqual(content(item({ msgtype: 'file', file: { media_id: 'MF' } })), { type: 'file', mediaId: 'MF' });
    assert.deepEqual(content(item({ msgtype: 'location', location: { latitude: 23.1, longitude: 113.3, name: 'Tower', address: 'Guangzhou' } })), {
      type: 'location',
      latitude: 23.1,
      longitude: 113.3,
      label: 'Tower Guangzhou',
    });
    assert.deepEqual(content(item({ msgtype: 'link', link: { title: 'T', desc: 'D', url: 'https://x', pic_url: 'https://p' } })), {
      type: 'link',
      title: 'T',
      url: 'https://x',
      description: 'D',
      thumbUrl: 'https://p',
    });
    assert.deepEqual(content(item({ msgtype: 'miniprogram', miniprogram: { appid: 'wxabc', title: 'Shop', thumb_media_id: 'x', pagepath: 'pages/a' } })), {
      type: 'link',
      title: 'Shop',
      appId: 'wxabc',
      pagePath: 'pages/a',
    });
    assert.deepEqual(content(item({ msgtype: 'business_card', business_card: { userid: 'u1' } })), { type: 'event', event: 'business_card', data: { userid: 'u1' } });
    const text = decode(item({ msgid: 'from-sync-1', msgtype: 'text', text: { content: 'x', menu_id: '7' } }));
    assert.ok(text.kind === 'message');
    assert.equal(text.message.channelMessageId, 'from-sync-1');
    assert.equal(text.message.metadata.menuId, '7');
    assert.equal(text.message.timestamp, 1615478585000);
  });

  it('keeps events (enter_session with welcome_code, msg_send_fail, unknown) and skips servicer messages', () => {
    const enter = decode({
      msgid: 'e1',
      send_time: 1,
      origin: 4,
      msgtype: 'event',
      event: { event_type: 'enter_session', open_kfid: OPEN_KFID, external_userid: 'wm1', scene: 'ad', scene_param: 'abc', welcome_code: 'WELCOME' },
    });
    assert.ok(enter.kind === 'message');
    assert.deepEqual(enter.message.content, { type: 'event', event: 'enter_session', key: 'ad', data: { open_kfid: OPEN_KFID, external_userid: 'wm1', scene: 'ad', scene_param: 'abc' } });
    assert.equal(enter.welcomeCode, 'WELCOME');
    assert.equal(enter.fromCustomer, false);
    const fail = decode({ msgid: 'e2', origin: 4, msgtype: 'event', event: { event_type: 'msg_send_fail', open_kfid: OPEN_KFID, external_userid: 'wm1', fail_msgid: 'x', fail_type: 4 } });
    assert.ok(fail.kind === 'message' && fail.message.content.type === 'event' && fail.message.content.event === 'msg_send_fail');
    assert.equal(decode({ msgid: 'e3', origin: 4, msgtype: 'event', event: { event_type: 'servicer_status_change', servicer_userid: 's', status: 1 } }).kind, 'skip');
    assert.equal(decode(item({ origin: 5, msgtype: 'text', text: { content: 'from a human' } })).kind, 'skip');
    assert.deepEqual(content(item({ msgtype: 'hologram', hologram: { beam: 1 } })), { type: 'event', event: 'hologram', data: { beam: 1 } });
  });

  it('cuts over-long text and turns an item it cannot read into an undecodable event instead of throwing', () => {
    assert.deepEqual(content(item({ msgtype: 'text', text: { content: 'x'.repeat(20_001) } })), { type: 'text', text: 'x'.repeat(20_000) });
    // A field in a shape the schema refuses (here a servicer_userid that is not a string) must not fail the page.
    const odd = decode(item({ msgid: 'odd-1', msgtype: 'text', text: { content: 'hi' }, servicer_userid: { id: 'x' } as unknown as string }));
    assert.equal(odd.kind, 'undecodable');
    assert.ok(odd.kind === 'undecodable');
    assert.equal(odd.message.channelMessageId, 'odd-1');
    assert.equal(odd.message.sender.id, 'wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw');
    assert.equal(odd.message.content.type, 'event');
    assert.equal(odd.message.content.type === 'event' && odd.message.content.event, 'undecodable');
    assert.match(odd.error, /servicerUserId/);
    assert.equal(decode(null as unknown as KfItem).kind, 'skip');
  });
});

describe('wecom-kf channel end to end (pull with cursor, real gateway and Redis)', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let fake: FakeWecom;
  let gw: TestGateway;
  let mediaDir: string;
  const failures: Array<{ code?: string | number; reason?: string }> = [];
  /** Every message the bot was asked about. */
  const seen: UnifiedMessage[] = [];

  const config = () => ({
    server: { mediaDir },
    pipeline: { deliveryAttempts: 3 },
    channels: [
      {
        id: 'kf',
        type: 'wecom-kf' as const,
        options: { ...OFFICIAL, kfSecret: KF_SECRET, apiBaseUrl: fake.url, pollIntervalMs: 0, rateLimitPauseMs: 100, handoffToWecomAgent: true },
      },
    ],
  });
  const start = async () => {
    const bot = testBot();
    gw = await startTestGateway(config(), redis.url, { bot: { decide: (input) => (seen.push(input.message), bot.decide(input)) } });
    gw.gateway.events.on('message.delivery_failed', (e) => failures.push({ code: e.code, reason: e.reason }));
  };
  const callback = (opts: { forge?: boolean } = {}) =>
    postEncrypted(
      gw,
      'kf',
      `<xml><ToUserName><![CDATA[${OFFICIAL.corpId}]]></ToUserName><CreateTime>${Math.floor(Date.now() / 1000)}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[${fake.issueSyncToken()}]]></Token><OpenKfId><![CDATA[${OPEN_KFID}]]></OpenKfId></xml>`,
      opts,
    );
  const say = (user: string, text: string) => fake.pushKf({ msgid: `msg-${user}-${text}`.replace(/[^0-9a-zA-Z_-]/g, '_'), open_kfid: OPEN_KFID, external_userid: user, origin: 3, msgtype: 'text', text: { content: text } });
  const kfReplies = (user: string) => fake.sent.filter((s) => s.path === 'kf/send_msg' && s.body.touser === user);

  before(async () => {
    redis = await startTestRedis();
    fake = await startFakeWecom({ corpId: OFFICIAL.corpId, secrets: { [KF_SECRET]: 0 } });
    fake.addKfAccount(OPEN_KFID);
    mediaDir = mkdtempSync(join(tmpdir(), 'kf-media-'));
    await start();
  });
  after(async () => {
    await gw?.stop();
    await fake?.close();
    await redis?.stop();
    rmSync(mediaDir, { recursive: true, force: true });
  });

  it('pulls on the callback and replies with kf/send_msg to the external user on the kf account', async () => {
    say('wm-alice', 'hello kf');
    const res = await callback();
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
    const reply = await eventually(() => kfReplies('wm-alice')[0], 'kf reply');
    assert.equal(reply.body.open_kfid, OPEN_KFID);
    assert.equal(reply.body.msgtype, 'text');
    assert.deepEqual(reply.body.text, { content: 'echo: hello kf' });
    assert.match(reply.body.msgid, /^[0-9A-Z]{26}$/);
    const sync = fake.syncRequests.at(-1)!;
    assert.equal(sync.open_kfid, OPEN_KFID);
    assert.equal(typeof sync.token, 'string', 'the callback Token is passed on');
  });

  it('moves on past an over-long or unreadable item: later messages of the kf account are still answered', async () => {
    fake.pushKf({ msgid: 'long-1', open_kfid: OPEN_KFID, external_userid: 'wm-long', origin: 3, msgtype: 'text', text: { content: 'x'.repeat(20_001) } });
    fake.pushKf({ msgid: 'odd-1', open_kfid: OPEN_KFID, external_userid: 'wm-odd', origin: 3, msgtype: 'text', text: { content: 'odd' }, servicer_userid: { id: 1 } });
    say('wm-next', 'am I answered?');
    await callback();
    const next = await eventually(() => kfReplies('wm-next')[0], 'the message after the bad items answered');
    assert.deepEqual(next.body.text, { content: 'echo: am I answered?' });
    const long = await eventually(() => seen.find((m) => m.sender.id === 'wm-long' && m.direction === 'in'), 'the over-long text ingested');
    assert.deepEqual(long.content, { type: 'text', text: 'x'.repeat(20_000) });
    const odd = seen.find((m) => m.sender.id === 'wm-odd' && m.direction === 'in');
    assert.equal(odd?.content.type === 'event' && odd.content.event, 'undecodable');
    assert.ok(gw.logs.some((l) => l.msg === 'kf item undecodable; ingested as an undecodable event' && l.msgid === 'odd-1'));
    assert.ok(!gw.logs.some((l) => l.msg === 'kf sync failed; will resume from the saved cursor'));
  });

  it('refuses a forged callback with 401 and pulls nothing', async () => {
    const pulls = fake.syncRequests.length;
    const res = await callback({ forge: true });
    assert.equal(res.status, 401);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(fake.syncRequests.length, pulls);
  });

  it('follows has_more over several pages, each message answered once even with concurrent callbacks', async () => {
    fake.setSyncPageSize(2);
    for (const t of ['p1', 'p2', 'p3', 'p4', 'p5']) say('wm-bob', t);
    await Promise.all([callback(), callback(), callback()]);
    await eventually(() => kfReplies('wm-bob').length === 5, 'five replies');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(kfReplies('wm-bob').map((s) => s.body.text.content), ['echo: p1', 'echo: p2', 'echo: p3', 'echo: p4', 'echo: p5']);
    fake.setSyncPageSize(1000);
  });

  it('sends a welcome message with send_msg_on_event for enter_session', async () => {
    fake.pushKf({ msgid: 'enter-1', open_kfid: OPEN_KFID, origin: 4, msgtype: 'event', event: { event_type: 'enter_session', open_kfid: OPEN_KFID, external_userid: 'wm-carol', scene: 'qr', welcome_code: 'WELCOME-CODE-1' } });
    await callback();
    const welcome = await eventually(() => fake.sent.find((s) => s.path === 'kf/send_msg_on_event'), 'welcome');
    assert.equal(welcome.body.code, 'WELCOME-CODE-1');
    assert.deepEqual(welcome.body.text, { content: 'event: enter_session' });
  });

  it('sends a non-text welcome as text: send_msg_on_event takes only text or msgmenu', async () => {
    fake.pushKf({ msgid: 'enter-2', open_kfid: OPEN_KFID, origin: 4, msgtype: 'event', event: { event_type: 'enter_session', open_kfid: OPEN_KFID, external_userid: 'wm-poster', scene: 'poster', welcome_code: 'WELCOME-CODE-2' } });
    await callback();
    const welcome = await eventually(() => fake.sent.find((s) => s.path === 'kf/send_msg_on_event' && s.body.code === 'WELCOME-CODE-2'), 'welcome');
    assert.equal(welcome.body.msgtype, 'text');
    assert.deepEqual(welcome.body.text, { content: 'Welcome!\nhttps://example.com/welcome.png' });
  });

  it('keeps the welcome code through a transient failure, so the retry still welcomes', async () => {
    fake.failNext('kf/send_msg_on_event', { status: 503 });
    fake.pushKf({ msgid: 'enter-3', open_kfid: OPEN_KFID, origin: 4, msgtype: 'event', event: { event_type: 'enter_session', open_kfid: OPEN_KFID, external_userid: 'wm-retry', scene: 'qr', welcome_code: 'WELCOME-CODE-3' } });
    await callback();
    const welcome = await eventually(() => fake.sent.find((s) => s.path === 'kf/send_msg_on_event' && s.body.code === 'WELCOME-CODE-3'), 'welcome after the retry');
    assert.deepEqual(welcome.body.text, { content: 'event: enter_session' });
    assert.equal(kfReplies('wm-retry').length, 0, 'not sent with send_msg');
  });

  it('fails a welcome fast once its 20 s code has lapsed', async () => {
    const before = fake.sent.length;
    fake.pushKf({ msgid: 'enter-4', send_time: Math.floor(Date.now() / 1000) - 30, open_kfid: OPEN_KFID, origin: 4, msgtype: 'event', event: { event_type: 'enter_session', open_kfid: OPEN_KFID, external_userid: 'wm-late', scene: 'qr', welcome_code: 'WELCOME-CODE-4' } });
    await callback();
    const failed = await eventually(() => failures.find((f) => f.code === 'kf_welcome_expired'), 'welcome refused');
    assert.equal(failed.reason, 'reply_window_expired');
    assert.equal(fake.sent.slice(before).filter((s) => s.body.code === 'WELCOME-CODE-4' || s.body.touser === 'wm-late').length, 0);
  });

  it('keeps to 5 replies per customer message and fails the rest fast', async () => {
    say('wm-dave', 'many 7');
    await callback();
    await eventually(() => failures.filter((f) => f.code === 'kf_quota_5').length === 2, 'two quota failures');
    assert.equal(kfReplies('wm-dave').length, 5);
    assert.equal(failures.find((f) => f.code === 'kf_quota_5')!.reason, 'quota_exhausted');
  });

  it('fails fast with the platform code when the 48 h window has passed', async () => {
    say('wm-erin', 'late');
    fake.skewClock(49 * 3600);
    try {
      await callback();
      await eventually(() => failures.some((f) => f.code === 95002), 'window failure');
      assert.equal(failures.find((f) => f.code === 95002)!.reason, 'reply_window_expired');
      assert.equal(kfReplies('wm-erin').length, 0);
    } finally {
      fake.skewClock(0);
    }
  });

  it('hands the session to WeCom servicers on a gateway hand-off', async () => {
    say('wm-frank', 'human');
    await callback();
    const trans = await eventually(() => fake.sent.find((s) => s.path === 'kf/service_state/trans' && s.body.external_userid === 'wm-frank'), 'transfer');
    assert.deepEqual(trans.body, { open_kfid: OPEN_KFID, external_userid: 'wm-frank', service_state: 2 });
    assert.equal(fake.session(OPEN_KFID, 'wm-frank').state, 2);
  });

  it('follows the kf session: a servicer taking it moves the conversation to agent (no bot, no send), its end closes it, the customer writing again reopens it', async () => {
    const user = 'wm-ivy';
    say(user, 'first');
    await callback();
    await eventually(() => kfReplies(user).length === 1, 'answered while with the API');
    const conversationId = seen.find((m) => m.sender.id === user)!.conversationId;
    const textsIn = async () => (await gw.gateway.transcripts.list(conversationId)).filter((m) => m.direction === 'in' && m.content.type === 'text');
    // A servicer takes the session from the queue (session_status_change, change_type 1) and writes from WeCom.
    fake.session(OPEN_KFID, user).state = 3;
    fake.pushKf({ msgid: 'ssc-1', open_kfid: OPEN_KFID, origin: 4, msgtype: 'event', event: { event_type: 'session_status_change', open_kfid: OPEN_KFID, external_userid: user, change_type: 1, new_servicer_userid: 'zhangsan' } });
    fake.pushKf({ msgid: 'srv-1', open_kfid: OPEN_KFID, external_userid: user, origin: 5, servicer_userid: 'zhangsan', msgtype: 'text', text: { content: 'hi, Zhang here' } });
    say(user, 'second');
    await callback();
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'agent', 'the conversation is with a human');
    const second = await eventually(async () => (await textsIn()).find((m) => m.content.type === 'text' && m.content.text === 'second'), 'second received');
    assert.equal(second.metadata.kfServiceState, 3, 'the customer message says who holds the session');
    const moved = (await gw.gateway.conversations.history(conversationId)).find((c) => c.to === 'agent');
    assert.equal(moved?.by, 'platform:kf');
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!seen.some((m) => m.content.type === 'text' && m.content.text === 'second'), 'the bot did not run');
    assert.equal(kfReplies(user).length, 1, 'nothing sent while the servicer holds the session');
    // A reply from the gateway's side (an agent through the API) is refused locally while the servicer holds it.
    const before = failures.length;
    await gw.gateway.pipeline.sendToConversation(conversationId, { type: 'text', text: 'from the API' }, { id: 'ann', role: 'agent' });
    const refused = await eventually(() => failures.slice(before).find((f) => f.code === 'kf_session_with_servicer'), 'refused locally');
    assert.equal(refused.reason, 'recipient_unreachable');
    assert.ok(!failures.slice(before).some((f) => f.code === 95018), 'no send_msg attempted');
    // The servicer ends the session (change_type 3): the conversation closes; the customer's next message opens a new
    // session (state 0) and reopens the conversation for the bot.
    fake.pushKf({ msgid: 'ssc-2', open_kfid: OPEN_KFID, origin: 4, msgtype: 'event', event: { event_type: 'session_status_change', open_kfid: OPEN_KFID, external_userid: user, change_type: 3, old_servicer_userid: 'zhangsan' } });
    fake.session(OPEN_KFID, user).state = 4;
    await callback();
    await eventually(async () => (await gw.gateway.conversations.history(conversationId)).some((c) => c.to === 'closed' && c.by === 'platform:kf'), 'closed with the session');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await gw.gateway.conversations.state(conversationId), 'closed', 'the end of the session does not reopen it');
    assert.ok(!seen.some((m) => m.conversationId === conversationId && m.content.type === 'event'), 'the bot saw no session event');
    say(user, 'third');
    await callback();
    const third = await eventually(() => kfReplies(user).find((s) => s.body.text.content === 'echo: third'), 'answered again');
    assert.ok(third);
  });

  it('moves a closed conversation to agent when a servicer takes up the ended session (change_type 4)', async () => {
    const user = 'wm-kate';
    say(user, 'hello');
    await callback();
    await eventually(() => kfReplies(user).length === 1, 'answered');
    const conversationId = seen.find((m) => m.sender.id === user)!.conversationId;
    const change = (changeType: number, id: string) =>
      fake.pushKf({ msgid: id, open_kfid: OPEN_KFID, origin: 4, msgtype: 'event', event: { event_type: 'session_status_change', open_kfid: OPEN_KFID, external_userid: user, change_type: changeType, new_servicer_userid: 'lisi' } });
    change(3, 'kate-end');
    await callback();
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'closed', 'closed');
    change(4, 'kate-again');
    await callback();
    await eventually(async () => (await gw.gateway.conversations.state(conversationId)) === 'agent', 'with the servicer again');
  });

  it('maps 95018 (session state does not allow API messages) to a fast failure', async () => {
    say('wm-jack', 'hello');
    fake.session(OPEN_KFID, 'wm-jack').state = 2;
    await callback();
    const failure = await eventually(() => failures.find((f) => f.code === 95018), '95018');
    assert.equal(failure.reason, 'recipient_unreachable');
  });

  it('loses and repeats nothing when the gateway restarts between two pages', async () => {
    fake.setSyncPageSize(2);
    for (const t of ['r1', 'r2', 'r3', 'r4']) say('wm-gina', t);
    // Page 1 goes through; page 2 fails with a 5xx, leaving the cursor after page 1 and the news pending.
    fake.failNext('kf/sync_msg', { pass: true }, { status: 503 });
    await callback();
    await eventually(() => kfReplies('wm-gina').length === 2, 'page 1 answered');
    await eventually(() => gw.logs.some((l) => l.msg === 'kf sync failed; will resume from the saved cursor'), 'page 2 failed');
    const pulls = fake.syncRequests.length;
    await gw.stop();
    await start();
    assert.ok(typeof fake.syncRequests[pulls]?.cursor === 'string', 'the new process resumes from the saved cursor');
    await eventually(() => kfReplies('wm-gina').length === 4, 'all four after restart');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(kfReplies('wm-gina').map((s) => s.body.text.content), ['echo: r1', 'echo: r2', 'echo: r3', 'echo: r4']);
    fake.setSyncPageSize(1000);
  });

  it('serialises pulls of one open_kfid across processes (Redis lock), answering each message once', async () => {
    // A second ingress process on the same Redis receives callbacks too (as behind a load balancer).
    const other = await startTestGateway(config(), redis.url, { role: 'ingress', bot: testBot() });
    try {
      fake.setSyncPageSize(1);
      fake.setSyncDelay(30);
      fake.syncConcurrency.max = 0;
      for (const t of ['c1', 'c2', 'c3', 'c4']) say('wm-hana', t);
      const notify = (g: TestGateway) =>
        postEncrypted(g, 'kf', `<xml><ToUserName>${OFFICIAL.corpId}</ToUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>kf_msg_or_event</Event><Token>${fake.issueSyncToken()}</Token><OpenKfId>${OPEN_KFID}</OpenKfId></xml>`);
      // Each further callback lands on the other process while a pull is in flight.
      for (const g of [gw, other, gw, other]) {
        const pulls = fake.syncRequests.length;
        assert.equal((await notify(g)).status, 200);
        await eventually(() => fake.syncRequests.length > pulls || fake.syncConcurrency.inFlight > 0, 'a pull in flight');
      }
      await eventually(() => kfReplies('wm-hana').length === 4, 'four replies');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(kfReplies('wm-hana').map((s) => s.body.text.content), ['echo: c1', 'echo: c2', 'echo: c3', 'echo: c4']);
      assert.equal(fake.syncConcurrency.max, 1, 'never two sync_msg calls for one open_kfid at once');
    } finally {
      fake.setSyncDelay(0);
      fake.setSyncPageSize(1000);
      await other.stop();
    }
  });

  it('queues nothing for a callback that fails verification', async () => {
    const before = await inboundJobCount(gw);
    assert.equal((await callback({ forge: true })).status, 401);
    assert.equal(await inboundJobCount(gw), before);
  });
});
