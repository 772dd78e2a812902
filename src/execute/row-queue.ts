// One shard's rows waiting in a merge (the ORDER BY k-way merge; split INSERT … RETURNING in VALUES order): a FIFO
// that counts its frames' bytes, and the bounds past which the fan-out stops reading that shard (flow control).

/**
 * Flow control of the per-shard queues (ORDER BY merge; split INSERT … RETURNING in VALUES order): a queue holding
 * more than this many rows, or frame bytes, reports `isQueueFull` and its shard should not be read on until
 * `isQueueDrained` (half of both). Rows wait in a queue only while the merge waits for another shard's next row. One
 * 64 KiB read of narrow rows holds ~4,000 of them: a smaller row bound would pause and resume a shard on nearly every
 * read of a merge that is merely uneven. Held at most: ~4 MiB of frames plus ~150 bytes per row of objects, ×
 * shards, plus one read each past the bound.
 */
export const MERGE_QUEUE_MAX_ROWS = 10_000;
export const MERGE_QUEUE_MAX_BYTES = 4 * 1024 * 1024;

export interface QueuedRow {
  frame: Buffer;
  /** Values of the sort columns, in `orderBy` order (views into `frame`); null for SQL NULL. */
  keys: (Buffer | null)[];
}

export class RowQueue {
  /** The shard has ended the statement: no more rows come. */
  isEnded = false;
  /** Bytes of the frames queued (flow control). */
  queuedBytes = 0;
  private rows: (QueuedRow | undefined)[] = [];
  private head = 0;

  get queued(): number {
    return this.rows.length - this.head;
  }
  /** Over MERGE_QUEUE_MAX_ROWS rows or MERGE_QUEUE_MAX_BYTES bytes: stop reading the shard. */
  get isFull(): boolean {
    return this.queued > MERGE_QUEUE_MAX_ROWS || this.queuedBytes > MERGE_QUEUE_MAX_BYTES;
  }
  /** Back to half the bounds of `isFull` (or less): read the shard again. */
  get isDrained(): boolean {
    return this.queued <= MERGE_QUEUE_MAX_ROWS / 2 && this.queuedBytes <= MERGE_QUEUE_MAX_BYTES / 2;
  }
  peek(): QueuedRow {
    return this.rows[this.head] as QueuedRow;
  }
  last(): QueuedRow | undefined {
    return this.queued > 0 ? this.rows[this.rows.length - 1] : undefined;
  }
  forEachQueued(visit: (row: QueuedRow) => void): void {
    for (let i = this.head; i < this.rows.length; i++) visit(this.rows[i] as QueuedRow);
  }
  enqueue(row: QueuedRow): void {
    this.rows.push(row);
    this.queuedBytes += row.frame.length;
  }
  dequeue(): QueuedRow {
    const row = this.rows[this.head] as QueuedRow;
    this.rows[this.head++] = undefined;
    this.queuedBytes -= row.frame.length;
    if (this.head === this.rows.length) this.clear();
    else if (this.head >= 1024 && this.head * 2 >= this.rows.length) {
      this.rows = this.rows.slice(this.head);
      this.head = 0;
    }
    return row;
  }
  clear(): void {
    this.rows = [];
    this.head = 0;
    this.queuedBytes = 0;
  }
}
