// Row strategy for ORDER BY without grouping: a k-way merge of the shards' sorted rows (a binary min-heap of shard
// numbers, ShardHeap below, ordered by each shard's head row, ties by shard number). The smallest head row goes out once every shard still running has a row waiting; the merge stops at
// LIMIT and drops what waits. Rows wait in per-shard queues (flow control: row-queue.ts). Text keys in a collation the
// proxy cannot reproduce are compared by rank (collation-ranks.ts): every row then waits until the ranks are in,
// bounded by RANKED_SORT_MAX_BYTES.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { CollationRanks, type RankRequest } from './collation-ranks.js';
import { RowMerge, type MergeParts } from './row-merge.js';
import type { RowOutput } from './row-output.js';
import { RowQueue, type QueuedRow } from './row-queue.js';
import { compareSortKeys, SortKeyReader } from './sort-keys.js';
import type { SortKey } from './merge-spec.js';
import type { ValueComparator } from './value-compare.js';

/**
 * Rows an ORDER BY on collated text may hold while it waits for the database's order of its values (see `needsRanks`):
 * every shard's rows (LIMIT pushed down bounds them), at most this many bytes of frames.
 */
export const RANKED_SORT_MAX_BYTES = 64 * 1024 * 1024;

export class SortedMerge extends RowMerge {
  private readonly queues: RowQueue[];
  private readonly heap: ShardHeap;
  private readonly keys: SortKeyReader;
  private readonly ranks: CollationRanks;
  private readonly output: RowOutput;
  /** Set at the first row, from the column types (keys counted from the end numbered by then). */
  private comparators: ValueComparator[] | null = null;
  /** The sort keys as `keys` numbered them at the first row (read by the heap's comparator: kept at hand). */
  private orderBy: readonly SortKey[];
  /** `ranks.isAwaiting`, kept at hand for the per-row checks: set at the first row, cleared by `setRanks`. */
  private isAwaiting = false;
  /** Shards still running with no row waiting; the merge may only advance at 0. */
  private blockingCount: number;
  /** Bytes of the rows held for the ranks. */
  private rankedBytes = 0;

  constructor(private readonly parts: MergeParts) {
    super();
    this.queues = Array.from({ length: parts.shardCount }, () => new RowQueue());
    this.keys = new SortKeyReader(parts.spec.orderBy);
    this.orderBy = parts.spec.orderBy;
    this.ranks = new CollationRanks(parts.spec.textCollation);
    this.output = parts.output;
    this.blockingCount = parts.shardCount;
    this.heap = new ShardHeap(
      (a, b) =>
        compareSortKeys(
          this.orderBy,
          this.comparators as ValueComparator[],
          this.queues[a].peek().keys,
          this.queues[b].peek().keys,
        ) || a - b,
    );
  }

  onRow(shard: number, frame: Buffer): void {
    if (this.output.isLimitReached()) return;
    const queue = this.queues[shard];
    const row: QueuedRow = { frame, keys: this.readKeys(frame) };
    if (this.isAwaiting) {
      this.rankedBytes += frame.length;
      if (this.rankedBytes > RANKED_SORT_MAX_BYTES) {
        throw new PgError(
          'ERROR',
          SqlState.ProgramLimitExceeded,
          `ORDER BY on text across shards in collation "${this.parts.spec.textCollation ?? ''}" holds the rows in the proxy, and these exceed ${RANKED_SORT_MAX_BYTES >> 20} MiB`,
          undefined,
          'Add a LIMIT, sort with COLLATE "C" (byte order), or route the query to one shard.',
        );
      }
      queue.enqueue(row);
      retain(row);
      return;
    }
    if (queue.queued === 0) {
      queue.enqueue(row);
      this.heap.push(shard);
      this.blockingCount--;
    } else {
      queue.enqueue(row);
    }
    this.drain();
    if (queue.last() === row) retain(row);
  }

  override onShardEnd(shard: number): void {
    const queue = this.queues[shard];
    queue.isEnded = true;
    if (queue.queued === 0) {
      this.blockingCount--;
      this.drain();
    }
  }

