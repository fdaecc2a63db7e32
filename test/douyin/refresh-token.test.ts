/**
 * The Douyin refresh_token's life cycle against real Redis and the loopback Douyin OpenAPI: a new config value wins
 * over a stored one, a lapsed one is forgotten, and it is renewed (once, cluster-wide) before it lapses.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { DouyinApi } from '../../adapters/douyin/api.js';
import { fingerprintOf } from '../../adapters/douyin/refresh-token.js';
import { TokenManager } from '../../adapters/shared/token-manager.js';
import { DeliveryError } from '../../adapters/types.js';
import { startFakeDouyin, type FakeDouyin } from '../fakes/douyin-api.js';
import { redisClientForTests } from '../helpers/redis.js';

const CLIENT_KEY = 'awtestclient01';
const ACCOUNT = 'enterprise-open-id-0001';
const CONFIG_TOKEN = 'rft.config-token-0001';
const KEY = 'rt:douyin:refresh-token';
const DAY_S = 86_400;

const redis = redisClientForTests();

describe('douyin refresh_token (real Redis, loopback Douyin OpenAPI)', () => {
  let fake: FakeDouyin | undefined;
  let logs: Array<Record<string, unknown>>;

  beforeEach(async () => {
    await redis.client.flushdb();
    logs = [];
  });
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  const start = async (refreshTokenLifeSeconds?: number) => {
    fake = await startFakeDouyin({ clientKey: CLIENT_KEY, refreshToken: CONFIG_TOKEN, openId: ACCOUNT, ...(refreshTokenLifeSeconds && { refreshTokenLifeSeconds }) });
    return fake;
  };
  /** One gateway process's view of the channel (its own TokenManager, the shared Redis). */
  const api = (douyin: FakeDouyin, configToken = CONFIG_TOKEN) => {
    const sink = new Writable({
      write(chunk, _enc, cb) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
        cb();
      },
    });
    const log = pino({ level: 'debug' }, sink);
    return new DouyinApi({
      apiBaseUrl: douyin.url,
      clientKey: CLIENT_KEY,
      refreshTokenKey: KEY,
      initialRefreshToken: configToken,
      redis: redis.client,
      tokens: new TokenManager(redis.client, 'rt:', log, { memoMs: 0 }),
      tokenKey: `douyin:${CLIENT_KEY}:${ACCOUNT}`,
      log,
      timeoutMs: 2_000,
    });
  };
  const reply = (client: DouyinApi) =>
    client.post('/im/send/msg/', { open_id: ACCOUNT }, { msg_id: 'm', conversation_id: 'c', to_user_id: 'u', scene: 'im_reply_msg', content: { msg_type: 1, text: { text: 'hi' } } });
  const stored = async () => JSON.parse((await redis.client.get(KEY)) ?? 'null') as { token: string; from: string; expiresAt?: number; renewals?: number } | null;

  it('prefers a refreshToken the operator changed in config over the one stored from the old authorisation', async () => {
    const douyin = await start();
    await redis.client.set(KEY, JSON.stringify({ token: 'rft.from-last-month', from: fingerprintOf('rft.old-config'), expiresAt: Date.now() + DAY_S * 1000 }));
    await reply(api(douyin));
    assert.equal(douyin.sent.length, 1);
    assert.equal(douyin.counters.refresh, 1, 'the stale stored token is not even tried');
    assert.equal((await stored())?.token, CONFIG_TOKEN);
    assert.equal((await stored())?.from, fingerprintOf(CONFIG_TOKEN));
  });

  it('falls back to the config value when a stored bare token (older format) has lapsed, and forgets it', async () => {
    const douyin = await start();
    await redis.client.set(KEY, 'rft.rotated-by-douyin-last-month');
    await reply(api(douyin));
    assert.equal(douyin.sent.length, 1);
    assert.equal(douyin.counters.refresh, 2);
    assert.equal((await stored())?.token, CONFIG_TOKEN);
  });

  it('forgets the stored token when Douyin says it lapsed (10010), failing without retry', async () => {
    const douyin = await start();
    const client = api(douyin);
    await reply(client);
    assert.ok(await stored());
    douyin.setRefreshTokenLife(CONFIG_TOKEN, 0);
    douyin.expireTokens();
    await assert.rejects(reply(client), (err: unknown) => err instanceof DeliveryError && err.code === 10010 && !err.retryable && err.reason === 'auth');
    assert.equal(await redis.client.get(KEY), null);
    assert.ok(logs.some((l) => l.level === 50 && l.errorCode === 10010));
  });

  it('learns the expiry of an idle channel and renews the refresh_token 10 days before it lapses', async () => {
    const douyin = await start(20 * DAY_S);
    const client = api(douyin);
    await client.maintainRefreshToken();
    assert.equal(douyin.counters.refresh, 1, 'expiry learnt through one refresh');
    assert.equal(douyin.counters.renew, 0, '20 days left: not due yet');
    const learnt = await stored();
    assert.ok(learnt?.expiresAt && Math.abs(learnt.expiresAt - (Date.now() + 20 * DAY_S * 1000)) < 5_000);

    await client.maintainRefreshToken(Date.now() + 11 * DAY_S * 1000);
    assert.equal(douyin.counters.renew, 1);
    const renewed = await stored();
    assert.notEqual(renewed?.token, CONFIG_TOKEN);
    assert.deepEqual(douyin.liveRefreshTokens(), [renewed!.token], 'the old token stopped working, the new one is stored');
    assert.equal(renewed?.renewals, 1);
    assert.ok(renewed!.expiresAt! > Date.now() + 29 * DAY_S * 1000);

    douyin.expireTokens();
    await reply(client);
    assert.equal(douyin.sent.length, 1, 'access token refreshed with the renewed refresh_token');
  });

  it('renews before refreshing an access token when the refresh_token is due', async () => {
    const douyin = await start(3 * DAY_S);
    const client = api(douyin);
    await reply(client);
    douyin.expireTokens();
    await reply(client);
    assert.equal(douyin.counters.renew, 1);
    assert.equal(douyin.sent.length, 2);
  });

  it('renews once when several processes check at the same time', async () => {
    const douyin = await start(5 * DAY_S);
    await Promise.all([api(douyin), api(douyin), api(douyin)].map((c) => c.maintainRefreshToken()));
    assert.equal(douyin.counters.renew, 1);
    assert.equal(douyin.counters.refresh, 1, 'the others found the expiry already learnt');
    assert.deepEqual(douyin.liveRefreshTokens(), [(await stored())!.token]);
  });

  it('warns with the days left when the refresh_token cannot be renewed any more (10020)', async () => {
    const douyin = await start();
    douyin.issueRefreshToken(CONFIG_TOKEN, 4 * DAY_S, 5);
    const client = api(douyin);
    await client.maintainRefreshToken();
    assert.equal(douyin.counters.renew, 1);
    assert.equal((await stored())?.token, CONFIG_TOKEN, 'the current token is kept: it works for 4 more days');
    const warning = logs.find((l) => l.level === 40 && l.code === 10020);
    assert.ok(warning, 'a warning names the refused renewal');
    assert.equal(warning.daysLeft, 3);
    assert.match(String(warning.msg), /authorise the app again/);
    await reply(client);
    assert.equal(douyin.sent.length, 1);
  });
});
