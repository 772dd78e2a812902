// List and range mappings (PgDog's [[sharded_mappings]] / [[sharded_tables.mapping]]): which shard an explicit
// mapping gives a parsed key. Like PARTITION BY LIST / RANGE: list values compare by equality (integers
// numerically, uuids by their 16 bytes, text byte for byte), ranges are start <= key < end with integers compared
// as numbers and text/uuid in byte order (PostgreSQL's order under the C collation). Each mapping is compiled once
// into a lookup structure, cached per ShardFunction object.

import { Buffer } from 'node:buffer';
import { parseUuid, type KeyValue } from './key-value.js';
import type { ShardFunction, ShardKeyType } from './schema.js';

export type MappingFunction = Exclude<ShardFunction, { kind: 'hash' }>;

interface CompiledList {
  kind: 'list';
  shardByKey: Map<string, number>;
  defaultShard: number | null;
}

interface CompiledRange {
  kind: 'range';
  entries: { start: KeyValue | null; end: KeyValue | null; shard: number }[];
  defaultShard: number | null;
}

type Compiled = CompiledList | CompiledRange;

const compiledCache = new WeakMap<MappingFunction, Compiled>();

/** The shard the mapping gives `key`, or null when no entry (and no default) takes it. */
export function mappedShard(fn: MappingFunction, keyType: ShardKeyType, key: KeyValue): number | null {
  const compiled = compiledFor(fn, keyType);
  const shard =
    compiled.kind === 'list' ? compiled.shardByKey.get(lookupKey(key)) : rangeShard(compiled, key);
  return shard ?? compiled.defaultShard;
}

function compiledFor(fn: MappingFunction, keyType: ShardKeyType): Compiled {
  let compiled = compiledCache.get(fn);
  if (compiled === undefined) {
    compiled = compile(fn, keyType);
    compiledCache.set(fn, compiled);
  }
  return compiled;
}

function compile(fn: MappingFunction, keyType: ShardKeyType): Compiled {
  if (fn.kind === 'list') {
    const shardByKey = new Map<string, number>();
    for (const entry of fn.entries) {
      for (const value of entry.values) shardByKey.set(lookupKey(mappingValue(keyType, value)), entry.shard);
    }
    return { kind: 'list', shardByKey, defaultShard: fn.defaultShard };
  }
  const entries = fn.entries.map((entry) => ({
    start: entry.start === null ? null : mappingValue(keyType, entry.start),
    end: entry.end === null ? null : mappingValue(keyType, entry.end),
    shard: entry.shard,
  }));
  return { kind: 'range', entries, defaultShard: fn.defaultShard };
}

function rangeShard(compiled: CompiledRange, key: KeyValue): number | undefined {
  const entry = compiled.entries.find(
    ({ start, end }) =>
      (start === null || compareKeys(start, key) <= 0) && (end === null || compareKeys(key, end) < 0),
  );
  return entry?.shard;
}

/** A normalized mapping value (schema.ts ShardFunction text) as a key of this type. */
export function mappingValue(keyType: ShardKeyType, value: string): KeyValue {
  switch (keyType) {
    case 'bigint':
    case 'integer':
      return BigInt(value);
    case 'text':
      return Buffer.from(value, 'utf8');
    case 'uuid': {
      const bytes = parseUuid(value);
      if (bytes === null) throw new TypeError(`not a uuid in a sharding mapping: ${value}`);
      return bytes;
    }
  }
}

/** Integers numerically, bytes in unsigned byte order (memcmp, as PostgreSQL's C collation and uuid_cmp). */
export function compareKeys(a: KeyValue, b: KeyValue): number {
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return Buffer.compare(a, b);
  throw new TypeError('cannot compare an integer key with a text or uuid key');
}

function lookupKey(key: KeyValue): string {
  return typeof key === 'bigint' ? key.toString() : key.toString('hex');
}
