// Statement rewrites for fan-out, built from PostgreSQL's own parse tree and deparsed: a multi-row INSERT split into
// one INSERT per shard (its VALUES rows, parameters renumbered, Parse and Bind rebuilt to match; ON CONFLICT and
// RETURNING kept as written), and the SELECT the shards run for a merge (avg as sum + hidden count, hidden columns
// for ORDER BY / HAVING, DISTINCT values and ordered aggregates' arrays with placeholders in place of the aggregates
// the proxy computes from them, GROUP BY extended by those values, HAVING removed, OFFSET pushed down as
// LIMIT limit + offset, LIMIT removed under GROUP BY).
import { deparseSync, parseSync } from 'pgsql-parser';
import { PgError } from '../errors/pg-error.js';

/** One shard's part of a split INSERT. */
export interface ShardInsert {
  readonly shard: number;
  /** 0-based indices of the original VALUES rows, in order. */
  readonly rows: readonly number[];
  readonly sql: string;
  /** For each new parameter `$k` (k = index + 1), the original parameter number. */
  readonly paramMap: readonly number[];
}

type Node = Record<string, unknown>;

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null;
}

/** Visit every ParamRef in a parse tree. */
function forEachParamRef(v: unknown, fn: (ref: { number: number }) => void): void {
  if (Array.isArray(v)) {
    for (const x of v) forEachParamRef(x, fn);
    return;
  }
  if (!isNode(v)) return;
  for (const [k, child] of Object.entries(v)) {
    if (k === 'ParamRef' && isNode(child)) fn(child as { number: number });
    else forEachParamRef(child, fn);
  }
}

/** Build one INSERT per shard from `sql` (a single INSERT … VALUES) and `rowShards` (the shard of each VALUES row). */
export function splitInsert(sql: string, rowShards: readonly number[]): ShardInsert[] {
  const parsed = parseSync(sql) as { stmts: { stmt: Node }[] };
  const stmt = parsed.stmts[0]?.stmt;
  const insert = isNode(stmt) ? (stmt.InsertStmt as Node | undefined) : undefined;
  const select = isNode(insert?.selectStmt)
    ? ((insert.selectStmt as Node).SelectStmt as Node | undefined)
    : undefined;
  const values = select?.valuesLists;
  if (!Array.isArray(values) || values.length !== rowShards.length) {
    throw PgError.internal('cannot split this INSERT: its VALUES rows do not match the routing plan');
  }
  const byShard = new Map<number, number[]>();
  rowShards.forEach((shard, row) => {
    const rows = byShard.get(shard);
    if (rows) rows.push(row);
    else byShard.set(shard, [row]);
  });
  const out: ShardInsert[] = [];
  for (const [shard, rows] of [...byShard].sort((a, b) => a[0] - b[0])) {
    const clone = structuredClone(stmt) as Node;
    const sel = ((clone.InsertStmt as Node).selectStmt as Node).SelectStmt as Node;
    sel.valuesLists = rows.map((r) => (values as unknown[])[r]);
    const used = new Set<number>();
    forEachParamRef(clone, (ref) => used.add(ref.number));
    const paramMap = [...used].sort((a, b) => a - b);
    const renumber = new Map(paramMap.map((old, i) => [old, i + 1]));
    forEachParamRef(clone, (ref) => {
      ref.number = renumber.get(ref.number) as number;
    });
    out.push({ shard, rows, sql: deparseSync(clone, { pretty: false }), paramMap });
  }
  return out;
}

/**
 * OFFSET across shards: each shard must return its first `limit + offset` rows and the proxy skips `offset` of the
 * merged rows. Rewrites `… LIMIT l OFFSET o` to `… LIMIT l::int8 + o::int8` (no OFFSET; parameters stay where they
 * were, so the Bind needs no change). Null when the statement is not a plain SELECT with an OFFSET.
 */
export function pushDownOffset(sql: string): string | null {
  const stmt = firstStatement(sql);
  const select = isNode(stmt) ? (stmt.SelectStmt as Node | undefined) : undefined;
  if (stmt === undefined || select === undefined || !pushDownOffsetIn(select)) return null;
  return deparseSync(stmt, { pretty: false });
}

/** `pushDownOffset` on a SelectStmt's fields, in place; false when it has no OFFSET or uses FETCH … WITH TIES. */
function pushDownOffsetIn(select: Node): boolean {
  if (select.limitOffset === undefined) return false;
  if (
    select.limitOption !== undefined &&
    select.limitOption !== 'LIMIT_OPTION_COUNT' &&
    select.limitOption !== 'LIMIT_OPTION_DEFAULT'
  ) {
    return false; // FETCH … WITH TIES
  }
  // No LIMIT: NULL + offset is NULL, i.e. no limit — and a parameter offset stays referenced (its type inferred).
  select.limitCount = {
    A_Expr: {
      kind: 'AEXPR_OP',
      name: [{ String: { sval: '+' } }],
      lexpr: int8(select.limitCount ?? { A_Const: { isnull: true } }),
      rexpr: int8(select.limitOffset),
    },
  };
  delete select.limitOffset;
  return true;
}

