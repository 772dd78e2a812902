// The shape of one SELECT level, read from its AST: aggregates, window functions, DISTINCT, GROUP BY, HAVING,
// LIMIT; and, for the statement's top level, what a fan-out merge needs (ORDER BY / LIMIT / OFFSET / aggregates and
// how each one merges, HAVING as a predicate on merged groups, the statement the shards run with its hidden columns)
// plus the reasons such a merge could not reproduce single-database results.
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
import type {
  AggregateItem,
  CompareOperator,
  CountSource,
  DelimiterSource,
  DistinctValuesAggregate,
  HavingCondition,
  HavingOperand,
  MergeableAggregate,
  OrderByItem,
  OrderedAggregate,
  OrderedAggregateItem,
  OrderedAggregateKey,
  SelectMergeInfo,
  ShardQuery,
} from './plan.js';
import { aggregateLike, aggregatePlaceholder, shardSelectSql, type ShardSelectEdit } from './rewrite.js';

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
  const windowPartitions: (readonly unknown[])[] = [];
  for (const fc of calls) {
    const over = obj(fc, 'over');
    if (over !== null) {
      const ref = str(over, 'refname');
      const partition = list(over, 'partitionClause');
      windowPartitions.push(partition.length === 0 && ref !== null ? (windowDefs.get(ref) ?? []) : partition);
      continue;
    }
    if (isAggregateCall(fc)) hasAggregates = true;
  }
  const distinctClause = sel.distinctClause;
  const distinctItems = Array.isArray(distinctClause) ? distinctClause : [];
  // `SELECT DISTINCT` is a one-element list holding an empty node; DISTINCT ON lists its expressions.
  const isPlainDistinct = distinctItems.length === 1 && unwrap(distinctItems[0]) === null;
  return {
    hasAggregates,
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

/** Collations that sort by bytes (code points, in UTF-8): what the merge's text comparison does. */
const BYTE_COLLATIONS = new Set(['C', 'POSIX', 'ucs_basic', 'c', 'posix']);

/** `expr COLLATE "C"` (or POSIX / ucs_basic). */
function isByteCollation(node: unknown): boolean {
  const name = collationOf(node);
  return name !== null && BYTE_COLLATIONS.has(name);
}

/** The collation an explicit COLLATE clause names (its last name part), or null without one. */
function collationOf(node: unknown): string | null {
  const cc = asNode(node, 'CollateClause');
  if (cc === null) return null;
  const names = stringList(list(cc, 'collname'));
  return names.length > 0 ? names[names.length - 1] : null;
}

/**
 * The select list. Entries after the first `*` have positions known only from RowDescription, so `known` holds
 * the entries before it (all of them when there is no star).
 */
function targetsOf(sel: AstObject): { known: Target[]; hasStar: boolean } {
  const rows = list(sel, 'valuesLists');
  if (rows.length > 0) {
    // VALUES (a set operation's first branch, say): its columns are column1, column2, …
    const first = list(asNode(rows[0], 'List'), 'items');
    return { known: first.map((expr, i) => ({ name: `column${i + 1}`, expr })), hasStar: false };
  }
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
   * sharding column). Windows and DISTINCT ON need the sharding schema and are checked by the analyzer.
   */
  readonly groupingProblems: readonly string[];
  /** Reasons about ordering, limits and set operations. */
  readonly orderingProblems: readonly string[];
}

/** What the analyzer knows of the sharding key at the statement's top level (from its scope model). */
export interface KeyFacts {
  /** Is `expr` the sharding column of the level's rows (so rows with equal values are on one shard)? */
  isShardKey(expr: unknown): boolean;
  /** Is the level grouped by its sharding column (so each group lies on one shard)? */
  readonly isGroupedByKey: boolean;
}

const NO_KEY_FACTS: KeyFacts = { isShardKey: () => false, isGroupedByKey: false };

/** How an aggregate merges across shards (see AggregateItem in plan.ts). */
type AggregateMerge = AggregateItem['merge'];

/** Why an aggregate cannot be merged across shards. */
interface Refusal {
  readonly problem: string;
}

