// The fan-out merge plan of a statement's top-level SELECT: ORDER BY / LIMIT / OFFSET, DISTINCT (ON), GROUP BY
// positions, each aggregate's merge item, HAVING as a predicate, and the statement the shards run (hidden columns,
// moved LIMIT/OFFSET) — plus the reasons such a merge could not reproduce single-database results.
import {
  asNode,
  constValue,
  flag,
  lastName,
  list,
  obj,
  str,
  stringList,
  stripCasts,
  type AstObject,
} from './ast.js';
import type {
  AggregateItem,
  DelimiterSource,
  DistinctValuesAggregate,
  HavingCondition,
  OrderByItem,
  OrderedAggregate,
  SelectMergeInfo,
  ShardQuery,
} from './plan.js';
import { AggregateKinds, combinedAs, NO_KEY_FACTS, type KeyFacts } from './aggregate-kinds.js';
import { havingCondition } from './having-condition.js';
import { HiddenColumns } from './hidden-columns.js';
import { shardSelectSql, type ShardSelectEdit } from './rewrite.js';
import {
  collationOf,
  contains,
  countSource,
  funcCalls,
  hasAggregate,
  isAggregateCall,
  isByteCollation,
  levelShape,
  positionOf,
  targetsOf,
  type Target,
} from './select-shape.js';

export type { KeyFacts } from './aggregate-kinds.js';

export interface MergePlan {
  readonly info: SelectMergeInfo;
  /**
   * Reasons the merge of per-shard aggregates would differ from one database's answer (moot when grouped by the
   * sharding column). Windows and DISTINCT ON need the sharding schema and are checked by the analyzer.
   */
  readonly groupingProblems: readonly string[];
  /** Reasons about ordering, limits and set operations. */
  readonly orderingProblems: readonly string[];
}

