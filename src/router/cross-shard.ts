// From a statement's scope model to routing facts: the shard-key sources that pin every sharded table reference,
// whether an UPDATE moves rows to another shard, and the reasons the statement could not be answered correctly if
// it ran on several shards (joins not on the sharding column, subqueries not correlated on it, aggregation, LIMIT
// or DISTINCT inside subqueries, writes whose rows' shards are unknown). Conservative: when unsure, give a reason.
import type { ShardedColumn } from '../sharding/schema.js';
import {
  asNode,
  constValue,
  flag,
  int,
  list,
  obj,
  str,
  stringList,
  unwrap,
  walk,
  type AstObject,
} from './ast.js';
import { valueSource } from './conditions.js';
import type { KeySource, ShardKeyPlan } from './plan.js';
import {
  columnKey,
  PinEvaluator,
  refIdOfKey,
  sameSource,
  unionSources,
  type Level,
  type Ref,
} from './scope.js';
import type { ScopeBuilder } from './scope-builder.js';
import { levelShape } from './select-shape.js';

export class CrossShardCheck {
  private readonly b: ScopeBuilder;
  private readonly pins: PinEvaluator;
  /**
   * Subqueries' `OFFSET $n` (no LIMIT) over sharded rows: harmless across shards only when $n is 0 (Prisma's count()
   * and aggregate() send `OFFSET $1` bound to 0), so it is checked at Bind. Filled by reasons().
   */
  readonly zeroOffsetParams: number[] = [];

  constructor(builder: ScopeBuilder) {
    this.b = builder;
    this.pins = new PinEvaluator(builder.refs);
  }

  /** Sharded table references anywhere in the statement. */
  shardedRefs(): Ref[] {
    return this.b.refs.filter((r) => r.kind === 'table' && r.shardedBy !== null);
  }

  /** The key sources pinning every sharded reference (same key type and function), or null. */
  shardKey(): ShardKeyPlan | null {
    const sharded = this.shardedRefs();
    const column = sharded[0]?.shardedBy ?? null;
    if (column === null) return null;
    const lists: KeySource[][] = [];
    for (const ref of sharded) {
      const by = ref.shardedBy;
      if (by === null || !compatible(by, column)) return null;
      const s = this.pins.keySources(ref.level, columnKey(ref, by.column));
      if (s === null || s.length === 0) return null;
      lists.push(s);
    }
    return { column, sources: unionSources(lists) };
  }

  /** Does any assignment to a sharding column possibly change its value? (`SET id = id`, `= excluded.id` do not.) */
  movesShardKey(): boolean {
    return this.b.keyAssignments.some(({ level, ref, value }) => {
      const column = ref.shardedBy?.column ?? '';
      const cr = asNode(value, 'ColumnRef');
      if (cr !== null) {
        const names = stringList(list(cr, 'fields'));
        const qualifier = names.length > 1 ? names[names.length - 2] : null;
        if (
          names[names.length - 1] === column &&
          (qualifier === null || qualifier === 'excluded' || qualifier === ref.qualifier)
        ) {
          return false;
        }
      }
      // SET id = $1 … WHERE id = $1: the same single value.
      const src = valueSource(value);
      const pinned = src !== null ? this.pins.keySources(level, columnKey(ref, column)) : null;
      return !(src !== null && pinned !== null && pinned.length === 1 && sameSource(pinned[0], src));
    });
  }

  /** Every reason found, in statement order (the caller decides whether they matter for the chosen shards). */
  reasons(): string[] {
    return [...this.writeReasons(), ...this.levelReasons()];
  }

  /** Reasons for the top-level SELECT (windows, DISTINCT ON) that the merge step cannot handle. */
  topLevelReasons(root: Level): string[] {
    return this.visibleSharded(root).length > 0 ? this.shapeReasons(root, true) : [];
  }

  /** Is the level's aggregation grouped by the sharding column (so groups never span shards)? */
  groupedByKey(level: Level, groupBy: readonly unknown[]): boolean {
    return this.byKey(level, groupBy);
  }

  hasShardedRows(level: Level): boolean {
    return this.visibleSharded(level).length > 0;
  }

