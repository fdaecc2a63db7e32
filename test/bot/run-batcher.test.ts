import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RunBatcher } from '../../bot/intent/run-batcher.js';

/** A stand-in for an onnxruntime run: one row [length] per text; refuses any batch holding "bad". */
function fakeModel() {
  const runs: string[][] = [];
  const run = async (texts: string[]) => {
    runs.push(texts);
    if (texts.includes('bad')) throw new Error('the graph refused the input');
    return texts.map((t) => Float32Array.of(t.length));
  };
  return { runs, run };
}

describe('intent run batcher', () => {
  it('answers the texts asked for in one event-loop turn with one run, at most maxBatch texts per run', async () => {
    const model = fakeModel();
    const batcher = new RunBatcher(model.run, 3);
    const rows = await Promise.all(['a', 'bb', 'ccc', 'dddd', 'eeeee'].map((t) => batcher.probabilities(t)));
    assert.deepEqual(rows.map((r) => r[0]), [1, 2, 3, 4, 5]);
    assert.deepEqual(model.runs, [['a', 'bb', 'ccc'], ['dddd', 'eeeee']]);
    await batcher.probabilities('later');
    assert.deepEqual(model.runs.at(-1), ['later'], 'a text asked for in a later turn gets a run of its own');
  });

  it('fails only the text the model cannot take, not the others that shared its run', async () => {
    const model = fakeModel();
    const batcher = new RunBatcher(model.run, 32);
    const results = await Promise.allSettled(['fine', 'bad', 'also fine'].map((t) => batcher.probabilities(t)));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.equal((results[1] as PromiseRejectedResult).reason.message, 'the graph refused the input');
    assert.deepEqual(model.runs, [['fine', 'bad', 'also fine'], ['fine'], ['bad'], ['also fine']]);
  });
});
