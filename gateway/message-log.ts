/**
 * A logger that names a message (msgId, conversation, channel) without building a pino child per message: the
 * names are merged into a line only when that line is written at an enabled level. The pipeline makes one for every
 * message it handles, and most of their lines (info, debug) are below the level a busy gateway runs at; a pino child
 * costs its bindings' serialisation and redaction up front whether or not it ever writes.
 */
import type { Logger } from './logger.js';

type Level = 'debug' | 'info' | 'warn' | 'error';
type Fields = Record<string, unknown>;

export class MessageLog {
  constructor(
    private readonly parent: Logger,
    private readonly names: Fields,
  ) {}

  /** The same names and more (e.g. the reply a delivery attempt is about). */
  with(more: Fields): MessageLog {
    return new MessageLog(this.parent, { ...this.names, ...more });
  }

  debug(fields: Fields, msg: string): void {
    this.write('debug', fields, msg);
  }
  info(fields: Fields, msg: string): void {
    this.write('info', fields, msg);
  }
  warn(fields: Fields, msg: string): void {
    this.write('warn', fields, msg);
  }
  error(fields: Fields, msg: string): void {
    this.write('error', fields, msg);
  }

  private write(level: Level, fields: Fields, msg: string): void {
    if (this.parent.isLevelEnabled(level)) this.parent[level]({ ...this.names, ...fields }, msg);
  }
}
