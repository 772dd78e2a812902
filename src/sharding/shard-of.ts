// Key → shard for one sharded column: parse the key as it arrives (SQL literal, text or binary Bind parameter,
// or NULL), then apply the column's ShardFunction (PostgreSQL hash, or a list/range mapping). Bad keys and keys no
// mapping takes are PgErrors, never a silent pick of some shard.

import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { hashShard, hashShardSafeInteger } from './hash.js';
import {
  decodeKeyBinary,
  describeKeyColumn,
  formatUuid,
  parseKeyText,
  parseKeyTextBytes,
  plainDecimal,
  type KeyValue,
} from './key-value.js';
import { mappedShard } from './mapping.js';
import type { ShardedColumn } from './schema.js';

/** Bind parameter format codes: 0 = text, 1 = binary. */
export type ParameterFormat = 0 | 1;

/** The shard for a key written in SQL: the constant's text without quotes, e.g. `123` or `a0ee...` or `abc`. */
export function shardForLiteral(column: ShardedColumn, shardCount: number, literal: string): number {
  if (isHashedInteger(column)) {
    const shard = plainIntegerShard(column, shardCount, plainDecimal(literal));
    if (shard !== null) return shard;
  }
  return shardForKey(column, shardCount, parseKeyText(column.keyType, literal, column));
}

/** An integer or bigint key hashed as PostgreSQL does: the keys plainIntegerShard can place without a BigInt. */
function isHashedInteger(column: ShardedColumn): boolean {
  return column.fn.kind === 'hash' && (column.keyType === 'integer' || column.keyType === 'bigint');
}

/** int4's range: an integer key outside it takes the general path, which reports it (22003). */
const INT4_MIN = -0x8000_0000;
const INT4_MAX = 0x7fff_ffff;

/**
 * The shard of a plain decimal key (key-value.ts plainDecimal: ≤ 15 digits, exact as a Number) of a hashed integer
 * or bigint column, hashed without a BigInt (nearly every routed request: `WHERE id = 42`, `$1` bound to '42'). Null:
 * not plain, or out of an integer column's range — the general path parses it, and reports what is wrong.
 */
function plainIntegerShard(column: ShardedColumn, shardCount: number, value: number | null): number | null {
  if (value === null) return null;
  if (column.keyType === 'integer' && (value < INT4_MIN || value > INT4_MAX)) return null;
  return hashShardSafeInteger(value, shardCount);
}

/** The shard for a Bind parameter value (null = SQL NULL) in text or binary format. */
export function shardForParameter(
  column: ShardedColumn,
  shardCount: number,
  value: Buffer | null,
  format: ParameterFormat,
): number {
  if (value === null) return shardForNull(column, shardCount);
  return shardForBindValue(column, shardCount, value, 0, value.length, format);
}

/**
 * shardForParameter of the Bind value `frame[start, end)` (start -1: SQL NULL; protocol/bind.ts bindValueAt locates
 * it), a plain decimal integer key read in place; anything else through a view of its bytes.
 */
export function shardForBindValue(
  column: ShardedColumn,
  shardCount: number,
  frame: Buffer,
  start: number,
  end: number,
  format: ParameterFormat,
): number {
  if (start < 0) return shardForNull(column, shardCount);
  if (format === 0 && isHashedInteger(column)) {
    const shard = plainIntegerShard(column, shardCount, plainDecimal(frame, start, end));
    if (shard !== null) return shard;
  }
  const value = start === 0 && end === frame.length ? frame : frame.subarray(start, end);
  const key =
    format === 1
      ? decodeKeyBinary(column.keyType, value, column)
      : parseKeyTextBytes(column.keyType, value, column);
  return shardForKey(column, shardCount, key);
}

/**
 * The shard for a parsed key. A key no list/range entry takes (and no default mapping) is refused with
 * 23514 check_violation: PostgreSQL raises the same for a row no LIST/RANGE partition accepts
 * ("no partition of relation ... found for row").
 */
export function shardForKey(column: ShardedColumn, shardCount: number, key: KeyValue): number {
  if (column.fn.kind === 'hash') return hashShard(column.keyType, key, shardCount);
  const shard = mappedShard(column.fn, column.keyType, key);
  if (shard === null) throw noMappingError(column, describeKey(column, key));
  return shard;
}

/**
 * Where PostgreSQL puts a NULL key: hash partitioning skips NULL columns, so the row hash is 0 and the remainder 0
 * (shard 0); list/range mappings send it to the default mapping when there is one, and refuse it otherwise.
 */
export function shardForNull(column: ShardedColumn, shardCount: number): number {
  if (shardCount < 1) throw new RangeError(`shard count must be at least 1, got ${shardCount}`);
  if (column.fn.kind === 'hash') return 0;
  if (column.fn.defaultShard !== null) return column.fn.defaultShard;
  throw noMappingError(column, 'NULL');
}

function noMappingError(column: ShardedColumn, key: string): PgError {
  return new PgError(
    'ERROR',
    SqlState.CheckViolation,
    `no ${column.fn.kind} mapping of shard key ${describeKeyColumn(column)} takes the key ${key}`,
    undefined,
    'Add the value to a [[sharded_mappings]] entry in pgdog.toml, or add a kind = "default" mapping.',
  );
}

function describeKey(column: ShardedColumn, key: KeyValue): string {
  if (typeof key === 'bigint') return key.toString();
  if (column.keyType === 'uuid') return formatUuid(key);
  const text = key.toString('utf8');
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}
