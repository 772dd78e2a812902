// ORDER BY keys of the shards' rows: reading a DataRow's key values in place (views into the frame; keys counted from
// the end of the row — hidden columns of a `SELECT *` — numbered at the first row) and comparing two rows' keys.
import { PgError } from '../errors/pg-error.js';
import type { SortKey } from './merge-spec.js';
import type { ValueComparator } from './value-compare.js';

export class SortKeyReader {
  private keys: readonly SortKey[];
  private maxKeyColumn: number;
  /** Scratch for `read`: [start, length] of each column up to the last sort column. */
  private columnSpans: Int32Array;

  constructor(orderBy: readonly SortKey[]) {
    this.keys = orderBy;
    this.maxKeyColumn = Math.max(-1, ...orderBy.map((k) => k.column));
    this.columnSpans = new Int32Array(2 * (this.maxKeyColumn + 1));
  }

  /** The sort keys, numbered from the start of the row once `resolveFromEnd` has run. */
  get orderBy(): readonly SortKey[] {
    return this.keys;
  }

  /** Sort keys on hidden columns of a `SELECT *` count from the end of the row: number them now that rows show its width. */
  resolveFromEnd(columnCount: number): void {
    if (!this.keys.some((k) => k.column < 0)) return;
    this.keys = this.keys.map((k) => (k.column < 0 ? { ...k, column: columnCount + k.column } : k));
    this.maxKeyColumn = Math.max(-1, ...this.keys.map((k) => k.column));
    this.columnSpans = new Int32Array(2 * (this.maxKeyColumn + 1));
  }

  /** The row's values of the sort keys, in `orderBy` order: views into `frame`, null for SQL NULL. */
  read(frame: Buffer): (Buffer | null)[] {
    const columnCount = frame.readInt16BE(5);
    if (columnCount <= this.maxKeyColumn) {
      throw PgError.internal(
        `ORDER BY column ${this.maxKeyColumn + 1} is beyond the ${columnCount} columns of the row`,
      );
    }
    const spans = this.columnSpans;
    let pos = 7;
    for (let c = 0; c <= this.maxKeyColumn; c++) {
      const length = frame.readInt32BE(pos);
      pos += 4;
      spans[2 * c] = pos;
      spans[2 * c + 1] = length;
      if (length > 0) pos += length;
    }
    const orderBy = this.keys;
    const keys = new Array<Buffer | null>(orderBy.length);
    for (let i = 0; i < keys.length; i++) {
      const c = orderBy[i].column;
      const length = spans[2 * c + 1];
      keys[i] = length < 0 ? null : frame.subarray(spans[2 * c], spans[2 * c] + length);
    }
    return keys;
  }
}

/** Two rows' ORDER BY key values (`keys[i]` for `orderBy[i]`): NULLS FIRST/LAST and DESC as the keys say. */
export function compareSortKeys(
  orderBy: readonly SortKey[],
  comparators: readonly ValueComparator[],
  a: readonly (Buffer | null)[],
  b: readonly (Buffer | null)[],
): number {
  for (let i = 0; i < comparators.length; i++) {
    const x = a[i];
    const y = b[i];
    const key = orderBy[i];
    if (x === null || y === null) {
      if (x === y) continue;
      return (x === null) === key.isNullsFirst ? -1 : 1;
    }
    const c = comparators[i](x, y);
    if (c !== 0) return key.isDescending ? -c : c;
  }
  return 0;
}
