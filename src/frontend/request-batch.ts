// The client frames received but not yet sent to a server: views into the received chunks, with what they need
// (how many ReadyForQuery replies they will produce, whether a Flush asks for replies without a Sync). A ring buffer
// (double-ended queue): queueing a frame, handing over the first request and putting frames back at the front cost
// O(1) per frame, however many requests a client pipelines behind the one in flight.
import { Buffer } from 'node:buffer';
import { Frontend } from '../protocol/codes.js';
import { readyForQuery } from '../protocol/messages.js';
import type { PgError } from '../errors/pg-error.js';

const INITIAL_CAPACITY = 16;

/**
 * Requests a client may have queued behind the one in flight before the proxy stops reading it (and reads on once the
 * queue is down to a quarter): a pipelining client that does not read its replies costs at most this, plus one read.
 */
export const PIPELINE_MAX_BYTES = 1024 * 1024;
export const PIPELINE_MAX_FRAMES = 4096;

/**
 * "No bound" for a count of bytes or frames: the largest small integer, which an object's field holds in place (a
 * Number.MAX_SAFE_INTEGER there is a separate 16-byte heap number per object, kept by every idle client).
 */
export const NO_BOUND = 0x7fffffff;

const NO_TYPES: number[] = [];
const NO_FRAMES: (Buffer | undefined)[] = [];

function isReadyPoint(type: number): boolean {
  return type === Frontend.Query || type === Frontend.Sync || type === Frontend.FunctionCall;
}

export interface TakenFrames {
  types: number[];
  frames: Buffer[];
  readyCount: number;
}

export class RequestBatch {
  // No slots until the first frame: an idle client (thousands may be connected) holds no arrays of its own, only the
  // shared empty ones (never written: a write comes after `grow`, which the first push calls as length 0 is full).
  private types: number[] = NO_TYPES;
  private frames: (Buffer | undefined)[] = NO_FRAMES;
  /** Slot of the first frame; slots are taken modulo the capacity (a power of two). */
  private head = 0;
  private count = 0;
  private mask = 0;
  private byteCount = 0;
  /** Query / Sync / FunctionCall frames queued: one ReadyForQuery each. */
  private readyFrames = 0;
  private flushFrames = 0;
  /**
   * Called once when the queue drops to `lowWaterBytes` and `lowWaterFrames`, or holds no complete request any more
   * (the rest of the one it holds must be read): the session resumes reading then.
   */
  onDrained: (() => void) | null = null;
  lowWaterBytes = NO_BOUND;
  lowWaterFrames = NO_BOUND;
  /** The copies the last peek made (reused by takeFirst when it takes the same frames). */
  private peeked: { types: number[]; frames: Buffer[] } | null = null;

  get isEmpty(): boolean {
    return this.count === 0;
  }

  /** Frames queued. */
  get length(): number {
    return this.count;
  }

  /** Bytes of the frames queued. */
  get bytes(): number {
    return this.byteCount;
  }

  get readyCount(): number {
    return this.readyFrames;
  }

  get hasFlush(): boolean {
    return this.flushFrames > 0;
  }

  /** A Sync/Query/FunctionCall or Flush is queued: the client now waits for replies. */
  get isFlushPoint(): boolean {
    return this.readyFrames > 0 || this.flushFrames > 0;
  }

  /**
   * Every request queued is whole and answered in full by a server that is not skipping: each extended-protocol
   * message is followed by a Sync before any Query / FunctionCall and before the end, and a Sync or Query ends it.
   * (After an error PostgreSQL skips everything up to a Sync, a Query included: an open segment may never be answered.)
   */
  get isWholeRequests(): boolean {
    let isOpen = false;
    for (let i = 0; i < this.count; i++) {
      const type = this.typeAt(i);
      if (type === Frontend.Sync) isOpen = false;
      else if (type === Frontend.Query || type === Frontend.FunctionCall) {
        if (isOpen) return false;
      } else isOpen = true; // Parse, Bind, Describe, Execute, Close, Flush, copy messages
    }
    return !isOpen && this.readyFrames > 0;
  }

  /** The type of the `i`-th frame queued. */
  typeAt(i: number): number {
    return this.types[(this.head + i) & this.mask];
  }

  /** The `i`-th frame queued. */
  frameAt(i: number): Buffer {
    return this.frames[(this.head + i) & this.mask] as Buffer;
  }

  push(type: number, frame: Buffer): void {
    if (this.count === this.types.length) this.grow(this.count + 1);
    const slot = (this.head + this.count) & this.mask;
    this.types[slot] = type;
    this.frames[slot] = frame;
    this.count++;
    this.counted(type, frame, 1);
  }

  /** Frames of the first request: up to and including the first Query / Sync / FunctionCall (all when none). */
  firstRequestLength(): number {
    for (let i = 0; i < this.count; i++) {
      if (isReadyPoint(this.types[(this.head + i) & this.mask])) return i + 1;
    }
    return this.count;
  }

  /** Only copy messages are queued (COPY data for the request in flight). */
  isCopyOnly(): boolean {
    for (let i = 0; i < this.count; i++) {
      const t = this.types[(this.head + i) & this.mask];
      if (t !== Frontend.CopyData && t !== Frontend.CopyDone && t !== Frontend.CopyFail) return false;
    }
    return true;
  }

