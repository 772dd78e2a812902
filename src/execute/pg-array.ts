// One-dimensional PostgreSQL arrays as the shards send them (array_agg results) and as the merge writes them back:
// text format as array_out prints it (`{a,"b c",NULL}`: elements quoted when empty, when they read NULL or hold
// braces, commas, quotes, backslashes or white space; quotes and backslashes escaped), binary format as array_send
// writes it (dimensions, NULL flag, element type OID, length-prefixed elements). Arrays of more than one dimension
// (array_agg of arrays) are refused with 0A000. Text-format elements are their type's text output, unquoted.
import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import { Format, TypeOid } from './value-compare.js';

const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const EQUALS = 0x3d;
const NULL_TEXT = Buffer.from('NULL');

/** An array's elements (views into its bytes; null for SQL NULL) and, in binary format, its element type. */
export interface ArrayValue {
  readonly elements: (Buffer | null)[];
  /** From the binary header; 0 for text format (the column's array type tells it, see `elementTypeOf`). */
  readonly elementOid: number;
}

/** Array type OIDs (pg_type.typarray) of the built-in element types the merge can order or copy. */
const ELEMENT_OF_ARRAY: Readonly<Record<number, number>> = {
  1000: TypeOid.bool,
  1001: TypeOid.bytea,
  1002: TypeOid.char,
  1003: TypeOid.name,
  1016: TypeOid.int8,
  1005: TypeOid.int2,
  1007: TypeOid.int4,
  1009: TypeOid.text,
  1028: TypeOid.oid,
  1021: TypeOid.float4,
  1022: TypeOid.float8,
  1014: TypeOid.bpchar,
  1015: TypeOid.varchar,
  1182: TypeOid.date,
  1183: TypeOid.time,
  1115: TypeOid.timestamp,
  1185: TypeOid.timestamptz,
  1231: TypeOid.numeric,
  2951: TypeOid.uuid,
};

/** The element type of a built-in array type, or null. */
export function elementTypeOf(arrayOid: number): number | null {
  return ELEMENT_OF_ARRAY[arrayOid] ?? null;
}

export function readArray(value: Buffer, format: number): ArrayValue {
  return format === Format.Binary
    ? readBinaryArray(value)
    : { elements: readTextArray(value), elementOid: 0 };
}

function multiDimensional(): PgError {
  return PgError.featureNotSupported(
    'array_agg of arrays (a multi-dimensional result) cannot be merged across shards',
    'Aggregate scalar values, or route the query to one shard.',
  );
}

function malformed(what: string): PgError {
  return PgError.internal(`a shard returned a malformed array (${what})`);
}

/** array_out text of a one-dimensional array → its elements, unquoted. */
export function readTextArray(v: Buffer): (Buffer | null)[] {
  let i = 0;
  if (v[0] === 0x5b /* [ */) {
    // Dimension decoration (`[0:2]=`), printed when the lower bound is not 1.
    i = v.indexOf(EQUALS);
    if (i < 0) throw malformed('dimensions without "="');
    i++;
  }
  if (v[i] !== OPEN) throw malformed('no opening brace');
  i++;
  const out: (Buffer | null)[] = [];
  if (v[i] === CLOSE) return out;
  for (;;) {
    if (v[i] === OPEN) throw multiDimensional();
    if (v[i] === QUOTE) {
      const bytes: number[] = [];
      i++;
      while (i < v.length && v[i] !== QUOTE) {
        if (v[i] === BACKSLASH) i++;
        bytes.push(v[i++]);
      }
      if (i >= v.length) throw malformed('an unterminated quote');
      i++;
      out.push(Buffer.from(bytes));
    } else {
      const start = i;
      while (i < v.length && v[i] !== COMMA && v[i] !== CLOSE) i++;
      const token = v.subarray(start, i);
      out.push(token.equals(NULL_TEXT) ? null : token);
    }
    if (v[i] === COMMA) {
      i++;
      continue;
    }
    if (v[i] === CLOSE) return out;
    throw malformed('no comma or closing brace after an element');
  }
}

/** array_send bytes → elements (views) and element type. */
export function readBinaryArray(v: Buffer): ArrayValue {
  const dimensions = v.readInt32BE(0);
  const elementOid = v.readUInt32BE(8);
  if (dimensions === 0) return { elements: [], elementOid };
  if (dimensions !== 1) throw multiDimensional();
  const count = v.readInt32BE(12);
  const elements: (Buffer | null)[] = [];
  let pos = 20;
  for (let k = 0; k < count; k++) {
    const length = v.readInt32BE(pos);
    pos += 4;
    if (length < 0) {
      elements.push(null);
      continue;
    }
    elements.push(v.subarray(pos, pos + length));
    pos += length;
  }
  return { elements, elementOid };
}

/** Elements (their type's text output) → array_out text. */
export function writeTextArray(elements: readonly (Buffer | null)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([OPEN])];
  elements.forEach((e, k) => {
    if (k > 0) parts.push(Buffer.from([COMMA]));
    if (e === null) parts.push(NULL_TEXT);
    else parts.push(needsQuotes(e) ? quoted(e) : e);
  });
  parts.push(Buffer.from([CLOSE]));
  return Buffer.concat(parts);
}

/** array_out's rule: quote empty strings, "NULL" in any case, and text holding braces, commas, quotes, backslashes or white space. */
function needsQuotes(e: Buffer): boolean {
  if (e.length === 0) return true;
  if (e.length === 4 && e.toString('latin1').toUpperCase() === 'NULL') return true;
  for (const c of e) {
    if (c === OPEN || c === CLOSE || c === COMMA || c === QUOTE || c === BACKSLASH) return true;
    if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) return true; // array_isspace: space, \t \n \v \f \r
  }
  return false;
}

function quoted(e: Buffer): Buffer {
  const bytes: number[] = [QUOTE];
  for (const c of e) {
    if (c === QUOTE || c === BACKSLASH) bytes.push(BACKSLASH);
    bytes.push(c);
  }
  bytes.push(QUOTE);
  return Buffer.from(bytes);
}

/** Elements (binary) of `elementOid` → array_send bytes of a one-dimensional array with lower bound 1. */
export function writeBinaryArray(elements: readonly (Buffer | null)[], elementOid: number): Buffer {
  let size = 20;
  for (const e of elements) size += 4 + (e?.length ?? 0);
  const out = Buffer.allocUnsafe(size);
  out.writeInt32BE(1, 0);
  out.writeInt32BE(elements.some((e) => e === null) ? 1 : 0, 4);
  out.writeUInt32BE(elementOid, 8);
  out.writeInt32BE(elements.length, 12);
  out.writeInt32BE(1, 16);
  let pos = 20;
  for (const e of elements) {
    if (e === null) {
      out.writeInt32BE(-1, pos);
      pos += 4;
      continue;
    }
    out.writeInt32BE(e.length, pos);
    e.copy(out, pos + 4);
    pos += 4 + e.length;
  }
  return out;
}
