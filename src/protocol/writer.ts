// A small growable message writer: append fields, then `frame(code)` fills the 5-byte header last.
import { Buffer } from 'node:buffer';

export class MessageWriter {
  private buf: Buffer;
  private pos = 5; // room for the header

  constructor(initialSize = 256) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + extra));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  int8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }
  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }
  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }
  /** A NUL-terminated UTF-8 string. */
  cstring(s: string): this {
    const len = Buffer.byteLength(s);
    this.ensure(len + 1);
    this.buf.write(s, this.pos, 'utf8');
    this.pos += len;
    this.buf[this.pos++] = 0;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Finish as a typed message (code = type byte). */
  frame(code: number): Buffer {
    this.buf[0] = code;
    this.buf.writeInt32BE(this.pos - 1, 1);
    return this.buf.subarray(0, this.pos);
  }

  /** Finish as an untyped startup-phase packet (length counts itself, no type byte). */
  frameUntyped(): Buffer {
    const out = this.buf.subarray(1, this.pos);
    out.writeInt32BE(out.length, 0);
    return out;
  }
}
