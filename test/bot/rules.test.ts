import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BotRule, BusinessHours } from '../../bot/config.js';
import { withinBusinessHours } from '../../bot/rules/business-hours.js';
import { RuleEngine, type RuleFacts } from '../../bot/rules/engine.js';
import { startTestRedis } from '../helpers/redis.js';
import { eventually } from '../helpers/gateway.js';
import { replyText, startTestBot, type TestBot } from './helpers.js';

const rules = [
  // Same priority: list order decides. `stop: false` lets later rules add to the answer.
  { id: 'tag-shipping', match: { keywords: ['ship'] }, set: { tags: ['shipping'], attributes: { topic: 'shipping' } }, stop: false },
  { id: 'ship-generic', match: { keywords: ['ship'] }, reply: 'We ship worldwide.' },
  { id: 'ship-express', priority: 10, match: { regex: 'express\\s+ship' }, reply: 'Express shipping takes one day.' },
  { id: 'ship-express-extra', priority: 10, match: { keywords: ['express'] }, reply: 'Express costs ¥20.', stop: false },
  { id: 'low', priority: -5, match: { keywords: ['ship'] }, reply: 'never reached' },
  { id: 'web-only', match: { channels: ['web'], keywords: ['coupon'] }, reply: 'Web coupon: WEB10' },
  { id: 'tagged', match: { tags: { has: ['shipping'] }, keywords: ['cost'] }, reply: 'Shipping costs ¥8 ({{attributes.topic}}).' },
  { id: 'ask-order', match: { keywords: ['cancel'] }, ask: { entity: 'orderNumber', prompt: 'Which order should I cancel?' }, reply: 'Order {{slots.orderNumber}} is cancelled.' },
  { id: 'got-order', match: { awaiting: 'orderNumber', entities: { has: ['orderNumber'] } }, reply: 'Thanks, noted {{slots.orderNumber}}.' },
  { id: 'third-turn', match: { turns: { min: 3 }, keywords: ['still'] }, reply: 'Turn three or later.' },
  { id: 'night', match: { keywords: ['open now'], businessHours: { timeZone: 'Asia/Shanghai', days: [1, 2, 3, 4, 5, 6, 7], from: '00:00', to: '00:01', inside: false } }, reply: 'We are closed right now.' },
  { id: 'advanced', match: { conditions: { any: [{ fact: 'rawText', operator: 'equal', value: 'ping' }, { fact: 'rawText', operator: 'equal', value: 'PING' }] } }, reply: 'pong' },
];

