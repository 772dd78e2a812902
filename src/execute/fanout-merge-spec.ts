// How a fan-out statement's replies merge: its MergeSpec built from its plan (router/plan.ts) and the request's Bind
// parameters — ORDER BY keys as merged-row columns, LIMIT / OFFSET values, aggregates (aggregate-columns.ts), GROUP BY,
// DISTINCT (ON), set operations, HAVING (having-binding.ts), hidden columns, COPY TO's header, the database's text
// collation. Refuses (0A000) the SELECT shapes the merger cannot answer exactly. Pure: no I/O.
import { PgError } from '../errors/pg-error.js';
import type { BindParams } from '../router/bind-params.js';
import type { CountSource, StatementPlan } from '../router/plan.js';
import { aggregateColumns } from './aggregate-columns.js';
import { bindHaving } from './having-binding.js';
import { PASS_THROUGH_SPEC, type AggregateColumn, type MergeSpec, type SortKey } from './merge-spec.js';

function unsupported(message: string, hint?: string): PgError {
  return PgError.featureNotSupported(message, hint);
}

/**
 * How to merge a fan-out statement's replies; refuses the SELECT shapes the merger cannot answer exactly. `rewritten`:
 * the shards run the plan's `shardQuery` (the Parse's declared parameter types come along, for HAVING parameters);
 * null when they run the client's own text.
 */
export function mergeSpecFor(
  plan: StatementPlan | null,
  params: BindParams | null,
  rewritten: { paramTypes: readonly number[] } | null,
): MergeSpec {
  const select = plan?.select ?? null;
  if (plan?.sumsShardedSizes != null) {
    // Sizes of a sharded table: each column is the sum of the shards' (bigint, added up exactly as counts are).
    const columns = Array.from({ length: plan.sumsShardedSizes }, (_, column) => ({
      column,
      fn: 'count' as const,
    }));
    return { orderBy: [], limit: null, offset: 0, aggregates: columns };
  }
  if (plan === null || plan.kind !== 'select' || select === null) return PASS_THROUGH_SPEC;
  const hint = 'Add the sharding key so the query runs on one shard, or route it by hand.';
  const shardQuery = rewritten !== null ? select.shardQuery : null;
  const hiddenCount = shardQuery?.hiddenCount ?? 0;
  const offset = countValue(select.offset, params) ?? 0;
  const limit = countValue(select.limit, params);
  /** ORDER BY items as columns of the merged rows (hidden ones after the select list, or counted from the end). */
  const sortKeys = (): SortKey[] =>
    select.orderBy.map((o) => {
      let column: number;
      if (o.position !== null) column = o.position - 1;
      else if (o.hidden !== null && shardQuery !== null)
        column = select.targetCount !== null ? select.targetCount + o.hidden : o.hidden - hiddenCount;
      else {
        throw unsupported(
          'ORDER BY across shards must name output columns (by position or name in the select list)',
          hint,
        );
      }
      const key: SortKey = { column, isDescending: o.descending, isNullsFirst: o.nullsFirst };
      if (o.isByteCollated) key.isByteCollated = true;
      else if (o.collation !== null) key.collation = o.collation;
      return key;
    });
  /** The aggregates (the select list's and hidden ones), each as the plan says it merges (aggregate-columns.ts). */
  const mergeableAggregates = (): AggregateColumn[] =>
    aggregateColumns(select, params, shardQuery !== null, hint);
  /** Aggregates in the client's select list (not hidden ones). */
  const visibleAggregateCount = select.aggregates.filter(
    (a) => select.targetCount === null || a.position <= select.targetCount,
  ).length;
  const having =
    select.having !== null && shardQuery !== null
      ? { having: bindHaving(select.having, params, rewritten?.paramTypes ?? []) }
      : {};
  const hidden = hiddenCount > 0 ? { hiddenCount } : {};
  if (select.setOperation !== null) return setOperationSpec(select, sortKeys(), limit, offset, hint);
  if (select.distinct && !select.distinctOn) {
    // DISTINCT = grouping by every output column: each shard's distinct rows are merged and de-duplicated.
    if (select.hasGroupBy || select.aggregates.length > 0 || select.targetCount === null) {
      throw unsupported(
        'SELECT DISTINCT across shards needs plain output columns (no *, no GROUP BY or aggregates)',
        hint,
      );
    }
    const groupBy = Array.from({ length: select.targetCount }, (_, i) => i);
    return { orderBy: sortKeys(), limit, offset, aggregates: [], groupBy, ...hidden };
  }
  if (select.hasGroupBy) {
    const groupBy = select.groupByPositions.map((p) => p - 1);
    const aggregates = mergeableAggregates();
    if (
      groupBy.length === 0 ||
      select.targetCount === null ||
      select.targetCount !== groupBy.length + visibleAggregateCount
    ) {
      throw unsupported(
        'GROUP BY across shards needs every GROUP BY expression in the select list, and only those and aggregates there',
        hint,
      );
    }
    return { orderBy: sortKeys(), limit, offset, aggregates, groupBy, ...hidden, ...having };
  }
  if (select.aggregates.length > 0) {
    const aggregates = mergeableAggregates();
    if (select.targetCount !== null && visibleAggregateCount !== select.targetCount) {
      throw unsupported(
        'aggregates mixed with plain columns across shards need those columns in a GROUP BY',
        hint,
      );
    }
    if (offset > 0) throw unsupported('OFFSET with aggregates across shards is not supported yet', hint);
    // DISTINCT values: the shards group by them, so each returns its sub-groups, merged into the one row due.
    const grandTotal = select.aggregates.some((a) => a.merge === 'values')
      ? { groupBy: [], isGrandTotal: true }
      : {};
    return { orderBy: [], limit, offset: 0, aggregates, ...hidden, ...having, ...grandTotal };
  }
  if (select.having !== null) {
    throw unsupported('HAVING across shards needs GROUP BY or aggregates in the select list', hint);
  }
  // DISTINCT ON: the merged order keeps the first row of each run of equal keys (a no-op when the keys hold the
  // sharding column: a group then never spans shards). Without mergeable positions only that case got this far.
  const distinctOn =
    select.distinctOn && select.distinctOnPositions !== null
      ? { distinctOn: select.distinctOnPositions.map((p) => p - 1) }
      : {};
  return { orderBy: sortKeys(), limit, offset, aggregates: null, ...hidden, ...distinctOn };
}

