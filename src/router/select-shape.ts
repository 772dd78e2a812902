// The shape of one SELECT level, read from its AST: aggregates, window functions, DISTINCT, GROUP BY, HAVING,
// LIMIT; and, for the statement's top level, what a fan-out merge needs (ORDER BY / LIMIT / OFFSET / aggregate
// positions) plus the reasons such a merge could not reproduce single-database results.
import {
  asNode,
  constValue,
  flag,
  lastName,
  list,
  obj,
  sameExpr,
  str,
  stringList,
  stripCasts,
  unwrap,
  walk,
  type AstObject,
} from './ast.js';
import type { AggregateItem, CountSource, MergeableAggregate, OrderByItem, SelectMergeInfo } from './plan.js';

const MERGEABLE: ReadonlySet<string> = new Set(['count', 'sum', 'min', 'max', 'avg']);

/** Built-in aggregates (besides the mergeable five) whose per-shard results cannot simply be combined. */
const OTHER_AGGREGATES: ReadonlySet<string> = new Set([
  'array_agg',
  'string_agg',
  'json_agg',
  'jsonb_agg',
  'json_object_agg',
  'jsonb_object_agg',
  'json_arrayagg',
  'json_objectagg',
  'xmlagg',
  'bool_and',
  'bool_or',
  'every',
  'bit_and',
  'bit_or',
  'bit_xor',
  'stddev',
  'stddev_pop',
  'stddev_samp',
  'variance',
  'var_pop',
  'var_samp',
  'corr',
  'covar_pop',
  'covar_samp',
  'regr_avgx',
  'regr_avgy',
  'regr_count',
  'regr_intercept',
  'regr_r2',
  'regr_slope',
  'regr_sxx',
  'regr_sxy',
  'regr_syy',
  'percentile_cont',
  'percentile_disc',
  'mode',
  'rank',
  'dense_rank',
  'percent_rank',
  'cume_dist',
  'range_agg',
  'range_intersect_agg',
  'any_value',
]);

/** Is this FuncCall an aggregate call (not a window call)? */
export function isAggregateCall(fc: AstObject): boolean {
  if (obj(fc, 'over') !== null) return false;
  const name = lastName(list(fc, 'funcname'));
  return (
    MERGEABLE.has(name) ||
    OTHER_AGGREGATES.has(name) ||
    flag(fc, 'agg_star') ||
    flag(fc, 'agg_distinct') ||
    flag(fc, 'agg_within_group') ||
    list(fc, 'agg_order').length > 0 ||
    obj(fc, 'agg_filter') !== null
  );
}

/** Every FuncCall under `expr`, not descending into subqueries. */
function funcCalls(expr: unknown, out: AstObject[]): void {
  walk(expr, (type, fields) => {
    if (type === 'SubLink' || type === 'SelectStmt' || type === 'RangeSubselect') return false;
    if (type === 'FuncCall') out.push(fields);
    return true;
  });
}

export interface LevelShape {
  readonly hasAggregates: boolean;
  /** Names of aggregates that cannot be merged across shards (including DISTINCT aggregates). */
  readonly unmergeableAggregates: readonly string[];
  /** PARTITION BY lists of the window functions (an empty list: no PARTITION BY). */
  readonly windowPartitions: readonly (readonly unknown[])[];
  readonly distinct: boolean;
  readonly distinctOn: readonly unknown[];
  readonly groupBy: readonly unknown[];
  readonly hasHaving: boolean;
  readonly hasLimit: boolean;
}

const shapes = new WeakMap<AstObject, LevelShape>();

/** The parts of a SELECT level that decide whether its per-shard results can be combined (memoized per node). */
export function levelShape(sel: AstObject): LevelShape {
  let shape = shapes.get(sel);
  if (shape === undefined) {
    shape = computeShape(sel);
    shapes.set(sel, shape);
  }
  return shape;
}

