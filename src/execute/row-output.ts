// The exit of the merged row stream, whichever strategy merged it: DISTINCT ON (only the first row of each run of
// equal keys), OFFSET, LIMIT, the hidden columns dropped; counts the rows sent (the SELECT tag's count).
import { Buffer } from 'node:buffer';
import { Backend } from '../protocol/codes.js';
import { readDataRow } from '../protocol/rows.js';
import { MessageWriter } from '../protocol/writer.js';
import { PgError } from '../errors/pg-error.js';
import type { MergeSpec } from './merge-spec.js';
import { columnType, type ResultColumns } from './result-columns.js';
import { comparatorFor, type ValueComparator } from './value-compare.js';

export class RowOutput {
  private rowsToSkip: number;
  private rowsSent = 0;
  private readonly hiddenCount: number;
  /** DISTINCT ON: the key of the last row offered (copied: frames point into reused buffers). */
  private lastDistinctOnKey: (Buffer | null)[] | null = null;
  private distinctOnComparators: ValueComparator[] | null = null;

  constructor(
    private readonly spec: MergeSpec,
    private readonly columns: ResultColumns,
    private readonly emit: (frame: Buffer) => void,
  ) {
    this.rowsToSkip = spec.offset;
    this.hiddenCount = columns.hiddenCount;
  }

  /** Rows sent to the client. */
  get sent(): number {
    return this.rowsSent;
  }

  /** One row of the merged stream (a shard's DataRow): OFFSET skips it, LIMIT drops it, else it goes to the client. */
  offer(frame: Buffer): void {
    if (this.spec.distinctOn !== undefined && this.isSameDistinctOnKey(frame)) return;
    if (!this.takeRow()) return;
    this.emit(this.hiddenCount > 0 ? withoutTrailingColumns(frame, this.hiddenCount) : frame);
  }

  /** `offer` for a row the merge built (values of every column, hidden ones included). */
  offerValues(values: readonly (Buffer | null)[]): void {
    if (!this.takeRow()) return;
    this.emit(dataRow(this.hiddenCount > 0 ? values.slice(0, values.length - this.hiddenCount) : values));
  }

  /** LIMIT rows have been sent: later rows are dropped. */
  isLimitReached(): boolean {
    return this.spec.limit !== null && this.rowsSent >= this.spec.limit;
  }

  /** OFFSET skips the next merged row, LIMIT drops it; else it is counted as sent. */
  private takeRow(): boolean {
    if (this.rowsToSkip > 0) {
      this.rowsToSkip--;
      return false;
    }
    if (this.isLimitReached()) return false;
    this.rowsSent++;
    return true;
  }

  /** DISTINCT ON: is this row's key the one of the row before it (then it is not the first of its group)? */
  private isSameDistinctOnKey(frame: Buffer): boolean {
    const columns = this.spec.distinctOn as readonly number[];
    const row = readDataRow(frame);
    // Copies: frames point into buffers that are reused once the row is passed on.
    const values = columns.map((c) => (row[c] == null ? null : Buffer.from(row[c] as Buffer)));
    const previous = this.lastDistinctOnKey;
    this.lastDistinctOnKey = values;
    if (previous === null) return false;
    // Equal as PostgreSQL compares them (numeric 1.0 = 1.00), not just by bytes.
    if (this.distinctOnComparators === null) {
      const types = this.columns.columnTypes('DISTINCT ON');
      this.distinctOnComparators = columns.map((c) => comparatorFor(columnType(types, c)));
    }
    for (let i = 0; i < values.length; i++) {
      const a = values[i];
      const b = previous[i];
      if (a === null || b === null ? a !== b : this.distinctOnComparators[i](a, b) !== 0) return false;
    }
    return true;
  }
}

/** A DataRow without its last `count` columns (a copy). */
function withoutTrailingColumns(frame: Buffer, count: number): Buffer {
  const columns = frame.readInt16BE(5);
  const keep = columns - count;
  if (keep < 0) throw PgError.internal(`a row of ${columns} columns lacks the ${count} hidden ones`);
  let pos = 7;
  for (let i = 0; i < keep; i++) {
    const length = frame.readInt32BE(pos);
    pos += 4;
    if (length > 0) pos += length;
  }
  const out = Buffer.allocUnsafe(pos);
  frame.copy(out, 0, 0, pos);
  out.writeInt32BE(pos - 1, 1);
  out.writeInt16BE(keep, 5);
  return out;
}

function dataRow(values: readonly (Buffer | null)[]): Buffer {
  const w = new MessageWriter(64);
  w.int16(values.length);
  for (const v of values) {
    if (v === null) w.int32(-1);
    else w.int32(v.length).bytes(v);
  }
  return w.frame(Backend.DataRow);
}