/**
 * Decides how each aggregate call of the statement merges. DISTINCT count/sum/avg add up per shard when their
 * argument is the sharding key — unless another DISTINCT aggregate needs the shards to group by its values, which
 * splits each shard's rows into sub-groups that would count a key once per sub-group: then every DISTINCT aggregate
 * merges from values.
 */
class AggregateKinds {
  private readonly usesValues: boolean;

  constructor(
    private readonly keys: KeyFacts,
    calls: readonly AstObject[],
  ) {
    this.usesValues =
      !keys.isGroupedByKey &&
      calls.some((c) => isDistinctValueCall(c) && !keys.isShardKey(list(c, 'args')[0]));
  }

  kindOf(call: AstObject): AggregateMerge | Refusal {
    const name = lastName(list(call, 'funcname'));
    const isDistinct = flag(call, 'agg_distinct');
    const label = `${name}${isDistinct ? '(DISTINCT …)' : ''}`;
    if (MERGEABLE.has(name) && !isDistinct && !flag(call, 'agg_within_group')) return 'combine';
    if (this.keys.isGroupedByKey) return 'whole';
    if (isDistinctValueCall(call)) return this.usesValues ? 'values' : 'combine';
    if (MERGEABLE.has(name) && isDistinct && !flag(call, 'agg_within_group')) return 'combine'; // min/max
    if (ORDERED.has(name) && !isDistinct && list(call, 'agg_order').length > 0) return 'ordered';
    if (ORDERED.has(name) && !isDistinct) {
      return {
        problem: `aggregate ${label} without ORDER BY inside cannot be merged across shards (add ORDER BY inside the call to fix the order of its elements)`,
      };
    }
    return { problem: `aggregate ${label} cannot be merged across shards` };
  }
}

const ORDERED: ReadonlySet<string> = new Set(['string_agg', 'array_agg']);

/** count/sum/avg(DISTINCT x) of one argument. */
function isDistinctValueCall(call: AstObject): boolean {
  const name = lastName(list(call, 'funcname'));
  return (
    (name === 'count' || name === 'sum' || name === 'avg') &&
    flag(call, 'agg_distinct') &&
    !flag(call, 'agg_within_group') &&
    list(call, 'args').length === 1
  );
}

/**
 * The columns the shards return after the select list for the merge only: avg's count(x), ORDER BY / HAVING
 * expressions that are not output columns, DISTINCT values and ordered aggregates' arrays. Equal expressions share one
 * column.
 */
class HiddenColumns {
  readonly exprs: unknown[] = [];
  /** The aggregates among them, as merge items (positions after the select list). */
  readonly aggregates: AggregateItem[] = [];
  /** Hidden indices the shards also GROUP BY: the values of DISTINCT aggregates merged from values. */
  readonly groupBy: number[] = [];
  /** Per hidden column: the 1-based select-list position whose result format it takes (null: text). */
  readonly formatSources: (number | null)[] = [];
  private readonly values: { expr: unknown; index: number }[] = [];

  /** `base`: the select list's length; null when a `*` hides it (then no hidden aggregate has a known position). */
  constructor(private readonly base: number | null) {}

  /** A value that needs no combining (a sort key, or the same in every row of a group): its hidden index. */
  value(expr: unknown): number {
    const known = this.values.find((v) => sameExpr(v.expr, expr));
    if (known !== undefined) return known.index;
    const index = this.add(expr);
    this.values.push({ expr, index });
    return index;
  }

  /** count(x) next to an avg(x) the shards run as sum(x): its 1-based position, or null under a `*`. */
  avgCount(call: AstObject): number | null {
    if (this.base === null) return null;
    return this.base + this.add(aggregateLike(call, 'count')) + 1;
  }

  /**
   * The argument of a DISTINCT aggregate merged from values — `CASE WHEN <filter> THEN x END` under FILTER — which
   * the shards also group by: its 1-based position, or null under a `*`.
   */
  distinctValue(call: AstObject): number | null {
    if (this.base === null) return null;
    const arg = list(call, 'args')[0];
    const filter = call.agg_filter;
    const expr =
      filter === undefined ? arg : { CaseExpr: { args: [{ CaseWhen: { expr: filter, result: arg } }] } };
    const index = this.value(expr);
    if (!this.groupBy.includes(index)) this.groupBy.push(index);
    return this.base + index + 1;
  }

