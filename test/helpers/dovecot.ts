/**
 * A real Dovecot IMAP server (Debian `dovecot-imapd`) on a free loopback port, for one test file: throw-away config,
 * one throw-away user (passwd-file, plaintext auth allowed because it only listens on 127.0.0.1), maildir in a temp
 * directory. When the tests run as an ordinary user every Dovecot process runs as that user; as root, the login and
 * internal processes use the `dovenull`/`dovecot` accounts the Debian package creates and mail is owned by root.
 * Mails are delivered the way a test needs them: IMAP APPEND.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { freePort } from '../../gateway/redis-server.js';

export interface TestDovecot {
  host: string;
  port: number;
  user: string;
  password: string;
  dir: string;
  /** Appends a raw RFC 5322 message to a mailbox (INBOX by default); resolves with its UID. */
  append(raw: string | Buffer, mailbox?: string): Promise<number>;
  /** Stops and starts the server again on the same port and maildir (the gateway's connection drops). */
  restart(): Promise<void>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

const DOVECOT_CANDIDATES = ['/usr/sbin/dovecot', '/usr/local/sbin/dovecot'];

function dovecotBinary(): string {
  for (const candidate of DOVECOT_CANDIDATES) {
    if (spawnSync(candidate, ['--version']).status === 0) return candidate;
  }
  throw new Error('dovecot is not installed: install the Debian package dovecot-imapd (npm test installs it)');
}

export async function startTestDovecot(): Promise<TestDovecot> {
  const binary = dovecotBinary();
  const dir = mkdtempSync(join(tmpdir(), 'gw-dovecot-'));
  // Dovecot's internal processes must be able to walk into the directory.
  chmodSync(dir, 0o755);
  const port = await freePort();
  const user = 'customer-care';
  const password = 'test-password-123';
  const me = userInfo();
  const asRoot = me.uid === 0;
  // Dovecot refuses uid 0 for mail processes, so as root the mail belongs to the unprivileged `nobody` account.
  const mailUid = asRoot ? accountId('-u', 'nobody') : me.uid;
  const mailGid = asRoot ? accountId('-g', 'nobody') : me.gid;
  for (const sub of ['run', 'mail', 'home']) mkdirSync(join(dir, sub), { mode: 0o755 });
  if (asRoot) for (const sub of ['mail', 'home']) chownSync(join(dir, sub), mailUid, mailGid);
  writeFileSync(join(dir, 'passwd'), `${user}:{PLAIN}${password}:${mailUid}:${mailGid}::${join(dir, 'home')}\n`);

  const config = `
base_dir = ${dir}/run
state_dir = ${dir}/run/state
instance_name = gw-test-${port}
log_path = ${dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
${asRoot ? '' : `default_login_user = ${me.username}\ndefault_internal_user = ${me.username}`}
first_valid_uid = 0
mail_location = maildir:${dir}/mail/%u
mail_privileged_group =
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${mailUid} gid=${mailGid} home=${dir}/home
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
`;
  mkdirSync(join(dir, 'run', 'state'), { recursive: true });
  const confPath = join(dir, 'dovecot.conf');
  writeFileSync(confPath, config);
  let child: ChildProcess;
  let exited = false;
  let output = '';
  const launch = async () => {
    exited = false;
    // Its own process group, so stopping it also ends the imap processes serving open connections.
    child = spawn(binary, ['-F', '-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    child.once('exit', () => (exited = true));
    const deadline = Date.now() + 15_000;
    while (!(await greets(port))) {
      if (exited || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`dovecot did not start on port ${port}: ${output}\n${safeRead(join(dir, 'dovecot.log'))}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const halt = async () => {
    const group = -child.pid!;
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(group, sig);
      } catch {
        // the group is already gone
      }
    };
    if (!exited) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      signal('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    }
    signal('SIGKILL');
  };
  try {
    await launch();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    dir,
    async append(raw, mailbox = 'INBOX') {
      const client = new ImapFlow({ host: '127.0.0.1', port, secure: false, auth: { user, pass: password }, logger: false });
      await client.connect();
      try {
        const result = await client.append(mailbox, raw);
        if (!result || result.uid === undefined) throw new Error(`APPEND to ${mailbox} returned no UID`);
        return result.uid;
      } finally {
        await client.logout().catch(() => client.close());
      }
    },
    async restart() {
      await halt();
      await launch();
    },
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function accountId(flag: '-u' | '-g', name: string): number {
  const out = spawnSync('id', [flag, name], { encoding: 'utf8' }).stdout.trim();
  if (!/^\d+$/.test(out)) throw new Error(`no "${name}" account to own the test mail as (dovecot refuses uid 0)`);
  return Number(out);
}

/** True once something on the port answers with an IMAP greeting. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', (chunk) => done(chunk.toString().startsWith('* OK')));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** The email channel's `imap` options for this server (plain IMAP on loopback). */
export function imapOptions(dovecot: TestDovecot) {
  return { host: dovecot.host, port: dovecot.port, secure: false, auth: { user: dovecot.user, pass: dovecot.password } };
}
