/**
 * The flat `<xml>` reader never disagrees with the full parser: whatever it accepts, the full parser reads to the same
 * record; everything else it leaves to the full parser. Checked on the recorded callbacks and the documented vectors,
 * on cases chosen to sit at its edges, and on generated documents.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readFlatXml } from '../../adapters/shared/flat-xml.js';
import { parseWechatXml, parseXml } from '../../adapters/shared/xml.js';
import { HttpError } from '../../gateway/errors.js';

const FIXTURES = new URL('../fixtures/wechat/', import.meta.url).pathname;

/** What the full parser makes of a document, or the error it refuses it with. */
function fullRead(text: string): unknown {
  try {
    return parseXml(text).xml;
  } catch (err) {
    return err;
  }
}

function assertAgrees(text: string): boolean {
  const flat = readFlatXml(text);
  if (flat === undefined) return false;
  assert.deepEqual(flat, fullRead(text), `flat reader and full parser differ on ${JSON.stringify(text)}`);
  return true;
}

/** Every `<xml>` document in the documented vectors (decrypted messages, envelopes). */
function vectorDocuments(): string[] {
  const found: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string' && value.trimStart().startsWith('<xml>')) found.push(value);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(JSON.parse(readFileSync(join(FIXTURES, 'vectors.json'), 'utf8')));
  return found;
}

test('reads every recorded WeChat push and every documented vector message the way the full parser does', () => {
  const recorded = readdirSync(join(FIXTURES, 'pushes'))
    .filter((name) => name.endsWith('.xml'))
    .map((name) => readFileSync(join(FIXTURES, 'pushes', name), 'utf8'));
  const documents = [...recorded, ...vectorDocuments()];
  assert.ok(recorded.length >= 15 && documents.length > recorded.length);
  // Those whose fields are all plain values take the short way, and agree with the full parser; the nested ones
  // (a video's <Video>, a location's <SendLocationInfo>) are left to it.
  let flat = 0;
  for (const text of documents) {
    const nested = Object.values(fullRead(text) as object).some((value) => typeof value !== 'string');
    assert.equal(assertAgrees(text), !nested, `${nested ? 'read as flat' : 'not read as flat'}: ${text}`);
    if (!nested) flat += 1;
  }
  assert.ok(flat >= documents.length / 2, `only ${flat} of ${documents.length} documents were flat`);
});

test('reads the envelope of an encrypted callback and keeps CDATA exactly, plain text trimmed', () => {
  const envelope = '<xml>\n  <ToUserName><![CDATA[ww1]]></ToUserName>\n  <Encrypt><![CDATA[ab+/=]]></Encrypt>\n  <AgentID>  1000002 </AgentID>\n</xml>\n';
  assert.deepEqual(readFlatXml(envelope), { ToUserName: 'ww1', Encrypt: 'ab+/=', AgentID: '1000002' });
  assert.ok(assertAgrees(envelope));
  const content = '<xml><Content><![CDATA[  你好 😀 a &amp; <b> <!DOCTYPE x]]></Content><Empty></Empty><Blank><![CDATA[]]></Blank></xml>';
  assert.deepEqual(readFlatXml(content), { Content: '  你好 😀 a &amp; <b> <!DOCTYPE x', Empty: '', Blank: '' });
  assert.ok(assertAgrees(content));
});

test('the size cap holds for flat documents too: checked before either reader runs', () => {
  const flat = `<xml><Content><![CDATA[${'x'.repeat(2000)}]]></Content></xml>`;
  assert.ok(readFlatXml(flat));
  assert.throws(() => parseWechatXml(flat, { maxBytes: 1000 }), (e: unknown) => e instanceof HttpError && e.status === 413);
});

test('leaves to the full parser what is not a flat document of plain fields', () => {
  const declined = [
    '<?xml version="1.0"?><xml><a>1</a></xml>', // declaration
    '<!-- c --><xml><a>1</a></xml>', // comment
    '<xml><a x="1">1</a></xml>', // attribute
    '<xml><a><b>1</b></a></xml>', // nesting
    '<xml><a>1</a><a>2</a></xml>', // repeated: an array
    '<xml><constructor>1</constructor></xml>', // an inherited name
    '<xml><__proto__>1</__proto__></xml>',
    '<xml><a>x &amp; y</a></xml>', // entity
    '<xml><a>x > y</a></xml>',
    '<xml><a><![CDATA[a]]]]><![CDATA[>b]]></a></xml>', // "]]>" split over two sections
    '<xml><a><![CDATA[a]]>b]]></a></xml>', // text after a section
    '<xml><a> <![CDATA[x]]> </a></xml>', // whitespace around a section
    '<xml><a>1\r\n</a></xml>', // CR: the parser normalises line breaks
    '<xml><a>\u0001</a></xml>', // not an XML character
    '<xml><a>\uD83D</a></xml>', // a lone surrogate
    '<xml><a>\uFFFE</a></xml>',
    '<xml></xml>', // no fields
    '<xml/>',
    '<xml><a/></xml>',
    '<xml><ns:a>1</ns:a></xml>',
    '<xml><a>1</b></xml>', // malformed: the parser says why
    '<xml><a>1</a>',
    '<xml><a>1</a></xml><b/>',
    '<xml><a>1</a>text</xml>',
    '\uFEFF<xml><a>1</a></xml>',
    '',
  ];
  for (const text of declined) assert.equal(readFlatXml(text), undefined, `read as flat: ${JSON.stringify(text)}`);
});

/** A small seeded generator (mulberry32), so a failure names a document that can be rebuilt. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('generated documents: whatever the flat reader accepts, the full parser reads the same', () => {
  const next = random(20261203);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const names = ['ToUserName', 'Content', 'MsgId', 'a', 'A.b-c_1', 'xml', 'Event', 'AgentID', 'constructor', 'ns:x', '1bad'];
  const plain = ['x', ' ', '你好', '😀', '\n', '\t', ']', ']]', '\u3000', 'é', '123'];
  const awkward = ['\r', ']]>', '>', '<', '&', '&amp;', '\u0001', '\uD83D', '\uFFFE', '<![CDATA['];
  const layout = ['', '', ' ', '\n  ', '\t', '\r\n'];
  const text = (): string => Array.from({ length: Math.floor(next() * 6) }, () => pick(next() < 0.9 ? plain : awkward)).join('');
  const field = (): string => {
    const name = pick(names);
    const close = next() < 0.95 ? name : pick(names);
    const value = next() < 0.6 ? `<![CDATA[${text()}]]>` : text();
    return `${pick(layout)}<${name}>${value}</${close}>`;
  };
  let accepted = 0;
  let declinedButWellFormed = 0;
  for (let i = 0; i < 20_000; i += 1) {
    const fields = Array.from({ length: 1 + Math.floor(next() * 5) }, field).join('');
    const document = `${pick(layout)}<xml>${fields}${pick(layout)}</xml>${pick(layout)}`;
    if (assertAgrees(document)) accepted += 1;
    else if (!(fullRead(document) instanceof Error)) declinedButWellFormed += 1;
  }
  // Both ways are exercised: documents read flat, and well-formed ones left to the parser.
  assert.ok(accepted > 1_000, `only ${accepted} generated documents were read as flat`);
  assert.ok(declinedButWellFormed > 1_000, `only ${declinedButWellFormed} well-formed documents went to the full parser`);
});