  private writeReasons(): string[] {
    const reasons: string[] = [];
    for (const { info, target, source } of this.b.inserts) {
      if (target === null) continue;
      const visible = source !== null ? this.visibleSharded(source) : [];
      if (target.shardedBy !== null && info.insertKeysReason !== null && info.columnsLookup === null) {
        // INSERT … SELECT from a co-located sharded table: every shard copies its own rows, keys stay local.
        const root = this.componentOf(target);
        const colocated = visible.length > 0 && visible.every((r) => this.componentOf(r) === root);
        if (!colocated) reasons.push(info.insertKeysReason);
      } else if (target.shardedBy === null && visible.length > 0) {
        reasons.push(
          `INSERT … SELECT from sharded table ${this.names(visible)} into non-sharded table ${target.name ?? ''} ` +
            'would write different rows on each shard',
        );
      }
    }
    for (const { target, sourceIds } of this.b.mergeInserts) {
      if (target.shardedBy === null) continue;
      const root = this.componentOf(target);
      const sources = sourceIds.flatMap((id) => {
        const r = this.b.refs[id];
        if (r.kind === 'table') return r.shardedBy !== null ? [r] : [];
        return r.inner !== null ? this.visibleSharded(r.inner) : [];
      });
      if (sources.length === 0 || sources.some((r) => this.componentOf(r) !== root)) {
        reasons.push(
          `MERGE … WHEN NOT MATCHED THEN INSERT into sharded table ${target.name ?? ''} would insert on every shard without a match`,
        );
      }
    }
    return reasons;
  }

  /** Level by level: joins not on the sharding key, unlinked subqueries, per-shard aggregation in subqueries. */
  private levelReasons(): string[] {
    const reasons: string[] = [];
    for (const level of this.b.levels) {
      const visible = this.visibleSharded(level);
      if (visible.length === 0) continue;
      if (level.branches.length === 0) {
        // Set-operation branches are not joined with each other: their tables are checked in their own levels.
        const joined = this.visibleSharded(level, undefined, false);
        const byRoot = new Map<string, Ref>();
        for (const r of joined) if (!byRoot.has(this.componentOf(r))) byRoot.set(this.componentOf(r), r);
        if (byRoot.size > 1) {
          const [a, c] = [...byRoot.values()];
          const prefix = level.label !== null ? `${level.label}: ` : '';
          reasons.push(
            `${prefix}sharded tables ${a.name ?? '?'} and ${c.name ?? '?'} are not joined on their sharding columns ` +
              `(${a.name ?? '?'}.${a.shardedBy?.column ?? '?'}, ${c.name ?? '?'}.${c.shardedBy?.column ?? '?'})`,
          );
        }
      }
      if (level.role === 'sublink' && !this.correlated(level) && !this.inLinked(level)) {
        reasons.push(
          `subquery over sharded table ${this.names(visible)} is not correlated with the outer query on its sharding column`,
        );
      }
      if (level.branches.length > 0 && level.role !== 'branch') reasons.push(...this.branchReasons(level));
      if (level.parent !== null && level.select !== null && !this.correlated(level)) {
        reasons.push(...this.shapeReasons(level, false));
      }
    }
    return reasons;
  }

  /**
   * A set operation's branches each run on every shard: one that reads no sharded rows (only copied tables, or no
   * table) returns its rows once per shard. Only a top-level UNION (without ALL) is right then — the proxy
   * de-duplicates its rows — and only if every shard's copy gives the same rows (no functions, LIMIT, …).
   */
  private branchReasons(root: Level): string[] {
    const op = setOperationName(root.select);
    const where = root.role === 'top' ? '' : ' in a subquery';
    const isDeduplicated = root.role === 'top' && isDistinctUnion(root.select);
    for (const leaf of setOperationLeaves(root)) {
      if (this.visibleSharded(leaf).length > 0) continue;
      if (!isDeduplicated) {
        return [
          `a branch of ${op}${where} reads no sharded table (only tables copied to every shard, or none): ` +
            'across shards its rows would be returned once per shard',
        ];
      }
      const varies = replicaDifference(leaf.select);
      if (varies !== null) {
        return [
          `a branch of ${op} that reads no sharded table ${varies}, so each shard may return different rows for it`,
        ];
      }
    }
    return [];
  }

