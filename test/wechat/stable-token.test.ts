/**
 * stable_token modes, against the loopback WeChat API that follows the getStableAccessToken doc: normal mode is what
 * an expired or superseded token needs; force mode (which invalidates the token every process holds, 20 a day, 30 s
 * apart) is used only when normal mode hands back the very token the platform just refused.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { TokenManager } from '../../adapters/shared/token-manager.js';
import { WechatApi } from '../../adapters/shared/wechat-api.js';
import { startFakeWechatApi, type FakeWechatApi } from '../fakes/wechat-api.js';
import { startTestRedis } from '../helpers/redis.js';

const log = pino({ level: 'silent' });
const app = { appId: 'wx0123456789abcdef', appSecret: '0123456789abcdef0123456789abcdef' };
let redis: Awaited<ReturnType<typeof startTestRedis>>;
let fake: FakeWechatApi;
const clients: Redis[] = [];

before(async () => {
  redis = await startTestRedis();
  fake = await startFakeWechatApi(app);
});
after(async () => {
  for (const c of clients) c.disconnect();
  await fake?.close();
  await redis?.stop();
});

/** A WechatApi as one gateway process has it (its own Redis connection and token memo), sharing `prefix`. */
function processApi(prefix: string): WechatApi {
  const client = new Redis(redis.url);
  clients.push(client);
  const options = { apiBaseUrl: fake.url, ...app, tokenEndpoint: 'stable' as const, timeoutMs: 5000, rateLimitMs: 100 };
  return new WechatApi(options, new TokenManager(client, prefix, log), log);
}
const send = (api: WechatApi) => api.sendCustom({ touser: 'o-user', msgtype: 'text', text: { content: 'hi' } });
const tokenKey = (prefix: string) => `${prefix}token:wechat:${app.appId}:stable`;

test('an expired (42001) or superseded (40001) token is renewed in normal mode, also by a second process and later', async () => {
  const a = processApi('p1:');
  const b = processApi('p1:');
  await send(a);
  await send(b);
  fake.expireToken();
  await send(a);
  assert.equal(fake.stableForceRefreshes, 0, '42001: normal mode gives a new token');
  fake.revokeTokens();
  await send(a);
  // b still holds the old token in its memo: refused, it takes a's new token from Redis without any fetch.
  const requests = fake.tokenRequests;
  await send(b);
  assert.equal(fake.tokenRequests, requests, 'b used the token a stored');
  // b's next routine refresh (the cached token lapsed) goes out in normal mode too.
  const cache = new Redis(redis.url);
  clients.push(cache);
  await cache.del(tokenKey('p1:'));
  await new Promise((r) => setTimeout(r, 1100));
  await send(b);
  assert.equal(fake.tokenRequests, requests + 1);
  assert.equal(fake.stableForceRefreshes, 0, 'no force refresh at all');
});

test('force mode only when normal mode returns the token just refused; the old token stops working', async () => {
  const a = processApi('p2:');
  const b = processApi('p2:');
  await send(a);
  const sentBefore = fake.sent.length;
  fake.refuseCurrentToken();
  await send(a);
  assert.equal(fake.stableForceRefreshes, 1);
  assert.equal(fake.sent.length, sentBefore + 1, 'the retry with the forced token went through');
  // b's memo still has the old token: refused, and it picks up the forced one from Redis (no second force).
  await send(b);
  assert.equal(fake.stableForceRefreshes, 1);
  assert.equal(fake.sent.length, sentBefore + 2);
});

test('the fake enforces the documented force-refresh limits: 30 s apart, 20 a day', async () => {
  const force = async () => {
    const res = await fetch(`${fake.url}/cgi-bin/stable_token`, {
      method: 'POST',
      body: JSON.stringify({ grant_type: 'client_credential', appid: app.appId, secret: app.appSecret, force_refresh: true }),
    });
    return (await res.json()) as { access_token?: string; errcode?: number };
  };
  fake.advanceClock(60_000);
  const first = await force();
  const soon = await force();
  assert.equal(soon.access_token, first.access_token, 'within 30 s nothing is refreshed');
  let last = first;
  for (let i = 0; i < 40 && last.errcode === undefined; i++) {
    fake.advanceClock(31_000);
    last = await force();
  }
  assert.equal(last.errcode, 45009, 'the 21st force refresh of the day is refused');
  fake.advanceClock(24 * 3600 * 1000);
  assert.ok((await force()).access_token, 'a day later it works again');
});
