import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildModel, crossValidate } from '../../bot/intent/build.js';
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

  const agreementTexts = [
    '',
    '   ',
    '?!',
    'WHERE IS MY ORDER???',
    '我的订单ORDER-123到哪了？',
    'İstanbul école Ünïcode',
    'emoji 😀 退款 please',
    'a b c',
    'order#12345, pls!!',
  ];

  /** Every held-out text and the edge cases: same probabilities (to float32 precision), same predicted label. */
  async function assertAgreement(built: ReturnType<typeof buildModel>) {
    const session = await ort.InferenceSession.create(exportOnnx(built.model, { name: 'agree', version: 't' }));
    let disagreements = 0;
    for (const text of [...built.heldOut.map((r) => r.text), ...agreementTexts]) {
      const out = await session.run({ text: new ort.Tensor('string', [text], [1]) });
      const onnx = out.probabilities!.data as Float32Array;
      const mem = built.model.probabilities(text);
      assert.equal(onnx.length, built.model.labels.length);
      if (argmax(onnx) !== argmax(mem)) disagreements++;
      for (let i = 0; i < onnx.length; i++) assert.ok(Math.abs(onnx[i]! - mem[i]!) < 1e-4, `"${text}" label ${i}: ${onnx[i]} vs ${mem[i]}`);
    }
    assert.equal(disagreements, 0);
    await session.release();
  }

  it('the exported ONNX graph (raw text in) gives the same predictions as the in-memory linear model', async () => {
    const built = buildModel({ name: 'agree', version: 't', examples, dataSha256: sha256, classifier: 'linear', epochs: 6, seed: 3 });
    assert.equal(built.model.kind, 'linear');
    assert.ok(built.evaluation!.accuracy > 0.6, `held-out accuracy ${built.evaluation!.accuracy}`);
    await assertAgreement(built);
  });

  it('the exported ONNX graph of the hidden-layer network (Gather → MatMul → Relu → MatMul) agrees with it too', async () => {
    const built = buildModel({ name: 'agree', version: 't', examples, dataSha256: sha256, classifier: 'mlp', mlp: { hidden: 24, epochs: 4 }, seed: 3 });
    assert.equal(built.model.kind, 'mlp');
    assert.ok(built.evaluation!.accuracy > 0.6, `held-out accuracy ${built.evaluation!.accuracy}`);
    await assertAgreement(built);
  });

  it('the exported ensemble (both heads on one feature vector, probabilities averaged) agrees with it too', async () => {
    const built = buildModel({ name: 'agree', version: 't', examples, dataSha256: sha256, classifier: 'ensemble', epochs: 4, mlp: { hidden: 16, epochs: 3, weight: 0.4 }, seed: 3 });
    assert.equal(built.model.kind, 'ensemble');
    assert.ok(built.evaluation!.accuracy > 0.6, `held-out accuracy ${built.evaluation!.accuracy}`);
    await assertAgreement(built);
  });

  it('a model trained without word-boundary n-grams (older feature settings) still exports an agreeing graph', async () => {
    const features = { wordNgrams: [1, 2] as [number, number], charNgrams: [2, 5] as [number, number], cjkCharNgrams: [1, 2] as [number, number], minDf: 2 };
    const built = buildModel({ name: 'agree', version: 't', examples, dataSha256: sha256, classifier: 'linear', epochs: 3, seed: 3, features });
    assert.ok(!built.model.data.vocabulary.some((k) => k.startsWith('b')));
    await assertAgreement(built);
  });

  it('the hidden-layer network is deterministic too', () => {
    const a = buildModel({ name: 'd', version: 't', examples: trainRows, dataSha256: sha256, classifier: 'mlp', mlp: { hidden: 8, epochs: 2 }, seed: 5, holdout: 0 });
    const b = buildModel({ name: 'd', version: 't', examples: trainRows, dataSha256: sha256, classifier: 'mlp', mlp: { hidden: 8, epochs: 2 }, seed: 5, holdout: 0 });
    assert.equal(a.model.kind, 'mlp');
    assert.equal(b.model.kind, 'mlp');
    if (a.model.kind !== 'mlp' || b.model.kind !== 'mlp') return;
    assert.deepEqual(Buffer.from(a.model.data.w1.buffer), Buffer.from(b.model.data.w1.buffer));
    assert.deepEqual(Buffer.from(a.model.data.w2.buffer), Buffer.from(b.model.data.w2.buffer));
    assert.ok(Buffer.from(a.onnx).equals(Buffer.from(b.onnx)), 'identical model.onnx bytes');
  });

  it('cross-validates: every row held out once, one accuracy per fold, the same figures for the same seed', () => {
    const subset = examples.filter((e) => ['greeting', 'invoice', 'human_agent', 'thanks'].includes(e.label));
    const a = crossValidate(subset, 3, { classifier: 'linear', epochs: 3, seed: 9 });
    const b = crossValidate(subset, 3, { classifier: 'linear', epochs: 3, seed: 9 });
    assert.equal(a.perFold.length, 3);
    assert.equal(a.foldSizes.reduce((x, y) => x + y, 0), subset.length);
    assert.ok(Math.max(...a.foldSizes) - Math.min(...a.foldSizes) <= 4, `stratified folds of near-equal size: ${a.foldSizes}`);
    assert.ok(a.accuracy > 0.6 && a.accuracy <= 1, `accuracy ${a.accuracy}`);
    assert.deepEqual(a, b);
    assert.throws(() => crossValidate(subset, 1, {}), /at least 2 folds/);
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

  it('answers a text seen before from a bounded prediction cache; a newly loaded bundle starts empty', async () => {
    const files = await readModelFolder('models/support');
    const bundle = await ModelBundle.load(files, { predictionCache: 2 });
    const first = await bundle.predict('how much is shipping to canada');
    assert.deepEqual(await bundle.predict('how much is shipping to canada'), first);
    assert.deepEqual(bundle.predictionCache(), { hits: 1, misses: 1, size: 1 });
    await bundle.predict('我要转人工');
    await bundle.predict('where is my order');
    assert.equal(bundle.predictionCache().size, 2, 'the least recently used text was dropped');
    await bundle.predict('how much is shipping to canada');
    assert.deepEqual(bundle.predictionCache(), { hits: 1, misses: 4, size: 2 });
    const swapped = await ModelBundle.load(files);
    await swapped.predict('how much is shipping to canada');
    assert.deepEqual(swapped.predictionCache(), { hits: 0, misses: 1, size: 1 });
    const uncached = await ModelBundle.load(files, { predictionCache: 0 });
    await uncached.predict('hi');
    await uncached.predict('hi');
    assert.deepEqual(uncached.predictionCache(), { hits: 0, misses: 2, size: 0 });
    for (const b of [bundle, swapped, uncached]) b.retire();
  });
});
