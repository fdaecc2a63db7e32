/** WeChat-family crypto against the official vectors (shared/protocols/vectors.json) and self-encrypted ones. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createWechatCrypto, encodingAESKeyProblem, WechatCryptoError } from '../../adapters/shared/wechat-crypto.js';

const vectors = JSON.parse(readFileSync(new URL('../fixtures/wechat/vectors.json', import.meta.url), 'utf8'));
const mp = Object.fromEntries(vectors.wechat_miniprogram.map((v: any) => [v.id, v]));
const oa = Object.fromEntries(vectors.wechat_official_account.map((v: any) => [v.id, v]));

test('plain signature: mini-program URL verification and plaintext push vectors', () => {
  const get = mp.mp_get_url_verification;
  const crypto = createWechatCrypto({ token: get.inputs.token, receiveId: 'wx' });
  assert.equal(crypto.signature(get.inputs.timestamp, get.inputs.nonce), get.expected.signature);
  assert.ok(crypto.verify(get.expected.signature, get.inputs.timestamp, get.inputs.nonce));
  assert.ok(crypto.verify(get.expected.signature.toUpperCase(), get.inputs.timestamp, get.inputs.nonce));
  assert.ok(!crypto.verify(get.expected.signature, get.inputs.timestamp, '1514711493'));
  assert.ok(!crypto.verify(undefined, get.inputs.timestamp, get.inputs.nonce));
  assert.ok(!crypto.verify('abc', get.inputs.timestamp, get.inputs.nonce));
  const push = mp.mp_plaintext_json_push_signature;
  assert.equal(crypto.signature(push.inputs.timestamp, push.inputs.nonce), push.expected.signature);
});

test('mini-program safe-mode JSON push decrypts to the documented message', () => {
  const v = mp.mp_safe_mode_json_push_decrypt;
  const crypto = createWechatCrypto({ token: v.inputs.token, encodingAESKey: v.inputs.encoding_aes_key, receiveId: v.inputs.appid });
  assert.equal(crypto.signature(v.inputs.timestamp, v.inputs.nonce), v.expected.signature_url_param);
  assert.ok(crypto.verify(v.expected.msg_signature, v.inputs.timestamp, v.inputs.nonce, v.inputs.body_json.Encrypt));
  const { message, receiveId } = crypto.decrypt(v.inputs.body_json.Encrypt);
  assert.equal(message, v.expected.msg);
  assert.equal(Buffer.byteLength(message), v.expected.msg_len);
  assert.equal(receiveId, v.expected.receiveid);
});

test('mini-program safe-mode reply encrypts byte for byte with the documented random', () => {
  const v = mp.mp_safe_mode_json_reply_encrypt;
  const crypto = createWechatCrypto({ token: v.inputs.token, encodingAESKey: v.inputs.encoding_aes_key, receiveId: v.inputs.appid });
  const encrypted = crypto.encrypt(v.inputs.msg, Buffer.from(v.inputs.random));
  assert.equal(encrypted, v.expected.Encrypt);
  assert.equal(crypto.signature(v.inputs.timestamp, v.inputs.nonce, encrypted), v.expected.MsgSignature);
});

test('official account: Tencent sample decrypt, Java encrypt (UTF-8 and XML) vectors', () => {
  const d = oa.oa_tencent_sample_python_decrypt;
  const dc = createWechatCrypto({ token: d.inputs.token, encodingAESKey: d.inputs.encoding_aes_key, receiveId: d.inputs.appid });
  assert.ok(dc.verify(d.expected.msg_signature, d.inputs.timestamp, d.inputs.nonce, d.inputs.encrypt));
  assert.equal(dc.decrypt(d.inputs.encrypt).message, d.expected.msg);
  for (const id of ['oa_tencent_sample_java_encrypt_utf8', 'oa_tencent_sample_java_encrypt_xml']) {
    const v = oa[id];
    const c = createWechatCrypto({ token: v.inputs.token ?? 'x', encodingAESKey: v.inputs.encoding_aes_key, receiveId: v.inputs.appid });
    assert.equal(c.encrypt(v.inputs.msg, Buffer.from(v.inputs.random)), v.expected.encrypt, id);
    assert.equal(c.decrypt(v.expected.encrypt).message, v.inputs.msg, id);
  }
  const x = oa.open_platform_xml_safe_mode_push;
  const xc = createWechatCrypto({ token: x.inputs.token, encodingAESKey: x.inputs.encoding_aes_key, receiveId: x.inputs.receiveid });
  assert.ok(xc.verify(x.expected.msg_signature, x.inputs.timestamp, x.inputs.nonce, x.inputs.body_xml_Encrypt));
  assert.equal(xc.decrypt(x.inputs.body_xml_Encrypt).message, x.expected.msg);
  const r = oa.open_platform_xml_safe_mode_reply;
  const rc = createWechatCrypto({ token: r.inputs.token, encodingAESKey: r.inputs.encoding_aes_key, receiveId: r.inputs.receiveid });
  const enc = rc.encrypt(r.inputs.msg, Buffer.from(r.inputs.random));
  assert.equal(enc, r.expected.Encrypt);
  assert.equal(rc.signature(r.inputs.timestamp, r.inputs.nonce, enc), r.expected.MsgSignature);
});

test('self-encrypted round trip for every pad length, and refusals', () => {
  const key = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG';
  const crypto = createWechatCrypto({ token: 't', encodingAESKey: key, receiveId: 'wxappid0000000001' });
  for (let n = 0; n < 70; n++) {
    const msg = '中'.repeat(n % 7) + 'x'.repeat(n);
    assert.equal(crypto.decrypt(crypto.encrypt(msg)).message, msg);
  }
  const other = createWechatCrypto({ token: 't', encodingAESKey: key, receiveId: 'wxanotherapp00002' });
  assert.throws(() => other.decrypt(crypto.encrypt('hi')), (e: unknown) => e instanceof WechatCryptoError && e.reason === 'receive_id_mismatch');
  const wrongKey = createWechatCrypto({ token: 't', encodingAESKey: 'A'.repeat(43), receiveId: 'wxappid0000000001' });
  assert.throws(() => wrongKey.decrypt(crypto.encrypt('hi')), WechatCryptoError);
  assert.throws(() => crypto.decrypt('not base64!!'), (e: unknown) => e instanceof WechatCryptoError && e.reason === 'bad_ciphertext');
  assert.throws(() => crypto.decrypt(Buffer.alloc(40).toString('base64')), (e: unknown) => e instanceof WechatCryptoError && e.reason === 'bad_ciphertext');
  assert.match(encodingAESKeyProblem('short') ?? '', /43 characters/);
  assert.throws(() => createWechatCrypto({ token: 't', encodingAESKey: 'bad', receiveId: 'x' }), /43 characters/);
  const plainOnly = createWechatCrypto({ token: 't', receiveId: 'x' });
  assert.throws(() => plainOnly.decrypt(crypto.encrypt('hi')), (e: unknown) => e instanceof WechatCryptoError && e.reason === 'no_key');
});
