// What the reply merger does with one statement's results from several shards: ORDER BY keys for a k-way merge,
// LIMIT/OFFSET over the merged rows, and aggregates to combine. Built by the router; read by ReplyMerger.
import type { AggregateFn, ColumnType } from './value-compare.js';

export type { AggregateFn, ColumnType } from './value-compare.js';

export interface SortKey {
  /** 0-based output column. */
  column: number;
  isDescending: boolean;
  /** PostgreSQL's default: NULLS LAST for ASC, NULLS FIRST for DESC (see `sortKey`). Not flipped by DESC. */
  isNullsFirst: boolean;
}

export interface AggregateColumn {
  /** 0-based output column. */
  column: number;
  fn: AggregateFn;
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
   * A multi-row INSERT split by shard: for each original VALUES row, the (0-based, local) shard index it went to.
   * RETURNING rows are emitted in that order, as one server would have returned them.
   */
  rowShards?: readonly number[];
  /**
   * GROUP BY: the 0-based output columns that form the group key. Each shard returns its partial groups; rows of one
   * group are combined (`aggregates`), then `orderBy`, `offset` and `limit` apply to the merged groups.
   */
  groupBy?: readonly number[];
}

/** No ordering, no limit, no aggregates: rows pass through, counts are summed. */
export const PASS_THROUGH_SPEC: Readonly<MergeSpec> = Object.freeze({
  orderBy: [],
  limit: null,
  offset: 0,
  aggregates: null,
});

/** A sort key with PostgreSQL's NULLS default for the direction unless given. */
export function sortKey(column: number, isDescending = false, isNullsFirst = isDescending): SortKey {
  return { column, isDescending, isNullsFirst };
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
  for (const key of spec.orderBy) if (!isColumn(key.column)) return `bad ORDER BY column ${key.column}`;
  for (const agg of spec.aggregates ?? [])
    if (!isColumn(agg.column)) return `bad aggregate column ${agg.column}`;
  return null;
}