  /** Copies of the first `count` types and frames, left queued. */
  peek(count: number): { types: number[]; frames: Buffer[] } {
    const n = Math.min(count, this.count);
    const types = new Array<number>(n);
    const frames = new Array<Buffer>(n);
    for (let i = 0; i < n; i++) {
      const slot = (this.head + i) & this.mask;
      types[i] = this.types[slot];
      frames[i] = this.frames[slot] as Buffer;
    }
    const peeked = { types, frames };
    this.peeked = peeked;
    return peeked;
  }

  /** Hand over the first `count` frames (one request); the rest stays queued. */
  takeFirst(count: number): TakenFrames {
    const n = Math.min(count, this.count);
    // The request routed is usually taken as it was peeked: its copies are handed over again (no second pair made).
    const peeked = this.peeked;
    this.peeked = null;
    const isPeeked = peeked !== null && this.startsWith(peeked.types, peeked.frames, n);
    const types = isPeeked ? peeked.types : new Array<number>(n);
    const frames = isPeeked ? peeked.frames : new Array<Buffer>(n);
    let readyCount = 0;
    for (let i = 0; i < n; i++) {
      const slot = (this.head + i) & this.mask;
      const type = this.types[slot];
      const frame = this.frames[slot] as Buffer;
      this.frames[slot] = undefined; // the chunk it points into may be freed
      types[i] = type;
      frames[i] = frame;
      if (isReadyPoint(type)) readyCount++;
      this.counted(type, frame, -1);
    }
    this.head = (this.head + n) & this.mask;
    this.count -= n;
    this.afterRemoval();
    return { types, frames, readyCount };
  }

  /** The queue's first `n` frames are exactly `types` / `frames` (the same frame objects, in order). */
  private startsWith(types: readonly number[], frames: readonly Buffer[], n: number): boolean {
    if (types.length !== n) return false;
    for (let i = 0; i < n; i++) {
      const slot = (this.head + i) & this.mask;
      if (this.types[slot] !== types[i] || this.frames[slot] !== frames[i]) return false;
    }
    return true;
  }

  /** Hand over the queued frames and start empty. */
  take(): TakenFrames {
    return this.takeFirst(this.count);
  }

  /** Remove the first `count` frames (handled by the caller). */
  dropFirst(count: number): void {
    this.peeked = null;
    const n = Math.min(count, this.count);
    for (let i = 0; i < n; i++) {
      const slot = (this.head + i) & this.mask;
      this.counted(this.types[slot], this.frames[slot] as Buffer, -1);
      this.frames[slot] = undefined;
    }
    this.head = (this.head + n) & this.mask;
    this.count -= n;
    this.afterRemoval();
  }

  /** Put frames back at the front (a request replaced by the ones that carry it out). */
  unshift(types: readonly number[], frames: readonly Buffer[]): void {
    this.peeked = null;
    const n = types.length;
    if (this.count + n > this.types.length) this.grow(this.count + n);
    this.head = (this.head - n) & this.mask;
    for (let i = 0; i < n; i++) {
      const slot = (this.head + i) & this.mask;
      this.types[slot] = types[i];
      this.frames[slot] = frames[i];
      this.counted(types[i], frames[i], 1);
    }
    this.count += n;
  }

  /**
   * The replies PostgreSQL would give if the queued request failed with `err`: the error, then ReadyForQuery at each
   * Sync/Query (and the error again for the next segment). `isSkippingToSync`: a segment is left open, so frames up to
   * the client's next Sync are to be dropped.
   */
  failReplies(
    err: PgError,
    txStatus: number,
    count: number = this.count,
  ): { replies: Buffer; isSkippingToSync: boolean } {
    const out: Buffer[] = [];
    let isErrorOpen = false; // an error was sent for a segment its Sync has not closed yet
    for (const t of this.takeFirst(count).types) {
      if (!isErrorOpen) {
        out.push(err.toBuffer());
        isErrorOpen = true;
      }
      if (isReadyPoint(t)) {
        out.push(readyForQuery(txStatus));
        isErrorOpen = false;
      }
    }
    return { replies: Buffer.concat(out), isSkippingToSync: isErrorOpen };
  }

  private counted(type: number, frame: Buffer, sign: 1 | -1): void {
    this.byteCount += sign * frame.length;
    if (isReadyPoint(type)) this.readyFrames += sign;
    else if (type === Frontend.Flush) this.flushFrames += sign;
  }

  private afterRemoval(): void {
    if (this.count === 0) {
      this.head = 0;
      // A burst made the ring large: start small again rather than keep its slots for good.
      if (this.types.length > 4 * INITIAL_CAPACITY) this.reset(INITIAL_CAPACITY);
    }
    const onDrained = this.onDrained;
    const isLow = this.byteCount <= this.lowWaterBytes && this.count <= this.lowWaterFrames;
    if (onDrained !== null && (isLow || !this.isFlushPoint)) {
      this.onDrained = null;
      onDrained();
    }
  }

  /** Room for at least `needed` frames, keeping their order (the first at slot 0). */
  private grow(needed: number): void {
    let capacity = Math.max(INITIAL_CAPACITY, this.types.length * 2);
    while (capacity < needed) capacity *= 2;
    const oldTypes = this.types;
    const oldFrames = this.frames;
    const from = this.head;
    const oldMask = this.mask;
    this.reset(capacity);
    for (let i = 0; i < this.count; i++) {
      const slot = (from + i) & oldMask;
      this.types[i] = oldTypes[slot];
      this.frames[i] = oldFrames[slot];
    }
  }

  private reset(capacity: number): void {
    this.types = new Array<number>(capacity).fill(0);
    this.frames = new Array<Buffer | undefined>(capacity);
    this.mask = capacity - 1;
    this.head = 0;
  }
}
