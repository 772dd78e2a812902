// The k-way merge's heap: a binary min-heap of shard numbers, ordered by a comparator over shard numbers (the caller's
// comparator looks at each shard's head row).

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
