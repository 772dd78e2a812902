// The client frames received but not yet sent to a server: views into the received chunks, with what they need
// (how many ReadyForQuery replies they will produce, whether a Flush asks for replies without a Sync).
import { Frontend } from '../protocol/codes.js';
import { readyForQuery } from '../protocol/messages.js';
import type { PgError } from '../errors/pg-error.js';

export class RequestBatch {
  types: number[] = [];
  frames: Buffer[] = [];
  bytes = 0;
  /** Query / Sync / FunctionCall frames: one ReadyForQuery each. */
  readyCount = 0;
  hasFlush = false;

  get isEmpty(): boolean {
    return this.frames.length === 0;
  }

  /** A Sync/Query/FunctionCall or Flush is queued: the client now waits for replies. */
  get isFlushPoint(): boolean {
    return this.readyCount > 0 || this.hasFlush;
  }

  push(type: number, frame: Buffer): void {
    if (type === Frontend.Query || type === Frontend.Sync || type === Frontend.FunctionCall)
      this.readyCount++;
    else if (type === Frontend.Flush) this.hasFlush = true;
    this.types.push(type);
    this.frames.push(frame);
    this.bytes += frame.length;
  }

  /** Frames of the first request: up to and including the first Query / Sync / FunctionCall (all when none). */
  firstRequestLength(): number {
    for (let i = 0; i < this.types.length; i++) {
      const t = this.types[i];
      if (t === Frontend.Query || t === Frontend.Sync || t === Frontend.FunctionCall) return i + 1;
    }
    return this.types.length;
  }

  /** Hand over the first `count` frames (one request); the rest stays queued. */
  takeFirst(count: number): { types: number[]; frames: Buffer[]; readyCount: number } {
    if (count >= this.types.length) return this.take();
    const types = this.types.splice(0, count);
    const frames = this.frames.splice(0, count);
    let readyCount = 0;
    for (let i = 0; i < count; i++) {
      this.bytes -= frames[i].length;
      const t = types[i];
      if (t === Frontend.Query || t === Frontend.Sync || t === Frontend.FunctionCall) readyCount++;
    }
    this.readyCount -= readyCount;
    this.hasFlush = this.types.includes(Frontend.Flush);
    return { types, frames, readyCount };
  }

  /** Put frames back at the front (a request replaced by the ones that carry it out). */
  unshift(types: readonly number[], frames: readonly Buffer[]): void {
    for (let i = 0; i < types.length; i++) {
      const t = types[i];
      if (t === Frontend.Query || t === Frontend.Sync || t === Frontend.FunctionCall) this.readyCount++;
      else if (t === Frontend.Flush) this.hasFlush = true;
      this.bytes += frames[i].length;
    }
    this.types.unshift(...types);
    this.frames.unshift(...frames);
  }

  /** Remove the first `count` frames (handled by the caller); they must not be Query/Sync/FunctionCall/Flush. */
  dropFirst(count: number): void {
    for (let i = 0; i < count; i++) this.bytes -= this.frames[i].length;
    this.types.splice(0, count);
    this.frames.splice(0, count);
  }

  /** Hand over the queued frames and start empty. */
  take(): { types: number[]; frames: Buffer[]; readyCount: number } {
    const taken = { types: this.types, frames: this.frames, readyCount: this.readyCount };
    this.types = [];
    this.frames = [];
    this.bytes = 0;
    this.readyCount = 0;
    this.hasFlush = false;
    return taken;
  }

  /**
   * The replies PostgreSQL would give if the queued request failed with `err`: the error, then ReadyForQuery at each
   * Sync/Query (and the error again for the next segment). `isSkippingToSync`: a segment is left open, so frames up to
   * the client's next Sync are to be dropped.
   */
  failReplies(
    err: PgError,
    txStatus: number,
    count: number = this.types.length,
  ): { replies: Buffer; isSkippingToSync: boolean } {
    const out: Buffer[] = [];
    let isErrorOpen = false; // an error was sent for a segment its Sync has not closed yet
    for (const t of this.takeFirst(count).types) {
      if (!isErrorOpen) {
        out.push(err.toBuffer());
        isErrorOpen = true;
      }
      if (t === Frontend.Sync || t === Frontend.Query || t === Frontend.FunctionCall) {
        out.push(readyForQuery(txStatus));
        isErrorOpen = false;
      }
    }
    return { replies: Buffer.concat(out), isSkippingToSync: isErrorOpen };
  }
}
