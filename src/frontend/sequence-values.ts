// Values from the sequences of record — shard 0's copy of a sharded table's sequence — handed out for the columns the
// proxy fills itself (generated-values.ts): taken in blocks (one round trip per block, not per row) and given out in
// order, one fetch at a time per sequence however many sessions ask at once. Shared by every session of a database;
// the fetch itself runs on a server of the asking session. Values of a block not handed out when the proxy stops are
// skipped, as a sequence's own cache skips them.

/** Values taken from a sequence at once, at least. */
export const SEQUENCE_BLOCK_SIZE = 32;

export type SequenceFetch = (sequence: string, count: number) => Promise<string[]>;

export class SequenceValues {
  private readonly ready = new Map<string, string[]>();
  private readonly fetching = new Map<string, Promise<void>>();

  constructor(private readonly blockSize = SEQUENCE_BLOCK_SIZE) {}

  /** `count` values of `sequence`, in the order it gave them; `fetch` takes more from it when too few are left. */
  async take(sequence: string, count: number, fetch: SequenceFetch): Promise<string[]> {
    for (;;) {
      const ready = this.ready.get(sequence) ?? [];
      if (ready.length >= count) return ready.splice(0, count);
      const running = this.fetching.get(sequence);
      if (running !== undefined) {
        // Another session is taking a block: wait for it (its failure is its own), then look again.
        await running.catch(() => undefined);
        continue;
      }
      const need = Math.max(count - ready.length, this.blockSize);
      const run = fetch(sequence, need).then((values) => {
        const queue = this.ready.get(sequence) ?? [];
        queue.push(...values);
        this.ready.set(sequence, queue);
      });
      this.fetching.set(sequence, run);
      try {
        await run;
      } finally {
        this.fetching.delete(sequence);
      }
    }
  }

  /** Forget values taken but not handed out (the sequence may have been replaced: DDL). */
  clear(): void {
    this.ready.clear();
  }
}
