// What the reply merger does with one statement's results from several shards: ORDER BY keys for a k-way merge,
// LIMIT/OFFSET over the merged rows, aggregates to combine (avg from a sum and a hidden count), HAVING to apply to
// merged groups, and hidden columns to drop. Built by the router; read by ReplyMerger. Columns are numbered as the
// shards return them: the client's columns, then `hiddenCount` hidden ones.
import type { HavingFilter } from './having-filter.js';
import type { AggregateFn, ColumnType } from './value-compare.js';

export type { AggregateFn, ColumnType } from './value-compare.js';
export type { HavingFilter, HavingValue } from './having-filter.js';

/**
 * How a column combines across shards: count/sum/min/max, avg (from a sum column and a count column), DISTINCT
 * count/sum/avg from distinct values, string_agg/array_agg from ordered element arrays, or 'whole' (the group lies on
 * one shard: its value is taken as it is).
 */
export type MergeFn = AggregateFn | 'avg' | 'whole' | 'string_agg' | 'array_agg';

export interface SortKey {
  /**
   * 0-based output column. Negative: counted from the end of the row (-1 is the last column) — a hidden column of a
   * `SELECT *`, whose position is known only from the rows.
   */
  column: number;
  isDescending: boolean;
  /** PostgreSQL's default: NULLS LAST for ASC, NULLS FIRST for DESC (see `sortKey`). Not flipped by DESC. */
  isNullsFirst: boolean;
  /** `COLLATE "C"` on the sort expression: text sorts by bytes even where the database's collation does not. */
  isByteCollated?: boolean;
  /** Another collation a COLLATE clause names on the sort expression (text is then ordered in that one). */
  collation?: string;
}

/** Where an ordered aggregate's hidden arrays are in the shards' rows (ordered-aggregate.ts). */
export interface OrderedColumns {
  /** 0-based column of `array_agg(x ORDER BY …)`. */
  readonly valuesColumn: number;
  /** The ORDER BY inside the call; `column` is the 0-based column of that key's array. */
  readonly keys: readonly SortKey[];
  /** string_agg's delimiter (null: NULL, i.e. none). */
  readonly delimiter?: Buffer | null;
}

export interface AggregateColumn {
  /** 0-based output column. */
  column: number;
  fn: MergeFn;
  /** avg: the 0-based column holding count(x) (`column` holds sum(x) on the shards, the average once merged). */
  countColumn?: number;
  /**
   * count/sum/avg(DISTINCT x) merged from values: the 0-based hidden column holding one distinct x per row (the shards
   * group by it); `column` holds a placeholder of the result's type on the shards, the aggregate once merged.
   */
  distinctColumn?: number;
  /** string_agg/array_agg with ORDER BY inside: where their hidden arrays are (`column` holds a placeholder). */
  ordered?: OrderedColumns;
}

export interface MergeSpec {
  /** Empty: rows stream through in arrival order. Otherwise each shard's rows arrive sorted by these keys. */
  orderBy: SortKey[];
  /** Rows to return after `offset`; null for no LIMIT. The shards themselves must return offset + limit rows. */
  limit: number | null;
  offset: number;
  /**
   * Non-null: each shard returns ONE row (no GROUP BY); the listed columns are combined, every other column is
   * taken from the first shard's row. `orderBy` is then ignored.
   */
  aggregates: AggregateColumn[] | null;
  /**
   * The result's column types and formats, when the caller knows them better than the reply does: a batch with no
   * Describe has no RowDescription, and a Describe of the statement (not the portal) reports format 0 for every
   * column whatever Bind asked for. When absent the merger uses the first RowDescription it sees; ordering or
   * aggregating with neither fails the statement with 0A000 instead of guessing.
   */
  columnTypes?: readonly ColumnType[];
  /**
   * A write to a table copied to every shard (omnisharded): each shard must report the same command tag, which the
   * client gets once, and RETURNING rows come from the first shard only.
   */
  isReplicated?: boolean;
  /**
   * Every shard runs the same statement for one logical effect (DDL, SET and other session-level statements,
   * replicated writes): NoticeResponse / ParameterStatus come from the first shard only, not once per shard.
   */
  isBroadcast?: boolean;
  /**
   * DISTINCT ON across shards: 0-based columns of its expressions, which lead `orderBy`. Of each run of rows with equal
   * values there (NULLs equal), only the first is passed on — before OFFSET and LIMIT count it.
   */
  distinctOn?: readonly number[];
  /** COPY … TO with HEADER (text/CSV): each shard's first data line is the same header, passed on once. */
  copyOutHeader?: boolean;
  /**
   * The database's collation when it does not sort text by bytes (en_US.UTF-8, an ICU locale…); null or absent: byte
   * order ("C", "POSIX", "C.UTF-8"). The merger cannot reproduce other collations, so it refuses (0A000) to order or
   * min/max text across shards under one, unless the sort says `COLLATE "C"`.
   */
  textCollation?: string | null;
  /**
   * A multi-row INSERT split by shard: for each original VALUES row, the (0-based, local) shard index it went to.
   * RETURNING rows are emitted in that order, as one server would have returned them.
   */
  rowShards?: readonly number[];
  /**
   * GROUP BY: the 0-based output columns that form the group key. Each shard returns its partial groups; rows of one
   * group are combined (`aggregates`), then `orderBy`, `offset` and `limit` apply to the merged groups.
   */
  groupBy?: readonly number[];
  /**
   * Columns the shards return after the client's (avg's counts, ORDER BY and HAVING expressions not in the select
   * list): dropped from RowDescription and DataRows. avg columns are described to the client as avg's result type.
   */
  hiddenCount?: number;
  /** HAVING, applied to merged groups (or to the one merged row of aggregates without GROUP BY). */
  having?: HavingFilter;
  /**
   * With `groupBy` empty: the client's query has no GROUP BY (the shards group only by DISTINCT values), so its one
   * row is due even when no shard returns any (count 0, the rest NULL).
   */
  isGrandTotal?: boolean;
}

