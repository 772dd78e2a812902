// Walks a statement's AST and builds its scope model (scope.ts): one Level per SELECT / subquery / CTE / set-operation
// branch (DML levels: dml-levels.ts), the table and subquery references in each, column resolution, equalities and
// pins from WHERE / ON / VALUES, and outer-join rules; the statement's table list is statement-tables.ts. Also notes
// what makes a statement a write (data-modifying CTEs, nextval(), SELECT … INTO) and its parameters.
import type { ShardingSchema } from '../sharding/schema.js';
import { noteFunctionCall, SYSTEM_VALUE_FUNCTIONS, type CallEffects } from './builtin-functions.js';
import {
  asNode,
  flag,
  int,
  list,
  obj,
  str,
  stringList,
  stringValue,
  unwrap,
  walk,
  type AstObject,
} from './ast.js';
import { columnEquality, conjuncts, pinKeys, toPin, valueSource, type ConditionScope } from './conditions.js';
import type { SqlSource } from './parser.js';
import {
  columnKey,
  Level,
  refIdOfKey,
  unionSources,
  type LevelRole,
  type Ref,
  type Target,
} from './scope.js';
import { implicitName, levelShape } from './select-shape.js';
import { UnionFind } from './union-find.js';
import {
  DML_LEVELS,
  type DmlScope,
  type InsertRecord,
  type KeyAssignment,
  type MergeInsertRecord,
  type NewRef,
} from './dml-levels.js';
import { StatementTables, tableKeyOf, type MutableTable } from './statement-tables.js';

interface CteEntry {
  level: Level | null;
  readonly columnNames: readonly string[] | null;
}

export class ScopeBuilder implements ConditionScope, DmlScope, CallEffects {
  readonly refs: Ref[] = [];
  readonly levels: Level[] = [];
  /** Columns equated anywhere in the statement: sharded references in one class are co-located. */
  readonly coloc = new UnionFind();
  /** The statement's table list (statement-tables.ts); `tables` is its map. */
  readonly statementTables: StatementTables;
  readonly tables: Map<string, MutableTable>;
  readonly inserts: InsertRecord[] = [];
  readonly mergeInserts: MergeInsertRecord[] = [];
  readonly keyAssignments: KeyAssignment[] = [];
  paramCount = 0;
  /** Data-modifying CTEs, write functions, SELECT … INTO. */
  writes = false;
  /** Writes a transaction rolls back (data-modifying CTEs, SELECT … INTO, large objects, pg_notify). */
  transactionalWrites = false;
  /** Calls of the server-side large-object functions. */
  largeObjectCalls = 0;
  /** Calls of functions that act on one server's backend by pid (pg_terminate_backend, pg_cancel_backend). */
  backendPidCalls = 0;
  /** A pg_notify() call. */
  notifies = false;
  /** Functions whose catalog facts are not known yet. */
  readonly unknownFunctions = new Set<string>();
  /** Why a function it calls may write where shardgate cannot tell (first one found), or null. */
  opaqueCall: string | null = null;
  hasLocking = false;
  hasReturning = false;
  systemCalls = 0;

  readonly schema: ShardingSchema | null;
  private readonly sublinks = new Map<AstObject, Level>();
  private readonly cteScopes: Map<string, CteEntry>[] = [];

  constructor(schema: ShardingSchema | null, source: SqlSource) {
    this.schema = schema;
    this.statementTables = new StatementTables(schema, source);
    this.tables = this.statementTables.tables;
  }

  // ---------------------------------------------------------------- levels

  newLevel(parent: Level | null, role: LevelRole): Level {
    const level = new Level(this.levels.length, parent, role);
    this.levels.push(level);
    return level;
  }

  /** A SELECT or data-modifying statement (CTE body, subquery) → its level. */
  statementLevel(node: unknown, parent: Level | null, role: LevelRole): Level | null {
    const u = unwrap(node);
    if (u === null) return null;
    switch (u.type) {
      case 'SelectStmt':
        return this.selectLevel(u.fields, parent, role);
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        if (parent !== null) this.writes = this.transactionalWrites = true; // a data-modifying CTE
        return DML_LEVELS[u.type](this, u.fields, parent, role);
      default:
        return null;
    }
  }

