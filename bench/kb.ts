/**
 * KB retrieval latency on 10,000 entries (target ≤ 1 ms per query): builds a synthetic bilingual FAQ set from
 * combinatorial product/topic phrasings, indexes it exactly as every gateway process does (KbIndex), and times
 * queries that are paraphrases of existing entries and off-topic ones. Writes bench/results/kb.json.
 *
 *   npm run bench:kb [-- --entries 10000 --queries 5000]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FaqEntry } from '../bot/kb/entry.js';
import { KbIndex } from '../bot/kb/knowledge-base.js';

const { values } = parseArgs({ options: { entries: { type: 'string', default: '10000' }, queries: { type: 'string', default: '5000' } } });
const ENTRIES = Number(values.entries);
const QUERIES = Number(values.queries);

// A deterministic generator (mulberry32) so every run measures the same corpus.
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(42);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

const productsEn = ['jacket', 'phone case', 'laptop bag', 'running shoes', 'coffee maker', 'desk lamp', 'backpack', 'headphones', 'water bottle', 'yoga mat', 'blender', 'monitor', 'keyboard', 'sofa', 'rice cooker', 'tent', 'scarf', 'watch', 'camera', 'kettle'];
const topicsEn = ['How do I wash the {p}?', 'What is the warranty on the {p}?', 'Can I return the {p} after {n} days?', 'What size is the {p} model {n}?', 'Is the {p} in stock in colour {n}?', 'How do I assemble the {p}?', 'Does the {p} ship to region {n}?', 'What material is the {p} made of?'];
const productsZh = ['外套', '手机壳', '电脑包', '跑鞋', '咖啡机', '台灯', '双肩包', '耳机', '水杯', '瑜伽垫', '破壁机', '显示器', '键盘', '沙发', '电饭煲', '帐篷', '围巾', '手表', '相机', '水壶'];
const topicsZh = ['{p}怎么清洗？', '{p}保修多久？', '{p}买了{n}天还能退吗？', '{p}型号{n}是多大尺码？', '{p}颜色{n}有货吗？', '{p}怎么安装？', '{p}能寄到{n}区吗？', '{p}是什么材质的？'];

const fill = (t: string, p: string, n: number) => t.replace('{p}', p).replace('{n}', String(n));
const entries: FaqEntry[] = [];
const queries: string[] = [];
for (let i = 0; i < ENTRIES; i++) {
  const zh = i % 2 === 1;
  const p = pick(zh ? productsZh : productsEn);
  const n = Math.floor(random() * 500);
  const topics = zh ? topicsZh : topicsEn;
  const t = Math.floor(random() * topics.length);
  entries.push(
    FaqEntry.parse({
      id: `faq-${i}`,
      question: fill(topics[t]!, p, n),
      paraphrases: [fill(topics[(t + 1) % topics.length]!, p, n + 1)],
      answer: `Answer ${i}`,
    }),
  );
}
for (let i = 0; i < QUERIES; i++) {
  if (i % 5 === 4) queries.push(pick(['what is the weather like today', '今天天气怎么样', 'tell me a joke', '推荐一家餐厅']));
  else {
    const zh = i % 2 === 1;
    queries.push(fill(pick(zh ? topicsZh : topicsEn), pick(zh ? productsZh : productsEn), Math.floor(random() * 500)));
  }
}

const buildStart = performance.now();
const index = KbIndex.of(entries);
const buildMs = performance.now() - buildStart;

for (const q of queries.slice(0, 500)) index.search(q, 'web'); // warm-up (JIT)
const samples: number[] = [];
for (const q of queries) {
  const t0 = performance.now();
  index.search(q, 'web');
  samples.push(performance.now() - t0);
}
samples.sort((a, b) => a - b);
const pct = (p: number) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!;
const mean = samples.reduce((s, x) => s + x, 0) / samples.length;

const result = {
  benchmark: 'kb-retrieval',
  at: new Date().toISOString(),
  node: process.version,
  entries: ENTRIES,
  phrasings: ENTRIES * 2,
  queries: QUERIES,
  buildMs: Math.round(buildMs),
  latencyMs: { mean: +mean.toFixed(4), p50: +pct(50).toFixed(4), p95: +pct(95).toFixed(4), p99: +pct(99).toFixed(4), max: +samples.at(-1)!.toFixed(4) },
  targetMs: 1,
  meetsTarget: mean <= 1,
};
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/kb.json', JSON.stringify(result, null, 2) + '\n');
console.log(JSON.stringify(result, null, 2));
