// The list/range/default rules of one sharded column (PgDog's [[sharded_mappings]] and [[sharded_tables.mapping]]):
// reading one rule with values typed by the column's data_type, then the per-column checks (one kind, one default,
// no value twice, no overlapping ranges). Used by config/sharding.ts.

import { formatUuid, parseUuid } from '../sharding/key-value.js';
import { compareKeys, mappingValue } from '../sharding/mapping.js';
import type { ShardKeyType } from '../sharding/schema.js';
import { ConfigError } from './config-error.js';
import { SHARDED_MAPPING_KINDS } from './defaults.js';
import { describeValue, type SectionReader } from './toml-values.js';
import type {
  ShardedDataType,
  ShardedMappingConfig,
  ShardedMappingKind,
  ShardedTableConfig,
  ShardKeyLiteral,
} from './types.js';

/** Which table a rule is for (`name` null = the column-only entry). */
export interface TableRef {
  database: string;
  column: string;
  name: string | null;
  schema: string | null;
}

const SHARD_RULE = { min: 0, max: 65_535, expected: 'an integer shard number between 0 and 65535' };
const INTEGER_BOUNDS = {
  bigint: {
    min: -(1n << 63n),
    max: (1n << 63n) - 1n,
    expected: 'an integer between -2^63 and 2^63-1 (bigint)',
  },
  integer: {
    min: -(1n << 31n),
    max: (1n << 31n) - 1n,
    expected: 'an integer between -2^31 and 2^31-1 (integer)',
  },
} as const;

/**
 * One rule. `kind` may be left out in the nested form: values → list, start/end → range, none → default
 * (as PgDog documents); [[sharded_mappings]] require it, as PgDog does.
 */
export function readRule(
  r: SectionReader,
  isKindRequired: boolean,
  table: ShardedTableConfig,
  shardCount: number,
): ShardedMappingConfig {
  const kind = readKind(r, isKindRequired);
  const literal = (key: string): ShardKeyLiteral | null =>
    r.has(key) ? readLiteral(r, r.keyPath(key), r.raw(key), table.dataType) : null;
  const rule: ShardedMappingConfig = {
    kind,
    values: kind === 'list' ? readValues(r, table.dataType) : [],
    start: literal('start'),
    end: literal('end'),
    shard: readShard(r, table.database, shardCount),
    source: r.path,
  };
  checkRangeOrder(r, table.dataType, rule);
  return rule;
}

function readKind(r: SectionReader, isKindRequired: boolean): ShardedMappingKind {
  const written = r.oneOf('kind', SHARDED_MAPPING_KINDS);
  const hasRange = r.has('start') || r.has('end');
  if (written === undefined && isKindRequired) throw r.error('kind', 'missing', oneOf(SHARDED_MAPPING_KINDS));
  if (written === undefined && r.has('values') && hasRange) {
    throw r.error(
      'values',
      'set together with start/end',
      'values (a list mapping) or start/end (a range mapping)',
    );
  }
  const kind = written ?? (r.has('values') ? 'list' : hasRange ? 'range' : 'default');
  if (kind !== 'list' && r.has('values')) throw r.error('values', `not allowed in a ${kind} mapping`, null);
  if (kind !== 'range' && hasRange) {
    throw r.error(r.has('start') ? 'start' : 'end', `not allowed in a ${kind} mapping`, null);
  }
  if (kind === 'list' && !r.has('values')) throw r.error('values', 'missing', 'a list of key values');
  if (kind === 'range' && !hasRange) throw r.error('start', 'missing', 'start and/or end of the range');
  return kind;
}

function readValues(r: SectionReader, dataType: ShardedDataType): ShardKeyLiteral[] {
  const raw = r.raw('values');
  const expected = `a non-empty array of ${dataType} values`;
  if (!Array.isArray(raw)) throw r.error('values', `got ${describeValue(raw, false)}`, expected);
  if (raw.length === 0) throw r.error('values', 'empty', expected);
  return raw.map((value: unknown, index) =>
    readLiteral(r, `${r.keyPath('values')}[${index}]`, value, dataType),
  );
}

/** A list value or range bound of the column's type. */
function readLiteral(
  r: SectionReader,
  keyPath: string,
  value: unknown,
  dataType: ShardedDataType,
): ShardKeyLiteral {
  if (dataType === 'bigint' || dataType === 'integer') {
    const bounds = INTEGER_BOUNDS[dataType];
    if (typeof value !== 'bigint')
      throw r.errorAt(keyPath, `got ${describeValue(value, false)}`, bounds.expected);
    if (value < bounds.min || value > bounds.max)
      throw r.errorAt(keyPath, `${value} is out of range`, bounds.expected);
    return value;
  }
  const expected = describeDataType(dataType);
  if (typeof value !== 'string') throw r.errorAt(keyPath, `got ${describeValue(value, false)}`, expected);
  if (dataType !== 'uuid') return value;
  const bytes = parseUuid(value);
  if (bytes === null) throw r.errorAt(keyPath, `${JSON.stringify(value)} is not a uuid`, expected);
  return formatUuid(bytes);
}

