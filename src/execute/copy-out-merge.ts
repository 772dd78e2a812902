// COPY … TO STDOUT run on several shards, sent to the client as one stream: CopyData passes through as it arrives;
// in binary format each shard's stream has its own file header and trailer — the first header is passed on, the
// trailer is sent once after every shard's rows; with HEADER (text, CSV) each shard's first line is the same header,
// passed on once; one CopyDone goes out before the command tag.
import { Buffer } from 'node:buffer';
import { Backend } from '../protocol/codes.js';

const BINARY_COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const EMPTY = Buffer.alloc(0);
/** Signature, flags (int32) and header extension length (int32); the extension itself follows. */
const BINARY_COPY_HEADER_FIXED = 19;
/** A CopyData holding the binary COPY file trailer (int16 -1). */
const COPY_TRAILER = Buffer.from([Backend.CopyData, 0, 0, 0, 6, 0xff, 0xff]);
const COPY_DONE = Buffer.from([Backend.CopyDone, 0, 0, 0, 4]);

export class CopyOutMerge {
  /** CopyData frames seen from each shard (its first one may be a header). */
  private readonly dataCounts: number[];
  private isBinary = false;
  private isHeaderSent = false;
  private isTrailerHeld = false;
  private hasCopyDone = false;

  /** `hasHeaderLine`: COPY … WITH HEADER (MergeSpec.copyOutHeader). */
  constructor(
    shardCount: number,
    private readonly hasHeaderLine: boolean,
    private readonly emit: (frame: Buffer) => void,
  ) {
    this.dataCounts = new Array<number>(shardCount).fill(0);
  }

  /** The CopyOutResponse the client gets: its overall format says whether the data is binary. */
  start(copyOutResponse: Buffer): void {
    this.isBinary = copyOutResponse[5] === 1;
  }

  /** A CopyData from `shard`. */
  onData(shard: number, frame: Buffer): void {
    const isFirstData = this.dataCounts[shard]++ === 0;
    if (this.isBinary) return this.onBinaryData(isFirstData, frame);
    if (isFirstData && this.hasHeaderLine) {
      if (this.isHeaderSent) return;
      this.isHeaderSent = true;
    }
    this.emit(frame);
  }

  /** A shard's CopyDone: the client gets one, from `finish`. */
  onDone(): void {
    this.hasCopyDone = true;
  }

  /** Every shard has ended: the binary trailer held back, then CopyDone. */
  finish(): void {
    if (this.isTrailerHeld) this.emit(COPY_TRAILER);
    if (this.hasCopyDone) this.emit(COPY_DONE);
  }

  /**
   * PostgreSQL sends the binary file header in the same CopyData as the first row (or as the trailer, when it has no
   * rows), and the trailer (int16 -1) in a CopyData of its own after the last row.
   */
  private onBinaryData(isFirstData: boolean, frame: Buffer): void {
    const body = frame.subarray(5);
    const hasHeader =
      isFirstData &&
      body.length >= BINARY_COPY_HEADER_FIXED &&
      body.subarray(0, BINARY_COPY_SIGNATURE.length).equals(BINARY_COPY_SIGNATURE);
    const headerLength = hasHeader ? BINARY_COPY_HEADER_FIXED + body.readInt32BE(15) : 0;
    const rest = body.subarray(headerLength);
    // Rows come one per CopyData: a rest of exactly int16 -1 is the trailer (a row's last bytes may be 0xffff too).
    const isTrailer = rest.length === 2 && rest.readInt16BE(0) === -1;
    if (isTrailer) this.isTrailerHeld = true;
    const keepsHeader = hasHeader && !this.isHeaderSent;
    if (hasHeader) this.isHeaderSent = true;
    if (!isTrailer && (!hasHeader || keepsHeader)) return this.emit(frame);
    const out = Buffer.concat([
      keepsHeader ? body.subarray(0, headerLength) : EMPTY,
      isTrailer ? EMPTY : rest,
    ]);
    if (out.length === 0) return;
    const head = Buffer.allocUnsafe(5);
    head[0] = Backend.CopyData;
    head.writeInt32BE(4 + out.length, 1);
    this.emit(Buffer.concat([head, out]));
  }
}