describe('rule engine: priorities, stop-on-match, conditions and actions', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let bot: TestBot;
  before(async () => {
    redis = await startTestRedis();
    bot = await startTestBot({ rules, fallback: 'fallback', policy: { handoffAfterUnanswered: 0 } }, redis.url);
  });
  after(async () => {
    await bot?.stop();
    await redis?.stop();
  });

  it('runs higher priorities first and stops at the first stopping rule', async () => {
    const d = await bot.say('do you express ship to Berlin?', { user: 'p1' });
    assert.equal(d.trace.stage, 'rule');
    // priority 10 (list order within it) → ship-express stops; nothing of priority 0 or -5 runs.
    assert.equal(d.trace.ruleId, 'ship-express');
    assert.equal(replyText(d), 'Express shipping takes one day.');
  });

  it('a non-stopping rule adds its actions and lets the next one answer', async () => {
    const d = await bot.say('express please, how do you ship', { user: 'p2' });
    assert.equal(d.trace.ruleId, 'ship-express-extra,tag-shipping,ship-generic');
    assert.equal(replyText(d), 'Express costs ¥20.\nWe ship worldwide.');
    // tag-shipping remembered a tag and an attribute for the conversation.
    const later = await bot.say('what does it cost', { user: 'p2' });
    assert.equal(later.trace.ruleId, 'tagged');
    assert.equal(replyText(later), 'Shipping costs ¥8 (shipping).');
  });

  it('honours channel conditions', async () => {
    assert.equal(replyText(await bot.say('any coupon?', { user: 'c1', channel: 'web' })), 'Web coupon: WEB10');
    assert.equal((await bot.say('any coupon?', { user: 'c1', channel: 'app' })).trace.stage, 'fallback');
  });

  it('asks for a missing entity, then answers once the customer gives it', async () => {
    const ask = await bot.say('please cancel', { user: 'a1' });
    assert.equal(replyText(ask), 'Which order should I cancel?');
    const given = await bot.say('it is SO20240001', { user: 'a1' });
    assert.equal(given.trace.ruleId, 'got-order');
    assert.equal(replyText(given), 'Thanks, noted SO20240001.');
    const cancel = await bot.say('cancel it', { user: 'a1' });
    assert.equal(replyText(cancel), 'Order SO20240001 is cancelled.');
  });

  it('matches on turn count, business hours and advanced json-rules-engine conditions', async () => {
    await bot.say('hello', { user: 't1' });
    assert.equal((await bot.say('still there?', { user: 't1' })).trace.stage, 'fallback');
    assert.equal(replyText(await bot.say('still there?', { user: 't1' })), 'Turn three or later.');
    // Outside 00:00–00:01 Shanghai time almost always; the instant check below pins the logic itself.
    const night = await bot.say('are you open now', { user: 'n1' });
    const insideWindow = withinBusinessHours(Date.now(), BusinessHours.parse({ timeZone: 'Asia/Shanghai', days: [1, 2, 3, 4, 5, 6, 7], from: '00:00', to: '00:01' }));
    assert.equal(night.trace.ruleId, insideWindow ? undefined : 'night');
    assert.equal(replyText(await bot.say('PING', { user: 'adv' })), 'pong');
  });

  it('evaluates business hours in the configured time zone', () => {
    const hours = BusinessHours.parse({ timeZone: 'Asia/Shanghai', days: [1, 2, 3, 4, 5], from: '09:00', to: '18:00' });
    // 2024-05-20 is a Monday. 01:30Z = 09:30 in Shanghai; 10:30Z = 18:30 there; Saturday 2024-05-25 03:00Z.
    assert.equal(withinBusinessHours(Date.parse('2024-05-20T01:30:00Z'), hours), true);
    assert.equal(withinBusinessHours(Date.parse('2024-05-20T10:30:00Z'), hours), false);
    assert.equal(withinBusinessHours(Date.parse('2024-05-25T03:00:00Z'), hours), false);
    const overnight = BusinessHours.parse({ timeZone: 'Europe/Berlin', days: [5], from: '22:00', to: '06:00' });
    // Friday 23:00 and Saturday 05:00 Berlin (summer time, UTC+2) belong to Friday's shift.
    assert.equal(withinBusinessHours(Date.parse('2024-05-24T21:00:00Z'), overnight), true);
    assert.equal(withinBusinessHours(Date.parse('2024-05-25T03:00:00Z'), overnight), true);
    assert.equal(withinBusinessHours(Date.parse('2024-05-25T05:00:00Z'), overnight), false);
  });

  it('rules added through the admin store reach a second bot and replace config rules by id', async () => {
    const second = await startTestBot({ rules, fallback: 'fallback' }, redis.url);
    try {
      await bot.parts.rules.adminUpsert({ id: 'ship-generic', match: { keywords: ['ship'] }, reply: 'We ship to 40 countries.' });
      await eventually(async () => replyText(await second.say('do you ship?', { user: `r-${Math.random()}` })) === 'We ship to 40 countries.', 'the admin rule on the second bot');
    } finally {
      await second.stop();
    }
  });

  it("runs a rule's engine only when the message passes its channel, keyword and regex conditions", async () => {
    const engine = new RuleEngine(rules.map((r) => BotRule.parse(r)));
    const facts = (rawText: string, channel = 'app'): RuleFacts => ({
      channel,
      text: rawText.toLowerCase(),
      rawText,
      intent: { label: 'none', confidence: 0 },
      slots: {},
      attributes: {},
      tags: [],
      awaiting: '',
      turns: 1,
      unanswered: 0,
      now: Date.now(),
    });
    const ids = (f: RuleFacts) => engine.candidates(f).map((r) => r.id);
    // Rules without a channel, keyword or regex condition always run; the rest only when their gate passes.
    const ungated = ['got-order', 'advanced'];
    assert.deepEqual(ids(facts('hello there')), ungated);
    assert.deepEqual(ids(facts('a COUPON please')), ungated, 'web-only needs the web channel');
    assert.deepEqual(ids(facts('a coupon please', 'web')), ['web-only', ...ungated]);
    assert.deepEqual(ids(facts('Express ship it')), ['tag-shipping', 'ship-generic', 'ship-express', 'ship-express-extra', 'low', ...ungated]);
    // The gate never changes the outcome: a message no gate lets through still reaches the ungated rules.
    assert.deepEqual((await engine.evaluate(facts('ping'))).map((r) => r.id), ['advanced']);
    assert.deepEqual((await engine.evaluate(facts('express ship', 'web'))).map((r) => r.id), ['ship-express']);
  });
});
