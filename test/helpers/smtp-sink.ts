/**
 * A real SMTP server (the `smtp-server` package) on a free loopback port that accepts every mail and keeps it,
 * parsed with mailparser, so a test can assert on exactly what the gateway sent: envelope, headers, parts.
 * `failNext(code, message)` makes the next transactions fail with an SMTP reply code (4xx temporary, 5xx permanent).
 */
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface CapturedMail {
  envelope: { from: string; to: string[] };
  raw: string;
  parsed: ParsedMail;
  /** Header lookup by lower-case name, as the first value's text. */
  header(name: string): string | undefined;
}

export interface SmtpSink {
  host: string;
  port: number;
  user: string;
  password: string;
  mails: CapturedMail[];
  failNext(count: number, code: number, message: string): void;
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const mails: CapturedMail[] = [];
  const user = 'gateway';
  const password = 'smtp-secret-123';
  let failures: Array<{ code: number; message: string }> = [];
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === user && auth.password === password) return callback(null, { user });
      return callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', async () => {
        const failure = failures.shift();
        if (failure) return callback(Object.assign(new Error(failure.message), { responseCode: failure.code }));
        const raw = Buffer.concat(chunks).toString('utf8');
        const parsed = await simpleParser(raw);
        mails.push({
          envelope: {
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
          },
          raw,
          parsed,
          header(name) {
            const value = parsed.headers.get(name.toLowerCase());
            if (value === undefined) return undefined;
            if (typeof value === 'string') return value;
            if (Array.isArray(value)) return value.join(' ');
            if (typeof value === 'object' && value && 'text' in value) return String((value as { text: string }).text);
            if (typeof value === 'object' && value && 'value' in value) return String((value as { value: string }).value);
            return String(value);
          },
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    mails,
    failNext(count, code, message) {
      failures = Array.from({ length: count }, () => ({ code, message }));
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The email channel's `smtp` options for this sink (plain SMTP on loopback). */
export function smtpOptions(smtp: SmtpSink) {
  return { host: smtp.host, port: smtp.port, secure: false, auth: { user: smtp.user, pass: smtp.password } };
}
