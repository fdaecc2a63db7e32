/**
 * A local Redis Cluster of N masters (Debian redis-server + `redis-cli --cluster create`) on free loopback ports, each
 * node a private redis-server (AOF on). The cluster tests and `npm run bench -- --cluster` run on it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { startPrivateRedis, type PrivateRedis } from './redis-server.js';

export interface LocalCluster {
  nodes: string[];
  stop(): Promise<void>;
}

export async function startLocalCluster(masters = 3): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-cluster-'));
  const servers: PrivateRedis[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      servers.push(
        await startPrivateRedis({
          dataDir: join(dir, `node-${i}`),
          extraArgs: ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${i}.conf`, '--cluster-node-timeout', '5000'],
        }),
      );
    }
    const nodes = servers.map((s) => `127.0.0.1:${s.port}`);
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    const client = new Cluster(servers.map((s) => ({ host: '127.0.0.1', port: s.port })));
    try {
      for (let i = 0; ; i++) {
        const info = await client.cluster('INFO').catch(() => '');
        if (String(info).includes('cluster_state:ok')) break;
        if (i > 200) throw new Error('cluster did not reach cluster_state:ok');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      client.disconnect();
    }
    return {
      nodes,
      async stop() {
        await Promise.all(servers.map((s) => s.stop()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