function computeShape(sel: AstObject): LevelShape {
  const calls: AstObject[] = [];
  for (const t of list(sel, 'targetList')) funcCalls(t, calls);
  funcCalls(sel.havingClause, calls);
  for (const s of list(sel, 'sortClause')) funcCalls(s, calls);
  const windowDefs = new Map<string, readonly unknown[]>();
  for (const w of list(sel, 'windowClause')) {
    const wd = asNode(w, 'WindowDef');
    if (wd !== null) windowDefs.set(str(wd, 'name') ?? '', list(wd, 'partitionClause'));
  }
  let hasAggregates = false;
  const unmergeable: string[] = [];
  const windowPartitions: (readonly unknown[])[] = [];
  for (const fc of calls) {
    const over = obj(fc, 'over');
    if (over !== null) {
      const ref = str(over, 'refname');
      const partition = list(over, 'partitionClause');
      windowPartitions.push(partition.length === 0 && ref !== null ? (windowDefs.get(ref) ?? []) : partition);
      continue;
    }
    if (!isAggregateCall(fc)) continue;
    hasAggregates = true;
    const name = lastName(list(fc, 'funcname'));
    if (!MERGEABLE.has(name)) unmergeable.push(name);
    else if (flag(fc, 'agg_distinct')) unmergeable.push(`${name}(DISTINCT …)`);
  }
  const distinctClause = sel.distinctClause;
  const distinctItems = Array.isArray(distinctClause) ? distinctClause : [];
  // `SELECT DISTINCT` is a one-element list holding an empty node; DISTINCT ON lists its expressions.
  const isPlainDistinct = distinctItems.length === 1 && unwrap(distinctItems[0]) === null;
  return {
    hasAggregates,
    unmergeableAggregates: unmergeable,
    windowPartitions,
    distinct: distinctItems.length > 0,
    distinctOn: isPlainDistinct ? [] : distinctItems,
    groupBy: list(sel, 'groupClause'),
    hasHaving: sel.havingClause !== undefined,
    hasLimit: sel.limitCount !== undefined || sel.limitOffset !== undefined,
  };
}

interface Target {
  readonly name: string | null;
  readonly expr: unknown;
}

/**
 * The select list. Entries after the first `*` have positions known only from RowDescription, so `known` holds
 * the entries before it (all of them when there is no star).
 */
function targetsOf(sel: AstObject): { known: Target[]; hasStar: boolean } {
  const known: Target[] = [];
  for (const t of list(sel, 'targetList')) {
    const rt = asNode(t, 'ResTarget');
    if (rt === null) continue;
    const cr = asNode(rt.val, 'ColumnRef');
    if (cr !== null && list(cr, 'fields').some((f) => asNode(f, 'A_Star') !== null))
      return { known, hasStar: true };
    known.push({ name: str(rt, 'name') ?? implicitName(rt.val), expr: rt.val });
  }
  return { known, hasStar: false };
}

/** The column name PostgreSQL gives an unaliased select-list entry (FigureColname, simplified). */
export function implicitName(expr: unknown): string | null {
  const u = unwrap(expr);
  if (u === null) return null;
  switch (u.type) {
    case 'ColumnRef': {
      const fields = list(u.fields, 'fields');
      const names = stringList(fields);
      return names.length === fields.length ? names[names.length - 1] : null;
    }
    case 'FuncCall':
      return lastName(list(u.fields, 'funcname'));
    case 'TypeCast':
      return implicitName(u.fields.arg) ?? lastName(list(obj(u.fields, 'typeName'), 'names'));
    case 'CaseExpr':
      return 'case';
    default:
      return null;
  }
}

function countSource(node: unknown): CountSource | null | 'expression' {
  if (node === undefined) return null;
  const n = stripCasts(node);
  const p = asNode(n, 'ParamRef');
  if (p !== null) return { kind: 'param', index: typeof p.number === 'number' ? p.number : 0 };
  const c = asNode(n, 'A_Const');
  if (c !== null) {
    const v = constValue(c);
    if (v.kind === 'null') return null; // LIMIT ALL / LIMIT NULL
    if (v.kind === 'integer') return { kind: 'literal', value: v.value };
  }
  return 'expression';
}

