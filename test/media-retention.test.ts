/** Downloaded media is kept for `server.mediaRetentionDays`, then deleted: nothing else would shrink the directory. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import express from 'express';
import { pino } from 'pino';
import { MediaStore } from '../adapters/shared/media-store.js';
import { redisClientForTests } from './helpers/redis.js';

const DAY_MS = 24 * 3600 * 1000;

describe('media retention', () => {
  const test = redisClientForTests();
  const dir = mkdtempSync(join(tmpdir(), 'gw-media-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Marks a file as last written `days` ago. */
  const age = (name: string, days: number) => {
    const at = new Date(Date.now() - days * DAY_MS);
    utimesSync(join(dir, name), at, at);
  };

  it('deletes files past the retention with their metadata, and leftovers of unfinished downloads; serves the rest', async () => {
    const store = new MediaStore({
      dir, maxBytes: 1024, redis: test.client, prefix: 'mr', log: pino({ level: 'silent' }), baseUrl: () => base,
      retentionSeconds: 30 * 24 * 3600,
    });
    const media = store.forChannel('wecom');
    media.setFetcher(async (mediaId) => ({ body: Buffer.from(`bytes of ${mediaId}`), contentType: 'image/png' }));
    const app = express();
    store.mount(app);
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const oldUrl = await media.register('old-media');
      const newUrl = await media.register('new-media');
      const old = await media.resolve('old-media');
      const fresh = await media.resolve('new-media');
      assert.equal((await fetch(oldUrl)).status, 200);
      age(old.id, 31);
      age(`${old.id}.json`, 31);
      age(fresh.id, 29);
      // A download a crash interrupted (temp file), and metadata whose file never got its name.
      writeFileSync(join(dir, `${fresh.id}.0123456789ab.tmp`), 'partial');
      age(`${fresh.id}.0123456789ab.tmp`, 1);
      writeFileSync(join(dir, 'wecom.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.json'), '{}');
      age('wecom.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.json', 1);
      writeFileSync(join(dir, 'notes.txt'), 'not the store’s');
      age('notes.txt', 400);

      assert.equal(await store.sweep(), 3);
      assert.deepEqual(readdirSync(dir).sort(), [fresh.id, `${fresh.id}.json`, 'notes.txt'].sort());
      assert.ok(!existsSync(old.path));
      assert.equal((await fetch(newUrl)).status, 200, 'media within the retention is still served');
      await test.client.del(`mr:media:${old.id}`); // its registration (3 days) is long gone by then
      assert.equal((await fetch(oldUrl)).status, 404, 'a deleted file is not served any more');
      assert.equal(await store.sweep(), 0, 'a second sweep finds nothing more');
    } finally {
      store.close();
      server.close();
    }
  });

  it('a store whose directory does not exist yet has nothing to sweep', async () => {
    const store = new MediaStore({ dir: join(dir, 'never-created'), maxBytes: 1024, redis: test.client, prefix: 'mr', log: pino({ level: 'silent' }), baseUrl: () => '' });
    assert.equal(await store.sweep(), 0);
  });
});