/** Merge information for the statement's top-level SELECT (a set operation's ORDER BY/LIMIT included). */
export function mergePlan(sel: AstObject, keys: KeyFacts = NO_KEY_FACTS): MergePlan {
  const op = str(sel, 'op') ?? 'SETOP_NONE';
  const all = flag(sel, 'all');
  const groupingProblems: string[] = [];
  const orderingProblems: string[] = [];
  let setOperation: SelectMergeInfo['setOperation'] = null;
  let first: AstObject = sel;
  if (op !== 'SETOP_NONE') {
    const base = op === 'SETOP_UNION' ? 'union' : op === 'SETOP_INTERSECT' ? 'intersect' : 'except';
    setOperation = all ? (`${base}_all` as const) : base;
    if (base !== 'union')
      orderingProblems.push(`${base.toUpperCase()} needs every shard's rows in one place`);
    // Output names come from the leftmost branch.
    let cur: AstObject | null = sel;
    while (cur !== null && (str(cur, 'op') ?? 'SETOP_NONE') !== 'SETOP_NONE') cur = obj(cur, 'larg');
    first = cur ?? sel;
  }
  const { known: targets, hasStar } = targetsOf(first);
  const shape = op === 'SETOP_NONE' ? levelShape(sel) : null;
  const isGrouped = shape !== null && shape.groupBy.length > 0;
  /** Aggregates without GROUP BY: one row, whatever the ORDER BY says. */
  const isOneRow = shape !== null && !isGrouped && shape.hasAggregates;
  const hidden = new HiddenColumns(hasStar ? null : targets.length);
  const avgTargets: number[] = [];
  const placeholderTargets: number[] = [];
  const calls: AstObject[] = [];
  if (shape !== null) {
    for (const t of list(sel, 'targetList')) funcCalls(t, calls);
    funcCalls(sel.havingClause, calls);
    for (const o of list(sel, 'sortClause')) funcCalls(o, calls);
  }
  const kinds = new AggregateKinds(keys, calls.filter(isAggregateCall));

  const aggregates: AggregateItem[] = [];
  const groupByPositions: number[] = [];
  if (shape !== null) {
    targets.forEach((t, i) => {
      const stripped = stripCasts(t.expr);
      const fc = asNode(stripped, 'FuncCall');
      if (fc === null || !isAggregateCall(fc)) return;
      const item = targetAggregate(fc, i + 1, stripped !== t.expr, kinds, hidden);
      if (typeof item === 'string') {
        groupingProblems.push(item);
        return;
      }
      if (item.merge === 'combine' && item.countPosition !== null) avgTargets.push(i);
      if (item.merge === 'values' || item.merge === 'ordered') placeholderTargets.push(i);
      aggregates.push(item);
    });
    // An aggregate inside a larger expression (sum(x) / count(x)) cannot be recombined from per-shard values.
    for (const t of targets) {
      const direct = asNode(stripCasts(t.expr), 'FuncCall');
      if (direct !== null && isAggregateCall(direct)) continue;
      if (hasAggregate(t.expr)) {
        groupingProblems.push('an aggregate inside an expression cannot be merged across shards');
        break;
      }
    }
    if (hasStar && shape.hasAggregates) {
      const all: AstObject[] = [];
      for (const t of list(first, 'targetList')) funcCalls(t, all);
      const before: AstObject[] = [];
      for (const t of targets) funcCalls(t.expr, before);
      if (all.filter(isAggregateCall).length > before.filter(isAggregateCall).length) {
        groupingProblems.push('an aggregate after * in the select list has no known position to merge');
      }
    }
    for (const g of shape.groupBy) {
      const pos = positionOf(g, targets, hasStar, false);
      if (pos === null) {
        groupingProblems.push(
          'GROUP BY an expression that is not in the select list cannot be merged across shards',
        );
        break;
      }
      groupByPositions.push(pos);
    }
  }

  const orderBy: OrderByItem[] = [];
  for (const s of list(sel, 'sortClause')) {
    const sb = asNode(s, 'SortBy');
    if (sb === null) continue;
    const dir = str(sb, 'sortby_dir');
    const nulls = str(sb, 'sortby_nulls');
    if (dir === 'SORTBY_USING') orderingProblems.push('ORDER BY … USING cannot be merged across shards');
    const descending = dir === 'SORTBY_DESC';
    const nullsFirst =
      nulls === 'SORTBY_NULLS_FIRST' ? true : nulls === 'SORTBY_NULLS_LAST' ? false : descending;
    const position = positionOf(sb.node, targets, hasStar, true);
    let name: string | null = position !== null ? (targets[position - 1]?.name ?? null) : null;
    let hiddenIndex: number | null = null;
    if (position === null && !isOneRow) {
      const cr = asNode(sb.node, 'ColumnRef');
      const names = cr !== null ? stringList(list(cr, 'fields')) : [];
      const isBareName = names.length === 1 && list(cr, 'fields').length === 1;
      const isStarName = hasStar && names.length > 0 && names.length === list(cr, 'fields').length;
      if (isStarName) name = names[names.length - 1];
      const isPlainDistinct = shape !== null && shape.distinct && shape.distinctOn.length === 0;
      if (setOperation !== null || shape === null || isPlainDistinct || list(sel, 'valuesLists').length > 0) {
        // No hidden column can be added under a set operation, DISTINCT (it would change the rows) or to a VALUES
        // list; with `*`, the router refuses these shapes anyway. DISTINCT ON compares its own expressions only: a
        // hidden sort column leaves its rows as they are.
        if (!isStarName)
          orderingProblems.push(
            'ORDER BY an expression that is not in the select list cannot be merged across shards',
          );
      } else {
        // A bare name may be an output name after the `*`: sort on that entry's expression.
        const named = isBareName ? namedTarget(first, names[0]) : null;
        const expr = named ?? sb.node;
        hiddenIndex = isGrouped ? groupedSortColumn(expr, hidden, kinds) : hidden.value(expr);
        if (hiddenIndex === null) {
          orderingProblems.push(
            'ORDER BY an expression that is not in the select list cannot be merged across shards under GROUP BY ' +
              'unless it is an aggregate or a GROUP BY expression (and no * is in the select list)',
          );
        }
      }
    }
    const sorted = position !== null ? (targets[position - 1]?.expr ?? sb.node) : sb.node;
    const isByteCollated = isByteCollation(sb.node) || isByteCollation(sorted);
    const collation = collationOf(sb.node) ?? collationOf(sorted);
    orderBy.push({ position, name, descending, nullsFirst, hidden: hiddenIndex, isByteCollated, collation });
  }

  // DISTINCT ON without ORDER BY: PostgreSQL picks any row of each group (sorting by the keys to find them); the
  // shards are asked to order by the keys, so the merge can keep the first row of each run of equal keys.
  let distinctOnOrder: number[] = [];
  if (shape !== null && shape.distinctOn.length > 0 && orderBy.length === 0 && !hasStar && !isGrouped) {
    const positions = shape.distinctOn.map((item) => positionOf(item, targets, false, true));
    if (positions.every((p): p is number => p !== null)) {
      distinctOnOrder = [...new Set(positions)];
      for (const position of distinctOnOrder) {
        orderBy.push({
          position,
          name: null,
          descending: false,
          nullsFirst: false,
          hidden: null,
          isByteCollated: false,
          collation: null,
        });
      }
    }
  }

  let having: HavingCondition | null = null;
  let havingEdit: ShardSelectEdit['having'] = 'keep';
  if (shape !== null && sel.havingClause !== undefined) {
    const result = hasStar
      ? 'HAVING with * in the select list cannot be merged across shards'
      : havingCondition(
          sel.havingClause,
          targets,
          hidden,
          kinds,
          groupByPositions.map((p) => targets[p - 1]?.expr),
        );
    if (typeof result === 'string') groupingProblems.push(result);
    else {
      having = result;
      havingEdit = contains(sel.havingClause, ['ParamRef']) ? 'neutralize' : 'remove';
    }
  }

  const limit = countSource(sel.limitCount);
  const offset = countSource(sel.limitOffset);
  if (limit === 'expression' || offset === 'expression') {
    orderingProblems.push('LIMIT/OFFSET with an expression cannot be merged across shards');
  }
  const isWithTies = str(sel, 'limitOption') === 'LIMIT_OPTION_WITH_TIES';
  if (isWithTies) orderingProblems.push('FETCH … WITH TIES cannot be merged across shards');

  // GROUP BY / DISTINCT: every shard returns all its groups, LIMIT/OFFSET apply to the merged ones. Otherwise each
  // shard returns its first limit + offset rows and the merge skips the offset.
  // The shards also group by DISTINCT values: LIMIT would cut their partial groups.
  const isGroupedOrDistinct = shape !== null && (isGrouped || shape.distinct || hidden.groupBy.length > 0);
  const hasLimits =
    (limit !== null && limit !== 'expression') || (offset !== null && offset !== 'expression');
  const limitEdit: ShardSelectEdit['limit'] =
    isGroupedOrDistinct && hasLimits
      ? 'strip'
      : offset !== null && offset !== 'expression' && !isWithTies
        ? 'pushdown'
        : 'keep';
  aggregates.push(...hidden.aggregates);
  const edit: ShardSelectEdit = {
    avgTargets,
    placeholderTargets,
    hidden: hidden.exprs,
    groupByHidden: hidden.groupBy,
    having: havingEdit,
    limit: limitEdit,
    orderByPositions: distinctOnOrder,
  };
  let shardQuery: ShardQuery | null = null;
  const isEdited =
    avgTargets.length > 0 ||
    edit.hidden.length > 0 ||
    havingEdit !== 'keep' ||
    limitEdit !== 'keep' ||
    distinctOnOrder.length > 0;
  if (isEdited && orderingProblems.length === 0) {
    try {
      shardQuery = {
        sql: shardSelectSql(sel, edit),
        hiddenCount: edit.hidden.length,
        hiddenFormatSources: hidden.formatSources,
      };
    } catch (err) {
      orderingProblems.push(`the statement cannot be rewritten for the shards (${(err as Error).message})`);
    }
  }

  return {
    info: {
      orderBy,
      limit: limit === 'expression' ? null : limit,
      offset: offset === 'expression' ? null : offset,
      aggregates,
      hasGroupBy: isGrouped,
      groupByPositions,
      distinct: shape !== null && shape.distinct,
      distinctOn: shape !== null && shape.distinctOn.length > 0,
      distinctOnPositions: distinctOnPositions(shape?.distinctOn ?? [], orderBy, targets, hasStar),
      setOperation,
      targetCount: hasStar ? null : targets.length,
      having,
      shardQuery,
    },
    groupingProblems,
    orderingProblems,
  };
}

