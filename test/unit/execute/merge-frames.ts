// Frame builders for the merge strategy tests: backend frames built by hand (no sockets).
import { Backend } from '../../../src/protocol/codes.js';
import { readDataRow } from '../../../src/protocol/rows.js';
import { MessageWriter } from '../../../src/protocol/writer.js';

export function frame(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = code;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

export function dataRow(values: readonly (string | null)[]): Buffer {
  const w = new MessageWriter(32).int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else w.int32(Buffer.byteLength(v)).bytes(Buffer.from(v));
  }
  return w.frame(Backend.DataRow);
}

/** Columns: [type OID, table OID (0: an expression), column number]. */
export function rowDescription(columns: readonly (readonly [number, number?, number?])[]): Buffer {
  const w = new MessageWriter(64).int16(columns.length);
  columns.forEach(([oid, table = 0, column = 0], i) => {
    w.cstring(`c${i}`).int32(table).int16(column).int32(oid).int16(-1).int32(-1).int16(0);
  });
  return w.frame(Backend.RowDescription);
}

export function commandComplete(tag: string): Buffer {
  return new MessageWriter(32).cstring(tag).frame(Backend.CommandComplete);
}

/** The text values of a DataRow. */
export function rowValues(row: Buffer): (string | null)[] {
  return readDataRow(row).map((v) => (v === null ? null : v.toString('utf8')));
}

/** Collects what a merger emits. */
export class Emitted {
  readonly frames: Buffer[] = [];
  readonly emit = (f: Buffer): void => {
    this.frames.push(Buffer.from(f));
  };
  get kinds(): string {
    return this.frames.map((f) => String.fromCharCode(f[0])).join('');
  }
  rows(): (string | null)[][] {
    return this.frames.filter((f) => f[0] === Backend.DataRow).map(rowValues);
  }
}
