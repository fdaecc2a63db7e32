import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { IntentClassifier } from '../../bot/intent/types.js';
import { FaqEntry } from '../../bot/kb/entry.js';
import { createMessage } from '../../gateway/message.js';
import { startTestRedis } from '../helpers/redis.js';
import { KeywordClassifier, replyText, startTestBot, type TestBot } from './helpers.js';

const classifier = new KeywordClassifier({
  order_status: ['where', 'parcel', 'track'],
  return_refund: ['return', 'refund'],
  human_agent: ['speak to someone'],
  greeting: ['good morning'],
});

const config = {
  intent: {
    replies: { order_status: 'Send me your order number and I will track it.', return_refund: 'Returns are free within 30 days.', greeting: 'Good morning to you!' },
    names: { order_status: 'order tracking', return_refund: 'a return' },
    handoffLabels: ['human_agent'],
  },
  kb: { threshold: 0.4 },
  rules: [
    { id: 'vip', match: { attributes: { tier: 'vip' }, keywords: ['refund'] }, reply: 'A VIP colleague will call you.', handoff: { team: 'vip', priority: 'high' as const } },
    { id: 'order-number', match: { entities: { has: ['orderNumber'] }, keywords: ['where'] }, reply: 'Order {{slots.orderNumber}} is on its way.' },
  ],
  sensitive: { words: ['idiot', '傻瓜'], inbound: 'flag' as const },
  policy: { handoffAfterUnanswered: 2, handoffTeam: 'support' },
  fallback: 'Sorry, I did not get that.',
};

