// Unit tests for the merge's per-shard row queue (FIFO, byte count, flow-control bounds) and its heap of shards.
import { describe, expect, it } from 'vitest';
import { MERGE_QUEUE_MAX_BYTES, MERGE_QUEUE_MAX_ROWS, RowQueue } from '../../../src/execute/row-queue.js';
import { ShardHeap } from '../../../src/execute/sorted-merge.js';

const row = (bytes: number, tag = 0): { frame: Buffer; keys: (Buffer | null)[] } => ({
  frame: Buffer.alloc(bytes, tag),
  keys: [],
});

describe('RowQueue', () => {
  it('is first in, first out across its compaction, and counts the bytes held', () => {
    const queue = new RowQueue();
    const count = 5000;
    for (let i = 0; i < count; i++) queue.enqueue(row(1 + (i % 7), i % 256));
    expect(queue.queued).toBe(count);
    let bytes = queue.queuedBytes;
    const wrong: string[] = [];
    for (let i = 0; i < count; i++) {
      const head = queue.peek();
      const out = queue.dequeue();
      bytes -= out.frame.length;
      if (head !== out || out.frame[0] !== i % 256 || out.frame.length !== 1 + (i % 7))
        wrong.push(`row ${i}`);
      if (queue.queuedBytes !== bytes) wrong.push(`bytes after row ${i}`);
      if (i === 3000) {
        queue.enqueue(row(3, 99)); // added mid-way, after the queue compacted (at 2,500 dequeued)
        bytes += 3;
      }
    }
    expect(wrong).toEqual([]);
    expect(queue.queued).toBe(1);
    expect(queue.dequeue().frame[0]).toBe(99);
    expect(queue.queued).toBe(0);
    expect(queue.last()).toBeUndefined();
  });

  it('is full past the row or byte bound, drained again at half of both', () => {
    const byRows = new RowQueue();
    for (let i = 0; i < MERGE_QUEUE_MAX_ROWS; i++) byRows.enqueue(row(1));
    expect(byRows.isFull).toBe(false);
    byRows.enqueue(row(1));
    expect(byRows.isFull).toBe(true);
    while (byRows.queued > MERGE_QUEUE_MAX_ROWS / 2 + 1) byRows.dequeue();
    expect(byRows.isDrained).toBe(false);
    byRows.dequeue();
    expect(byRows.isDrained).toBe(true);

    const byBytes = new RowQueue();
    byBytes.enqueue(row(MERGE_QUEUE_MAX_BYTES));
    expect(byBytes.isFull).toBe(false);
    byBytes.enqueue(row(1));
    expect(byBytes.isFull).toBe(true);
    byBytes.clear();
    expect([byBytes.queued, byBytes.queuedBytes, byBytes.isDrained]).toEqual([0, 0, true]);
  });
});

describe('ShardHeap', () => {
  it('pops shards in the comparator’s order, ties by shard number as the comparator says', () => {
    const heads = [5, 3, 9, 3, 1, 7, 5, 0];
    const heap = new ShardHeap((a, b) => heads[a] - heads[b] || a - b);
    for (let shard = heads.length - 1; shard >= 0; shard--) heap.push(shard);
    const order: number[] = [];
    while (heap.size > 0) order.push(heap.pop());
    expect(order).toEqual([7, 4, 1, 3, 0, 6, 5, 2]);
  });

  it('keeps its order as heads change between pops (the k-way merge’s use)', () => {
    const queues = [
      [1, 4, 9],
      [2, 3, 10],
      [0, 8],
    ];
    const heap = new ShardHeap((a, b) => queues[a][0] - queues[b][0] || a - b);
    queues.forEach((_, shard) => heap.push(shard));
    const merged: number[] = [];
    while (heap.size > 0) {
      const shard = heap.pop();
      merged.push(queues[shard].shift() as number);
      if (queues[shard].length > 0) heap.push(shard);
    }
    expect(merged).toEqual([0, 1, 2, 3, 4, 8, 9, 10]);
    heap.push(0);
    heap.clear();
    expect(heap.size).toBe(0);
  });
});
