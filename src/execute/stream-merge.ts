// Row strategies without ORDER BY: rows stream through as they arrive (the original frame, no copy); or, for a
// multi-row INSERT split by shard, its RETURNING rows go out in the order of the original VALUES rows
// (`MergeSpec.rowShards`), each shard's waiting in a queue until its turn.
import { Buffer } from 'node:buffer';
import { RowMerge } from './row-merge.js';
import type { RowOutput } from './row-output.js';
import { RowQueue } from './row-queue.js';

/** Rows in arrival order; OFFSET/LIMIT over the combined stream. */
export class StreamMerge extends RowMerge {
  constructor(private readonly output: RowOutput) {
    super();
  }

  onRow(_shard: number, frame: Buffer): void {
    this.output.offer(frame);
  }
}

/** Split INSERT … RETURNING: rows in the order of the original VALUES rows (`order[i]`: the shard of row i). */
export class ValuesOrderMerge extends RowMerge {
  private readonly queues: RowQueue[];
  /** Next row of `order` to emit. */
  private next = 0;

  constructor(
    shardCount: number,
    private readonly order: readonly number[],
    private readonly output: RowOutput,
  ) {
    super();
    this.queues = Array.from({ length: shardCount }, () => new RowQueue());
  }

  onRow(shard: number, frame: Buffer): void {
    this.queues[shard].enqueue({ frame: Buffer.from(frame), keys: [] });
    while (this.next < this.order.length) {
      const queue = this.queues[this.order[this.next]];
      if (queue === undefined || queue.queued === 0) return;
      this.output.offer(queue.dequeue().frame);
      this.next++;
    }
  }

  override drop(): void {
    for (const queue of this.queues) queue.clear();
  }

  override isQueueFull(shard: number): boolean {
    return this.queues[shard].isFull;
  }

  override isQueueDrained(shard: number): boolean {
    return this.queues[shard].isDrained;
  }
}