/** COPY … TO with HEADER: the merged stream carries the header line once. */
export function copyOutSpec(plan: StatementPlan | null, spec: MergeSpec): MergeSpec {
  return plan?.kind === 'copy' && plan.copy?.direction === 'to' && plan.copy.header
    ? { ...spec, copyOutHeader: true }
    : spec;
}

/**
 * A merge that orders or aggregates must know when text does not sort by bytes in this database (`collation`: the
 * database's, or null when it sorts by bytes).
 */
export function withTextCollation(spec: MergeSpec, collation: string | null): MergeSpec {
  if (collation === null || (spec.orderBy.length === 0 && spec.aggregates === null)) return spec;
  return { ...spec, textCollation: collation };
}

/**
 * A LIMIT / OFFSET value: the literal, or the Bind parameter (text, or binary int4 / int8); null for none, NULL or
 * ALL. Refuses a value that is not a non-negative safe integer.
 */
export function countValue(source: CountSource | null, params: BindParams | null): number | null {
  if (source === null) return null;
  let text: string | null = null;
  if (source.kind === 'literal') text = source.value;
  else if (params !== null) {
    const v = params.values[source.index - 1];
    if (v === null || v === undefined) return null; // LIMIT NULL = no limit
    if (params.formats[source.index - 1] === 1) {
      if (v.length === 8) return Number(v.readBigInt64BE(0));
      if (v.length === 4) return v.readInt32BE(0);
      throw unsupported('a binary LIMIT/OFFSET parameter of unexpected size');
    }
    text = v.toString('utf8');
  }
  if (text === null || text.toUpperCase() === 'ALL') return null;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0)
    throw unsupported(`cannot merge a LIMIT/OFFSET of "${text}" across shards`);
  return n;
}

/**
 * A set operation whose every branch the router found fan-out-safe (cross-shard.ts): UNION ALL concatenates the
 * shards' rows; UNION also removes rows equal across shards (each shard removed its own), as DISTINCT does — grouping
 * by every output column, compared as PostgreSQL compares them. ORDER BY (output columns), then OFFSET and LIMIT,
 * apply to the merged rows; the shards return their first offset + limit rows (select-shape.ts).
 */
function setOperationSpec(
  select: NonNullable<StatementPlan['select']>,
  orderBy: SortKey[],
  limit: number | null,
  offset: number,
  hint: string,
): MergeSpec {
  const name = (select.setOperation ?? '').toUpperCase().replace('_', ' ');
  if (select.setOperation === 'union_all') return { orderBy, limit, offset, aggregates: null };
  if (select.setOperation !== 'union')
    throw unsupported(`${name} across shards needs every shard's rows in one place`, hint);
  if (select.targetCount === null)
    throw unsupported(
      'UNION across shards needs the select list of its first branch written out (no *)',
      hint,
    );
  const groupBy = Array.from({ length: select.targetCount }, (_, i) => i);
  return { orderBy, limit, offset, aggregates: [], groupBy };
}
