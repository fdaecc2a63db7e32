import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildModel } from '../../bot/intent/build.js';
import { ModelBundle, readModelFolder } from '../../bot/intent/bundle.js';
import { parseCsv, readExamples } from '../../bot/intent/data.js';
import { extractNgrams } from '../../bot/intent/features.js';
import { argmax } from '../../bot/intent/linear-model.js';
import { exportOnnx } from '../../bot/intent/onnx/export.js';
import { stratifiedSplit, train } from '../../bot/intent/trainer.js';

const { examples, sha256 } = readExamples('data/intents/support/utterances.csv');
const { train: trainRows, heldOut } = stratifiedSplit(examples, 0.2, 7);

describe('intent trainer', () => {
  it('reads quoted CSV fields (commas, doubled quotes, CRLF)', () => {
    assert.deepEqual(parseCsv('text,label\r\n"a, ""b""",x\nplain,y\n'), [
      ['text', 'label'],
      ['a, "b"', 'x'],
      ['plain', 'y'],
    ]);
  });

  it('extracts word 1–3-grams, marked in-word char 2–5-grams, and CJK char 1–2-grams', () => {
    const keys = [...extractNgrams('Hi, 订单 ok').keys()].map((k) => k.replaceAll('\u0001', '|'));
    assert.ok(keys.includes('w|hi') && keys.includes('w|hi|ok'));
    assert.ok(keys.includes('b|\u0002|h') && keys.includes('b|h|i') && keys.includes('b|\u0002|h|i|\u0003'), 'word-boundary n-grams');
    assert.ok(keys.includes('c|订') && keys.includes('c|订|单'));
    assert.ok(!keys.some((k) => k.includes(' ') || k.includes(',')), 'no n-gram crosses a word boundary');
    assert.ok(!keys.includes('b|h') && !keys.includes('c|h|i'), 'no single Latin characters, no unmarked Latin stream');
  });

  it('still extracts the running-text character stream for models trained without word-boundary n-grams', () => {
    const legacy = { wordNgrams: [1, 2] as [number, number], charNgrams: [2, 5] as [number, number], cjkCharNgrams: [1, 2] as [number, number], minDf: 2 };
    const keys = [...extractNgrams('Hi, 订单 ok', legacy).keys()].map((k) => k.replaceAll('\u0001', '|'));
    assert.ok(keys.includes('c|h|i') && keys.includes('c|订|单'));
    assert.ok(!keys.some((k) => k.startsWith('b|')));
  });

  it('is deterministic: the same seed gives identical weights and predictions', () => {
    const a = train(trainRows, { seed: 11, epochs: 4 });
    const b = train(trainRows, { seed: 11, epochs: 4 });
    assert.deepEqual(a.data.vocabulary, b.data.vocabulary);
    assert.deepEqual(Buffer.from(a.data.weights.buffer), Buffer.from(b.data.weights.buffer));
    assert.deepEqual(Buffer.from(a.data.bias.buffer), Buffer.from(b.data.bias.buffer));
    const c = train(trainRows, { seed: 12, epochs: 4 });
    assert.notDeepEqual(Buffer.from(a.data.weights.buffer), Buffer.from(c.data.weights.buffer), 'the seed matters');
  });

  it('the exported ONNX graph (raw text in) gives the same predictions as the in-memory model', async () => {
    const built = buildModel({ name: 'agree', version: 't', examples, dataSha256: sha256, epochs: 6, seed: 3 });
    assert.ok(built.evaluation!.accuracy > 0.6, `held-out accuracy ${built.evaluation!.accuracy}`);
    const session = await ort.InferenceSession.create(exportOnnx(built.model, { name: 'agree', version: 't' }));
    const texts = [
      ...built.heldOut.map((r) => r.text),
      '',
      '   ',
      '?!',
      'WHERE IS MY ORDER???',
      '我的订单ORDER-123到哪了？',
      'İstanbul école Ünïcode',
      'emoji 😀 退款 please',
    ];
    let disagreements = 0;
    for (const text of texts) {
      const out = await session.run({ text: new ort.Tensor('string', [text], [1]) });
      const onnx = out.probabilities!.data as Float32Array;
      const mem = built.model.probabilities(text);
      assert.equal(onnx.length, built.model.labels.length);
      if (argmax(onnx) !== argmax(mem)) disagreements++;
      for (let i = 0; i < onnx.length; i++) assert.ok(Math.abs(onnx[i]! - mem[i]!) < 1e-4, `"${text}" label ${i}: ${onnx[i]} vs ${mem[i]}`);
    }
    assert.equal(disagreements, 0);
    await session.release();
  });

  it('the shipped support model loads, validates its samples and answers both languages', async () => {
    const bundle = await ModelBundle.load(await readModelFolder('models/support'));
    assert.equal(bundle.manifest.input.kind, 'text');
    assert.deepEqual(bundle.manifest.languages.sort(), ['en', 'zh']);
    const zh = await bundle.predict('我要转人工');
    assert.equal(zh.label, 'human_agent');
    const en = await bundle.predict('how much is shipping to canada');
    assert.equal(en.label, 'shipping_fee');
    assert.equal(en.top.length, 3);
    assert.match(en.modelVersion, /^support@/);
    bundle.retire();
  });
});
