// Admin console answers as ordinary PostgreSQL result sets: RowDescription with real type OIDs (so psql aligns
// numbers right and drivers parse them), DataRows in text format, CommandComplete.
import { Buffer } from 'node:buffer';
import { Backend } from '../protocol/codes.js';
import { commandComplete } from '../protocol/messages.js';
import { MessageWriter } from '../protocol/writer.js';

/** Column types the console uses, with their pg_type OID and length. */
const TYPES = {
  int8: { oid: 20, size: 8 },
  numeric: { oid: 1700, size: -1 },
  text: { oid: 25, size: -1 },
  bool: { oid: 16, size: 1 },
} as const;

export type ColumnType = keyof typeof TYPES;

export interface Column {
  name: string;
  type: ColumnType;
}

export type Cell = string | number | boolean | null;

export interface ResultSet {
  columns: readonly Column[];
  rows: readonly (readonly Cell[])[];
}

/** Shorthand for column lists: `cols({ database: 'text', shard: 'int8' })`. */
export function cols(spec: Record<string, ColumnType>): Column[] {
  return Object.entries(spec).map(([name, type]) => ({ name, type }));
}

/** RowDescription + DataRows + CommandComplete (`SHOW` by default, as PgBouncer). */
export function encodeResultSet(result: ResultSet, tag = 'SHOW'): Buffer {
  const out: Buffer[] = [rowDescription(result.columns)];
  for (const row of result.rows) out.push(dataRow(result.columns, row));
  out.push(commandComplete(tag));
  return Buffer.concat(out);
}

function rowDescription(columns: readonly Column[]): Buffer {
  const w = new MessageWriter(64 + columns.length * 32).int16(columns.length);
  for (const c of columns) {
    const t = TYPES[c.type];
    w.cstring(c.name).int32(0).int16(0).int32(t.oid).int16(t.size).int32(-1).int16(0);
  }
  return w.frame(Backend.RowDescription);
}

function dataRow(columns: readonly Column[], row: readonly Cell[]): Buffer {
  const w = new MessageWriter(128).int16(columns.length);
  columns.forEach((c, i) => {
    const text = cellText(c.type, row[i] ?? null);
    if (text === null) {
      w.int32(-1);
      return;
    }
    const bytes = Buffer.from(text, 'utf8');
    w.int32(bytes.length).bytes(bytes);
  });
  return w.frame(Backend.DataRow);
}

/** The text-format value of a cell; numbers are rounded to what the column type holds. */
export function cellText(type: ColumnType, value: Cell): string | null {
  if (value === null) return null;
  switch (type) {
    case 'int8':
      return typeof value === 'number' ? String(Math.round(value)) : String(value);
    case 'numeric':
      return typeof value === 'number' ? String(Math.round(value * 1000) / 1000) : String(value);
    case 'bool':
      return value === true || value === 't' ? 't' : 'f';
    case 'text':
      return String(value);
  }
}