  selectLevel(sel: AstObject, parent: Level | null, role: LevelRole): Level {
    const level = this.newLevel(parent, role);
    level.select = sel;
    const pushed = this.pushCtes(level, obj(sel, 'withClause'));
    const op = str(sel, 'op') ?? 'SETOP_NONE';
    if (op !== 'SETOP_NONE') {
      for (const side of ['larg', 'rarg']) {
        const b = obj(sel, side);
        if (b !== null) level.branches.push(this.selectLevel(b, level, 'branch'));
      }
      const left = level.branches[0];
      level.targets = (left?.targets ?? []).map((t) => ({ name: t.name, key: null, constants: null }));
      level.hasStar = left?.hasStar ?? false;
    } else {
      const rows = list(sel, 'valuesLists');
      for (const row of rows) this.scanExpr(level, row);
      for (const item of list(sel, 'fromClause')) this.addFromItem(level, item);
      this.scanExpr(level, sel.whereClause);
      this.addConjuncts(level, sel.whereClause);
      level.targets = rows.length > 0 ? valuesTargets(rows) : this.targets(level, list(sel, 'targetList'));
      for (const key of ['groupClause', 'distinctClause', 'windowClause']) {
        for (const e of list(sel, key)) this.scanExpr(level, e);
      }
      this.scanExpr(level, sel.havingClause);
      if (list(sel, 'lockingClause').length > 0) this.hasLocking = true;
      const into = obj(sel, 'intoClause');
      if (into !== null) {
        this.writes = this.transactionalWrites = true;
        const rel = obj(into, 'rel');
        if (rel !== null) this.statementTables.record(rel);
      }
    }
    for (const s of list(sel, 'sortClause')) this.scanExpr(level, s);
    this.scanExpr(level, sel.limitCount);
    this.scanExpr(level, sel.limitOffset);
    if (pushed) this.popCtes();
    level.isPushdownSafe = (role === 'derived' || role === 'cte') && isPlainSelect(sel);
    return level;
  }

  /** WITH clause: registers the CTE names in order, so later CTEs (and recursive ones) see them. */
  pushCtes(level: Level, withClause: AstObject | null): boolean {
    if (withClause === null) return false;
    const scope = new Map<string, CteEntry>();
    this.cteScopes.push(scope);
    const recursive = flag(withClause, 'recursive');
    for (const c of list(withClause, 'ctes')) {
      const cte = asNode(c, 'CommonTableExpr');
      if (cte === null) continue;
      const name = str(cte, 'ctename') ?? '';
      const columnNames = list(cte, 'aliascolnames').map((n) => stringValue(n) ?? '');
      const entry: CteEntry = { level: null, columnNames: columnNames.length > 0 ? columnNames : null };
      if (recursive) scope.set(name, entry);
      entry.level = this.statementLevel(cte.ctequery, level, 'cte');
      scope.set(name, entry);
    }
    return true;
  }

  /** Ends the WITH clause pushCtes registered last. */
  popCtes(): void {
    this.cteScopes.pop();
  }

  private findCte(name: string): CteEntry | null {
    for (let i = this.cteScopes.length - 1; i >= 0; i--) {
      const e = this.cteScopes[i].get(name);
      if (e !== undefined) return e;
    }
    return null;
  }

  // ---------------------------------------------------------------- FROM items and references

  addRef(level: Level, r: NewRef): Ref {
    const ref: Ref = {
      id: this.refs.length,
      level,
      kind: r.kind,
      schema: r.schema,
      name: r.name,
      qualifier: r.qualifier,
      hasAlias: r.hasAlias,
      shardedBy: r.shardedBy ?? null,
      inner: r.inner,
      columnAliases: r.columnAliases,
      tableKey: r.tableKey,
      linked: new Set(),
    };
    this.refs.push(ref);
    level.refs.push(ref);
    if (ref.inner !== null) ref.inner.usedBy.push(ref);
    return ref;
  }

  /** FROM item → the ids of the references it brings into scope. */
  addFromItem(level: Level, item: unknown): number[] {
    const u = unwrap(item);
    if (u === null) return [];
    const f = u.fields;
    switch (u.type) {
      case 'RangeVar':
        return [this.addRangeVar(level, f).id];
      case 'RangeSubselect':
        return [this.addDerived(level, this.statementLevel(f.subquery, level, 'derived'), obj(f, 'alias'))];
      case 'RangeFunction':
      case 'RangeTableFunc':
      case 'JsonTable':
        this.scanExpr(level, f.functions ?? f.docexpr ?? f.context_item);
        return [this.addDerived(level, null, obj(f, 'alias'), 'function')];
      case 'RangeTableSample':
        return this.addFromItem(level, f.relation);
      case 'JoinExpr': {
        const left = this.addFromItem(level, f.larg);
        const right = this.addFromItem(level, f.rarg);
        this.join(level, f, left, right);
        return [...left, ...right];
      }
      default:
        this.scanExpr(level, item);
        return [];
    }
  }

