// Splits a byte stream into whole typed messages (1-byte type + int32 length), keeping only the partial tail.
// A frame larger than the cap, or with a length < 4, is a protocol violation reported to the caller.
// Partial frames are kept as a chunk list and joined once when complete (no quadratic re-concatenation).

export type FrameHandler = (type: number, frame: Buffer) => void;

export class FrameReader {
  private readonly maxFrameBytes: number;
  private parts: Buffer[] = [];
  private partsLength = 0;
  /** Total length of the frame being assembled, once its header is known (else 0). */
  private needed = 0;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  get hasPartial(): boolean {
    return this.partsLength > 0;
  }

  /**
   * Feed a chunk; `onFrame` gets each complete frame (header included) as a view, valid until the handler returns
   * unless copied. Returns null, or an error message on a protocol violation (the stream can't be trusted after).
   */
  push(chunk: Buffer, onFrame: FrameHandler): string | null {
    let buf = chunk;
    if (this.partsLength > 0) {
      this.parts.push(chunk);
      this.partsLength += chunk.length;
      if (this.needed === 0 && this.partsLength >= 5) {
        const head = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, 5);
        const err = this.check(head[0], head.readInt32BE(1));
        if (err) return err;
        this.needed = head.readInt32BE(1) + 1;
      }
      if (this.needed === 0 || this.partsLength < this.needed) return null;
      buf = Buffer.concat(this.parts, this.partsLength);
      this.parts = [];
      this.partsLength = 0;
      this.needed = 0;
    }
    const n = buf.length;
    let i = 0;
    while (n - i >= 5) {
      const type = buf[i];
      const len = buf.readInt32BE(i + 1);
      const err = this.check(type, len);
      if (err) return err;
      const end = i + 1 + len;
      if (end > n) {
        this.needed = len + 1;
        break;
      }
      onFrame(type, buf.subarray(i, end));
      i = end;
    }
    if (i < n) {
      const rest = buf.subarray(i);
      this.parts.push(rest);
      this.partsLength = rest.length;
    }
    return null;
  }

  private check(type: number, len: number): string | null {
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
