// The shape of one SELECT level, read from its AST: aggregates, window functions, DISTINCT, GROUP BY, HAVING,
// LIMIT; and the select-list reading the fan-out merge plan (merge-plan.ts) builds on: output names and positions,
// COLLATE clauses, LIMIT/OFFSET sources.
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
import type { CountSource } from './plan.js';

export const MERGEABLE: ReadonlySet<string> = new Set(['count', 'sum', 'min', 'max', 'avg']);

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
export function funcCalls(expr: unknown, out: AstObject[]): void {
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

export interface Target {
  readonly name: string | null;
  readonly expr: unknown;
}

/** Collations that sort by bytes (code points, in UTF-8): what the merge's text comparison does. */
const BYTE_COLLATIONS = new Set(['C', 'POSIX', 'ucs_basic', 'c', 'posix']);

/** `expr COLLATE "C"` (or POSIX / ucs_basic). */
export function isByteCollation(node: unknown): boolean {
  const name = collationOf(node);
  return name !== null && BYTE_COLLATIONS.has(name);
}

/** The collation an explicit COLLATE clause names (its last name part), or null without one. */
export function collationOf(node: unknown): string | null {
  const cc = asNode(node, 'CollateClause');
  if (cc === null) return null;
  const names = stringList(list(cc, 'collname'));
  return names.length > 0 ? names[names.length - 1] : null;
}

/**
 * The select list. Entries after the first `*` have positions known only from RowDescription, so `known` holds
 * the entries before it (all of them when there is no star).
 */
export function targetsOf(sel: AstObject): { known: Target[]; hasStar: boolean } {
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

export function countSource(node: unknown): CountSource | null | 'expression' {
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
export function positionOf(
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
  // `ORDER BY "User_id"` against `SELECT "distinctAlias"."User_id" AS "ids_User_id"`: the same input column. Both
  // qualified, the qualifiers must agree: `ORDER BY o.id` is not `SELECT u.id`.
  if (single.length > 0 && single.length === list(cr, 'fields').length) {
    const matches = targets.flatMap((t, i) => {
      const tc = asNode(t.expr, 'ColumnRef');
      const names = tc !== null ? stringList(list(tc, 'fields')) : [];
      return names.length > 0 && names.length === list(tc, 'fields').length && isSameColumn(names, single)
        ? [i]
        : [];
    });
    if (matches.length === 1) return matches[0] + 1;
  }
  return null;
}

/** Do two column references name the same column: the shorter (`id`, `u.id`) a suffix of the longer (`u.id`)? */
function isSameColumn(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 1; i <= n; i++) if (a[a.length - i] !== b[b.length - i]) return false;
  return true;
}

/** Does `expr` contain an aggregate call (outside subqueries)? */
export function hasAggregate(expr: unknown): boolean {
  const calls: AstObject[] = [];
  funcCalls(expr, calls);
  return calls.some(isAggregateCall);
}

/** Does `expr` contain a node of one of these types? */
export function contains(expr: unknown, types: readonly string[]): boolean {
  let found = false;
  walk(expr, (type) => {
    if (types.includes(type)) found = true;
    return !found;
  });
  return found;
}