  /**
   * string_agg/array_agg(x ORDER BY k…): `array_agg(x ORDER BY k…)` (in the format of select-list entry `position`,
   * so array_agg's elements come in the client's format) and `array_agg(k ORDER BY k…)` per key, FILTER kept; null
   * under a `*`.
   */
  orderedArrays(
    call: AstObject,
    position: number,
  ): Pick<OrderedAggregateItem, 'valuesPosition' | 'keys'> | null {
    if (this.base === null) return null;
    const base = this.base;
    const source = lastName(list(call, 'funcname')) === 'array_agg' ? position : null;
    const valuesPosition = base + this.array(call, list(call, 'args')[0], source) + 1;
    const keys: OrderedAggregateKey[] = [];
    for (const s of list(call, 'agg_order')) {
      const sb = asNode(s, 'SortBy');
      if (sb === null) return null;
      const dir = str(sb, 'sortby_dir');
      const nulls = str(sb, 'sortby_nulls');
      const descending = dir === 'SORTBY_DESC';
      keys.push({
        position: base + this.array(call, sb.node, null) + 1,
        descending,
        nullsFirst:
          nulls === 'SORTBY_NULLS_FIRST' ? true : nulls === 'SORTBY_NULLS_LAST' ? false : descending,
        isByteCollated: isByteCollation(sb.node),
        collation: collationOf(sb.node),
      });
    }
    return { valuesPosition, keys };
  }

  /** `array_agg(expr ORDER BY <call's order>) FILTER (<call's filter>)`: its hidden index. */
  private array(call: AstObject, expr: unknown, formatSource: number | null): number {
    const arrayCall = orderedArrayCall(call, expr);
    const known = this.values.find((v) => sameExpr(v.expr, arrayCall));
    if (known !== undefined) {
      const current = this.formatSources[known.index];
      if (formatSource === null || current === formatSource) return known.index;
      if (current === null) {
        this.formatSources[known.index] = formatSource;
        return known.index;
      }
    }
    const index = this.add(arrayCall, formatSource);
    if (known === undefined) this.values.push({ expr: arrayCall, index });
    return index;
  }

  /**
   * An aggregate call the select list lacks (HAVING, ORDER BY), merged as `kind` says: the hidden index of the column
   * holding its merged value, or null under a `*`.
   */
  aggregate(call: AstObject, expr: unknown, kind: 'combine' | 'whole' | 'values'): number | null {
    if (this.base === null) return null;
    const known = this.values.find((v) => sameExpr(v.expr, expr));
    if (known !== undefined) return known.index;
    const name = lastName(list(call, 'funcname'));
    const isDistinct = flag(call, 'agg_distinct');
    let index: number;
    if (kind === 'whole') {
      index = this.add(expr);
      this.aggregates.push({ merge: 'whole', position: this.base + index + 1, fn: name, isDistinct });
    } else if (kind === 'values') {
      index = this.add(aggregatePlaceholder(call));
      const valuePosition = this.distinctValue(call) as number;
      this.aggregates.push({
        merge: 'values',
        position: this.base + index + 1,
        fn: name as DistinctValuesAggregate['fn'],
        isDistinct: true,
        valuePosition,
      });
    } else if (name === 'avg') {
      index = this.add(aggregateLike(call, 'sum'));
      const count = this.add(aggregateLike(call, 'count'));
      this.aggregates.push({
        merge: 'combine',
        position: this.base + index + 1,
        fn: 'avg',
        isDistinct,
        countPosition: this.base + count + 1,
      });
    } else {
      index = this.add(expr);
      this.aggregates.push({
        merge: 'combine',
        position: this.base + index + 1,
        fn: name as MergeableAggregate,
        isDistinct,
        countPosition: null,
      });
    }
    this.values.push({ expr, index });
    return index;
  }