  private addDerived(
    level: Level,
    inner: Level | null,
    alias: AstObject | null,
    kind: 'derived' | 'function' = 'derived',
  ): number {
    const name = str(alias, 'aliasname');
    return this.addRef(level, {
      kind,
      schema: null,
      name,
      qualifier: name,
      hasAlias: alias !== null,
      inner,
      columnAliases: aliasColumns(alias),
      tableKey: null,
    }).id;
  }

  /** A RangeVar: a CTE reference, or a table (recorded in the statement's table list). */
  addRangeVar(level: Level, rv: AstObject): Ref {
    const schemaName = str(rv, 'schemaname');
    const relname = str(rv, 'relname') ?? '';
    const alias = obj(rv, 'alias');
    const aliasName = str(alias, 'aliasname');
    const cte = schemaName === null ? this.findCte(relname) : null;
    if (cte !== null) {
      return this.addRef(level, {
        kind: 'derived',
        schema: null,
        name: relname,
        qualifier: aliasName ?? relname,
        hasAlias: aliasName !== null,
        inner: cte.level,
        columnAliases: aliasColumns(alias) ?? cte.columnNames,
        tableKey: null,
      });
    }
    const table = this.statementTables.record(rv);
    return this.addRef(level, {
      kind: 'table',
      schema: schemaName,
      name: relname,
      qualifier: aliasName ?? relname,
      hasAlias: aliasName !== null,
      inner: null,
      columnAliases: aliasColumns(alias),
      tableKey: tableKeyOf(schemaName, relname),
      shardedBy: table.sharding === 'sharded' ? this.statementTables.shardedEntry(schemaName, relname) : null,
    });
  }

  private join(level: Level, f: AstObject, left: number[], right: number[]): void {
    const type = str(f, 'jointype') ?? 'JOIN_INNER';
    this.scanExpr(level, f.quals);
    const usingPairs: [string, string][] = [];
    for (const n of list(f, 'usingClause')) {
      const name = stringValue(n);
      const a = name !== null ? this.resolveAmong(left, name) : null;
      const b = name !== null ? this.resolveAmong(right, name) : null;
      if (a !== null && b !== null) usingPairs.push([a, b]);
    }
    if (type === 'JOIN_INNER') {
      this.addConjuncts(level, f.quals);
      for (const [a, b] of usingPairs) this.equate(level, a, b);
      return;
    }
    const preserved = type === 'JOIN_LEFT' ? left : type === 'JOIN_RIGHT' ? right : [];
    const nullable = type === 'JOIN_LEFT' ? right : type === 'JOIN_RIGHT' ? left : [];
    this.outerJoinConditions(level, f.quals, usingPairs, preserved, nullable);
  }

  /**
   * ON conditions of an outer join: equalities co-locate both sides; the nullable side's rows only matter where they
   * match, so its pins hold and it takes the preserved side's key values; the preserved side is not restricted.
   */
  outerJoinConditions(
    level: Level,
    quals: unknown,
    pairs: [string, string][],
    preserved: readonly number[],
    nullable: readonly number[],
  ): void {
    const isNullable = (key: string): boolean => nullable.includes(refIdOfKey(key));
    const isPreserved = (key: string): boolean => preserved.includes(refIdOfKey(key));
    const all = [...pairs];
    for (const c of conjuncts(quals)) {
      const eq = columnEquality(this, level, c);
      if (eq !== null) {
        all.push(eq);
        continue;
      }
      const p = toPin(this, level, c);
      if (p !== null && pinKeys(p).every(isNullable)) level.pins.push(p);
    }
    for (const [a, b] of all) {
      this.coloc.union(a, b);
      if (isNullable(a) && isPreserved(b)) level.pins.push({ t: 'flow', key: a, from: b });
      else if (isNullable(b) && isPreserved(a)) level.pins.push({ t: 'flow', key: b, from: a });
      else if (isNullable(a) && isNullable(b)) level.uf.union(a, b);
    }
  }

