import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('install scripts', () => {
  it('onnxruntime-node does not download its binaries (they ship in the package)', () => {
    const npmrc = readFileSync(`${root}/.npmrc`, 'utf8').split('\n').map((line) => line.trim());
    assert.ok(npmrc.includes('onnxruntime-node-install=skip'));
  });

  it('the install analytics in the dependency tree (@scarf/scarf, via swagger-ui-dist) never report', async () => {
    // Run scarf's own postinstall as npm would, pointed at a loopback server instead of scarf.sh
    // (SCARF_LOCAL_PORT), without the opt-out variables the bootstrap adds: package.json alone must stop it.
    let reports = 0;
    const server = createServer((req, res) => { reports += 1; res.end(); });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const env: NodeJS.ProcessEnv = {
        ...process.env, INIT_CWD: root, SCARF_VERBOSE: 'true',
        SCARF_LOCAL_PORT: String((server.address() as AddressInfo).port),
      };
      for (const name of ['SCARF_ANALYTICS', 'SCARF_NO_ANALYTICS', 'DO_NOT_TRACK']) delete env[name];
      const child = spawn(process.execPath, ['node_modules/@scarf/scarf/report.js'], { cwd: root, env });
      let output = '';
      child.stdout.on('data', (chunk) => { output += chunk; });
      child.stderr.on('data', (chunk) => { output += chunk; });
      await once(child, 'close');
      assert.match(output, /Scarf has been disabled via a package\.json/);
      assert.equal(reports, 0);
    } finally {
      server.close();
    }
  });
});
