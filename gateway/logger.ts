/** Structured JSON logs (pino). Secrets named in `redact` never reach a log line. */
import { pino, type Logger } from 'pino';

export const REDACT_PATHS = [
  '*.secret', '*.appSecret', '*.token', '*.encodingAESKey', '*.password', '*.apiKey', '*.adminKey',
  'req.headers.authorization', 'req.headers["x-api-key"]', 'options.*.secret', 'options.secret', 'options.token',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { svc: 'gateway' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination as pino.DestinationStream | undefined,
  );
}
export type { Logger };
