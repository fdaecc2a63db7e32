/**
 * The demo page as a person sees it: the shipped config/gateway.yaml, a real gateway and Redis, and headless
 * Chromium typing into the embedded widget.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { parse } from 'yaml';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startTestRedis } from './helpers/redis.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('demo page in headless Chromium', { skip: !existsSync(CHROMIUM) && `no Chromium at ${CHROMIUM} (apt-get install chromium)` }, () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let gw: TestGateway;
  let browser: Browser;

  before(async () => {
    redis = await startTestRedis();
    const shipped = parse(readFileSync('config/gateway.yaml', 'utf8'));
    gw = await startTestGateway({ ...shipped, server: { ...shipped.server, port: 0 }, redis: { prefix: 'gw' } }, redis.url);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    await browser?.close();
    await gw?.stop();
    await redis?.stop();
  });

  it('GET / leads to the demo page, which sends a message and shows the bot reply', async () => {
    const page = await browser.newPage();
    await page.goto(`${gw.url}/`);
    assert.match(page.url(), /\/webhooks\/web\/$/);
    await page.getByText('online').waitFor({ timeout: 10_000 });
    const input = page.getByLabel('Message');
    await input.fill('hello');
    await input.press('Enter');
    const reply = page.locator('.gw-msg[data-direction="out"]').first();
    await reply.waitFor({ timeout: 10_000 });
    assert.match(await reply.innerText(), /^Hello!/);

    await input.fill('我要退货');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('.gw-msg[data-direction="out"]').nth(1).waitFor({ timeout: 10_000 });
    assert.match(await page.locator('.gw-msg[data-direction="out"]').nth(1).innerText(), /Returns|退/);

    // Reload: the same visitor (token kept in localStorage) goes on chatting.
    const visitorOf = () => page.evaluate(() => localStorage.getItem('gw.web.token')?.split('.')[1]);
    const visitor = await visitorOf();
    assert.ok(visitor);
    await page.reload();
    await page.getByText('online').waitFor({ timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await visitorOf(), visitor, 'same visitor after a reload');
    await page.getByLabel('Message').fill('talk to a human');
    await page.getByLabel('Message').press('Enter');
    await page.locator('.gw-msg[data-direction="out"]').first().waitFor({ timeout: 10_000 });
    assert.match(await page.locator('.gw-msg[data-direction="out"]').first().innerText(), /colleague/);
    await page.close();
  });
});
