import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfigFile, parseConfig } from '../config/load.js';
import { renderConfigDocs } from '../scripts/config-docs.js';

function problems(input: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(input, 'test.yaml', env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

describe('config', () => {
  it('substitutes ${VAR} and ${VAR:-default}, and names a missing variable with its path', () => {
    const config = parseConfig({ server: { host: '${HOST}', port: 9000, adminKey: '${KEY:-fallback-key-0123456789}' } }, 'x', { HOST: '0.0.0.0' });
    assert.equal(config.server.host, '0.0.0.0');
    assert.equal(config.server.adminKey, 'fallback-key-0123456789');
    assert.deepEqual(problems({ channels: [{ id: 'web', type: 'web', options: { secret: '${WEB_SECRET}' } }] }), [
      'channels[0].options.secret: environment variable WEB_SECRET is not set (use ${WEB_SECRET:-default} for a default)',
    ]);
  });

  it('reports every problem with its path and the channel it is in', () => {
    const found = problems({
      server: { port: 'eighty' },
      channels: [
        { id: 'Web Chat', type: 'web' },
        { id: 'app', type: 'app', options: { apps: [{ id: 'a', secret: 'short' }] } },
        { id: 'x', type: 'carrier-pigeon' },
      ],
    });
    const text = found.join('\n');
    assert.match(text, /^server\.port: .*number/m);
    assert.match(text, /^channels\[0\]\.id \(channel id Web Chat, type web\): use lower-case letters/m);
    assert.match(text, /^channels\[1\]\.options\.apps\[0\]\.secret \(channel id app, type app\): .*16/m);
    assert.match(text, /^channels\[2\]\.type \(channel id x, type carrier-pigeon\): unknown channel type "carrier-pigeon"; known types: .*\bweb\b.*\bapp\b/m);
    assert.deepEqual(problems({ bot: { rules: [{ id: 'r', match: { regex: '([' }, reply: 'x' }] } }), [
      'bot.rules[0].match.regex: not a valid JavaScript regular expression',
    ]);
  });

  it('refuses settings the schema does not know, wherever they are, and suggests the one a typo meant', () => {
    assert.deepEqual(
      problems({
        pipeline: { shard: 8 },
        bot: { context: { messages: 20, ttlSeconds: 60 } },
        channels: [{ id: 'web', type: 'web', options: { allowedOrigin: ['https://shop.example'], heartbeatSeconds: 20 } }],
        handoff: { transcript: { retentionDays: 7, maxMesages: 100 } },
        colour: 'blue',
      }),
      [
        'pipeline.shard: unknown setting, not in the schema (docs/config.md); did you mean "shards"?',
        'bot.context.messages: retired: the bot keeps no copy of the messages; every message is in the conversation transcript (handoff.transcript.maxMessages) — delete the line',
        'channels[0].options.allowedOrigin (channel id web, type web): unknown setting, not in the schema (docs/config.md); did you mean "allowedOrigins"?',
        'handoff.transcript.maxMesages: unknown setting, not in the schema (docs/config.md); did you mean "maxMessages"?',
        'colour: unknown setting, not in the schema (docs/config.md); known here: server, redis, pipeline, log, channels, bot, handoff, webhooks, api',
      ],
    );
    // A typo of an optional setting the file leaves out is still recognised, inside a channel's options too.
    const custom = {
      id: 'hook',
      type: 'custom',
      options: {
        inbound: { verify: { kind: 'none' } },
        mapping: { messageId: 'id', senderId: 'from', text: 'text', skp: 'bot = true', timestmap: 'ts' },
        send: { url: 'https://api.example.com/send' },
      },
    };
    assert.deepEqual(problems({ channels: [custom] }), [
      'channels[0].options.mapping.skp (channel id hook, type custom): unknown setting, not in the schema (docs/config.md); did you mean "skip"?',
      'channels[0].options.mapping.timestmap (channel id hook, type custom): unknown setting, not in the schema (docs/config.md); did you mean "timestamp"?',
    ]);
    // Free-form maps (records) keep whatever keys they are given.
    const config = parseConfig({ bot: { intent: { replies: { any_label_at_all: 'hi' } } } }, 'x', {});
    assert.equal(config.bot.intent.replies.any_label_at_all, 'hi');
  });

  it('refuses two channels with one id', () => {
    assert.deepEqual(problems({ channels: [{ id: 'web', type: 'web' }, { id: 'web', type: 'web' }] }), ['channels[1].id (channel id web, type web): duplicate channel id "web"']);
  });

  it('says a channel without a type has none, and lists the types', () => {
    const [problem, ...rest] = problems({ channels: [{ id: 'web', options: {} }] });
    assert.deepEqual(rest, []);
    assert.match(problem!, /^channels\[0\]\.type \(channel id web\): the channel has no type; set one of: web, app, /);
  });

  it('refuses two API keys with one id, and one secret given different scopes', () => {
    const key = (id: string, secret: string, scopes: string[]) => ({ id, key: secret, scopes });
    assert.deepEqual(problems({ api: { keys: [key('desk', 'secret-0123456789abcdef0', ['read']), key('desk', 'secret-0123456789abcdef1', ['admin'])] } }), [
      'api.keys[1].id: duplicate API key id "desk"',
    ]);
    const found = problems({ api: { keys: [key('desk', 'secret-0123456789abcdef0', ['read']), key('ops', 'secret-0123456789abcdef0', ['admin'])] } });
    assert.deepEqual(found, ['api.keys[1].key: the same key as api.keys[0] (id desk) with other scopes; a key has one set of scopes']);
    assert.ok(!found.join().includes('secret-0123456789abcdef0'), 'the secret is not repeated in the message');
  });

  it('validates the shipped demo config', () => {
    const config = loadConfigFile('config/gateway.yaml', {});
    assert.ok(config.channels.some((c) => c.type === 'web'));
    assert.ok(config.channels.some((c) => c.type === 'app'));
  });

  it('config:check exits 2 with an actionable message on a bad file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'channels:\n  - id: web\n    type: web\n    options: { heartbeatSeconds: 0 }\n');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'gateway/main.ts', '--check', '--config', file], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /channels\[0\]\.options\.heartbeatSeconds \(channel id web, type web\): Too small/);
    writeFileSync(file, 'server: [unclosed');
    const yaml = spawnSync(process.execPath, ['--import', 'tsx', 'gateway/main.ts', '--check', '--config', file], { encoding: 'utf8' });
    assert.equal(yaml.status, 2);
    assert.match(yaml.stderr, /not valid YAML/);
  });

  it('reads YAML merge keys, so channels can share a block of settings kept under a top-level x- key', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'gw-config-')), 'merge.yaml');
    writeFileSync(
      file,
      [
        'x-web: &web',
        '  type: web',
        '  options: { heartbeatSeconds: 15 }',
        'channels:',
        '  - <<: *web',
        '    id: web-a',
        '  - <<: *web',
        '    id: web-b',
        '',
      ].join('\n'),
    );
    const config = loadConfigFile(file, {});
    assert.deepEqual(
      config.channels.map((c) => [c.id, c.type, (c.options as { heartbeatSeconds: number }).heartbeatSeconds]),
      [['web-a', 'web', 15], ['web-b', 'web', 15]],
    );
    // The settings offered are all the schema has there, the optional ones left out of this file included.
    assert.deepEqual(
      problems({ 'x-anything': { a: 1 }, server: { 'x-note': 1 } }),
      ['server.x-note: unknown setting, not in the schema (docs/config.md); known here: host, port, publicBaseUrl, bodyLimitBytes, home, adminKey, mediaDir, mediaMaxBytes, mediaRetentionDays, mediaAllowPrivateNetworks'],
      'x- is free at the top level only',
    );
  });

  it('docs/config.md is generated from the schema and up to date (npm run config:docs)', () => {
    assert.equal(readFileSync('docs/config.md', 'utf8'), renderConfigDocs());
  });
});
