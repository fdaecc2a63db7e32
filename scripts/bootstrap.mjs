#!/usr/bin/env node
/**
 * Makes `npm run demo` and `npm test` work on a fresh clone: installs npm dependencies when node_modules is missing
 * or older than the lockfile, installs the Debian packages a command needs when they are missing (as root; otherwise
 * it says exactly what to install), then runs the command.
 *
 *   node scripts/bootstrap.mjs [--system redis-server,chromium,...] -- <command> [args...]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
const own = sep === -1 ? argv : argv.slice(0, sep);
const command = sep === -1 ? [] : argv.slice(sep + 1);
const systemIdx = own.indexOf('--system');
const system = systemIdx === -1 ? [] : (own[systemIdx + 1] ?? '').split(',').filter(Boolean);

function have(binary) {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0 ||
    existsSync(`/usr/sbin/${binary}`) || existsSync(`/usr/bin/${binary}`);
}

// Debian package → what proves it is installed. /usr/sbin/dovecot comes with dovecot-core, which a machine may have
// without the IMAP server; the IMAP server's own file is the proof of dovecot-imapd.
const INSTALLED = {
  'redis-server': () => have('redis-server'),
  chromium: () => have('chromium'),
  'dovecot-imapd': () => existsSync('/usr/lib/dovecot/imap'),
};

function ensureNodeModules() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  const fresh = existsSync(marker) && (!existsSync(lock) || statSync(marker).mtimeMs >= statSync(lock).mtimeMs - 1000);
  if (fresh) return;
  console.log('[bootstrap] installing npm dependencies…');
  // `npm install` (not `npm ci`): it installs the locked versions too, and tolerates npm's known gap of
  // platform-specific optional packages (other OSes' native binaries) missing from a lockfile made on Linux.
  const args = ['install', '--no-audit', '--no-fund'];
  // No install script may reach the network: swagger-ui-dist's @scarf/scarf reports installs from its postinstall
  // (on npm versions that run dependencies' scripts) unless told not to; package.json's scarfSettings says so too.
  const env = { ...process.env, SCARF_ANALYTICS: 'false', DO_NOT_TRACK: '1' };
  const r = spawnSync('npm', args, { cwd: root, stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error('[bootstrap] npm install failed');
    process.exit(r.status ?? 1);
  }
}

function ensureSystemPackages() {
  const missing = system.filter((pkg) => !(INSTALLED[pkg] ?? (() => have(pkg)))());
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    // The same steps as the root path below: on a fresh image apt's package lists are empty until an update.
    console.error(`[bootstrap] missing Debian packages: ${missing.join(' ')}\n` +
      `[bootstrap] install them with:  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing.join(' ')}`);
    process.exit(3);
  }
  console.log(`[bootstrap] installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  const r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  if (r.status !== 0) {
    console.error(`[bootstrap] apt-get install ${missing.join(' ')} failed`);
    process.exit(r.status ?? 1);
  }
}

ensureNodeModules();
ensureSystemPackages();
if (command.length) {
  const env = { ...process.env, PATH: `${join(root, 'node_modules', '.bin')}:${process.env.PATH}` };
  const r = spawnSync(command[0], command.slice(1), { cwd: root, stdio: 'inherit', env });
  process.exit(r.status ?? (r.signal ? 1 : 0));
}
