/** Mails for the email tests, as a mail client writes them: plain text, CRLF line ends, a fresh Message-ID. */

let counter = 0;

export interface PlainMail {
  from: string;
  to: string;
  /** Default "Question <n>". */
  subject?: string;
  /** Default "question <n>"; `\n` becomes CRLF. */
  body?: string;
  /** Default now. */
  date?: string;
  headers?: Record<string, string>;
  /** Default a new `<m<n>.<ms>@customer.example>`. */
  messageId?: string;
}

export function plainMail(opts: PlainMail): { raw: string; messageId: string } {
  const n = ++counter;
  const messageId = opts.messageId ?? `<m${n}.${Date.now()}@customer.example>`;
  const extra = Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const body = (opts.body ?? `question ${n}`).replace(/\n/g, '\r\n');
  const raw =
    `From: ${opts.from}\r\nTo: ${opts.to}\r\nSubject: ${opts.subject ?? `Question ${n}`}\r\nDate: ${opts.date ?? new Date().toUTCString()}\r\n` +
    `Message-ID: ${messageId}\r\n${extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${body}\r\n`;
  return { raw, messageId };
}
