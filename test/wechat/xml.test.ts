/** The hardened XML parser: CDATA, 64-bit ids as strings, DOCTYPE/XXE refused, size cap, malformed → 400. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HttpError } from '../../gateway/errors.js';
import { buildXml, parseWechatXml, parseXml } from '../../adapters/shared/xml.js';

const status = (code: number, error: string) => (e: unknown) => e instanceof HttpError && e.status === code && e.code === error;

test('reads WeChat XML: CDATA, predefined entities, 64-bit MsgId kept exact', () => {
  const xml = parseWechatXml(
    '<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Content><![CDATA[a &amp; <b> <!DOCTYPE]]></Content><MsgId>6054768590064713728</MsgId><T>x &lt; y</T></xml>',
  );
  assert.deepEqual(xml, { ToUserName: 'gh_1', Content: 'a &amp; <b> <!DOCTYPE', MsgId: '6054768590064713728', T: 'x < y' });
});

test('keeps CDATA text exactly as sent, and drops only layout whitespace outside it', () => {
  const xml = parseWechatXml(
    '<xml>\n  <Content><![CDATA[   indented code\n]]></Content>\n  <Padded>\n    <![CDATA[ x ]]>\n  </Padded>\n  <MsgType>\n    text\n  </MsgType>\n  <Split><![CDATA[a]]><![CDATA[ b]]></Split>\n</xml>',
  );
  assert.deepEqual(xml, { Content: '   indented code\n', Padded: ' x ', MsgType: 'text', Split: 'a b' });
});

test('refuses DOCTYPE / ENTITY declarations (XXE, billion laughs) before parsing', () => {
  const xxe = '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>';
  assert.throws(() => parseXml(xxe), status(400, 'malformed_xml'));
  const laughs = '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><xml><a>&lol2;</a></xml>';
  assert.throws(() => parseXml(laughs), status(400, 'malformed_xml'));
  // An undeclared entity reference is left as text, never resolved.
  assert.deepEqual(parseWechatXml('<xml><a>&xxe;</a></xml>'), { a: '&xxe;' });
});

test('malformed, empty, rootless and oversized documents', () => {
  assert.throws(() => parseXml('<xml><a></xml>'), status(400, 'malformed_xml'));
  assert.throws(() => parseXml('{"json": true}'), status(400, 'malformed_xml'));
  assert.throws(() => parseXml('   '), status(400, 'malformed_xml'));
  assert.throws(() => parseWechatXml('<other>1</other>'), status(400, 'malformed_xml'));
  assert.throws(() => parseXml(`<xml><a>${'x'.repeat(2000)}</a></xml>`, { maxBytes: 1000 }), status(413, 'payload_too_large'));
});

test('nested and repeated elements: records and arrays, as in WeChat menu events (SendPicsInfo); attributes and comments ignored', () => {
  const xml = parseWechatXml(
    '<?xml version="1.0" encoding="UTF-8"?><!-- event --><xml><Event><![CDATA[pic_sysphoto]]></Event>' +
      '<SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum><![CDATA[a1]]></PicMd5Sum></item>' +
      '<item><PicMd5Sum><![CDATA[b2]]></PicMd5Sum></item></PicList></SendPicsInfo>' +
      '<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult> 1 </ScanResult></ScanCodeInfo><Empty/><Blank></Blank><A lang="x">v</A></xml>',
  );
  assert.deepEqual(xml, {
    Event: 'pic_sysphoto',
    SendPicsInfo: { Count: '2', PicList: { item: [{ PicMd5Sum: 'a1' }, { PicMd5Sum: 'b2' }] } },
    ScanCodeInfo: { ScanType: 'qrcode', ScanResult: '1' },
    Empty: '',
    Blank: '',
    A: 'v',
  });
});

test('a malformed document is refused in the same pass that reads it, and the reason names the place', () => {
  assert.throws(
    () => parseXml('<xml><a>1</a></b></xml>'),
    (e: unknown) => e instanceof HttpError && e.status === 400 && /line 1, column \d+\)$/.test(e.message) && !e.message.includes('\n'),
  );
  assert.throws(() => parseXml('<xml>1</xml><second/>'), status(400, 'malformed_xml'));
  assert.throws(() => parseXml('<xml><a>x & y</a></xml>'), status(400, 'malformed_xml'));
});

test('buildXml writes the passive-reply layout and round-trips, even with "]]>" in text', () => {
  const text = buildXml({ ToUserName: 'o1', CreateTime: 1700000000, MsgType: 'text', Content: 'a]]>b', Skip: undefined });
  assert.equal(text, '<xml><ToUserName><![CDATA[o1]]></ToUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[a]]]]><![CDATA[>b]]></Content></xml>');
  assert.equal(parseWechatXml(text).Content, 'a]]>b');
});