/**
 * GROUP BY across shards: every shard must return all its (partial) groups, so LIMIT and OFFSET are removed and applied
 * by the proxy after the groups are merged. A parameter LIMIT/OFFSET stays referenced (`LIMIT NULL` alone would drop
 * it, and its type with it), as `LIMIT CAST(NULL AS bigint) + l + o`, which is NULL: no limit.
 */
export function stripLimit(sql: string): string | null {
  const stmt = firstStatement(sql);
  const select = isNode(stmt) ? (stmt.SelectStmt as Node | undefined) : undefined;
  if (stmt === undefined || select === undefined || !stripLimitIn(select)) return null;
  return deparseSync(stmt, { pretty: false });
}

/** `stripLimit` on a SelectStmt's fields, in place; false when it has neither LIMIT nor OFFSET. */
function stripLimitIn(select: Node): boolean {
  const terms = [select.limitCount, select.limitOffset].filter((t) => t !== undefined);
  if (terms.length === 0) return false;
  let expr: unknown = { A_Const: { isnull: true } };
  for (const t of terms) {
    expr = {
      A_Expr: { kind: 'AEXPR_OP', name: [{ String: { sval: '+' } }], lexpr: int8(expr), rexpr: int8(t) },
    };
  }
  select.limitCount = expr;
  delete select.limitOffset;
  return true;
}

function firstStatement(sql: string): Node | undefined {
  const parsed = parseSync(sql) as { stmts: { stmt: Node }[] };
  return parsed.stmts[0]?.stmt;
}

/** How the shards' SELECT differs from the client's (see `ShardQuery` in plan.ts). */
export interface ShardSelectEdit {
  /** 0-based select-list entries that are avg(…) calls, run as sum(…) under the same output name. */
  readonly avgTargets: readonly number[];
  /**
   * 0-based select-list entries whose aggregate call (under casts, if any) the proxy computes from hidden columns
   * (DISTINCT values, ordered arrays): run as `aggregatePlaceholder(call)`, which keeps its type and name.
   */
  readonly placeholderTargets?: readonly number[];
  /** 0-based hidden columns the shards also GROUP BY (by output position), after the statement's own GROUP BY. */
  readonly groupByHidden?: readonly number[];
  /** Expressions appended to the select list (the hidden columns), in order; cloned, never changed. */
  readonly hidden: readonly unknown[];
  /**
   * 'remove': HAVING is dropped. 'neutralize': kept as `(…) OR true`, so its parameters keep the types PostgreSQL
   * infers from it while every group passes (the planner folds it away). 'keep': untouched.
   */
  readonly having: 'keep' | 'remove' | 'neutralize';
  /** 'pushdown': see `pushDownOffset`; 'strip': see `stripLimit`; 'keep': untouched. */
  readonly limit: 'keep' | 'pushdown' | 'strip';
  /**
   * 1-based output positions to order by, for a statement without ORDER BY (DISTINCT ON: each shard returns its
   * groups in key order, which the merge needs; PostgreSQL orders them so anyway).
   */
  readonly orderByPositions?: readonly number[];
}

/** Output names of the hidden columns: never a name a query can refer to by accident. */
export function hiddenColumnName(index: number): string {
  return `shardgate.hidden.${index + 1}`;
}

/**
 * The text the shards run for a fan-out SELECT, from the client's SelectStmt (its fields; not modified). Throws when
 * the edit does not fit the statement (a router bug).
 */
