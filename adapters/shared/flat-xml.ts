/**
 * The shape nearly every WeChat-family callback has — one `<xml>` root holding flat fields, each a single CDATA
 * section or plain text — read with a few regular expressions instead of the full XML parser.
 *
 * Why: the full parser (@rgrove/parse-xml) builds a node tree and checks every character one code point at a time;
 * a WeCom callback is two such documents (the signed envelope and the decrypted message), which made XML ≈ 14 % of
 * the ingress's busy time. This reader gives up — returns `undefined` — on anything outside that shape (a
 * declaration or comment, attributes, nesting, repeated or inherited names, entities, `>` or CR in text, `]]>` inside
 * a section, a character XML 1.0 does not allow), and the caller then runs the full parser, which decides. So it
 * never accepts a document the full parser refuses, and what it returns equals the full parser's result — checked
 * against it on recorded callbacks and generated documents (`test/wechat/flat-xml.test.ts`).
 */

/** A character that may not be in an XML document — checked only when the cheap test below finds a suspect. */
const NOT_XML_CHAR = /[^\t\n\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
/** Controls (CR included: the full parser normalises line breaks), surrogates and U+FFFE/U+FFFF. */
const SUSPECT_CHAR = /[\x00-\x08\x0B-\x1F\uD800-\uDFFF\uFFFE\uFFFF]/;
const ROOT_OPEN = /^[ \t\n]*<xml>/;
/** One field: `<Name><![CDATA[…]]></Name>` or `<Name>text</Name>`, after optional layout whitespace. */
const FIELD = /[ \t\n]*<([A-Za-z_][A-Za-z0-9_.-]*)>(?:<!\[CDATA\[([^]*?)\]\]>|([^<&>]*))<\/\1>/y;
const ROOT_CLOSE = /[ \t\n]*<\/xml>[ \t\n]*$/y;

/** The fields of a flat `<xml>` document, or `undefined` when the document needs the full parser. */
export function readFlatXml(text: string): Record<string, string> | undefined {
  if (SUSPECT_CHAR.test(text) && NOT_XML_CHAR.test(text)) return undefined;
  const open = ROOT_OPEN.exec(text);
  if (!open) return undefined;
  const fields: Record<string, string> = {};
  let count = 0;
  let at = open[0].length;
  for (;;) {
    FIELD.lastIndex = at;
    const field = FIELD.exec(text);
    if (!field) break;
    const [, name, cdata, plain] = field;
    // `in` also catches inherited names (`constructor`, `__proto__`): the full parser decides those.
    if (name! in fields) return undefined;
    if (cdata !== undefined) {
      // A section cannot hold "]]>"; a match that does spans two sections, or text the parser must judge.
      if (cdata.includes(']]>')) return undefined;
      fields[name!] = cdata;
    } else {
      // Plain text is trimmed, as the full reader trims text that has no CDATA.
      fields[name!] = plain!.trim();
    }
    count += 1;
    at = FIELD.lastIndex;
  }
  ROOT_CLOSE.lastIndex = at;
  if (count === 0 || !ROOT_CLOSE.test(text)) return undefined;
  return fields;
}