  /** Conjunctive conditions (WHERE, inner-join ON): equalities merge column classes; the rest become pins. */
  addConjuncts(level: Level, expr: unknown): void {
    for (const c of conjuncts(expr)) {
      const eq = columnEquality(this, level, c);
      if (eq !== null) this.equate(level, eq[0], eq[1]);
      else {
        const p = toPin(this, level, c);
        if (p !== null) level.pins.push(p);
      }
    }
  }

  private equate(level: Level, a: string, b: string): void {
    level.uf.union(a, b);
    this.coloc.union(a, b);
  }

  /** `key` takes the values of `inner`'s column `innerKey` (pins flow out; co-located for joins). */
  link(level: Level, key: string, inner: Level, innerKey: string): void {
    this.coloc.union(key, innerKey);
    level.pins.push({ t: 'sub', key, level: inner, innerKey });
  }

  // ---------------------------------------------------------------- expressions and columns

  /** Visits an expression: resolves columns, counts parameters, analyzes subqueries, classifies functions. */
  scanExpr(level: Level, expr: unknown): void {
    if (expr === undefined || expr === null) return;
    walk(expr, (type, f) => {
      switch (type) {
        case 'ColumnRef':
          this.resolve(level, list(f, 'fields'));
          return false;
        case 'ParamRef':
          this.paramCount = Math.max(this.paramCount, int(f, 'number'));
          return false;
        case 'SubLink':
          this.sublink(level, f);
          return false;
        case 'FuncCall':
          noteFunctionCall(this, stringList(list(f, 'funcname')), this.schema?.catalog);
          return true;
        case 'SQLValueFunction':
          if (SYSTEM_VALUE_FUNCTIONS.has(str(f, 'op') ?? '')) this.systemCalls++;
          return false;
        case 'SelectStmt':
          this.selectLevel(f, level, 'sublink');
          return false;
        default:
          return true;
      }
    });
  }

  private sublink(level: Level, f: AstObject): void {
    this.scanExpr(level, f.testexpr);
    const sub = this.statementLevel(f.subselect, level, 'sublink');
    if (sub === null) return;
    const type = str(f, 'subLinkType') ?? '';
    sub.sublinkType = type;
    level.sublinks.push(sub);
    this.sublinks.set(f, sub);
    const op = stringList(list(f, 'operName')).pop() ?? '';
    const cr = asNode(f.testexpr, 'ColumnRef');
    if (type !== 'ANY_SUBLINK' || (op !== '' && op !== '=') || cr === null) return;
    const key = this.resolveKey(level, list(cr, 'fields'));
    const first = sub.targets[0];
    if (key !== null && first !== undefined) {
      sub.linkKey = key;
      if (first.key !== null) this.coloc.union(key, first.key);
    }
  }

  sublinkLevel(sublink: AstObject): Level | undefined {
    return this.sublinks.get(sublink);
  }

  /** Select-list / RETURNING entries → the level's output columns. */
  targets(level: Level, items: readonly unknown[]): Target[] {
    const out: Target[] = [];
    for (const t of items) {
      const rt = asNode(t, 'ResTarget');
      if (rt === null) continue;
      this.scanExpr(level, rt.val);
      const cr = asNode(rt.val, 'ColumnRef');
      const fields = cr !== null ? list(cr, 'fields') : [];
      if (fields.some((x) => asNode(x, 'A_Star') !== null)) {
        level.hasStar = true;
        continue;
      }
      const key = cr !== null ? this.resolveKey(level, fields) : null;
      const value = valueSource(rt.val);
      out.push({
        name: str(rt, 'name') ?? implicitName(rt.val),
        key,
        constants: value !== null ? [value] : null,
      });
    }
    return out;
  }

  resolveKey(level: Level, fields: readonly unknown[]): string | null {
    return this.resolve(level, fields)?.key ?? null;
  }

  /**
   * A column reference → its reference and key, searching this level, then outer levels (PostgreSQL's order).
   * An unqualified name in a level with several references resolves only when exactly one of them is known to
   * have the column (its sharding column, or a subquery output of that name).
   */
  resolve(level: Level, fields: readonly unknown[]): { ref: Ref; key: string } | null {
    const names = stringList(fields);
    if (names.length === 0 || names.length !== fields.length) return null;
    const column = names[names.length - 1];
    if (names.length === 1) {
      for (let l: Level | null = level; l !== null; l = l.parent) {
        const candidates = l.refs.filter((r) => r.kind !== 'excluded');
        if (candidates.length === 0) continue;
        if (candidates.length === 1) return this.bind(candidates[0], column);
        const known = candidates.filter((r) => this.knowsColumn(r, column));
        return known.length === 1 ? this.bind(known[0], column) : null;
      }
      return null;
    }
    const qualifier = names[names.length - 2];
    const schemaName = names.length >= 3 ? names[names.length - 3] : null;
    for (let l: Level | null = level; l !== null; l = l.parent) {
      const ref = l.refs.find(
        (r) =>
          r.qualifier === qualifier &&
          (schemaName === null || (!r.hasAlias && (r.schema === null || r.schema === schemaName))),
      );
      if (ref !== undefined) return this.bind(ref, column);
    }
    return null;
  }

