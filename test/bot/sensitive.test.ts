import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sensitiveOutboundHook } from '../../bot/sensitive-hook.js';
import { SensitiveWords } from '../../bot/sensitive.js';
import { createMessage } from '../../gateway/message.js';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { TestSocket } from '../helpers/ws-client.js';

describe('sensitive words: Aho–Corasick matching', () => {
  it('finds overlapping words in Chinese and English in one pass, whole words only for Latin script', () => {
    const words = new SensitiveWords(['he', 'she', 'hers', '傻瓜', '大傻', 'Scam', 'ass']);
    assert.deepEqual(
      words.find('ushers 你这个大傻瓜 SCAM!').map((h) => h.word),
      ['大傻', '傻瓜', 'scam'],
    );
    // "he"/"she"/"hers" sit inside the word "ushers": not whole words, so no hit; "ass" inside "class" neither.
    assert.deepEqual(words.find('first class'), []);
    assert.deepEqual(words.find('she said hers').map((h) => h.word), ['she', 'hers']);
    // Full-width Latin is normalised (NFKC).
    assert.deepEqual(words.find('ＳＣＡＭ').map((h) => h.word), ['scam']);
    assert.deepEqual(new SensitiveWords([]).find('anything'), []);
  });

  it('the outbound hook checks a repeated reply once per word list, and a new list from the start', () => {
    let list = new SensitiveWords(['scam']);
    let reads = 0;
    const counted = (words: SensitiveWords) => ({ find: (text: string) => (reads++, words.find(text)) }) as SensitiveWords;
    let current = counted(list);
    const hook = sensitiveOutboundHook(() => current, 'bot');
    const reply = (text: string) =>
      createMessage({ channel: 'web', channelType: 'web', direction: 'out', conversationId: 'web.c', sender: { id: 'bot', role: 'bot' }, content: { type: 'text', text } });
    const verdict = (text: string) => {
      const result = hook.beforeSend!(reply(text), {} as never);
      return 'blocked' in result ? result.blocked : 'sent';
    };
    assert.equal(verdict('Orders arrive in 2–4 days.'), 'sent');
    assert.equal(verdict('Orders arrive in 2–4 days.'), 'sent');
    assert.equal(verdict('No scam – ever.'), 'contains listed word(s): scam');
    assert.equal(verdict('No scam – ever.'), 'contains listed word(s): scam');
    assert.equal(reads, 2, 'each text read once');
    list = new SensitiveWords(['days']);
    current = counted(list);
    assert.equal(verdict('Orders arrive in 2–4 days.'), 'contains listed word(s): days', 'a reloaded list is applied');
    assert.equal(verdict('No scam – ever.'), 'sent');
    assert.equal(reads, 4);
  });

  it('plain ASCII text (read without normalising) is matched case-blind, whole words only, at its own indexes', () => {
    const words = new SensitiveWords(['idiot', 'scam', 'he']);
    const text = 'Tell that IDIOT: no scammer, no Scam.';
    const hits = words.find(text);
    assert.deepEqual(hits.map((h) => h.word), ['idiot', 'scam']);
    assert.deepEqual(hits.map((h) => text.slice(h.index, h.index + h.word.length)), ['IDIOT', 'Scam']);
    assert.deepEqual(words.find('the scheme'), []);
  });

  it('a Latin word right next to Chinese is a whole word: Chinese is a boundary, Latin letters and digits are not', () => {
    const words = new SensitiveWords(['sb', 'fuck', 'agent', 'human']);
    const found = (text: string) => words.find(text).map((h) => h.word);
    assert.deepEqual(found('你是sb吗'), ['sb']);
    assert.deepEqual(found('fuck你'), ['fuck']);
    assert.deepEqual(found('转agent'), ['agent']);
    assert.deepEqual(found('请转human客服'), ['human']);
    assert.deepEqual(found('agents'), []);
    assert.deepEqual(found('sb2'), []);
    assert.deepEqual(found('my_sb'), []);
  });

  it('zero-width characters and gaps between two Han characters do not split a Chinese word', () => {
    const words = new SensitiveWords(['傻逼', 'scam']);
    const found = (text: string) => words.find(text).map((h) => h.word);
    assert.deepEqual(found('傻 逼'), ['傻逼']);
    assert.deepEqual(found('傻\u200b逼'), ['傻逼']);
    assert.deepEqual(found('傻*逼'), ['傻逼']);
    assert.deepEqual(found('傻＊逼'), ['傻逼']);
    assert.deepEqual(found('你这个傻 . 逼'), ['傻逼']);
    assert.deepEqual(found('傻_-·逼'), ['傻逼']);
    assert.deepEqual(found('傻　\u200b\u200b*逼'), ['傻逼']);
    assert.deepEqual(found('s\u200bcam'), ['scam']);
    // A gap between Latin letters still separates words.
    assert.deepEqual(found('sc am'), []);
  });

  it('sentence punctuation, a line break or a long gap between two Han characters ends a word', () => {
    const words = new SensitiveWords(['傻逼', '代开发票']);
    const found = (text: string) => words.find(text).map((h) => h.word);
    assert.deepEqual(found('我真傻。逼自己加班到十点'), []);
    assert.deepEqual(found('我要代开，发票什么时候寄'), []);
    assert.deepEqual(found('需要代开。发票抬头怎么写？'), []);
    for (const mark of ['，', ',', '！', '？', '；', '：', '、', '…', '“', '」', '——', '\n']) {
      assert.deepEqual(found(`我真傻${mark}逼自己加班`), [], JSON.stringify(mark));
    }
    // Obfuscators are closed only up to three in a row.
    assert.deepEqual(found('傻***逼'), ['傻逼']);
    assert.deepEqual(found('傻****逼'), []);
    assert.deepEqual(found('傻 * . 逼'), []);
  });

  it('reports where each word starts in the text as given', () => {
    const words = new SensitiveWords(['傻逼', 'scam']);
    const text = 'ＯＫ, 你是傻 逼 e\u0301 ＳＣＡＭ';
    const hits = words.find(text);
    assert.deepEqual(hits.map((h) => h.word), ['傻逼', 'scam']);
    assert.equal(text.slice(hits[0]!.index, hits[0]!.index + 1), '傻');
    assert.equal(text.slice(hits[1]!.index, hits[1]!.index + 1), 'Ｓ');
  });
});