  private add(expr: unknown, formatSource: number | null = null): number {
    this.exprs.push(expr);
    this.formatSources.push(formatSource);
    return this.exprs.length - 1;
  }
}

/** `pg_catalog.array_agg(expr ORDER BY …) FILTER (…)` with the ORDER BY and FILTER of an ordered aggregate call. */
function orderedArrayCall(call: AstObject, expr: unknown): unknown {
  const clone = structuredClone(call) as Record<string, unknown>;
  clone.funcname = [{ String: { sval: 'pg_catalog' } }, { String: { sval: 'array_agg' } }];
  clone.args = [structuredClone(expr)];
  delete clone.agg_distinct;
  return { FuncCall: clone };
}

/** Does `expr` contain an aggregate call (outside subqueries)? */
function hasAggregate(expr: unknown): boolean {
  const calls: AstObject[] = [];
  funcCalls(expr, calls);
  return calls.some(isAggregateCall);
}

/** Does `expr` contain a node of one of these types? */
function contains(expr: unknown, types: readonly string[]): boolean {
  let found = false;
  walk(expr, (type) => {
    if (types.includes(type)) found = true;
    return !found;
  });
  return found;
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
      if (setOperation !== null || shape === null || shape.distinct || list(sel, 'valuesLists').length > 0) {
        // No hidden column can be added under a set operation, DISTINCT (it would change the rows) or to a VALUES
        // list; with `*`, the router refuses these shapes anyway.
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
      : havingCondition(sel.havingClause, targets, hidden, kinds);
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
      let countPosition: number | null = null;
      if (name === 'avg') {
        if (isCast)
          return 'avg() under a cast cannot be merged across shards; cast its argument instead (avg(x::numeric))';
        countPosition = hidden.avgCount(fc);
      }
      return { merge: 'combine', position, fn: name as MergeableAggregate, isDistinct, countPosition };
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

const COMPARE_OPERATORS: ReadonlySet<string> = new Set(['=', '<>', '<', '<=', '>', '>=']);

/** Casts HAVING constants may carry: types whose comparison the proxy reproduces. */
const HAVING_CAST_TYPES: ReadonlySet<string> = new Set([
  'int2',
  'int4',
  'int8',
  'numeric',
  'float4',
  'float8',
  'text',
  'varchar',
  'bpchar',
]);

const HAVING_FORMS =
  'only comparisons (=, <>, <, <=, >, >=) of aggregates or GROUP BY expressions with each other, constants or ' +
  'parameters, joined by AND, OR and NOT, can be applied after the merge';

/**
 * HAVING as a predicate on merged groups. Aggregates and GROUP BY expressions it names become output columns (the
 * select list's own when it has them, hidden ones otherwise). A string: why it cannot be.
 */
function havingCondition(
  node: unknown,
  targets: readonly Target[],
  hidden: HiddenColumns,
  kinds: AggregateKinds,
): HavingCondition | string {
  const refuse = (what: string): string =>
    `HAVING with ${what} cannot be merged across shards: ${HAVING_FORMS}`;
  const condition = (n: unknown): HavingCondition | string => {
    const bool = asNode(n, 'BoolExpr');
    if (bool !== null) {
      const args: HavingCondition[] = [];
      for (const a of list(bool, 'args')) {
        const c = condition(a);
        if (typeof c === 'string') return c;
        args.push(c);
      }
      const boolop = str(bool, 'boolop');
      if (boolop === 'NOT_EXPR' && args.length === 1) return { kind: 'not', arg: args[0] };
      if (boolop === 'AND_EXPR') return { kind: 'and', args };
      if (boolop === 'OR_EXPR') return { kind: 'or', args };
      return refuse('this boolean expression');
    }
    const ax = asNode(n, 'A_Expr');
    const opName = ax !== null ? lastName(list(ax, 'name')) : '';
    if (
      ax === null ||
      str(ax, 'kind') !== 'AEXPR_OP' ||
      !COMPARE_OPERATORS.has(opName) ||
      ax.lexpr === undefined
    )
      return refuse(describeHavingNode(n));
    const left = operand(ax.lexpr);
    if (typeof left === 'string') return left;
    const right = operand(ax.rexpr);
    if (typeof right === 'string') return right;
    if (left.kind !== 'column' && right.kind !== 'column') return refuse('a comparison of two constants');
    return { kind: 'compare', op: opName as CompareOperator, left, right };
  };
  const operand = (n: unknown): HavingOperand | string => {
    const cast = asNode(n, 'TypeCast');
    if (cast !== null) {
      const typeName = obj(cast, 'typeName');
      const type = lastName(list(typeName, 'names'));
      const inner = asNode(cast.arg, 'A_Const') !== null || asNode(cast.arg, 'ParamRef') !== null;
      if (inner) {
        if (
          !HAVING_CAST_TYPES.has(type) ||
          list(typeName, 'typmods').length > 0 ||
          list(typeName, 'arrayBounds').length > 0
        )
          return refuse(`a constant cast to ${type}`);
        return constant(cast.arg, type);
      }
    }
    if (asNode(n, 'A_Const') !== null || asNode(n, 'ParamRef') !== null) return constant(n, null);
    const position = targets.findIndex((t) => sameExpr(t.expr, n));
    const call = asNode(n, 'FuncCall');
    if (call !== null && isAggregateCall(call)) {
      const kind = kinds.kindOf(call);
      if (typeof kind !== 'string' || kind === 'ordered')
        return refuse(
          `aggregate ${lastName(list(call, 'funcname'))}${flag(call, 'agg_distinct') ? '(DISTINCT …)' : ''}`,
        );
      const target = position >= 0 ? targets[position] : null;
      // An aggregate in the select list is merged in place (avg from its sum and hidden count, …).
      if (target !== null) return { kind: 'column', position: position + 1 };
      const index = hidden.aggregate(call, n, kind);
      return index === null
        ? refuse('an aggregate')
        : { kind: 'column', position: hiddenPosition(targets, index) };
    }
    if (hasAggregate(n)) return refuse('an expression of aggregates');
    if (contains(n, ['SubLink', 'ParamRef'])) return refuse(describeHavingNode(n));
    if (position >= 0) return { kind: 'column', position: position + 1 };
    return { kind: 'column', position: hiddenPosition(targets, hidden.value(n)) };
  };
  const constant = (n: unknown, castType: string | null): HavingOperand | string => {
    const p = asNode(n, 'ParamRef');
    if (p !== null) return { kind: 'param', index: typeof p.number === 'number' ? p.number : 0, castType };
    const v = constValue(asNode(n, 'A_Const') ?? {});
    if (v.kind === 'null') return { kind: 'literal', value: null, isString: false, castType };
    if (v.kind === 'boolean' || v.kind === 'bitstring') return refuse(`a ${v.kind} constant`);
    return { kind: 'literal', value: v.value, isString: v.kind === 'string', castType };
  };
  return condition(node);
}

function hiddenPosition(targets: readonly Target[], index: number): number {
  return targets.length + index + 1;
}

/** A few words naming a HAVING node the proxy cannot evaluate. */
function describeHavingNode(n: unknown): string {
  const u = unwrap(n);
  if (u === null) return 'this expression';
  switch (u.type) {
    case 'A_Expr': {
      const kind = str(u.fields, 'kind') ?? '';
      if (kind.startsWith('AEXPR_BETWEEN') || kind.startsWith('AEXPR_NOT_BETWEEN')) return 'BETWEEN';
      if (kind === 'AEXPR_IN') return 'IN (…)';
      if (kind === 'AEXPR_LIKE' || kind === 'AEXPR_ILIKE' || kind === 'AEXPR_SIMILAR') return 'LIKE';
      return `the operator ${lastName(list(u.fields, 'name')) || kind}`;
    }
    case 'NullTest':
      return 'IS [NOT] NULL';
    case 'BooleanTest':
      return 'IS [NOT] TRUE/FALSE';
    case 'SubLink':
      return 'a subquery';
    case 'FuncCall':
      return `the function ${lastName(list(u.fields, 'funcname'))}()`;
    default:
      return 'this expression';
  }
}