  /** USING (col): the key of the reference among `ids` that has the column. */
  private resolveAmong(ids: readonly number[], column: string): string | null {
    const refs = ids.map((id) => this.refs[id]);
    const known = refs.length === 1 ? refs : refs.filter((r) => this.knowsColumn(r, column));
    return known.length === 1 ? this.bind(known[0], column).key : null;
  }

  private knowsColumn(ref: Ref, column: string): boolean {
    switch (ref.kind) {
      case 'table':
        // Without the catalog we only know a sharded table's sharding column.
        return ref.shardedBy !== null && ref.shardedBy.column === column;
      case 'function':
        return ref.columnAliases?.includes(column) ?? false;
      case 'derived':
        return this.output(ref, column) !== null;
      default:
        return false;
    }
  }

  /** Binds a column to its reference: discovers column-based sharding, links derived columns to their source. */
  bind(ref: Ref, column: string): { ref: Ref; key: string } {
    const key = columnKey(ref, column);
    if (ref.kind === 'table' && ref.shardedBy === null && ref.tableKey !== null) {
      const t = this.tables.get(ref.tableKey);
      const entry =
        t !== undefined && !t.isCatalog ? this.statementTables.columnEntry(ref.schema, column) : null;
      if (entry !== null && t !== undefined) {
        ref.shardedBy = entry;
        t.sharding = 'sharded';
        t.shardColumn = entry.column;
      }
    } else if (ref.kind === 'derived' && ref.inner !== null && !ref.linked.has(column)) {
      ref.linked.add(column);
      const out = this.output(ref, column);
      if (out?.constants) ref.level.pins.push({ t: 'pin', key, sources: out.constants });
      else if (out?.key) this.link(ref.level, key, ref.inner, out.key);
    }
    return { ref, key };
  }

  /** The output column `column` of a derived reference (select-list name, alias list, or through `*`). */
  private output(ref: Ref, column: string): Target | null {
    const inner = ref.inner;
    if (inner === null) return null;
    if (ref.columnAliases !== null) {
      const i = ref.columnAliases.indexOf(column);
      return i >= 0 ? (inner.targets[i] ?? null) : null;
    }
    const t = inner.targets.find((x) => x.name === column);
    if (t !== undefined) return t;
    if (inner.hasStar && inner.branches.length === 0) {
      const key = this.resolveKey(inner, [{ String: { sval: column } }]);
      return key !== null ? { name: column, key, constants: null } : null;
    }
    return null;
  }
}

/** No set operation, aggregation, grouping, DISTINCT, window, LIMIT/OFFSET or row locking. */
function isPlainSelect(sel: AstObject): boolean {
  if ((str(sel, 'op') ?? 'SETOP_NONE') !== 'SETOP_NONE' || list(sel, 'lockingClause').length > 0)
    return false;
  const shape = levelShape(sel);
  return (
    !shape.hasAggregates &&
    shape.windowPartitions.length === 0 &&
    !shape.distinct &&
    shape.groupBy.length === 0 &&
    !shape.hasHaving &&
    !shape.hasLimit
  );
}

/** A VALUES list's columns (column1, column2, …) with each column's literal / parameter values when all have one. */
function valuesTargets(rows: readonly unknown[]): Target[] {
  const width = list(asNode(rows[0], 'List'), 'items').length;
  const out: Target[] = [];
  for (let i = 0; i < width; i++) {
    const values = rows.map((row) => valueSource(list(asNode(row, 'List'), 'items')[i]));
    const complete = values.every((v) => v !== null);
    out.push({
      name: `column${i + 1}`,
      key: null,
      constants: complete ? unionSources(values.map((v) => (v === null ? [] : [v]))) : null,
    });
  }
  return out;
}

function aliasColumns(alias: AstObject | null): string[] | null {
  const cols = list(alias, 'colnames').map((n) => stringValue(n) ?? '');
  return cols.length > 0 ? cols : null;
}
