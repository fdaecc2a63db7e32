import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import type { Role } from '../gateway/gateway.js';
import { missingNodeFlags, nodeFlagsFor } from '../gateway/node-flags.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The Node flags a command line gives before `gateway/main.ts` (after `tsx`), and the role it asks for. */
function launch(command: readonly string[]): { flags: string[]; role: Role } {
  const tsx = command.indexOf('tsx');
  const main = command.indexOf('gateway/main.ts');
  assert.ok(tsx >= 0 && main > tsx, `not a gateway command: ${command.join(' ')}`);
  const role = command.indexOf('--role');
  return { flags: command.slice(tsx + 1, main), role: role === -1 ? 'all' : (command[role + 1] as Role) };
}

describe('node flags per role', () => {
  it('every npm script that starts the gateway passes its role’s flags', () => {
    const scripts = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')).scripts as Record<string, string>;
    // `config:check` validates the config and exits: no pipeline runs, no flags needed.
    const starts = Object.entries(scripts).filter(([, line]) => line.includes('gateway/main.ts') && !line.includes('--check'));
    assert.deepEqual(starts.map(([name]) => name).sort(), ['demo', 'start', 'start:ingress', 'start:worker']);
    for (const [name, line] of starts) {
      const { flags, role } = launch(line.split(/\s+/));
      assert.deepEqual(flags, [...nodeFlagsFor(role)], `npm run ${name} (role ${role})`);
    }
  });

  it('the container image and docker-compose pass them too', () => {
    const dockerfile = readFileSync(`${root}/Dockerfile`, 'utf8');
    const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(dockerfile)![1]!) as string[];
    const defaultRole = JSON.parse(/^CMD (.+)$/m.exec(dockerfile)![1]!) as string[];
    const image = launch([...entrypoint, ...defaultRole]);
    assert.deepEqual(image.flags, [...nodeFlagsFor(image.role)], 'Dockerfile ENTRYPOINT + CMD');

    const services = parse(readFileSync(`${root}/docker-compose.yml`, 'utf8')).services as Record<string, { entrypoint?: string[]; command?: string[] }>;
    for (const name of ['ingress', 'worker']) {
      const service = services[name]!;
      const { flags, role } = launch([...(service.entrypoint ?? entrypoint), ...(service.command ?? defaultRole)]);
      assert.equal(role, name);
      assert.deepEqual(flags, [...nodeFlagsFor(role)], `docker-compose service ${name}`);
    }
  });

  it('this Node accepts them, and a pipeline process starts with its young generation at full size', () => {
    // An unknown V8 flag stops node at once (exit code 9), so a Node upgrade that drops one must fail here first.
    const newSpace = (flags: readonly string[]) => {
      const r = spawnSync(process.execPath, [...flags, '-e', `process.stdout.write(String(require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size))`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return Number(r.stdout);
    };
    assert.equal(newSpace(nodeFlagsFor('worker')), 64 * 1024 * 1024);
    assert.ok(newSpace(nodeFlagsFor('ingress')) < 64 * 1024 * 1024);
  });

  it('names the flags a process was started without', () => {
    assert.deepEqual(missingNodeFlags('ingress', []), ['--max-semi-space-size=8']);
    assert.deepEqual(missingNodeFlags('ingress', [...nodeFlagsFor('ingress')]), []);
    assert.deepEqual(missingNodeFlags('worker', [...nodeFlagsFor('worker')]), []);
    assert.deepEqual(missingNodeFlags('all', ['--max-semi-space-size=64']), ['--min-semi-space-size=64', '--no-memory-reducer']);
  });
});