function readShard(r: SectionReader, database: string, shardCount: number): number {
  const shard = r.integer('shard', SHARD_RULE);
  const expected = `a shard of database ${JSON.stringify(database)}: 0 to ${shardCount - 1}`;
  if (shard === undefined) throw r.error('shard', 'missing', expected);
  if (shard >= shardCount) {
    throw r.error(
      'shard',
      `shard ${shard} does not exist (database ${JSON.stringify(database)} has ${shardCount})`,
      expected,
    );
  }
  return shard;
}

function checkRangeOrder(r: SectionReader, dataType: ShardedDataType, rule: ShardedMappingConfig): void {
  if (rule.start === null || rule.end === null) return;
  if (compareLiterals(dataType, rule.start, rule.end) >= 0) {
    throw r.error(
      'end',
      `${String(rule.end)} is not above start (${String(rule.start)})`,
      'end > start (end is exclusive)',
    );
  }
}

/** Per column: one kind of mapping (list or range), at most one default, no value twice, no overlapping ranges. */
export function checkRules(file: string, table: ShardedTableConfig): void {
  const rules = table.mappings;
  const list = rules.find((rule) => rule.kind === 'list');
  const range = rules.find((rule) => rule.kind === 'range');
  if (list !== undefined && range !== undefined) {
    const [first, second] = rules.indexOf(list) < rules.indexOf(range) ? [list, range] : [range, list];
    const problem = `${second.kind} mapping for ${describeTable(table)}, which already has a ${first.kind} mapping (${first.source})`;
    throw new ConfigError(file, second.source, problem, 'list or range mappings for one column, not both');
  }
  const defaults = rules.filter((rule) => rule.kind === 'default');
  if (defaults.length > 1) {
    const problem = `second default mapping for ${describeTable(table)} (the first is ${defaults[0].source})`;
    throw new ConfigError(file, defaults[1].source, problem, 'at most one default mapping per column');
  }
  checkDuplicateValues(file, table);
  checkOverlaps(file, table);
}

function checkDuplicateValues(file: string, table: ShardedTableConfig): void {
  const seen = new Map<string, string>();
  for (const rule of table.mappings) {
    rule.values.forEach((value, index) => {
      const key = String(value);
      const first = seen.get(key);
      if (first !== undefined) {
        const problem = `${formatLiteral(value)} is already mapped by ${first}`;
        throw new ConfigError(
          file,
          `${rule.source}.values[${index}]`,
          problem,
          'each value in one list mapping only',
        );
      }
      seen.set(key, rule.source);
    });
  }
}

function checkOverlaps(file: string, table: ShardedTableConfig): void {
  // Sorted by start, unbounded first; then each range must end at or before the next one starts.
  const compareStarts = (a: ShardKeyLiteral | null, b: ShardKeyLiteral | null): number =>
    a === null ? (b === null ? 0 : -1) : b === null ? 1 : compareLiterals(table.dataType, a, b);
  const ranges = table.mappings
    .filter((rule) => rule.kind === 'range')
    .sort((a, b) => compareStarts(a.start, b.start));
  for (let i = 1; i < ranges.length; i++) {
    const [previous, next] = [ranges[i - 1], ranges[i]];
    const isOverlap =
      previous.end === null ||
      next.start === null ||
      compareLiterals(table.dataType, previous.end, next.start) > 0;
    if (isOverlap) {
      const problem = `range ${describeRange(next)} overlaps ${describeRange(previous)} of ${previous.source}`;
      throw new ConfigError(
        file,
        next.source,
        problem,
        'ranges that do not overlap (start inclusive, end exclusive)',
      );
    }
  }
}

function compareLiterals(dataType: ShardedDataType, a: ShardKeyLiteral, b: ShardKeyLiteral): number {
  const keyType = keyTypeOf(dataType);
  return compareKeys(mappingValue(keyType, String(a)), mappingValue(keyType, String(b)));
}

/** The key type the sharding functions use for a data_type. */
export function keyTypeOf(dataType: ShardedDataType): ShardKeyType {
  return dataType === 'varchar' ? 'text' : dataType;
}

export function describeTable(table: TableRef): string {
  const where =
    table.name === null ? 'any table' : table.schema === null ? table.name : `${table.schema}.${table.name}`;
  return `column ${JSON.stringify(table.column)} of ${where} in database ${JSON.stringify(table.database)}`;
}

/** One text-typed value, for "expected" (integer types have their own bounds text). */
function describeDataType(dataType: ShardedDataType): string {
  return dataType === 'uuid' ? 'a uuid string, e.g. "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"' : 'a string';
}

function describeRange(rule: ShardedMappingConfig): string {
  const bound = (value: ShardKeyLiteral | null): string =>
    value === null ? 'unbounded' : formatLiteral(value);
  return `[${bound(rule.start)}, ${bound(rule.end)})`;
}

function formatLiteral(value: ShardKeyLiteral): string {
  return typeof value === 'bigint' ? value.toString() : JSON.stringify(value);
}

export function oneOf(allowed: readonly string[]): string {
  return `one of ${allowed.map((value) => JSON.stringify(value)).join(', ')}`;
}
