import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { defaultDatasets, loadCorpus } from '../bench/lib/corpus.js';

describe('benchmark corpus', () => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'gw-corpus-')));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('a worktree elsewhere reads the datasets beside its main checkout, so both arms of an A/B run measure the same texts', () => {
    const git = (cwd: string, ...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd, stdio: 'ignore' });
    const checkout = join(root, 'checkout');
    mkdirSync(checkout);
    git(checkout, 'init', '-q');
    git(checkout, 'commit', '-q', '--allow-empty', '-m', 'first');
    git(checkout, 'worktree', 'add', '-q', join(root, 'elsewhere', 'arm'));
    const banking = join(root, 'shared', 'datasets', 'banking77');
    mkdirSync(banking, { recursive: true });
    writeFileSync(join(banking, 'train.csv'), 'text,category\nwhere is my card,card_arrival\n"my card, it is late",card_arrival\n');

    const saved = process.env.DATASETS_DIR;
    delete process.env.DATASETS_DIR;
    try {
      for (const cwd of [checkout, join(root, 'elsewhere', 'arm')]) {
        assert.equal(defaultDatasets(cwd), join(root, 'shared', 'datasets'));
        const corpus = loadCorpus(defaultDatasets(cwd));
        // The project's own intent data comes from the current directory (this checkout), after the datasets.
        assert.deepEqual(corpus.sources, ['banking77', 'data/intents/support']);
        assert.deepEqual(corpus.texts.slice(0, 2), ['where is my card', 'my card, it is late']);
      }
    } finally {
      if (saved !== undefined) process.env.DATASETS_DIR = saved;
    }
  });
});
