// Reading a shard key as it arrives (SQL literal text, text- or binary-format Bind parameter) into the value the
// sharding functions use, with PostgreSQL's input rules (int8in/int4in, uuid_in) and its SQLSTATEs for bad input.
// A value that does not fit the configured key type is an error, never a guess.

import { Buffer } from 'node:buffer';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import type { ShardKeyType } from './schema.js';

/** A parsed key: bigint for bigint/integer keys, bytes for text (UTF-8) and uuid (16 bytes) keys. */
export type KeyValue = bigint | Buffer;

/** How errors name the key, e.g. `orders.customer_id`, or `column customer_id` for column-only config. */
export interface KeyColumnRef {
  schema: string | null;
  table: string | null;
  column: string;
}

const INTEGER_RANGES = {
  bigint: { min: -(1n << 63n), max: (1n << 63n) - 1n },
  integer: { min: -(1n << 31n), max: (1n << 31n) - 1n },
} as const;

/** PostgreSQL 16+ integer input: decimal, 0x/0o/0b prefixes, single underscores between digits. */
const INTEGER_SYNTAX = [
  /^[0-9](?:_?[0-9])*$/,
  /^0[xX](?:_?[0-9a-fA-F])+$/,
  /^0[oO](?:_?[0-7])+$/,
  /^0[bB](?:_?[01])+$/,
];

/** C isspace() in the C locale, which int8in allows around the number. */
const C_SPACE = /^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g;

const UUID_LENGTH = 16;

export function describeKeyColumn(ref: KeyColumnRef): string {
  if (ref.table === null) return `column ${ref.column}`;
  return ref.schema === null ? `${ref.table}.${ref.column}` : `${ref.schema}.${ref.table}.${ref.column}`;
}

/** A key given as text: a SQL literal's value (quotes removed) or a text-format parameter. */
export function parseKeyText(keyType: ShardKeyType, text: string, ref: KeyColumnRef): KeyValue {
  switch (keyType) {
    case 'bigint':
    case 'integer':
      return parseInteger(keyType, text, ref);
    case 'text':
      return Buffer.from(text, 'utf8');
    case 'uuid':
      return parseUuidOrThrow(text, ref);
  }
}

/** A text-format Bind parameter (UTF-8 bytes); text keys keep their bytes as sent. */
export function parseKeyTextBytes(keyType: ShardKeyType, bytes: Buffer, ref: KeyColumnRef): KeyValue {
  return keyType === 'text' ? bytes : parseKeyText(keyType, bytes.toString('utf8'), ref);
}

/**
 * A binary-format Bind parameter: int8/int4/int2 big-endian (8, 4 or 2 bytes, whichever type the client bound)
 * for integer keys, 16 bytes for uuid, the UTF-8 bytes for text.
 */
export function decodeKeyBinary(keyType: ShardKeyType, bytes: Buffer, ref: KeyColumnRef): KeyValue {
  switch (keyType) {
    case 'bigint':
    case 'integer':
      return checkRange(keyType, decodeBinaryInteger(keyType, bytes, ref), ref);
    case 'text':
      return bytes;
    case 'uuid':
      if (bytes.length !== UUID_LENGTH) throw badBinary(keyType, `${UUID_LENGTH} bytes`, bytes.length, ref);
      return bytes;
  }
}

function decodeBinaryInteger(keyType: ShardKeyType, bytes: Buffer, ref: KeyColumnRef): bigint {
  if (bytes.length === 8) return bytes.readBigInt64BE(0);
  if (bytes.length === 4) return BigInt(bytes.readInt32BE(0));
  if (bytes.length === 2) return BigInt(bytes.readInt16BE(0));
  throw badBinary(keyType, '8, 4 or 2 bytes (int8, int4 or int2)', bytes.length, ref);
}

function parseInteger(keyType: 'bigint' | 'integer', text: string, ref: KeyColumnRef): bigint {
  const plain = plainDecimal(text);
  if (plain !== null) return checkRange(keyType, BigInt(plain), ref, text);
  const trimmed = text.replace(C_SPACE, '');
  const sign = trimmed.startsWith('-') ? -1n : 1n;
  const digits = trimmed.startsWith('-') || trimmed.startsWith('+') ? trimmed.slice(1) : trimmed;
  if (!INTEGER_SYNTAX.some((syntax) => syntax.test(digits))) throw invalidText(keyType, text, ref);
  return checkRange(keyType, sign * BigInt(digits.replace(/_/g, '')), ref, text);
}

