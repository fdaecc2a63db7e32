/** A real redis-server on a free loopback port, in a throw-away directory, for one test file. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Redis } from 'ioredis';
import { startPrivateRedis, type PrivateRedis } from '../../gateway/redis-server.js';

export async function startTestRedis(): Promise<PrivateRedis & { dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-redis-'));
  const redis = await startPrivateRedis({ dataDir: dir });
  return {
    ...redis,
    dir,
    async stop() {
      await redis.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * For the calling `describe`: a test Redis started before its tests, one ioredis client on it, both stopped after.
 * Read its `client` inside the tests (it exists once `before` has run).
 */
export function redisClientForTests(): { readonly client: Redis } {
  let server: Awaited<ReturnType<typeof startTestRedis>> | undefined;
  let client: Redis | undefined;
  before(async () => {
    server = await startTestRedis();
    client = new Redis(server.url);
  });
  after(async () => {
    client?.disconnect();
    await server?.stop();
  });
  return {
    get client() {
      if (!client) throw new Error('the test Redis is not started yet (read it inside a test)');
      return client;
    },
  };
}