/** The expression of the select-list entry output as `name` (any entry, after a `*` too), or null. */
function namedTarget(sel: AstObject, name: string): unknown {
  for (const t of list(sel, 'targetList')) {
    const rt = asNode(t, 'ResTarget');
    if (rt !== null && str(rt, 'name') === name) return rt.val;
  }
  return null;
}

/**
 * Under GROUP BY, a hidden sort column is an aggregate the merge can combine (not an ordered one), or an expression
 * without aggregates (PostgreSQL only accepts one that is the same for every row of a group); null for anything else.
 */
function groupedSortColumn(expr: unknown, hidden: HiddenColumns, kinds: AggregateKinds): number | null {
  const call = asNode(expr, 'FuncCall');
  if (call !== null && isAggregateCall(call)) {
    const kind = kinds.kindOf(call);
    return typeof kind !== 'string' || kind === 'ordered' ? null : hidden.aggregate(call, expr, kind);
  }
  if (hasAggregate(expr)) return null;
  return hidden.value(expr);
}

/**
 * A select-list aggregate call (`isCast`: under a cast) as a merge item, its hidden columns added, or why it cannot
 * be merged.
 */
function targetAggregate(
  fc: AstObject,
  position: number,
  isCast: boolean,
  kinds: AggregateKinds,
  hidden: HiddenColumns,
): AggregateItem | string {
  const kind = kinds.kindOf(fc);
  if (typeof kind !== 'string') return kind.problem;
  const name = lastName(list(fc, 'funcname'));
  const isDistinct = flag(fc, 'agg_distinct');
  switch (kind) {
    case 'whole':
      return { merge: 'whole', position, fn: name, isDistinct };
    case 'combine': {
      // Under a cast, grouped by the sharding key: each group's value comes from its one shard, taken whole.
      if (isCast && kinds.isGroupedByKey) return { merge: 'whole', position, fn: name, isDistinct };
      // min/max (and bool_and/bool_or) of cast values: the merge would compare the shards' cast values (texts of
      // numbers, …), whose order is not the values' order. Counts and sums add up whatever the integer type.
      if (isCast && name !== 'count' && name !== 'sum' && name !== 'avg')
        return `${name}() under a cast cannot be merged across shards: the cast values would be compared, not the values`;
      let countPosition: number | null = null;
      if (name === 'avg') {
        if (isCast)
          return 'avg() under a cast cannot be merged across shards; cast its argument instead (avg(x::numeric))';
        countPosition = hidden.avgCount(fc);
      }
      return { merge: 'combine', position, fn: combinedAs(name), isDistinct, countPosition };
    }
    case 'values': {
      // A count is exact in any integer or text type; a sum or avg under a cast would need the cast applied here.
      if (isCast && name !== 'count')
        return `${name}(DISTINCT …) under a cast cannot be merged across shards; cast its argument instead`;
      const valuePosition = hidden.distinctValue(fc);
      if (valuePosition === null)
        return `${name}(DISTINCT …) with * in the select list cannot be merged across shards`;
      return {
        merge: 'values',
        position,
        fn: name as DistinctValuesAggregate['fn'],
        isDistinct,
        valuePosition,
      };
    }
    case 'ordered': {
      if (isCast) return `${name}() under a cast cannot be merged across shards`;
      const order = list(fc, 'agg_order');
      if (order.some((o) => str(asNode(o, 'SortBy'), 'sortby_dir') === 'SORTBY_USING'))
        return `ORDER BY … USING inside ${name}() cannot be merged across shards`;
      let delimiter: DelimiterSource | null = null;
      if (name === 'string_agg') {
        delimiter = delimiterSource(list(fc, 'args')[1]);
        if (delimiter === null)
          return 'string_agg across shards needs a constant delimiter (a literal or a parameter)';
      }
      const arrays = hidden.orderedArrays(fc, position);
      if (arrays === null) return `${name}() with * in the select list cannot be merged across shards`;
      return { merge: 'ordered', position, fn: name as OrderedAggregate, isDistinct, ...arrays, delimiter };
    }
  }
}

