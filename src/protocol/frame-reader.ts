// Splits a byte stream into whole typed messages (1-byte type + int32 length), keeping only the partial tail.
// Everything it refuses is refused before the body is buffered: a type byte not allowed right now (checked as soon as
// that one byte arrives, so a startup packet's leading zero is caught without waiting for a length), a length < 4, a
// frame over the current cap. Query/Parse frames over the skip limit (`query_size_limit`) are reported and their
// bodies discarded as they arrive. Partial frames are kept as a chunk list and joined once when complete.
// Once logged in, a length PostgreSQL itself finds impossible (< 4, or over its limit for that message type) is
// flagged `isSilent`: PostgreSQL closes such a connection without a reply (pq_getmessage's COMMERROR).
import { Buffer } from 'node:buffer';

export type FrameHandler = (type: number, frame: Buffer) => void;

/** An error message for a type byte not accepted now, or null. */
export type TypeCheck = (type: number) => string | null;

/**
 * A Query/Parse frame over the skip limit: its total size (type byte included) and the first bytes of it that arrived
 * with its header (for a log sample). Its body is discarded; the frames after it are delivered as usual.
 */
export type OversizedHandler = (type: number, totalBytes: number, start: Buffer) => void;

const HEADER_BYTES = 5;
/** The parts of no frame: shared, frozen (an idle client holds no array of its own; a frame's parts get a new one). */
const NO_PARTS = Object.freeze([]) as readonly Buffer[] as Buffer[];
const QUERY = 0x51; // 'Q'
const PARSE = 0x50; // 'P'

/** PostgreSQL's PQ_SMALL_MESSAGE_LIMIT and PQ_LARGE_MESSAGE_LIMIT (a message's length word, itself included). */
const PG_SMALL_LIMIT = 10_000;
const PG_LARGE_LIMIT = 0x3fffffff - 1;
/** The types PostgreSQL's SocketBackend reads with the small limit (Close, Describe, Execute, Flush, Sync, Terminate). */
const PG_SMALL_TYPES = new Set([0x43, 0x44, 0x45, 0x48, 0x53, 0x58]);

/** The largest length word PostgreSQL accepts for a logged-in client's message of `type`. */
function pgLengthLimit(type: number): number {
  return PG_SMALL_TYPES.has(type) ? PG_SMALL_LIMIT : PG_LARGE_LIMIT;
}

export class FrameReader {
  /** Largest frame accepted (type byte, length and body); a larger one is a protocol violation. */
  maxFrameBytes: number;
  /** Type bytes accepted now (null: any). */
  typeCheck: TypeCheck | null = null;
  /** Query/Parse frames larger than this (type byte included) go to `onOversized`, unbuffered; 0 = no limit. */
  skipQueriesOverBytes = 0;
  onOversized: OversizedHandler | null = null;
  /** Judge lengths as PostgreSQL's SocketBackend does (set once logged in). */
  hasPgLengthLimits = false;
  /** The violation `push` last returned is one PostgreSQL answers by closing the connection without a reply. */
  isSilent = false;

  /**
   * A header cut by the chunk boundary: its first `headLength` bytes. Made the first time a header is cut (an idle
   * client holds none; a slice of Node's shared pool would pin a whole 8 KiB slab per few clients instead).
   */
  private head: Buffer | null = null;
  private headLength = 0;
  /** A frame whose header is known and whose body continues: the pieces so far and the whole frame's size. */
  private parts: Buffer[] = NO_PARTS;
  private partsLength = 0;
  private needed = 0;
  /** Bytes still to discard of a skipped frame. */
  private skipRemaining = 0;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  get hasPartial(): boolean {
    return this.headLength > 0 || this.partsLength > 0 || this.skipRemaining > 0;
  }

