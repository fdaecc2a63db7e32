/**
 * Config-defined channels: validation names the broken expression, the HMAC verifier reproduces Slack's documented
 * signature example, and the mapping turns payloads into messages or skips them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ConfigError, parseConfig } from '../../config/load.js';
import { compileMapping, mapPayload } from '../../adapters/custom/mapping.js';
import { CustomOptions } from '../../adapters/custom/options.js';
import { createVerifier } from '../../adapters/custom/verify.js';

const example = (name: string) => parse(readFileSync(new URL(`../../config/examples/${name}.yaml`, import.meta.url), 'utf8'));
const slackEnv = { SLACK_SIGNING_SECRET: '8f742231b10e8888abcd99yyyzzz85a5', SLACK_BOT_TOKEN: 'xoxb-1' };

function problemsOf(mutate: (config: any) => void): string[] {
  const config = example('slack');
  mutate(config);
  try {
    parseConfig(config, 'slack.yaml', slackEnv);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('the config was accepted');
}

describe('custom channel config validation', () => {
  it('accepts both shipped examples', () => {
    assert.equal(parseConfig(example('slack'), 'slack.yaml', slackEnv).channels[0]!.type, 'custom');
    const telegram = parseConfig(example('telegram'), 'telegram.yaml', { TELEGRAM_BOT_TOKEN: '1:x', TELEGRAM_WEBHOOK_SECRET: 's' });
    assert.equal(telegram.channels[0]!.id, 'telegram');
  });

  it('points at the broken mapping expression with its position', () => {
    const problems = problemsOf((c) => (c.channels[0].options.mapping.text = 'event.text +'));
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^channels\[0\]\.options\.mapping\.text \(channel id slack, type custom\): invalid JSONata expression at position 12/);
  });

  it('points at a broken {{ }} hole in a template and a broken context expression', () => {
    const problems = problemsOf((c) => {
      c.channels[0].options.send.url = '{{ apiBaseUrl }}/api/{{ method( }}';
      c.channels[0].options.mapping.context.team = 'team_id[';
      c.channels[0].options.inbound.verify.payload = 'v0:{{ }}';
    });
    assert.ok(problems.some((p) => p.startsWith('channels[0].options.send.url') && p.includes('{{ method( }}')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('channels[0].options.mapping.context.team')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('channels[0].options.inbound.verify.payload') && p.includes('empty {{ }}')), problems.join('\n'));
  });

  it('refuses a send URL that cannot be an absolute http(s) URL, saying how to write it', () => {
    const noScheme = problemsOf((c) => (c.channels[0].options.send.url = 'slack.com/api/chat.postMessage'));
    assert.equal(noScheme.length, 1);
    assert.match(noScheme[0]!, /^channels\[0\]\.options\.send\.url .*must be an absolute http\(s\) URL.*"https:\/\/slack\.com\/api\/chat\.postMessage"/);
    const noBase = problemsOf((c) => delete c.channels[0].options.apiBaseUrl);
    assert.ok(noBase.some((p) => p.startsWith('channels[0].options.send.url') && p.includes('apiBaseUrl is not set')), noBase.join('\n'));
    const ftpBase = problemsOf((c) => (c.channels[0].options.apiBaseUrl = 'ftp://slack.com'));
    assert.ok(ftpBase.some((p) => p.includes('is not an http(s) URL')), ftpBase.join('\n'));
    // Absolute literal URLs and URLs taken from the conversation are accepted.
    for (const url of ['https://slack.com/api/chat.postMessage', 'HTTP://127.0.0.1:9/x', '{{ reference.context.responseUrl }}']) {
      const config = example('slack');
      config.channels[0].options.send.url = url;
      assert.equal(parseConfig(config, 'slack.yaml', slackEnv).channels[0]!.type, 'custom', url);
    }
  });

  it('requires a text or content mapping and a known verification kind', () => {
    const problems = problemsOf((c) => {
      delete c.channels[0].options.mapping.text;
      c.channels[0].options.inbound.verify.kind = 'magic';
    });
    assert.ok(problems.some((p) => p.startsWith('channels[0].options.mapping') && p.includes('map at least text or content')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('channels[0].options.inbound.verify.kind')), problems.join('\n'));
  });
});

describe('custom channel HMAC verification', () => {
  // The worked example of api.slack.com/authentication/verifying-requests-from-slack (a slash command body).
  const DOC_TS = '1531420618';
  const DOC_BODY =
    'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c';
  const DOC_SIG = 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503';
  const options = parseConfig(example('slack'), 'slack.yaml', slackEnv).channels[0]!.options as CustomOptions;
  const verify = createVerifier(options.inbound.verify);
  const request = (signature: string, ts = DOC_TS) => ({
    headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': ts },
    rawBody: DOC_BODY,
    body: undefined,
    query: {},
  });

  it("the Slack example's verify config reproduces Slack's documented signature", async () => {
    assert.deepEqual(await verify(request(DOC_SIG), Number(DOC_TS) * 1000 + 60_000), { ok: true });
  });
  it('refuses a changed digest, a missing header and a timestamp outside 5 minutes', async () => {
    const flipped = DOC_SIG.replace('a2114', 'a2115');
    assert.equal(((await verify(request(flipped), Number(DOC_TS) * 1000)) as { reason: string }).reason, 'bad_signature');
    assert.equal(((await verify(request(''), Number(DOC_TS) * 1000)) as { reason: string }).reason, 'missing_signature');
    assert.equal(((await verify(request(DOC_SIG), (Number(DOC_TS) + 301) * 1000)) as { reason: string }).reason, 'stale_timestamp');
  });
  it('supports base64 digests and a bearer token', async () => {
    const hmac = createVerifier(CustomOptions.shape.inbound.shape.verify.parse({ kind: 'hmac', secret: 'k', header: 'X-Sig', encoding: 'base64', algorithm: 'sha1' }));
    // HMAC-SHA1("k", "{}") in base64, computed independently with Python's hmac module.
    const ok = await hmac({ headers: { 'x-sig': 'zV24rYCl921Uzm2HnI4cDhycjcw=' }, rawBody: '{}', body: {}, query: {} });
    assert.deepEqual(ok, { ok: true });
    const bearer = createVerifier(CustomOptions.shape.inbound.shape.verify.parse({ kind: 'token', token: 'abc', prefix: 'Bearer ' }));
    assert.deepEqual(await bearer({ headers: { authorization: 'Bearer abc' }, rawBody: '', body: {}, query: {} }), { ok: true });
    assert.equal(((await bearer({ headers: { authorization: 'Bearer abd' }, rawBody: '', body: {}, query: {} })) as { ok: boolean }).ok, false);
  });
});

describe('custom channel mapping', () => {
  const options = parseConfig(example('slack'), 'slack.yaml', slackEnv).channels[0]!.options as CustomOptions;
  const mapping = compileMapping(options.mapping);
  const channel = { id: 'slack', type: 'custom' };

  it('maps an Events API message callback', async () => {
    const body = {
      type: 'event_callback',
      team_id: 'T1',
      event_id: 'Ev1',
      event: { type: 'message', channel: 'D1', user: 'U1', text: 'hello', ts: '1355517523.000005', channel_type: 'im' },
    };
    const out = await mapPayload(mapping, body, { headers: {} }, channel, 1_700_000_000_000);
    assert.equal(out.kind, 'message');
    if (out.kind !== 'message') return;
    assert.equal(out.message.channelMessageId, 'Ev1');
    assert.deepEqual(out.message.content, { type: 'text', text: 'hello' });
    assert.equal(out.message.timestamp, 1355517523000);
    assert.deepEqual(out.reference, { peerId: 'U1', threadId: 'D1', context: { team: 'T1' } });
  });
  it('skips bot messages, edits and other event types', async () => {
    const base = { type: 'event_callback', event_id: 'Ev2', event: { type: 'message', channel: 'D1', user: 'U1', text: 'x', ts: '1.0' } };
    for (const body of [
      { ...base, event: { ...base.event, bot_id: 'B1' } },
      { ...base, event: { ...base.event, subtype: 'message_changed' } },
      { ...base, event: { type: 'reaction_added', user: 'U1' } },
      { type: 'app_rate_limited' },
    ]) {
      assert.deepEqual(await mapPayload(mapping, body, { headers: {} }, channel), { kind: 'skip' });
    }
  });
  it('reports the field whose expression throws on a payload, instead of throwing', async () => {
    const body = { type: 'event_callback', event_id: 'Ev3', event: { type: 'message', channel: 'D1', user: 'U1', text: 'x', ts: 'not-a-number' } };
    const out = await mapPayload(mapping, body, { headers: {} }, channel);
    assert.equal(out.kind, 'expression_failed');
    assert.equal(out.kind === 'expression_failed' && out.field, 'timestamp');
    assert.match(out.kind === 'expression_failed' ? out.detail : '', /failed: /);
  });
  it('reports the field a payload cannot fill', async () => {
    const body = { type: 'event_callback', event: { type: 'message', channel: 'D1', user: 'U1', text: 'x', ts: '1.0' } };
    const out = await mapPayload(mapping, body, { headers: {} }, channel);
    assert.equal(out.kind, 'unmappable');
    assert.equal(out.kind === 'unmappable' && out.field, 'messageId');
  });
});
