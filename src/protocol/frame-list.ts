// The frames of one write, collected in a list that is reused for every write (hot path, written by hand: a JS array
// emptied with `length = 0` drops its storage, so a reused array would grow again on every request), and joined into
// the one buffer the write sends.
import { Buffer } from 'node:buffer';

/** Where frames are appended (a FrameList, or a plain array). */
export interface FrameSink {
  push(frame: Buffer): unknown;
}

const NO_FRAME = Buffer.alloc(0);

export class FrameList implements FrameSink {
  private readonly items: Buffer[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  push(frame: Buffer): void {
    this.items[this.count++] = frame;
  }

  /** The frames as one buffer (the first itself when it is the only one). */
  join(): Buffer {
    const items = this.items;
    const n = this.count;
    if (n === 1) return items[0];
    let total = 0;
    for (let i = 0; i < n; i++) total += items[i].length;
    const out = Buffer.allocUnsafe(total);
    let at = 0;
    for (let i = 0; i < n; i++) {
      out.set(items[i], at);
      at += items[i].length;
    }
    return out;
  }

  /** Empty again, holding no frame (the client's frames point into its read chunks), its storage kept. */
  clear(): void {
    const items = this.items;
    for (let i = 0; i < this.count; i++) items[i] = NO_FRAME;
    this.count = 0;
  }
}