  /**
   * Feed a chunk; `onFrame` gets each complete frame (header included) as a view, valid until the handler returns
   * unless copied. Returns null, or an error message on a protocol violation (the stream can't be trusted after).
   */
  push(chunk: Buffer, onFrame: FrameHandler): string | null {
    const n = chunk.length;
    let i = 0;
    if (this.skipRemaining > 0) {
      i = Math.min(this.skipRemaining, n);
      this.skipRemaining -= i;
    }
    if (this.headLength > 0 && i < n) {
      const take = Math.min(HEADER_BYTES - this.headLength, n - i);
      const head = this.head as Buffer; // made when its first bytes were kept (below)
      chunk.copy(head, this.headLength, i, i + take);
      this.headLength += take;
      i += take;
      if (this.headLength < HEADER_BYTES) return null;
      this.headLength = 0;
      const type = head[0];
      const len = head.readInt32BE(1);
      const err = this.checkLength(type, len);
      if (err !== null) return err;
      if (this.isSkipped(type, len)) {
        this.skip(type, len, Buffer.from(head), n - i);
        i += Math.min(n - i, len + 1 - HEADER_BYTES);
      } else {
        this.parts = [Buffer.from(head)];
        this.partsLength = HEADER_BYTES;
        this.needed = len + 1;
      }
    }
    if (this.partsLength > 0 && (i < n || this.partsLength === this.needed)) {
      const missing = this.needed - this.partsLength;
      if (n - i < missing) {
        this.parts.push(i === 0 ? chunk : chunk.subarray(i));
        this.partsLength += n - i;
        return null;
      }
      this.parts.push(chunk.subarray(i, i + missing));
      const frame = Buffer.concat(this.parts, this.needed);
      this.parts = NO_PARTS;
      this.partsLength = 0;
      this.needed = 0;
      i += missing;
      onFrame(frame[0], frame);
    }
    while (i < n) {
      const type = chunk[i];
      if (this.typeCheck !== null) {
        const err = this.typeCheck(type);
        if (err !== null) return err;
      }
      if (n - i < HEADER_BYTES) {
        chunk.copy((this.head ??= Buffer.alloc(HEADER_BYTES)), 0, i, n);
        this.headLength = n - i;
        return null;
      }
      const len = chunk.readInt32BE(i + 1);
      const err = this.checkLength(type, len);
      if (err !== null) return err;
      const end = i + 1 + len;
      if (this.isSkipped(type, len)) {
        this.skip(type, len, chunk.subarray(i, Math.min(end, n)), n - i - HEADER_BYTES);
        i = Math.min(end, n);
        continue;
      }
      if (end > n) {
        this.parts = [chunk.subarray(i)];
        this.partsLength = n - i;
        this.needed = len + 1;
        return null;
      }
      onFrame(type, chunk.subarray(i, end));
      i = end;
    }
    return null;
  }

  private isSkipped(type: number, len: number): boolean {
    return (
      this.skipQueriesOverBytes > 0 &&
      (type === QUERY || type === PARSE) &&
      len + 1 > this.skipQueriesOverBytes
    );
  }

  /** Report a skipped frame and discard its body: `bodyInChunk` bytes after its header arrived with it. */
  private skip(type: number, len: number, start: Buffer, bodyInChunk: number): void {
    const body = len + 1 - HEADER_BYTES;
    this.skipRemaining = body > bodyInChunk ? body - bodyInChunk : 0;
    this.onOversized?.(type, len + 1, start);
  }

  private checkLength(type: number, len: number): string | null {
    // The type's limit looked up only for a frame over the smaller one (nearly every frame is under it).
    if (this.hasPgLengthLimits && (len < 4 || (len > PG_SMALL_LIMIT && len > pgLengthLimit(type)))) {
      this.isSilent = true;
      return `invalid length ${len} in message of type "${printable(type)}"`;
    }
    if (len < 4) return `invalid length ${len} in message of type "${printable(type)}"`;
    if (len + 1 > this.maxFrameBytes) {
      return `message of type "${printable(type)}" is ${len + 1} bytes, over the ${this.maxFrameBytes}-byte limit`;
    }
    return null;
  }
}

function printable(type: number): string {
  return type >= 0x20 && type < 0x7f ? String.fromCharCode(type) : `0x${type.toString(16)}`;
}
