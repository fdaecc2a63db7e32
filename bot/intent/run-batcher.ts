/**
 * Texts that ask the model for probabilities during the same turn of the event loop share one run. A worker handles
 * the conversations of a queue job (and of several shards) concurrently, so their messages reach the model together;
 * one run for all of them pays the per-run cost of onnxruntime (N-API call, tensor conversion, kernel dispatch) once.
 * The run starts in the check phase (setImmediate): after the I/O callbacks of this turn have added their texts, and
 * without waiting for anything else.
 */
export type RunBatch = (texts: string[]) => Promise<Float32Array[]>;

interface Waiting {
  text: string;
  resolve: (probabilities: Float32Array) => void;
  reject: (err: Error) => void;
}

export class RunBatcher {
  private waiting: Waiting[] = [];
  private scheduled = false;

  /** `run` answers a batch with one probability row per text; `maxBatch` bounds one run. */
  constructor(
    private readonly run: RunBatch,
    private readonly maxBatch: number,
  ) {}

  probabilities(text: string): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ text, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.waiting;
    this.waiting = [];
    for (let i = 0; i < all.length; i += this.maxBatch) void this.runBatch(all.slice(i, i + this.maxBatch));
  }

  private async runBatch(batch: Waiting[]): Promise<void> {
    try {
      const rows = await this.run(batch.map((w) => w.text));
      batch.forEach((w, k) => w.resolve(rows[k]!));
    } catch (err) {
      // One text the model cannot take must not fail the others that happened to share its run: each runs alone.
      if (batch.length === 1) return batch[0]!.reject(err as Error);
      await Promise.all(batch.map((w) => this.runBatch([w])));
    }
  }
}
