/** The trie vectoriser gives exactly what counting every candidate n-gram and looking each up would give. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readExamples } from '../../bot/intent/data.js';
import { DEFAULT_FEATURES, extractNgrams, type FeatureSettings } from '../../bot/intent/features.js';
import { buildVocabulary } from '../../bot/intent/trainer.js';
import { NgramVectorizer, type SparseVector } from '../../bot/intent/vectorizer.js';

const { examples } = readExamples('data/intents/support/utterances.csv');

/** The definition: every candidate n-gram of features.ts counted, looked up by key, log-TF·IDF, L2 norm. */
function reference(text: string, index: Map<string, number>, idf: Float32Array, features: FeatureSettings): SparseVector {
  const cells: [number, number][] = [];
  for (const [key, tf] of extractNgrams(text, features)) {
    const j = index.get(key);
    if (j !== undefined) cells.push([j, Math.log(1 + tf) * idf[j]!]);
  }
  cells.sort((a, b) => a[0] - b[0]);
  const norm = Math.sqrt(cells.reduce((sum, [, v]) => sum + v * v, 0));
  return { indices: Int32Array.from(cells, ([j]) => j), values: Float32Array.from(cells, ([, v]) => (norm > 0 ? v / norm : 0)) };
}

const edgeTexts = [
  '',
  '   ',
  '!!!',
  'WHERE IS MY ORDER???',
  'where is my order where is my order', // repeated n-grams: counts above one
  '我的订单ORDER-123到哪了？',
  '订单 订单 订单',
  'İstanbul école Ünïcode ΣΊΣΥΦΟΣ', // lower case per code point, not per string
  'emoji 😀 退款 please 𠀀𠀁', // code points outside the BMP
  'ｆｕｌｌ　ｗｉｄｔｈ ＡＢＣ １２３',
  'カタカナ ひらがな 한국어',
  'a b c',
  'order#12345, pls!!',
];

function assertSame(vectorizer: NgramVectorizer, texts: string[], vocabulary: string[], idf: Float32Array, features: FeatureSettings) {
  let nonEmpty = 0;
  const index = new Map(vocabulary.map((k, i) => [k, i]));
  // Every text first, compared after: a vector keeps its cells while later texts are vectorised (they share slabs).
  const vectors = texts.map((text) => vectorizer.vectorize(text));
  for (const [i, text] of texts.entries()) {
    const want = reference(text, index, idf, features);
    const got = vectors[i]!;
    assert.deepEqual([...got.indices], [...want.indices], `columns of ${JSON.stringify(text)}`);
    assert.deepEqual([...got.values], [...want.values], `values of ${JSON.stringify(text)}`);
    if (got.indices.length > 0) nonEmpty++;
  }
  return nonEmpty;
}

describe('intent vectoriser', () => {
  it('equals the candidate-by-candidate definition on the training texts and edge cases (default features)', () => {
    const texts = examples.map((e) => e.text);
    const features = { ...DEFAULT_FEATURES, minDf: 1 };
    const { vocabulary, idf } = buildVocabulary(texts, features);
    const vectorizer = new NgramVectorizer(vocabulary, idf, features);
    const nonEmpty = assertSame(vectorizer, [...texts, ...edgeTexts, ...texts.map((t) => t.toUpperCase())], vocabulary, idf, features);
    assert.ok(nonEmpty > texts.length, 'the texts do hit the vocabulary');
  });

  it('also with the running-text Latin stream and no word-boundary stream (older feature settings)', () => {
    const texts = examples.map((e) => e.text);
    const features: FeatureSettings = { wordNgrams: [1, 2], charNgrams: [2, 5], cjkCharNgrams: [1, 2], minDf: 2 };
    const { vocabulary, idf } = buildVocabulary(texts, features);
    assert.ok(vocabulary.some((k) => k.startsWith('c\u0001') && /^c\u0001[a-z]/.test(k)), 'Latin character n-grams are in it');
    const vectorizer = new NgramVectorizer(vocabulary, idf, features);
    assertSame(vectorizer, [...texts.slice(0, 600), ...edgeTexts], vocabulary, idf, features);
  });

  it('starts every text from zero counts (nothing carries over from the text before)', () => {
    const features = { ...DEFAULT_FEATURES, minDf: 1 };
    const { vocabulary, idf } = buildVocabulary(['where is my order', 'refund please'], features);
    const vectorizer = new NgramVectorizer(vocabulary, idf, features);
    const alone = vectorizer.vectorize('refund please');
    vectorizer.vectorize('where is my order where is my order');
    assert.deepEqual(vectorizer.vectorize('refund please'), alone);
    assert.equal(vectorizer.vectorize('jkjk').indices.length, 0);
  });
});
