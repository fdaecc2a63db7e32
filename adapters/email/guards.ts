/**
 * Loop and noise guards: mail the gateway must never answer automatically (RFC 3834 section 2 and the usual
 * practice of auto-responders): auto-submitted mail, bulk/list/junk precedence, mailing-list traffic, bounces
 * from mailer daemons, and mail from the support address itself. Such mail is not ingested — answering it would
 * start a mail loop or spam a list — it is logged and counted (see docs/channels-email-wechaty.md).
 */

export type GuardReason = 'auto_submitted' | 'precedence' | 'list' | 'bounce' | 'own_address' | 'no_sender';

/** Header values as mailparser gives them, by lower-case name. */
export interface GuardInput {
  from: string | undefined;
  ownAddress: string;
  header(name: string): string | undefined;
  /** The SMTP envelope sender when known (Return-Path); "<>" marks a bounce. */
  returnPath?: string | undefined;
}

const DAEMON = /^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|noreply-dmarc-support)@/i;

export function guardReason(input: GuardInput): GuardReason | undefined {
  const from = input.from?.trim().toLowerCase();
  if (!from) return 'no_sender';
  if (from === input.ownAddress.toLowerCase()) return 'own_address';
  const autoSubmitted = input.header('auto-submitted')?.trim().toLowerCase();
  if (autoSubmitted && autoSubmitted.split(/[\s;]/)[0] !== 'no') return 'auto_submitted';
  const precedence = input.header('precedence')?.trim().toLowerCase();
  if (precedence && ['bulk', 'list', 'junk'].includes(precedence)) return 'precedence';
  if (input.header('list-id') !== undefined || input.header('list-unsubscribe') !== undefined) return 'list';
  if (DAEMON.test(from)) return 'bounce';
  if (input.returnPath !== undefined && input.returnPath.replace(/[<>\s]/g, '') === '') return 'bounce';
  // Older auto-responders that predate RFC 3834 mark themselves this way instead.
  if (input.header('x-autoreply') !== undefined || input.header('x-autorespond') !== undefined) return 'auto_submitted';
  return undefined;
}