/** Longest plain decimal read as a Number: 15 digits stay below 2^53, so every one is exact. */
const PLAIN_DIGITS = 15;

/**
 * The common case, on every routed request: at most 15 decimal digits after an optional '-', no spaces, '+' or
 * underscores — read with one loop instead of the regular expressions and string copies of parseInteger, as an exact
 * Number (measured in a profile of pgbench -S over 2 shards: the general path was ~2% of the proxy's CPU). Null: take
 * the general path (which also reports what is wrong). Not range-checked: an integer key's caller checks ±2^31.
 * `digits[start, end)`: a key's text (a literal's), or a text-format Bind value's bytes read in place (no string is
 * decoded from them) — the same characters either way, as ASCII digits are one byte and one UTF-16 unit.
 */
export function plainDecimal(digits: string | Uint8Array, start = 0, end = digits.length): number | null {
  const isText = typeof digits === 'string';
  const isNegative = end > start && (isText ? digits.charCodeAt(start) : digits[start]) === 0x2d;
  const first = isNegative ? start + 1 : start;
  if (end <= first || end - first > PLAIN_DIGITS) return null;
  let value = 0;
  for (let i = first; i < end; i++) {
    const digit = (isText ? digits.charCodeAt(i) : digits[i]) - 0x30;
    if (digit < 0 || digit > 9) return null;
    value = value * 10 + digit;
  }
  return isNegative ? -value : value;
}

function checkRange(keyType: 'bigint' | 'integer', value: bigint, ref: KeyColumnRef, text?: string): bigint {
  const { min, max } = INTEGER_RANGES[keyType];
  if (value < min || value > max) {
    const message = `value "${preview(text ?? String(value))}" is out of range for type ${keyType} (shard key ${describeKeyColumn(ref)})`;
    throw new PgError('ERROR', SqlState.NumericValueOutOfRange, message);
  }
  return value;
}

/**
 * uuid_in's syntax: 32 hex digits, optionally in braces, with an optional hyphen after any group of four
 * (so the canonical 8-4-4-4-12 form, upper case, and no hyphens at all are all accepted). Null when invalid.
 */
export function parseUuid(text: string): Buffer | null {
  let at = text.startsWith('{') ? 1 : 0;
  const hasBraces = at === 1;
  const bytes = Buffer.alloc(UUID_LENGTH);
  for (let i = 0; i < UUID_LENGTH; i++) {
    const pair = text.slice(at, at + 2);
    if (!/^[0-9a-fA-F]{2}$/.test(pair)) return null;
    bytes[i] = parseInt(pair, 16);
    at += 2;
    if (text[at] === '-' && i % 2 === 1 && i < UUID_LENGTH - 1) at++;
  }
  if (hasBraces) {
    if (text[at] !== '}') return null;
    at++;
  }
  return at === text.length ? bytes : null;
}

/** uuid_out's form: lower-case 8-4-4-4-12. */
export function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function parseUuidOrThrow(text: string, ref: KeyColumnRef): Buffer {
  const bytes = parseUuid(text);
  if (bytes === null) throw invalidText('uuid', text, ref);
  return bytes;
}

function invalidText(keyType: ShardKeyType, text: string, ref: KeyColumnRef): PgError {
  const message = `invalid input syntax for type ${keyType}: "${preview(text)}" (shard key ${describeKeyColumn(ref)})`;
  return new PgError('ERROR', SqlState.InvalidTextRepresentation, message);
}

function badBinary(keyType: ShardKeyType, expected: string, length: number, ref: KeyColumnRef): PgError {
  const message = `incorrect binary data format for shard key ${describeKeyColumn(ref)}: a ${keyType} key takes ${expected}, got ${length} bytes`;
  return new PgError('ERROR', SqlState.InvalidBinaryRepresentation, message);
}

/** Long values are cut in messages. */
function preview(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}
