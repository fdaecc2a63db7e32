/**
 * config/examples/slack.yaml, end to end: the real gateway and Redis, Slack replaced by a loopback fake that signs
 * Events API requests (v0 scheme) and serves chat.postMessage as documented.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startTestRedis } from '../helpers/redis.js';
import { slackSignature, startSlackApi } from '../fakes/slack-api.js';
import { enqueuedCount, loadExample } from './example-config.js';

const SIGNING_SECRET = '8f742231b10e8888abcd99yyyzzz85a5';
const BOT_TOKEN = 'xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy';

describe('custom channel: config/examples/slack.yaml against a Slack fake', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let slack: Awaited<ReturnType<typeof startSlackApi>>;
  let gw: TestGateway;

  before(async () => {
    redis = await startTestRedis();
    slack = await startSlackApi({ botToken: BOT_TOKEN, signingSecret: SIGNING_SECRET, channels: ['D01', 'D02', 'D03', 'D04', 'D05'] });
    const config = loadExample('slack', { SLACK_API_BASE_URL: slack.url, SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: BOT_TOKEN });
    gw = await startTestGateway({ ...config, server: { bodyLimitBytes: 8192 } }, redis.url);
  });
  after(async () => {
    await gw?.stop();
    await slack?.close();
    await redis?.stop();
  });

  it('answers the signed url_verification challenge', async () => {
    const answer = await slack.verifyRequestUrl(`${gw.url}/webhooks/slack/events`);
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body), { challenge: answer.challenge });
  });

  it("replies to a user's direct message with chat.postMessage, and ignores its own echo", async () => {
    const res = await slack.deliver(slack.userMessage('U100', 'D01', 'hello there'));
    assert.equal(res.status, 200);
    const reply = await eventually(() => slack.posted.find((p) => p.channel === 'D01'), 'chat.postMessage to D01');
    assert.match(reply.text, /^Hello! Ask me about your order/);
    const request = slack.requests.find((r) => r.url === '/api/chat.postMessage')!;
    assert.equal(request.headers.authorization, `Bearer ${BOT_TOKEN}`);
    assert.match(String(request.headers['content-type']), /^application\/json/);
    // The fake reports the bot's own post back as an event with bot_id; the next user message is answered once, and
    // the echo never produced a reply of its own.
    await slack.deliver(slack.userMessage('U100', 'D01', 'refund'));
    await eventually(() => slack.posted.some((p) => p.channel === 'D01' && /Returns are free/.test(p.text)), 'second reply');
    assert.equal(slack.posted.filter((p) => p.channel === 'D01').length, 2);
  });

  it('dedupes Slack retries (X-Slack-Retry-Num, same event_id) to one reply', async () => {
    const event = slack.userMessage('U200', 'D02', 'hi', 'Ev0RETRY01');
    assert.equal((await slack.deliver(event)).status, 200);
    assert.equal((await slack.deliver(event, { retryNum: 1 })).status, 200);
    assert.equal((await slack.deliver(event, { retryNum: 2 })).status, 200);
    await slack.deliver(slack.userMessage('U200', 'D02', 'refund'));
    await eventually(() => slack.posted.some((p) => p.channel === 'D02' && /Returns are free/.test(p.text)), 'later reply');
    assert.equal(slack.posted.filter((p) => p.channel === 'D02' && /^Hello!/.test(p.text)).length, 1);
  });

  it('refuses forged, unsigned and stale requests with 401 and queues nothing', async () => {
    const before = enqueuedCount(gw.logs);
    const event = slack.userMessage('U300', 'D03', 'hi');
    const forged = await slack.deliver(event, { signature: `v0=${'0'.repeat(64)}` });
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: string }).error, 'bad_signature');
    // Signed by someone with another secret.
    const body = JSON.stringify(event);
    const ts = String(Math.floor(Date.now() / 1000));
    const wrongKey = await slack.deliver(event, { timestamp: ts, signature: slackSignature('another-secret', ts, body), rawBody: body });
    assert.equal(wrongKey.status, 401);
    // A genuine signature from 10 minutes ago: a replay.
    const old = String(Math.floor(Date.now() / 1000) - 600);
    const stale = await slack.deliver(event, { timestamp: old, signature: slackSignature(SIGNING_SECRET, old, body), rawBody: body });
    assert.equal(stale.status, 401);
    assert.equal(((await stale.json()) as { error: string }).error, 'stale_timestamp');
    const unsigned = await fetch(`${gw.url}/webhooks/slack/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(unsigned.status, 401);
    assert.equal(enqueuedCount(gw.logs), before);
    assert.equal(slack.posted.filter((p) => p.channel === 'D03').length, 0);
  });

  it('rejects a signed but malformed body with 400 and an oversized one with 413', async () => {
    const malformed = await slack.deliver(null, { rawBody: '{"type":"event_callback",' });
    assert.equal(malformed.status, 400);
    const huge = await slack.deliver(slack.userMessage('U400', 'D04', 'x'.repeat(10_000)));
    assert.equal(huge.status, 413);
    assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
  });

  it('waits out an HTTP 429 (Retry-After) and then delivers', async () => {
    slack.rateLimit(1);
    await slack.deliver(slack.userMessage('U500', 'D05', 'human'));
    const reply = await eventually(() => slack.posted.find((p) => p.channel === 'D05'), 'delivery after 429');
    assert.match(reply.text, /connecting you with a colleague/);
    assert.ok(gw.logs.some((l) => l.msg === 'delivery failed' && l.code === 'ratelimited'));
  });

  it('dead-letters a reply Slack refuses for good (channel_not_found) without retrying', async () => {
    await slack.deliver(slack.userMessage('U600', 'C-UNKNOWN', 'hi'));
    const failure = await eventually(() => gw.logs.find((l) => l.msg === 'delivery failed' && l.code === 'channel_not_found'), 'failure log');
    assert.equal(failure.attempt, 1);
    assert.equal(slack.requests.filter((r) => r.url === '/api/chat.postMessage' && r.json().channel === 'C-UNKNOWN').length, 1);
  });
});
