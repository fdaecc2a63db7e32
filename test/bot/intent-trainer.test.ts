import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildModel, crossValidate, formatManifest } from '../../bot/intent/build.js';
import { ModelBundle, ModelValidationError, readModelFolder } from '../../bot/intent/bundle.js';
import { parseCsv, parseExamples, readExamples } from '../../bot/intent/data.js';
import { extractNgrams } from '../../bot/intent/features.js';
import { argmax } from '../../bot/intent/linear-model.js';
import { exportOnnx } from '../../bot/intent/onnx/export.js';
import { encodeModel } from '../../bot/intent/onnx/proto.js';
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

  it('trains on texts NFKC-normalised, as the gateway serves them (full-width Latin and digits as ASCII)', () => {
    assert.deepEqual(parseExamples('text,label\nＲＥＦＵＮＤ order １２３,return_refund\n', 'csv'), [{ text: 'REFUND order 123', label: 'return_refund' }]);
    assert.deepEqual(parseExamples('{"text":"退货？ｐｌｅａｓｅ","label":"return_refund"}\n', 'jsonl'), [{ text: '退货?please', label: 'return_refund' }]);
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

  /**
   * Every held-out text and the edge cases: same probabilities (to float32 precision), same predicted label — one
   * text per run, and all of them in batches, where short texts are padded to the longest of their batch.
   */
  async function assertAgreement(built: ReturnType<typeof buildModel>) {
    const session = await ort.InferenceSession.create(exportOnnx(built.model, { name: 'agree', version: 't' }));
    assert.deepEqual(session.inputMetadata[0]!.isTensor && session.inputMetadata[0]!.shape, ['batch'], 'the batch size is left open');
    const texts = [...built.heldOut.map((r) => r.text), ...agreementTexts];
    const C = built.model.labels.length;
    const check = (text: string, onnx: ArrayLike<number>) => {
      const mem = built.model.probabilities(text);
      assert.equal(onnx.length, C);
      for (let i = 0; i < C; i++) assert.ok(Math.abs(onnx[i]! - mem[i]!) < 1e-4, `"${text}" label ${i}: ${onnx[i]} vs ${mem[i]}`);
      return argmax(onnx) === argmax(mem);
    };
    let disagreements = 0;
    for (const text of texts) {
      const out = await session.run({ text: new ort.Tensor('string', [text], [1]) });
      if (!check(text, out.probabilities!.data as Float32Array)) disagreements++;
    }
    // Batches that mix long, short, empty and Chinese texts (the edge cases sit at the end of the list).
    for (const size of [2, 7, 32]) {
      for (let start = Math.max(0, texts.length - 3 * size); start < texts.length; start += size) {
        const batch = texts.slice(start, start + size);
        const out = await session.run({ text: new ort.Tensor('string', batch, [batch.length]) });
        const probs = out.probabilities!.data as Float32Array;
        assert.deepEqual(out.probabilities!.dims, [batch.length, C]);
        batch.forEach((text, row) => check(text, probs.subarray(row * C, (row + 1) * C)) || disagreements++);
      }
    }
    assert.equal(disagreements, 0);
    await session.release();
  }

  /**
   * The model as the gateway serves it (input kind `ngrams`: texts vectorised in process, the graph takes their
   * cells): the same probabilities as the in-memory model for every held-out text and edge case, alone and in runs
   * shared by several texts.
   */
  async function assertServedAgreement(built: ReturnType<typeof buildModel>) {
    assert.equal(built.manifest.input.kind, 'ngrams');
    const bundle = await ModelBundle.load({ onnx: built.onnx, manifest: Buffer.from(formatManifest(built.manifest)) }, { predictionCache: 0 });
    assert.equal(bundle.batched, true);
    const texts = [...built.heldOut.map((r) => r.text), ...agreementTexts];
    const check = (text: string, p: Awaited<ReturnType<typeof bundle.predict>>) => {
      const mem = built.model.probabilities(text);
      assert.equal(p.label, built.model.labels[argmax(mem)], text);
      for (const { label, score } of p.top) assert.ok(Math.abs(score - mem[built.model.labels.indexOf(label)]!) < 1e-4, `"${text}" ${label}: ${score}`);
    };
    for (const text of texts.slice(-40)) check(text, await bundle.predict(text));
    const before = bundle.inference();
    for (let start = 0; start < texts.length; start += 32) {
      const batch = texts.slice(start, start + 32);
      (await Promise.all(batch.map((t) => bundle.predict(t)))).forEach((p, i) => check(batch[i]!, p));
    }
    assert.equal(bundle.inference().runs - before.runs, Math.ceil(texts.length / 32), 'one run per 32 texts');
    bundle.retire();
  }

  it('the exported ONNX graph (raw text in) gives the same predictions as the in-memory linear model', async () => {
    const built = buildModel({ name: 'agree', version: 't', examples, dataSha256: sha256, classifier: 'linear', epochs: 6, seed: 3, input: 'text' });
    assert.equal(built.model.kind, 'linear');
    assert.deepEqual(built.manifest.input, { kind: 'text', name: 'text', output: 'probabilities' });
    const bundle = await ModelBundle.load({ onnx: built.onnx, manifest: Buffer.from(formatManifest(built.manifest)) });
    assert.equal((await bundle.predict('where is my order')).label, built.model.labels[argmax(built.model.probabilities('where is my order'))]);
    bundle.retire();
    assert.ok(built.evaluation!.accuracy > 0.6, `held-out accuracy ${built.evaluation!.accuracy}`);
    await assertAgreement(built);
  });

  it('the exported ONNX graph of the hidden-layer network (Gather → ScatterND → Relu → MatMul) agrees with it too', async () => {
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
    await assertServedAgreement(built);
  });

  it('a model trained without word-boundary n-grams (older feature settings) still exports an agreeing graph', async () => {
    const features = { wordNgrams: [1, 2] as [number, number], charNgrams: [2, 5] as [number, number], cjkCharNgrams: [1, 2] as [number, number], minDf: 2 };
    const built = buildModel({ name: 'agree', version: 't', examples, dataSha256: sha256, classifier: 'linear', epochs: 3, seed: 3, features });
    assert.ok(!built.model.data.vocabulary.some((k) => k.startsWith('b')));
    await assertAgreement(built);
    await assertServedAgreement(built);
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
    assert.equal(bundle.manifest.input.kind, 'ngrams');
    assert.deepEqual(bundle.manifest.languages.sort(), ['en', 'zh']);
    const zh = await bundle.predict('我要转人工');
    assert.equal(zh.label, 'human_agent');
    const en = await bundle.predict('how much is shipping to canada');
    assert.equal(en.label, 'shipping_fee');
    assert.equal(en.top.length, 3);
    assert.match(en.modelVersion, /^support@/);
    // Full-width Latin and digits are read as ASCII (NFKC), whoever calls predict().
    const fullWidth = await bundle.predict('ＲＥＦＵＮＤ ＭＹ ＯＲＤＥＲ');
    const ascii = await bundle.predict('REFUND MY ORDER');
    assert.equal(fullWidth.label, ascii.label);
    assert.equal(fullWidth.confidence, ascii.confidence);
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

  it('lets predictions asked for together share one onnxruntime run, each answered as if alone', async () => {
    const files = await readModelFolder('models/support');
    const bundle = await ModelBundle.load(files, { predictionCache: 0 });
    assert.equal(bundle.batched, true, 'the shipped graph leaves its batch size open');
    const texts = ['where is my order', '我要退货', 'hi', '', 'can I pay with a card? 发票呢', 'thanks a lot', 'human please', 'order SO12345678 where'];
    const alone: Awaited<ReturnType<typeof bundle.predict>>[] = [];
    for (const text of texts) alone.push(await bundle.predict(text));
    const before = bundle.inference();
    const together = await Promise.all(texts.map((text) => bundle.predict(text)));
    const after = bundle.inference();
    assert.deepEqual({ runs: after.runs - before.runs, texts: after.texts - before.texts }, { runs: 1, texts: texts.length });
    together.forEach((p, i) => {
      assert.equal(p.label, alone[i]!.label, texts[i]);
      assert.ok(Math.abs(p.confidence - alone[i]!.confidence) < 1e-5, `${texts[i]}: ${p.confidence} vs ${alone[i]!.confidence}`);
    });
    bundle.retire();
  });

  it('runs a graph with a fixed one-text input once per message', async () => {
    // A hand-built graph with input [1]: "no" for the text "no", "yes" for any other.
    const onnx = encodeModel({
      graphName: 'fixed',
      producer: { name: 'test', version: '1' },
      docString: 'fixed batch of one',
      opsets: { '': 19 },
      inputs: [{ name: 'text', type: 'string', shape: [1] }],
      outputs: [{ name: 'probabilities', type: 'float', shape: [1, 2] }],
      initializers: [
        { name: 'no', type: 'string', dims: [1], data: ['no'] },
        { name: 'shape', type: 'int64', dims: [2], data: [1, 1] },
        { name: 'weights', type: 'float', dims: [1, 2], data: [-4, 4] },
        { name: 'bias', type: 'float', dims: [1, 2], data: [2, 0] },
      ],
      nodes: [
        { op: 'Equal', inputs: ['text', 'no'], outputs: ['is_no'] },
        { op: 'Cast', inputs: ['is_no'], outputs: ['is_no_float'], attrs: { to: { i: 1 } } },
        { op: 'Reshape', inputs: ['is_no_float', 'shape'], outputs: ['column'] },
        { op: 'MatMul', inputs: ['column', 'weights'], outputs: ['weighted'] },
        { op: 'Add', inputs: ['weighted', 'bias'], outputs: ['scores'] },
        { op: 'Softmax', inputs: ['scores'], outputs: ['probabilities'], attrs: { axis: { i: -1 } } },
      ],
      metadata: {},
    });
    const manifest = {
      name: 'fixed',
      version: '1',
      labels: ['yes', 'no'],
      input: { kind: 'text' },
      thresholds: { confidence: 0.5, outOfScope: 0.2, ambiguityMargin: 0.1 },
      languages: ['en'],
      training: { dataSha256: 'none' },
      samples: [
        { text: 'anything', label: 'yes' },
        { text: 'no', label: 'no' },
      ],
    };
    const bundle = await ModelBundle.load({ onnx, manifest: Buffer.from(JSON.stringify(manifest)) }, { predictionCache: 0 });
    assert.equal(bundle.batched, false);
    const before = bundle.inference().runs;
    const answers = await Promise.all(['a', 'b', 'c'].map((text) => bundle.predict(text)));
    assert.deepEqual(answers.map((a) => a.label), ['yes', 'yes', 'yes']);
    assert.equal(bundle.inference().runs - before, 3);
    bundle.retire();
  });
});

describe('intent model validation refuses a model that would misbehave once live', () => {
  const rejection = async (files: { onnx: Uint8Array; manifest: unknown }): Promise<ModelValidationError> => {
    try {
      (await ModelBundle.load({ onnx: files.onnx, manifest: Buffer.from(JSON.stringify(files.manifest)) })).retire();
    } catch (err) {
      assert.ok(err instanceof ModelValidationError, String(err));
      return err;
    }
    assert.fail('the model was accepted');
  };
  const shipped = () => readModelFolder('models/support');
  const shippedManifest = async () => JSON.parse(Buffer.from((await shipped()).manifest).toString('utf8'));

  it('a graph that outputs raw scores instead of probabilities', async () => {
    // Like an SVM decision function: the same scores for every text, not summing to one.
    const onnx = encodeModel({
      graphName: 'scores',
      producer: { name: 'test', version: '1' },
      opsets: { '': 18 },
      inputs: [
        { name: 'cell_rows', type: 'int64', shape: ['cells'] },
        { name: 'cell_cols', type: 'int64', shape: ['cells'] },
        { name: 'cell_values', type: 'float', shape: ['cells'] },
        { name: 'text_count', type: 'int64', shape: [1] },
      ],
      outputs: [{ name: 'probabilities', type: 'float', shape: ['batch', 3] }],
      initializers: [
        { name: 'logits', type: 'float', dims: [1, 3], data: [4.0, 1.0, -2.0] },
        { name: 'k', type: 'int64', dims: [1], data: [3] },
      ],
      nodes: [
        { op: 'Concat', inputs: ['text_count', 'k'], outputs: ['shape'], attrs: { axis: { i: 0 } } },
        { op: 'Expand', inputs: ['logits', 'shape'], outputs: ['probabilities'] },
      ],
    });
    const manifest = {
      name: 'scores',
      version: '1',
      labels: ['order_status', 'thanks', 'complaint'],
      input: { kind: 'ngrams', features: { wordNgrams: [1, 1], charNgrams: [0, 0], cjkCharNgrams: [1, 2], minDf: 1 }, vocabulary: ['w\u0001order'], idf: [1] },
      thresholds: { confidence: 0.5, outOfScope: 0.25, ambiguityMargin: 0.1 },
      languages: ['en'],
      training: { dataSha256: 'x' },
      samples: [
        { text: 'where is my order', label: 'order_status' },
        { text: 'thank you', label: 'thanks' },
        { text: 'this is bad', label: 'complaint' },
      ],
    };
    const err = await rejection({ onnx, manifest });
    assert.equal(err.code, 'not_probabilities');
    assert.match(err.message, /score 4 at position 0 is outside \[0, 1\]/);
  });

  it('a manifest without a sample for every label (labels out of order would go unnoticed)', async () => {
    const manifest = await shippedManifest();
    const [thanks, goodbye] = [manifest.labels.indexOf('thanks'), manifest.labels.indexOf('goodbye')];
    [manifest.labels[thanks], manifest.labels[goodbye]] = [manifest.labels[goodbye], manifest.labels[thanks]];
    manifest.samples = manifest.samples.filter((s: { label: string }) => s.label !== 'thanks' && s.label !== 'goodbye');
    const err = await rejection({ onnx: (await shipped()).onnx, manifest });
    assert.equal(err.code, 'manifest_invalid');
    assert.match(err.message, /no sample for label\(s\) (thanks, goodbye|goodbye, thanks)/);
  });

  it('an n-gram vocabulary larger than the graph', async () => {
    const manifest = await shippedManifest();
    manifest.input.vocabulary.push('w\u0001warranty', 'w\u0001zzz');
    manifest.input.idf.push(5, 5);
    const err = await rejection({ onnx: (await shipped()).onnx, manifest });
    assert.equal(err.code, 'vocabulary_mismatch');
    assert.match(err.message, /last of the \d+ vocabulary n-grams/);
  });
});