describe('decision policy over real Redis', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let bot: TestBot;
  before(async () => {
    redis = await startTestRedis();
    bot = await startTestBot(config, redis.url, { classifier });
    await bot.parts.kb.upsert([
      FaqEntry.parse({
        id: 'refund-time',
        question: 'How long does a refund take?',
        paraphrases: ['when do I get my money back'],
        answer: 'Refunds reach your account in 3–5 days.',
      }),
    ]);
  });
  after(async () => {
    await bot?.stop();
    await redis?.stop();
  });

  it('answers from a rule before the KB and the intent model, and a rule can hand off', async () => {
    const vip = await bot.say('I want a refund', { user: 'vip-1', metadata: { tier: 'vip' } });
    assert.equal(vip.trace.stage, 'rule');
    assert.equal(vip.trace.ruleId, 'vip');
    assert.deepEqual(vip.handoff, { reason: 'rule vip', priority: 'high', team: 'vip' });
    assert.equal(replyText(vip), 'A VIP colleague will call you.');
    // The same words without the attribute: no rule, the KB answers.
    const kb = await bot.say('how long does a refund take', { user: 'plain-1' });
    assert.equal(kb.trace.stage, 'kb');
    assert.equal(kb.trace.faqId, 'refund-time');
    assert.ok(kb.trace.score! >= 0.4);
    assert.equal(kb.trace.intent?.modelVersion, 'keywords@1', 'the trace carries the model version even when the KB answered');
  });

  it('captures entities into slots and uses them in rule templates', async () => {
    const d = await bot.say('where is order SO12345678?', { user: 'slots-1' });
    assert.equal(d.trace.stage, 'rule');
    assert.equal(replyText(d), 'Order SO12345678 is on its way.');
    // The slot stays in the conversation context for later turns.
    const again = await bot.say('and where is it now', { user: 'slots-1' });
    assert.equal(replyText(again), 'Order SO12345678 is on its way.');
  });

  it('reads full-width text as its ASCII form (NFKC) in every stage, and templates show the text as written', async () => {
    const d = await bot.say('ＷＨＥＲＥ is order ＳＯ１２３４５６７８？', { user: 'fw-1' });
    assert.equal(d.trace.ruleId, 'order-number');
    assert.equal(replyText(d), 'Order SO12345678 is on its way.');
    const intent = await bot.say('ｇｏｏｄ ｍｏｒｎｉｎｇ', { user: 'fw-2' });
    assert.equal(intent.trace.stage, 'intent');
    assert.equal(intent.trace.intent?.label, 'greeting');
    assert.equal((await bot.say('ＨＯＷ ＬＯＮＧ does a ＲＥＦＵＮＤ take', { user: 'fw-3' })).trace.faqId, 'refund-time');
    assert.equal((await bot.say('ＡＧＥＮＴ please', { user: 'fw-4' })).trace.stage, 'handoff');
  });

  it('keeps no key per conversation: its context is the decision state, which the gateway stores, forgotten after its quiet period', async () => {
    const first = await bot.say('where is order SO87654321?', { user: 'keys-1' });
    const second = await bot.say('thanks', { user: 'keys-1' });
    assert.deepEqual(await bot.redis.keys('*keys-1*'), [], 'the bot writes nothing of the conversation to Redis');
    assert.ok(first.state && second.state, 'every turn hands back the state to keep');
    const saved = JSON.parse(second.state);
    assert.equal(saved.turns, 2, 'the second turn started from the state the first one saved');
    assert.equal(saved.slots.orderNumber, 'SO87654321');
    assert.ok(Math.abs(saved.savedAt - Date.now()) < 60_000, 'the state says when it was saved');

    // A state older than bot.context.ttlSeconds (default 7 days) reads as a new conversation's.
    const message = createMessage({ channel: 'web', channelType: 'web', direction: 'in', conversationId: 'web.keys-1', sender: { id: 'keys-1', role: 'customer' }, content: { type: 'text', text: 'and where is it now' } });
    const conversation = { id: 'web.keys-1', turns: 3, reference: { conversationId: 'web.keys-1', channel: 'web', channelType: 'web', peerId: 'keys-1', context: {}, updatedAt: Date.now() } };
    const fresh = await bot.parts.bot.decide({ message, conversation, state: second.state });
    assert.equal(replyText(fresh), 'Order SO87654321 is on its way.', 'within the quiet period the slot is still there');
    assert.equal(JSON.parse(fresh.state!).turns, 3);
    const stale = JSON.stringify({ ...saved, savedAt: Date.now() - 7 * 24 * 3600 * 1000 - 1000 });
    const late = await bot.parts.bot.decide({ message, conversation, state: stale });
    assert.notEqual(replyText(late), 'Order SO87654321 is on its way.', 'after it the slot is forgotten');
    assert.equal(JSON.parse(late.state!).turns, 1, 'and the counters start again');
    const garbled = await bot.parts.bot.decide({ message, conversation, state: '{not json' });
    assert.equal(JSON.parse(garbled.state!).turns, 1, 'a state that does not parse reads as empty');
  });

  it('uses the intent above threshold with its reply template and records the top-3 scores', async () => {
    const d = await bot.say('track my parcel please, where is it', { user: 'intent-1' });
    assert.equal(d.trace.stage, 'intent');
    assert.equal(replyText(d), 'Send me your order number and I will track it.');
    assert.equal(d.trace.intent?.label, 'order_status');
    assert.equal(d.trace.intent?.top.length, 3);
    assert.ok(d.trace.intent!.top[0]!.score >= d.trace.intent!.top[1]!.score);
  });

  it('asks a clarifying question when the top two intents are closer than the margin', async () => {
    const d = await bot.say('track a return', { user: 'clarify-1' });
    assert.equal(d.trace.stage, 'clarify');
    assert.match(replyText(d), /^Do you mean (order tracking|a return) or (order tracking|a return)\?$/);
    assert.equal(d.handoff, undefined);
  });

  it('falls back, then hands off after K unanswered turns in a row', async () => {
    const first = await bot.say('blue bananas', { user: 'fallback-1' });
    assert.equal(first.trace.stage, 'fallback');
    assert.equal(replyText(first), 'Sorry, I did not get that.');
    assert.equal(first.handoff, undefined);
    const second = await bot.say('purple pears', { user: 'fallback-1' });
    assert.equal(second.trace.stage, 'handoff');
    assert.equal(second.handoff?.reason, '2 unanswered turns');
    assert.equal(second.handoff?.team, 'support');
  });

  it('an event no rule answers leaves the unanswered counter as it was', async () => {
    const location = { type: 'event', event: 'location_report', data: { lat: 31.2, lng: 121.5 } } as const;
    assert.equal((await bot.say('blue bananas', { user: 'event-1' })).trace.stage, 'fallback');
    assert.equal((await bot.say('', { user: 'event-1', content: location })).trace.stage, 'ignored');
    const second = await bot.say('purple pears', { user: 'event-1' });
    assert.equal(second.trace.stage, 'handoff');
    assert.equal(second.handoff?.reason, '2 unanswered turns');
  });

  it('an answered turn resets the unanswered counter', async () => {
    assert.equal((await bot.say('blue bananas', { user: 'reset-1' })).trace.stage, 'fallback');
    assert.equal((await bot.say('good morning', { user: 'reset-1' })).trace.stage, 'intent');
    assert.equal((await bot.say('purple pears', { user: 'reset-1' })).trace.stage, 'fallback');
  });

  it('hands off on an explicit request: a phrase in either language, or the hand-off intent', async () => {
    for (const [user, text] of [['h-1', 'I want a human'], ['h-2', '帮我转人工'], ['h-3', 'can I speak to someone']] as const) {
      const d = await bot.say(text, { user });
      assert.equal(d.trace.stage, 'handoff', text);
      assert.ok(d.handoff, text);
      assert.match(d.handoff.reason, /customer asked for a human/);
    }
    // A phrase in Latin letters right next to Chinese, and a Chinese phrase with a space inside.
    for (const [user, text] of [['h-5', '转agent'], ['h-6', '请转human客服'], ['h-7', '转 人工']] as const) {
      assert.equal((await bot.say(text, { user })).trace.stage, 'handoff', text);
    }
    // "agent" is a whole word: "agency" is not a request.
    assert.notEqual((await bot.say('which agency ships it', { user: 'h-4' })).trace.stage, 'handoff');
  });

  it('flags sensitive inbound words with an event and still answers', async () => {
    const seen: string[][] = [];
    const off = bot.events.on('message.sensitive', (e) => seen.push(e.words));
    const d = await bot.say('you idiot, where is my parcel', { user: 's-1' });
    off();
    assert.deepEqual(seen, [['idiot']]);
    assert.equal(d.trace.stage, 'intent');
    assert.match(d.trace.reason ?? '', /sensitive: idiot/);
  });

  it('a prediction that fails leaves the turn without an intent: rules, hand-off phrases and the KB still answer', async () => {
    const failing: IntentClassifier = {
      predict: async () => {
        throw new Error('Gather: indices element out of data bounds');
      },
      health: () => ({ ok: true }),
    };
    const own = await startTestBot(config, redis.url, { prefix: 'failing', classifier: failing });
    try {
      await own.parts.kb.upsert([FaqEntry.parse({ id: 'refund-time', question: 'How long does a refund take?', answer: 'Refunds reach your account in 3–5 days.' })]);
      const ruled = await own.say('where is order SO12345678?', { user: 'f-1' });
      assert.equal(ruled.trace.stage, 'rule');
      assert.equal(replyText(ruled), 'Order SO12345678 is on its way.');
      assert.equal(ruled.trace.intent, undefined);
      assert.match(ruled.trace.reason ?? '', /intent model failed: Gather/);
      assert.equal((await own.say('how long does a refund take', { user: 'f-2' })).trace.stage, 'kb');
      assert.equal((await own.say('转人工', { user: 'f-3' })).trace.stage, 'handoff');
      assert.equal((await own.say('blue bananas', { user: 'f-4' })).trace.stage, 'fallback');
    } finally {
      await own.stop();
    }
  });

  it('predicts the intents of messages prepared together in one batch, and decide() uses those predictions', async () => {
    // Resolves predictions asked for in the same turn of the event loop together, as the ONNX run batcher does.
    const asked: string[] = [];
    const batches: number[] = [];
    let waiting = 0;
    const batching: IntentClassifier = {
      predict(text) {
        asked.push(text);
        if (waiting++ === 0) setImmediate(() => (batches.push(waiting), (waiting = 0)));
        return classifier.predict(text);
      },
      health: () => ({ ok: true }),
    };
    const own = await startTestBot(config, redis.url, { prefix: 'batch', classifier: batching });
    try {
      const texts = ['where is my parcel', 'good morning', 'purple pears', 'track it please'];
      const messages = texts.map((text, i) =>
        createMessage({ channel: 'web', channelType: 'web', direction: 'in', conversationId: `web.b-${i}`, sender: { id: `b-${i}`, role: 'customer' }, content: { type: 'text', text } }),
      );
      // As the pipeline does for the messages of one queue job: all prepared in one tick, then decided.
      const prepared = messages.map((message) => own.parts.bot.prepare!(message));
      const decisions = await Promise.all(
        messages.map((message, i) =>
          own.parts.bot.decide({
            message,
            conversation: { id: message.conversationId, turns: 1, reference: { conversationId: message.conversationId, channel: 'web', channelType: 'web', peerId: `b-${i}`, context: {}, updatedAt: Date.now() } },
            prepared: prepared[i]!,
          }),
        ),
      );
      await new Promise((resolve) => setImmediate(resolve)); // the batch is recorded where a run batcher would run it
      assert.deepEqual(batches, [4], 'one batch for the four texts');
      assert.deepEqual(asked, texts, 'each text predicted once: decide() used what prepare() started');
      assert.deepEqual(
        decisions.map((d) => d.trace.stage),
        ['intent', 'intent', 'fallback', 'intent'],
      );
      assert.deepEqual(
        decisions.map((d) => d.trace.intent?.label),
        ['order_status', 'greeting', 'order_status', 'order_status'],
        'each message got its own prediction (the fallback one below the threshold)',
      );
    } finally {
      await own.stop();
    }
  });
});