export function shardSelectSql(select: Readonly<Record<string, unknown>>, edit: ShardSelectEdit): string {
  const clone = structuredClone(select) as Node;
  const targets = Array.isArray(clone.targetList) ? (clone.targetList as unknown[]) : [];
  for (const i of edit.avgTargets) {
    const target = isNode(targets[i]) ? (targets[i] as Node).ResTarget : undefined;
    const call = isNode(target) && isNode(target.val) ? (target.val as Node).FuncCall : undefined;
    if (!isNode(target) || !isNode(call)) throw new Error(`select-list entry ${i + 1} is not an avg() call`);
    target.val = aggregateLike(call, 'sum');
    target.name ??= 'avg';
  }
  for (const i of edit.placeholderTargets ?? []) {
    const target = isNode(targets[i]) ? (targets[i] as Node).ResTarget : undefined;
    if (!isNode(target)) throw new Error(`select-list entry ${i + 1} is not an expression`);
    let holder = target;
    let key = 'val';
    // Down through casts to the aggregate call.
    while (isNode(holder[key]) && isNode((holder[key] as Node).TypeCast)) {
      holder = (holder[key] as Node).TypeCast as Node;
      key = 'arg';
    }
    const call = isNode(holder[key]) ? (holder[key] as Node).FuncCall : undefined;
    if (!isNode(call)) throw new Error(`select-list entry ${i + 1} is not an aggregate call`);
    holder[key] = aggregatePlaceholder(call);
  }
  const selectListLength = targets.length;
  edit.hidden.forEach((expr, i) => {
    targets.push({ ResTarget: { name: hiddenColumnName(i), val: structuredClone(expr) } });
  });
  clone.targetList = targets;
  if (edit.groupByHidden !== undefined && edit.groupByHidden.length > 0) {
    const groupBy = Array.isArray(clone.groupClause) ? (clone.groupClause as unknown[]) : [];
    for (const h of edit.groupByHidden)
      groupBy.push({ A_Const: { ival: { ival: selectListLength + h + 1 } } });
    clone.groupClause = groupBy;
  }
  if (edit.having === 'remove') delete clone.havingClause;
  else if (edit.having === 'neutralize') {
    clone.havingClause = {
      BoolExpr: {
        boolop: 'OR_EXPR',
        args: [clone.havingClause, { A_Const: { boolval: { boolval: true } } }],
      },
    };
  }
  if (edit.orderByPositions !== undefined && edit.orderByPositions.length > 0) {
    if (Array.isArray(clone.sortClause) && clone.sortClause.length > 0)
      throw new Error('an ORDER BY is there already');
    clone.sortClause = edit.orderByPositions.map((p) => ({
      SortBy: {
        node: { A_Const: { ival: { ival: p } } },
        sortby_dir: 'SORTBY_DEFAULT',
        sortby_nulls: 'SORTBY_NULLS_DEFAULT',
        location: -1,
      },
    }));
  }
  if (edit.limit === 'pushdown' && !pushDownOffsetIn(clone)) throw new Error('no OFFSET to push down');
  if (edit.limit === 'strip' && !stripLimitIn(clone)) throw new Error('no LIMIT/OFFSET to remove');
  return deparseSync({ SelectStmt: clone }, { pretty: false });
}

/**
 * The halves of avg(x) the shards run, from its FuncCall node (FILTER and ORDER BY kept): count(x), and sum(x * 1).
 * `* 1` changes no value and keeps every sum type avg accepts (int2 * 1 is int4, whose sum is int8 as int2's;
 * numeric keeps its scale; interval stays interval) except real: real * 1 is double precision, so the shards add
 * real values in double precision, as avg(real) does (sum(real) would add in single precision).
 */
export function aggregateLike(call: Readonly<Record<string, unknown>>, fn: 'sum' | 'count'): unknown {
  const clone = structuredClone(call) as Node;
  clone.funcname = qualifiedName(fn);
  const args = Array.isArray(clone.args) ? clone.args : [];
  if (fn === 'sum' && args.length === 1) {
    clone.args = [
      {
        A_Expr: {
          kind: 'AEXPR_OP',
          name: [{ String: { sval: '*' } }],
          lexpr: args[0],
          rexpr: { A_Const: { ival: { ival: 1 } } },
        },
      },
    ];
  }
  return { FuncCall: clone };
}

/**
 * What the shards run in place of an aggregate the proxy computes from hidden columns (count/sum/avg(DISTINCT x)
 * from values, string_agg/array_agg from ordered arrays): the same call without DISTINCT or ORDER BY inside and with
 * `FILTER (WHERE false)` — the same result type and output name, NULL (0 for count) at no cost, never an overflow.
 */
export function aggregatePlaceholder(call: Readonly<Record<string, unknown>>): unknown {
  const clone = structuredClone(call) as Node;
  delete clone.agg_distinct;
  delete clone.agg_order;
  clone.agg_filter = { A_Const: { boolval: {} } };
  return { FuncCall: clone };
}

/** `pg_catalog.<name>`: never a user function of the same name on the search path. */
function qualifiedName(name: string): Node[] {
  return [{ String: { sval: 'pg_catalog' } }, { String: { sval: name } }];
}

/** `CAST(arg AS bigint)`: LIMIT arithmetic on literals or untyped parameters. */
function int8(arg: unknown): Node {
  return {
    TypeCast: {
      arg,
      typeName: { names: [{ String: { sval: 'pg_catalog' } }, { String: { sval: 'int8' } }], typemod: -1 },
    },
  };
}