  override finish(): boolean {
    if (this.isAwaiting) return false;
    this.drain(); // every shard ended: nothing blocks (already drained; kept as a guard)
    return true;
  }

  override drop(): void {
    for (const queue of this.queues) {
      if (queue.queued === 0) continue;
      queue.clear();
      if (!queue.isEnded) this.blockingCount++;
    }
    this.heap.clear();
  }

  override isQueueFull(shard: number): boolean {
    if (this.isAwaiting) return false; // every row is needed first (bounded by RANKED_SORT_MAX_BYTES)
    return this.queues[shard].isFull;
  }

  override isQueueDrained(shard: number): boolean {
    return this.queues[shard].isDrained;
  }

  override get isAwaitingRanks(): boolean {
    return this.isAwaiting;
  }

  /** The distinct values of the ranked keys in the rows held. */
  override rankRequest(): RankRequest {
    const values = new Set<string>();
    const ranked = this.ranks.rankedKeys;
    for (const queue of this.queues) {
      queue.forEachQueued((row) => {
        for (const k of ranked) {
          const v = row.keys[k];
          if (v !== null) values.add(v.toString('utf8'));
        }
      });
    }
    return this.ranks.request([...values]);
  }

  /** Every shard has ended: merge the rows held, now in the database's order. */
  override setRanks(ranks: Map<string, number>): void {
    this.ranks.set(ranks);
    this.isAwaiting = false;
    this.blockingCount = 0;
    for (let shard = 0; shard < this.queues.length; shard++) {
      if (this.queues[shard].queued > 0) this.heap.push(shard);
    }
    this.drain();
  }

  private readKeys(frame: Buffer): (Buffer | null)[] {
    if (this.comparators === null) {
      this.keys.resolveFromEnd(frame.readInt16BE(5));
      const types = this.parts.columns.columnTypes('ORDER BY');
      this.orderBy = this.keys.orderBy;
      this.comparators = this.ranks.comparators(this.orderBy, types, true);
      this.isAwaiting = this.ranks.isAwaiting;
    }
    return this.keys.read(frame);
  }

  /** Emit head rows while every running shard has one waiting. */
  private drain(): void {
    if (this.isAwaiting) return;
    while (this.blockingCount === 0 && this.heap.size > 0) {
      const shard = this.heap.pop();
      const queue = this.queues[shard];
      const row = queue.dequeue();
      if (queue.queued > 0) this.heap.push(shard);
      else if (!queue.isEnded) this.blockingCount++;
      this.output.offer(row.frame);
      if (this.output.isLimitReached()) {
        this.drop();
        return;
      }
    }
  }
}

/** A queued row outlives `onRow`: give it its own copy of the frame (keys re-pointed into the copy). */
function retain(row: QueuedRow): void {
  const copy = Buffer.from(row.frame);
  const base = row.frame.byteOffset;
  for (let i = 0; i < row.keys.length; i++) {
    const key = row.keys[i];
    if (key !== null) row.keys[i] = copy.subarray(key.byteOffset - base, key.byteOffset - base + key.length);
  }
  row.frame = copy;
}

/** The k-way merge's heap: a binary min-heap of shard numbers, ordered by a comparator over shard numbers. */
export class ShardHeap {
  private readonly items: number[] = [];

  constructor(private readonly compare: (a: number, b: number) => number) {}

  get size(): number {
    return this.items.length;
  }
  clear(): void {
    this.items.length = 0;
  }
  push(shard: number): void {
    const items = this.items;
    let i = items.length;
    items.push(shard);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.compare(items[parent], shard) <= 0) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = shard;
  }
  /** The smallest shard number by the comparator, removed (the heap must not be empty). */
  pop(): number {
    const items = this.items;
    const top = items[0];
    const last = items.pop() as number;
    if (items.length > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= items.length) break;
        if (child + 1 < items.length && this.compare(items[child + 1], items[child]) < 0) child++;
        if (this.compare(last, items[child]) <= 0) break;
        items[i] = items[child];
        i = child;
      }
      items[i] = last;
    }
    return top;
  }
}