/** string_agg's delimiter: a string literal or NULL (cast or not), or a parameter; null for anything else. */
function delimiterSource(node: unknown): DelimiterSource | null {
  const n = stripCasts(node);
  const p = asNode(n, 'ParamRef');
  if (p !== null) return { kind: 'param', index: typeof p.number === 'number' ? p.number : 0 };
  const c = asNode(n, 'A_Const');
  if (c === null) return null;
  const v = constValue(c);
  if (v.kind === 'null') return { kind: 'literal', value: null };
  return v.kind === 'string' ? { kind: 'literal', value: v.value } : null;
}

/**
 * DISTINCT ON keeps the first row of each group in ORDER BY order. Across shards that is the first row of each run of
 * equal keys in the merged order — when the DISTINCT ON expressions are output columns and lead the ORDER BY (as
 * PostgreSQL requires whenever both are given). Their positions, or null.
 */
function distinctOnPositions(
  items: readonly unknown[],
  orderBy: readonly OrderByItem[],
  targets: readonly Target[],
  hasStar: boolean,
): number[] | null {
  if (items.length === 0 || hasStar || orderBy.length < items.length) return null;
  const positions: number[] = [];
  for (const item of items) {
    const p = positionOf(item, targets, false, true);
    if (p === null) return null;
    positions.push(p);
  }
  const leading = new Set(orderBy.slice(0, items.length).map((o) => o.position));
  return positions.every((p) => leading.has(p)) && leading.size === new Set(positions).size
    ? positions
    : null;
}
