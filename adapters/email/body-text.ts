/**
 * The text a customer actually wrote in a mail: the plain-text part when there is one, else the HTML part turned
 * into text, then with the quoted history ("On … wrote:", "> …", Outlook's "-----Original Message-----", Chinese
 * "写道：") and the signature ("-- ", "Sent from my iPhone") removed by email-reply-parser. When stripping leaves
 * nothing (a mail that is only a forward), the whole text is kept: losing the customer's words is worse than noise.
 */
import EmailReplyParser from 'email-reply-parser';
import { convert } from 'html-to-text';

const parser = new EmailReplyParser();

export function htmlToPlainText(html: string): string {
  return convert(html, {
    wordwrap: false,
    selectors: [
      { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
      { selector: 'img', format: 'skip' },
    ],
  });
}

/** Visible text of a mail from its parsed parts; `text` wins over `html`. */
export function mailBodyText(parts: { text?: string | undefined; html?: string | false | undefined }): string {
  const text = parts.text?.trim() ? parts.text : parts.html ? htmlToPlainText(parts.html) : '';
  return stripQuotedAndSignature(text);
}

export function stripQuotedAndSignature(text: string): string {
  const normalised = text.replace(/\r\n?/g, '\n');
  const reply = parser.parseReply(normalised).trim();
  return reply || normalised.trim();
}
