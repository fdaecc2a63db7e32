/** A real redis-server on a free loopback port, in a throw-away directory, for one test file. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