  /** Aggregation, windows, DISTINCT and LIMIT in a level reading sharded rows (per-shard results would differ). */
  private shapeReasons(level: Level, isTop: boolean): string[] {
    const sel = level.select;
    if (sel === null) return [];
    const reasons: string[] = [];
    const tables = this.names(this.visibleSharded(level));
    const where = isTop ? '' : level.role === 'branch' ? ' in a set-operation branch' : ' in a subquery';
    const op = str(sel, 'op') ?? 'SETOP_NONE';
    // Duplicates across shards do not matter to IN / EXISTS, nor under a top-level UNION (the proxy removes them).
    const isMembership =
      level.sublinkType !== null &&
      level.sublinkType !== 'EXPR_SUBLINK' &&
      level.sublinkType !== 'ARRAY_SUBLINK';
    const isDeduplicated = isMembership || this.isDeduplicatedByProxy(level);
    if (op !== 'SETOP_NONE') {
      if (isTop) return reasons;
      if (op !== 'SETOP_UNION')
        reasons.push(`${op.slice(6)}${where} over sharded table ${tables} needs every shard's rows`);
      else if (!flag(sel, 'all') && !isDeduplicated && !this.outputsKey(level)) {
        // Each shard removes its own duplicates; equal rows from two shards would both remain.
        reasons.push(`UNION${where} over sharded table ${tables} does not include the sharding column`);
      }
      if (sel.limitCount !== undefined || sel.limitOffset !== undefined) {
        reasons.push(`LIMIT/OFFSET${where} over sharded table ${tables} needs every shard's rows`);
      }
      return reasons;
    }
    const shape = levelShape(sel);
    const grouped = this.byKey(level, shape.groupBy);
    if (shape.windowPartitions.some((partition) => !this.byKey(level, partition))) {
      reasons.push(
        `window function${where} over sharded table ${tables} is not partitioned by the sharding column`,
      );
    }
    // The top level's DISTINCT ON is merged by the proxy when it leads the ORDER BY (select-shape.ts).
    if (shape.distinctOn.length > 0 && !this.byKey(level, shape.distinctOn) && !isTop) {
      reasons.push(`DISTINCT ON${where} over sharded table ${tables} does not include the sharding column`);
    }
    // The top level's HAVING is applied by the proxy after the merge (select-shape.ts says when it cannot be).
    if (isTop) return reasons;
    if ((shape.hasAggregates || shape.groupBy.length > 0 || shape.hasHaving) && !grouped) {
      reasons.push(`aggregation${where} over sharded table ${tables} is not grouped by the sharding column`);
    }
    if (
      shape.distinct &&
      shape.distinctOn.length === 0 &&
      !isDeduplicated &&
      !grouped &&
      !this.targetsKey(level)
    ) {
      reasons.push(`DISTINCT${where} over sharded table ${tables} does not include the sharding column`);
    }
    if (shape.hasLimit) {
      const offset = zeroOffset(sel);
      if (offset === 'no')
        reasons.push(`LIMIT/OFFSET${where} over sharded table ${tables} needs every shard's rows`);
      else if (offset !== 'yes') this.zeroOffsetParams.push(offset.param);
    }
    return reasons;
  }

  private componentOf(ref: Ref): string {
    return this.b.coloc.find(columnKey(ref, ref.shardedBy?.column ?? ''));
  }

  /** Sharded table references whose rows a level reads through its FROM clause (derived tables included). */
  private readonly visible = new Map<Level, Ref[]>();

  private visibleSharded(level: Level, seen?: Set<Level>, throughSetOps = true): Ref[] {
    if (seen === undefined) {
      if (!throughSetOps) return this.collectVisible(level, new Set(), false);
      let v = this.visible.get(level);
      if (v === undefined) {
        v = this.collectVisible(level, new Set(), true);
        this.visible.set(level, v);
      }
      return v;
    }
    return this.collectVisible(level, seen, throughSetOps);
  }

