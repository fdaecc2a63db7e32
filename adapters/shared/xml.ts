/**
 * Hardened XML for platform webhooks (WeChat, WeCom). Platform XML is small, flat and never needs a DTD, so:
 * - any DOCTYPE or ENTITY declaration is refused before parsing (XXE and "billion laughs" both need one; with it
 *   refused, only the five predefined XML entities and character references are ever decoded — nothing expands,
 *   and no parser here ever opens a file or URL),
 * - the size is capped before any work is done,
 * - the parser is a strict XML 1.0 one (@rgrove/parse-xml): a document that is not well-formed is a 400, never a
 *   half-parsed object — checked in the same pass that reads it; a flat `<xml>` of plain fields, which nearly every
 *   callback is, is read by `flat-xml.ts` first, which accepts only documents this parser reads the same way,
 * - every value stays a string (`MsgId` is a 64-bit integer that a JS number would silently round),
 * - CDATA sections are read as plain text, exactly as sent: a customer's leading spaces, indented code or trailing
 *   newline stay; only whitespace outside CDATA (pretty-printing) is dropped.
 */
import { parseXml as parseXmlDocument, XmlCdata, XmlElement, XmlError, XmlText } from '@rgrove/parse-xml';
import { HttpError } from '../../gateway/errors.js';
import { readFlatXml } from './flat-xml.js';

export const XML_MAX_BYTES = 128 * 1024;

const CDATA = /<!\[CDATA\[[\s\S]*?\]\]>/g;
const DECLARATION = /<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/i;

/** A parsed element: its text, or — when it has child elements — a record of them (repeats as arrays). */
export type ParsedXmlValue = string | ParsedXml | ParsedXmlValue[];
export interface ParsedXml {
  [name: string]: ParsedXmlValue;
}

export function parseXml(text: string, opts: { maxBytes?: number } = {}): ParsedXml {
  checkSize(text, opts.maxBytes);
  return parseSized(text);
}

function checkSize(text: string, maxBytes = XML_MAX_BYTES): void {
  const size = Buffer.byteLength(text);
  if (size > maxBytes) throw new HttpError(413, 'payload_too_large', `the XML body is ${size} bytes; at most ${maxBytes} are accepted`);
}

function parseSized(text: string): ParsedXml {
  if (text.trim() === '') throw new HttpError(400, 'malformed_xml', 'the request body is empty; an XML document was expected');
  // Declarations inside CDATA are just text (a user may type "<!DOCTYPE"), so look only outside them.
  if (DECLARATION.test(text.replace(CDATA, ''))) {
    throw new HttpError(400, 'malformed_xml', 'DOCTYPE/ENTITY declarations are not accepted in webhook XML');
  }
  let root: XmlElement | null;
  try {
    // An undeclared entity reference stays as literal text: nothing is ever resolved.
    root = parseXmlDocument(text, { ignoreUndefinedEntities: true, preserveCdata: true }).root;
  } catch (err) {
    if (!(err instanceof XmlError)) throw err;
    // The message's first line names the problem and its place; the lines after it quote the body, which stays out.
    throw new HttpError(400, 'malformed_xml', `the request body is not well-formed XML: ${err.message.split('\n')[0]}`);
  }
  if (!root) throw new HttpError(400, 'malformed_xml', 'the XML document has no root element');
  return { [root.name]: valueOf(root) };
}

/** Attributes are ignored (platform XML carries none that matter); text beside child elements too. */
function valueOf(element: XmlElement): ParsedXmlValue {
  let record: ParsedXml | undefined;
  const texts: XmlText[] = [];
  for (const child of element.children) {
    if (child instanceof XmlElement) {
      record ??= {};
      const value = valueOf(child);
      const previous = record[child.name];
      if (previous === undefined) record[child.name] = value;
      else if (Array.isArray(previous)) previous.push(value);
      else record[child.name] = [previous, value];
    } else if (child instanceof XmlText) {
      texts.push(child);
    }
  }
  return record ?? textOf(texts);
}

/**
 * CDATA is the sender's text, kept whole; plain text around it that is only whitespace is layout. Without CDATA the
 * text is trimmed, so a pretty-printed `<MsgType>\n  text\n</MsgType>` still reads "text".
 */
function textOf(texts: XmlText[]): string {
  if (!texts.some((t) => t instanceof XmlCdata)) return texts.map((t) => t.text).join('').trim();
  return texts
    .filter((t) => t instanceof XmlCdata || t.text.trim() !== '')
    .map((t) => t.text)
    .join('');
}

/** The `<xml>…</xml>` root every WeChat-family payload uses, as a record of (string) fields. */
export function parseWechatXml(text: string, opts: { maxBytes?: number } = {}): Record<string, unknown> {
  checkSize(text, opts.maxBytes);
  // Nearly every callback is one flat <xml> of fields: read directly; anything else goes to the full parser.
  const flat = readFlatXml(text);
  if (flat) return flat;
  const root = parseSized(text).xml;
  if (!root || typeof root !== 'object' || Array.isArray(root)) {
    throw new HttpError(400, 'malformed_xml', 'expected a WeChat XML document with an <xml> root element');
  }
  return root as Record<string, unknown>;
}

type XmlValue = string | number | XmlObject | XmlValue[] | undefined;
interface XmlObject {
  [key: string]: XmlValue;
}

/**
 * Serialises a passive reply the way WeChat's samples do: `<xml>` root, strings in CDATA, numbers bare, arrays as
 * repeated elements, undefined fields skipped. Keys are element names and must be plain names.
 */
export function buildXml(obj: XmlObject, root = 'xml'): string {
  return element(root, obj);
}

function element(name: string, value: XmlValue): string {
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`invalid XML element name "${name}"`);
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.map((v) => element(name, v)).join('');
  if (typeof value === 'number') return `<${name}>${value}</${name}>`;
  if (typeof value === 'string') return `<${name}>${cdata(value)}</${name}>`;
  return `<${name}>${Object.entries(value).map(([k, v]) => element(k, v)).join('')}</${name}>`;
}

/** CDATA cannot contain "]]>", so that sequence is split across two sections. */
function cdata(text: string): string {
  return `<![CDATA[${text.replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;
}