/** 1-based position of `expr` in the select list: an integer literal, an output name, or the same expression. */
function positionOf(
  expr: unknown,
  targets: readonly Target[],
  hasStar: boolean,
  preferOutputNames: boolean,
): number | null {
  const c = asNode(expr, 'A_Const');
  if (c !== null) {
    const v = constValue(c);
    if (v.kind === 'integer') {
      const n = Number(v.value);
      return n >= 1 && (hasStar || n <= targets.length) ? n : null;
    }
  }
  const cr = asNode(expr, 'ColumnRef');
  const single = cr !== null ? stringList(list(cr, 'fields')) : [];
  if (preferOutputNames && single.length === 1 && list(cr, 'fields').length === 1) {
    const i = targets.findIndex((t) => t.name === single[0]);
    if (i >= 0) return i + 1;
  }
  const j = targets.findIndex((t) => sameExpr(t.expr, expr));
  if (j >= 0) return j + 1;
  if (!preferOutputNames && single.length === 1) {
    const k = targets.findIndex((t) => t.name === single[0]);
    if (k >= 0) return k + 1;
  }
  // `ORDER BY "User_id"` against `SELECT "distinctAlias"."User_id" AS "ids_User_id"`: the same input column.
  if (single.length > 0 && single.length === list(cr, 'fields').length) {
    const col = single[single.length - 1];
    const matches = targets.flatMap((t, i) => {
      const tc = asNode(t.expr, 'ColumnRef');
      const names = tc !== null ? stringList(list(tc, 'fields')) : [];
      return names.length > 0 && names[names.length - 1] === col ? [i] : [];
    });
    if (matches.length === 1) return matches[0] + 1;
  }
  return null;
}

export interface MergePlan {
  readonly info: SelectMergeInfo;
  /**
   * Reasons the merge of per-shard aggregates would differ from one database's answer (moot when grouped by the
   * sharding column). Windows, DISTINCT ON and HAVING need the sharding schema and are checked by the analyzer.
   */
  readonly groupingProblems: readonly string[];
  /** Reasons about ordering, limits and set operations. */
  readonly orderingProblems: readonly string[];
}

/** Merge information for the statement's top-level SELECT (a set operation's ORDER BY/LIMIT included). */
export function mergePlan(sel: AstObject): MergePlan {
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
    if (position === null) {
      const cr = asNode(sb.node, 'ColumnRef');
      const names = cr !== null ? stringList(list(cr, 'fields')) : [];
      if (hasStar && names.length > 0 && names.length === list(cr, 'fields').length)
        name = names[names.length - 1];
      else
        orderingProblems.push(
          'ORDER BY an expression that is not in the select list cannot be merged across shards',
        );
    }
    orderBy.push({ position, name, descending, nullsFirst });
  }

  const limit = countSource(sel.limitCount);
  const offset = countSource(sel.limitOffset);
  if (limit === 'expression' || offset === 'expression') {
    orderingProblems.push('LIMIT/OFFSET with an expression cannot be merged across shards');
  }
  if (str(sel, 'limitOption') === 'LIMIT_OPTION_WITH_TIES') {
    orderingProblems.push('FETCH … WITH TIES cannot be merged across shards');
  }

  const shape = op === 'SETOP_NONE' ? levelShape(sel) : null;
  const aggregates: AggregateItem[] = [];
  const groupByPositions: number[] = [];
  if (shape !== null) {
    targets.forEach((t, i) => {
      const fc = asNode(stripCasts(t.expr), 'FuncCall');
      if (fc === null || !isAggregateCall(fc)) return;
      const fn = lastName(list(fc, 'funcname'));
      if (MERGEABLE.has(fn)) {
        aggregates.push({
          position: i + 1,
          fn: fn as MergeableAggregate,
          isDistinct: flag(fc, 'agg_distinct'),
        });
      }
    });
    // An aggregate inside a larger expression (sum(x) / count(x)) cannot be recombined from per-shard values.
    for (const t of targets) {
      const direct = asNode(stripCasts(t.expr), 'FuncCall');
      if (direct !== null && isAggregateCall(direct)) continue;
      const calls: AstObject[] = [];
      funcCalls(t.expr, calls);
      if (calls.some(isAggregateCall)) {
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
    for (const name of shape.unmergeableAggregates)
      groupingProblems.push(`aggregate ${name} cannot be merged across shards`);
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

  return {
    info: {
      orderBy,
      limit: limit === 'expression' ? null : limit,
      offset: offset === 'expression' ? null : offset,
      aggregates,
      hasGroupBy: shape !== null && shape.groupBy.length > 0,
      groupByPositions,
      distinct: shape !== null && shape.distinct,
      distinctOn: shape !== null && shape.distinctOn.length > 0,
      setOperation,
      targetCount: hasStar ? null : targets.length,
    },
    groupingProblems,
    orderingProblems,
  };
}