  private collectVisible(level: Level, seen: Set<Level>, throughSetOps: boolean): Ref[] {
    if (seen.has(level) || (!throughSetOps && level.branches.length > 0 && seen.size > 0)) return [];
    seen.add(level);
    const out: Ref[] = [];
    for (const branch of level.branches) out.push(...this.visibleSharded(branch, seen, throughSetOps));
    for (const r of level.refs) {
      if (r.kind === 'table' && r.shardedBy !== null) out.push(r);
      else if (r.kind === 'derived' && r.inner !== null)
        out.push(...this.visibleSharded(r.inner, seen, throughSetOps));
    }
    return out;
  }

  private names(refs: readonly Ref[]): string {
    return [...new Set(refs.map((r) => r.name ?? '?'))].join(', ');
  }

  /** The one co-located group the level's sharded rows belong to, or null when there are several. */
  private singleComponent(level: Level): string | null {
    const roots = new Set(this.visibleSharded(level).map((r) => this.componentOf(r)));
    return roots.size === 1 ? [...roots][0] : null;
  }

  /** Does some expression in `exprs` name the sharding column of the level's (single) co-located group? */
  private byKey(level: Level, exprs: readonly unknown[]): boolean {
    const root = this.singleComponent(level);
    if (root === null) return false;
    return exprs.some((e) => {
      const cr = asNode(e, 'ColumnRef');
      const key = cr !== null ? this.b.resolveKey(level, list(cr, 'fields')) : null;
      return key !== null && this.b.coloc.find(key) === root;
    });
  }

  private targetsKey(level: Level): boolean {
    const root = this.singleComponent(level);
    return root !== null && level.targets.some((t) => t.key !== null && this.b.coloc.find(t.key) === root);
  }

  /** Do the level's rows reach the client only through a top-level UNION (without ALL), which the proxy de-duplicates? */
  private isDeduplicatedByProxy(level: Level): boolean {
    let root = level;
    while (root.role === 'branch' && root.parent !== null) root = root.parent;
    return root !== level && root.role === 'top' && isDistinctUnion(root.select);
  }

  /**
   * Is some output column of a set operation, in every branch, the sharding column of that branch's rows (hashed
   * alike)? Then equal rows always come from one shard, and each shard's own UNION removes every duplicate.
   */
  private outputsKey(level: Level): boolean {
    const leaves = setOperationLeaves(level);
    const width = Math.min(...leaves.map((l) => (l.hasStar ? 0 : l.targets.length)));
    for (let i = 0; i < width; i++) {
      let first: ShardedColumn | null = null;
      const isKey = leaves.every((leaf) => {
        const root = this.singleComponent(leaf);
        const key = leaf.targets[i]?.key ?? null;
        const by = this.visibleSharded(leaf)[0]?.shardedBy ?? null;
        if (root === null || key === null || by === null || this.b.coloc.find(key) !== root) return false;
        first ??= by;
        return compatible(by, first);
      });
      if (isKey) return true;
    }
    return false;
  }

  /** Is every sharded reference of this subquery equated with an outer sharded reference's sharding column? */
  private correlated(level: Level): boolean {
    const direct = level.refs.filter((r) => r.kind === 'table' && r.shardedBy !== null);
    if (direct.length === 0 || direct.length !== this.visibleSharded(level).length) return false;
    return direct.every((r) =>
      level.uf.classOf(columnKey(r, r.shardedBy?.column ?? '')).some((m) => {
        const owner = this.b.refs[refIdOfKey(m)];
        return (
          owner !== undefined &&
          owner.level !== level &&
          owner.level.isAncestorOf(level) &&
          owner.shardedBy !== null &&
          m === columnKey(owner, owner.shardedBy.column)
        );
      }),
    );
  }