describe('sensitive words through the gateway', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  before(async () => {
    redis = await startTestRedis();
    gw = await startTestGateway(
      {
        channels: [{ id: 'web', type: 'web', options: { secret: 'web-test-secret-0123456789' } }],
        bot: {
          sensitive: { words: ['scam', '骗子'], inbound: 'flag' },
          rules: [
            { id: 'leaky', match: { keywords: ['deal'] }, reply: 'This deal is a scam, trust me.' },
            { id: 'clean', match: { keywords: ['hours'] }, reply: 'We are open 9 to 6.' },
          ],
          fallback: 'fallback',
        },
      },
      redis.url,
    );
  });
  after(async () => {
    await gw?.stop();
    await redis?.stop();
  });

  it('blocks an outbound reply containing a listed word: it is never delivered, the next reply is', async () => {
    const socket = await TestSocket.open(gw.url.replace('http', 'ws') + '/webhooks/web/ws');
    try {
      await socket.next((f) => f.type === 'session');
      socket.send({ type: 'message', clientMessageId: 's1', text: 'tell me about the deal' });
      await eventually(() => gw.logs.find((l) => l.msg === 'outbound message blocked'), 'the blocked reply in the log');
      const blocked = gw.logs.find((l) => l.msg === 'outbound message blocked')!;
      assert.match(String(blocked.reason), /sensitive-words: contains listed word\(s\): scam/);
      socket.send({ type: 'message', clientMessageId: 's2', text: 'opening hours?' });
      const first = await socket.next((f) => f.type === 'message');
      // The first reply the customer ever receives is the clean one.
      assert.equal(first.message.content.text, 'We are open 9 to 6.');
      const transcript = await gw.gateway.transcripts.list(first.message.conversationId);
      assert.ok(!transcript.some((m) => m.direction === 'out' && m.content.type === 'text' && m.content.text.includes('scam')));
    } finally {
      await socket.close();
    }
  });

  it('flags an inbound message with listed words as a message.sensitive event', async () => {
    const seen: Array<{ words: string[]; text: string }> = [];
    const off = gw.gateway.events.on('message.sensitive', (e) =>
      seen.push({ words: e.words, text: e.message.content.type === 'text' ? e.message.content.text : '' }),
    );
    const socket = await TestSocket.open(gw.url.replace('http', 'ws') + '/webhooks/web/ws');
    try {
      await socket.next((f) => f.type === 'session');
      socket.send({ type: 'message', clientMessageId: 'f1', text: '你们是骗子吗' });
      await eventually(() => seen.length === 1, 'the message.sensitive event');
      assert.deepEqual(seen[0], { words: ['骗子'], text: '你们是骗子吗' });
      const reply = await socket.next((f) => f.type === 'message');
      assert.equal(reply.message.content.text, 'fallback');
    } finally {
      off();
      await socket.close();
    }
  });
});