/** No ordering, no limit, no aggregates: rows pass through, counts are summed. */
export const PASS_THROUGH_SPEC: Readonly<MergeSpec> = Object.freeze({
  orderBy: [],
  limit: null,
  offset: 0,
  aggregates: null,
});

/** Session-level statements and DDL: the same on every shard, reported once. */
export const BROADCAST_SPEC: MergeSpec = Object.freeze({ ...PASS_THROUGH_SPEC, isBroadcast: true });

/** A sort key with PostgreSQL's NULLS default for the direction unless given. */
export function sortKey(column: number, isDescending = false, isNullsFirst = isDescending): SortKey {
  return { column, isDescending, isNullsFirst };
}

/**
 * Specs already checked by mergeSpecProblem and frozen (with all they hold), so no request checks them again: kept
 * targets' specs (frontend/plan-targets.ts). The merger (reply-merger.ts) looks here first.
 */
export const CHECKED_SPECS = new WeakSet<MergeSpec>();

/** A frozen `spec` (frozen through and through: it never changes) is checked, and remembered when it passes. */
export function checkOnce(spec: MergeSpec): boolean {
  if (mergeSpecProblem(spec) !== null) return false;
  CHECKED_SPECS.add(spec);
  return true;
}

/** A reason the spec cannot be used, or null. A bad spec is a router bug, not a client error. */
export function mergeSpecProblem(spec: MergeSpec): string | null {
  const isColumn = (n: number): boolean => Number.isInteger(n) && n >= 0;
  if (spec.limit !== null && !(Number.isSafeInteger(spec.limit) && spec.limit >= 0)) {
    return `limit must be a non-negative integer or null, got ${spec.limit}`;
  }
  if (!(Number.isSafeInteger(spec.offset) && spec.offset >= 0)) {
    return `offset must be a non-negative integer, got ${spec.offset}`;
  }
  const hidden = spec.hiddenCount ?? 0;
  if (!(Number.isSafeInteger(hidden) && hidden >= 0))
    return `hidden column count must be >= 0, got ${hidden}`;
  for (const key of spec.orderBy) {
    const isFromEnd = Number.isInteger(key.column) && key.column < 0 && -key.column <= hidden;
    if (!isColumn(key.column) && !isFromEnd) return `bad ORDER BY column ${key.column}`;
  }
  for (const agg of spec.aggregates ?? []) {
    if (!isColumn(agg.column)) return `bad aggregate column ${agg.column}`;
    const hasCount = agg.countColumn !== undefined && isColumn(agg.countColumn);
    const hasValues = agg.distinctColumn !== undefined;
    if (hasValues && !(isColumn(agg.distinctColumn as number) && ['count', 'sum', 'avg'].includes(agg.fn)))
      return `bad DISTINCT values column (aggregate column ${agg.column})`;
    if (agg.fn === 'avg' && hasCount === hasValues)
      return `avg needs a count column or a DISTINCT values column (aggregate column ${agg.column})`;
    if (agg.fn !== 'avg' && hasCount) return `only avg has a count column (aggregate column ${agg.column})`;
    const isOrdered = agg.fn === 'string_agg' || agg.fn === 'array_agg';
    if (isOrdered !== (agg.ordered !== undefined))
      return `string_agg/array_agg need their ordered arrays (aggregate column ${agg.column})`;
    if (
      agg.ordered !== undefined &&
      ![agg.ordered.valuesColumn, ...agg.ordered.keys.map((k) => k.column)].every(isColumn)
    )
      return `bad ordered array column (aggregate column ${agg.column})`;
  }
  if (spec.isGrandTotal === true && (spec.groupBy === undefined || spec.groupBy.length > 0))
    return 'a grand total has an empty GROUP BY';
  return null;
}
