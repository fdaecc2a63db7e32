/**
 * Hardened XML for platform webhooks (WeChat, WeCom). Platform XML is small, flat and never needs a DTD, so:
 * - any DOCTYPE or ENTITY declaration is refused before parsing (XXE and "billion laughs" both need one; with it
 *   refused, only the five predefined XML entities and character references are ever decoded — nothing expands,
 *   and no parser here ever opens a file or URL),
 * - the size is capped before any work is done,
 * - the document is validated first, so malformed input becomes a 400 instead of a half-parsed object,
 * - every value stays a string (`MsgId` is a 64-bit integer that a JS number would silently round),
 * - CDATA sections are read as plain text.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { HttpError } from '../../gateway/errors.js';

export const XML_MAX_BYTES = 128 * 1024;

const CDATA = /<!\[CDATA\[[\s\S]*?\]\]>/g;
const DECLARATION = /<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/i;

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
});

export function parseXml(text: string, opts: { maxBytes?: number } = {}): Record<string, unknown> {
  const maxBytes = opts.maxBytes ?? XML_MAX_BYTES;
  const size = Buffer.byteLength(text);
  if (size > maxBytes) throw new HttpError(413, 'payload_too_large', `the XML body is ${size} bytes; at most ${maxBytes} are accepted`);
  if (text.trim() === '') throw new HttpError(400, 'malformed_xml', 'the request body is empty; an XML document was expected');
  // Declarations inside CDATA are just text (a user may type "<!DOCTYPE"), so look only outside them.
  if (DECLARATION.test(text.replace(CDATA, ''))) {
    throw new HttpError(400, 'malformed_xml', 'DOCTYPE/ENTITY declarations are not accepted in webhook XML');
  }
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new HttpError(400, 'malformed_xml', `the request body is not well-formed XML: ${valid.err.msg} (line ${valid.err.line})`);
  }
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (err) {
    throw new HttpError(400, 'malformed_xml', `the request body is not well-formed XML: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== 'object') throw new HttpError(400, 'malformed_xml', 'the XML document has no root element');
  return doc as Record<string, unknown>;
}

/** The `<xml>…</xml>` root every WeChat-family payload uses, as a record of (string) fields. */
export function parseWechatXml(text: string, opts: { maxBytes?: number } = {}): Record<string, unknown> {
  const root = parseXml(text, opts).xml;
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