  /** `outer_key IN (SELECT inner_key …)` with both in one co-located group. */
  private inLinked(level: Level): boolean {
    if (level.linkKey === null) return false;
    const root = this.b.coloc.find(level.linkKey);
    const owner = this.b.refs[refIdOfKey(level.linkKey)];
    const outerIsKey = owner !== undefined && owner.shardedBy !== null && this.componentOf(owner) === root;
    return outerIsKey && this.visibleSharded(level).every((r) => this.componentOf(r) === root);
  }
}

/** Same key type and shard function: their keys can be hashed together. */
function compatible(a: ShardedColumn, b: ShardedColumn): boolean {
  if (a === b || a.fn === b.fn) return a.keyType === b.keyType;
  if (a.keyType !== b.keyType || a.fn.kind !== b.fn.kind) return false;
  return a.fn.kind === 'hash' || JSON.stringify(a.fn) === JSON.stringify(b.fn);
}

/** The branches of a set operation that are plain SELECTs (or VALUES), nested set operations flattened. */
function setOperationLeaves(level: Level): Level[] {
  return level.branches.length === 0 ? [level] : level.branches.flatMap(setOperationLeaves);
}

function isDistinctUnion(sel: AstObject | null): boolean {
  return str(sel, 'op') === 'SETOP_UNION' && !flag(sel, 'all');
}

/** `UNION ALL`, `INTERSECT`, … as written. */
function setOperationName(sel: AstObject | null): string {
  return `${(str(sel, 'op') ?? 'SETOP_NONE').slice(6)}${flag(sel, 'all') ? ' ALL' : ''}`;
}

/** Date/time input words read at run time: `'now'::timestamptz` differs from shard to shard. */
const TIME_WORDS: ReadonlySet<string> = new Set(['now', 'today', 'tomorrow', 'yesterday']);

/** System columns: each shard's copy of a row has its own. */
const SYSTEM_COLUMNS: ReadonlySet<string> = new Set(['ctid', 'xmin', 'xmax', 'cmin', 'cmax', 'tableoid']);

/**
 * Why a query over tables copied to every shard (or over no table) might return different rows on different shards
 * — a function call (now(), random(), an aggregate whose order is not fixed…), `'now'` and the like, LIMIT/OFFSET or
 * DISTINCT ON choosing among rows, TABLESAMPLE, a system column — or null when every shard returns the same rows.
 */
function replicaDifference(sel: AstObject | null): string | null {
  let why: string | null = null;
  walk({ SelectStmt: sel ?? {} }, (type, fields) => {
    if (why !== null) return false;
    if (type === 'FuncCall' || type === 'SQLValueFunction' || type === 'NextValueExpr')
      why = 'calls a function';
    else if (type === 'RangeTableSample') why = 'uses TABLESAMPLE';
    else if (type === 'SelectStmt' && (fields.limitCount !== undefined || fields.limitOffset !== undefined))
      why = 'uses LIMIT/OFFSET';
    else if (type === 'SelectStmt' && list(fields, 'distinctClause').some((d) => unwrap(d) !== null))
      why = 'uses DISTINCT ON';
    else if (type === 'ColumnRef') {
      const names = stringList(list(fields, 'fields'));
      const last = names[names.length - 1];
      if (last !== undefined && SYSTEM_COLUMNS.has(last)) why = `reads the system column ${last}`;
    } else if (type === 'A_Const') {
      const v = constValue(fields);
      if (v.kind === 'string' && TIME_WORDS.has(v.value.trim().toLowerCase()))
        why = `reads the clock ('${v.value}')`;
    }
    return why === null;
  });
  return why;
}

/**
 * Whether a level's LIMIT / OFFSET leaves every row (so shards may each apply it): `OFFSET 0` without LIMIT does;
 * `OFFSET $n` without LIMIT does when $n is bound to 0; anything else does not.
 */
function zeroOffset(sel: AstObject): 'yes' | 'no' | { param: number } {
  if (sel.limitCount !== undefined) return 'no';
  const offset = unwrap(sel.limitOffset);
  if (offset?.type === 'ParamRef') return { param: int(offset.fields, 'number') };
  if (offset?.type !== 'A_Const') return 'no';
  const ival = obj(offset.fields, 'ival');
  return ival !== null && int(ival, 'ival') === 0 ? 'yes' : 'no';
}
