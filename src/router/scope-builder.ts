// Walks a statement's AST and builds its scope model (scope.ts): one Level per SELECT / subquery / CTE / set-operation
// branch / DML target, the table and subquery references in each, column resolution, equalities and pins from
// WHERE / ON / VALUES, outer-join rules, and the statement's table list with its sharding annotation. Also notes
// what makes a statement a write (data-modifying CTEs, nextval(), SELECT … INTO) and its parameters.
import type { GeneratedColumn, ShardedColumn, ShardingSchema } from '../sharding/schema.js';
import {
  BACKEND_PID_FUNCTIONS,
  LARGE_OBJECT_FUNCTIONS,
  SIDE_EFFECT_FUNCTIONS,
  SYSTEM_FUNCTIONS,
  SYSTEM_VALUE_FUNCTIONS,
  TRANSACTIONAL_WRITE_FUNCTIONS,
} from './builtin-functions.js';
import {
  asNode,
  flag,
  int,
  isObject,
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
import type { GeneratedFill, InsertInfo, KeySource, TableRef } from './plan.js';
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
import { droppedRelations } from './utility-info.js';

/**
 * The key of a view over sharded tables: read like a sharded table with no usable key (on every shard); no column is
 * named '' so nothing ever pins it to one shard, and an INSERT into it cannot be routed.
 */
const VIEW_OF_SHARDED: Pick<ShardedColumn, 'column' | 'keyType' | 'fn'> = {
  column: '',
  keyType: 'bigint',
  fn: { kind: 'hash' },
};

export interface MutableTable {
  schema: string | null;
  name: string;
  written: string;
  isCatalog: boolean;
  sharding: TableRef['sharding'];
  shardColumn: string | null;
}

/** An INSERT level: its info, target and source query (INSERT … SELECT). */
export interface InsertRecord {
  readonly level: Level;
  readonly info: InsertInfo;
  readonly target: Ref | null;
  readonly source: Level | null;
}

/** A MERGE with WHEN NOT MATCHED THEN INSERT: checked for co-location later. */
export interface MergeInsertRecord {
  readonly target: Ref;
  readonly sourceIds: readonly number[];
}

/** An assignment to a sharding column (UPDATE SET / ON CONFLICT DO UPDATE SET / MERGE UPDATE SET). */
export interface KeyAssignment {
  readonly level: Level;
  readonly ref: Ref;
  readonly value: unknown;
}

interface CteEntry {
  level: Level | null;
  readonly columnNames: readonly string[] | null;
}

type NewRef = Omit<Ref, 'id' | 'level' | 'shardedBy' | 'linked'> & { shardedBy?: ShardedColumn | null };

export class ScopeBuilder implements ConditionScope {
  readonly refs: Ref[] = [];
  readonly levels: Level[] = [];
  /** Columns equated anywhere in the statement: sharded references in one class are co-located. */
  readonly coloc = new UnionFind();
  readonly tables = new Map<string, MutableTable>();
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
  /** Relations neither in the config nor in the learned catalog facts (`schema.table` or `table`). */
  readonly unknownRelations = new Set<string>();
  /** Functions whose catalog facts are not known yet. */
  readonly unknownFunctions = new Set<string>();
  /** A temporary relation (learned from the catalog). */
  usesTemporary = false;
  /** Why a function it calls may write where shardgate cannot tell (first one found), or null. */
  opaqueCall: string | null = null;
  hasLocking = false;
  hasReturning = false;
  systemCalls = 0;

  private readonly schema: ShardingSchema | null;
  private readonly source: SqlSource;
  private readonly sublinks = new Map<AstObject, Level>();
  private readonly cteScopes: Map<string, CteEntry>[] = [];

  constructor(schema: ShardingSchema | null, source: SqlSource) {
    this.schema = schema;
    this.source = source;
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
        if (parent !== null) this.writes = this.transactionalWrites = true;
        return this.insertLevel(u.fields, parent, role);
      case 'UpdateStmt':
        if (parent !== null) this.writes = this.transactionalWrites = true;
        return this.updateLevel(u.fields, parent, role);
      case 'DeleteStmt':
        if (parent !== null) this.writes = this.transactionalWrites = true;
        return this.deleteLevel(u.fields, parent, role);
      case 'MergeStmt':
        if (parent !== null) this.writes = this.transactionalWrites = true;
        return this.mergeLevel(u.fields, parent, role);
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
        if (rel !== null) this.tableRefOnly(rel);
      }
    }
    for (const s of list(sel, 'sortClause')) this.scanExpr(level, s);
    this.scanExpr(level, sel.limitCount);
    this.scanExpr(level, sel.limitOffset);
    if (pushed) this.cteScopes.pop();
    level.isPushdownSafe = (role === 'derived' || role === 'cte') && isPlainSelect(sel);
    return level;
  }

  insertLevel(f: AstObject, parent: Level | null, role: LevelRole): Level {
    const level = this.newLevel(parent, role);
    const pushed = this.pushCtes(level, obj(f, 'withClause'));
    const rel = obj(f, 'relation');
    const target = rel !== null ? this.addRangeVar(level, rel) : null;
    const columns = list(f, 'cols').map((c) => str(asNode(c, 'ResTarget'), 'name') ?? '');
    if (target !== null) for (const c of columns) this.bind(target, c);
    const conflict = obj(f, 'onConflictClause');
    const action = str(conflict, 'action');
    const { info, source } = this.insertRows(level, target, columns, f.selectStmt);
    this.inserts.push({
      level,
      target,
      source,
      info: {
        ...info,
        onConflict:
          action === 'ONCONFLICT_UPDATE' ? 'update' : action === 'ONCONFLICT_NOTHING' ? 'nothing' : null,
      },
    });
    if (conflict !== null && target !== null) {
      this.addRef(level, {
        kind: 'excluded',
        schema: null,
        name: 'excluded',
        qualifier: 'excluded',
        hasAlias: true,
        inner: null,
        columnAliases: null,
        tableKey: null,
      });
      for (const e of list(obj(conflict, 'infer'), 'indexElems')) this.scanExpr(level, e);
      this.assignments(level, target, list(conflict, 'targetList'));
      this.scanExpr(level, conflict.whereClause);
    }
    this.returning(level, f);
    if (pushed) this.cteScopes.pop();
    return level;
  }

  /** VALUES rows (their shard keys) or the source query of an INSERT. */
  private insertRows(
    level: Level,
    target: Ref | null,
    columns: string[],
    selectStmt: unknown,
  ): { info: InsertInfo; source: Level | null } {
    const sel = asNode(selectStmt, 'SelectStmt');
    const rows = sel !== null ? list(sel, 'valuesLists') : [];
    const isValues =
      sel !== null &&
      rows.length > 0 &&
      list(sel, 'fromClause').length === 0 &&
      (str(sel, 'op') ?? 'SETOP_NONE') === 'SETOP_NONE';
    const keyColumn = target?.shardedBy?.column ?? null;
    // The table's own column order (no column list) and the columns a sequence fills, when a shard has told us
    // (schema.tableColumns, schema.generatedColumns).
    const tableKey = target?.tableKey ?? null;
    const tableColumns = tableKey !== null ? this.schema?.tableColumns?.get(tableKey) : undefined;
    const known = columns.length === 0 ? tableColumns : undefined;
    const keyIndex = keyColumn !== null ? (known ?? columns).indexOf(keyColumn) : -1;
    // Looked up before routing: without a column list (the key's position); with catalog lookups on, for every INSERT
    // into a sharded table (which columns a sequence fills, so the proxy can fill them the same on every shard).
    const needsTable =
      tableColumns === undefined &&
      keyColumn !== null &&
      (this.schema?.catalog !== undefined ? true : columns.length === 0 && sel !== null);
    const columnsLookup = needsTable ? tableKey : null;
    const generated =
      keyColumn !== null && tableKey !== null && (sel === null || isValues)
        ? generatedFills(
            this.schema?.generatedColumns?.get(tableKey) ?? [],
            columns.length > 0 ? columns : (tableColumns ?? []),
            columns.length > 0,
            sel === null ? [] : rows,
          )
        : [];
    const isKeyGenerated = generated.some((g) => g.column === keyColumn);
    let insertKeys: (KeySource | null)[] | null = null;
    let reason: string | null = null;
    let source: Level | null = null;
    const tableName = target?.name ?? '';
    if (sel !== null && !isValues) {
      source = this.selectLevel(sel, level, 'insert_source');
      reason = 'INSERT … SELECT: the rows (and their shard keys) come from a query';
      const t = keyIndex >= 0 && target !== null && keyColumn !== null ? source.targets[keyIndex] : undefined;
      // INSERT … SELECT $1, … / SELECT 5, …: a constant key is still a key.
      if (t !== undefined && target !== null && keyColumn !== null) {
        const key = columnKey(target, keyColumn);
        if (t.constants !== null) level.pins.push({ t: 'pin', key, sources: t.constants });
        else if (t.key !== null) this.link(level, key, source, t.key);
      }
    } else {
      for (const row of rows) this.scanExpr(level, row);
      if (target === null || keyColumn === null) {
        reason = target === null ? 'no target table' : `table ${tableName} is not sharded`;
      } else if (isKeyGenerated) {
        reason = `the sharding column ${keyColumn} gets its value from a sequence`; // filled before routing
      } else if (sel === null) {
        reason = `INSERT … DEFAULT VALUES: the sharding column ${keyColumn} gets its default`;
      } else if (columns.length === 0 && known === undefined) {
        reason = `INSERT INTO ${tableName} without a column list: the position of sharding column ${keyColumn} is unknown`;
      } else if (keyIndex < 0) {
        reason = `the sharding column ${keyColumn} is not in the INSERT column list (its default would decide the shard)`;
      } else {
        insertKeys = rows.map((row) => {
          const items = list(asNode(row, 'List'), 'items');
          return items.length > keyIndex ? valueSource(items[keyIndex]) : null;
        });
        if (insertKeys.some((k) => k === null)) {
          reason = `a VALUES row has no literal or parameter for sharding column ${keyColumn}`;
        } else {
          const sources = unionSources(insertKeys.map((k) => (k === null ? [] : [k])));
          level.pins.push({ t: 'pin', key: columnKey(target, keyColumn), sources });
        }
      }
    }
    const complete = insertKeys !== null && insertKeys.every((k) => k !== null);
    return {
      source,
      info: {
        columns: columns.length > 0 ? columns : null,
        keyColumnIndex: keyIndex >= 0 ? keyIndex : null,
        rowCount: isValues ? rows.length : sel === null ? 1 : 0,
        insertKeys,
        insertKeysReason: complete ? null : reason,
        hasSelectSource: source !== null,
        leavesGenerated:
          source !== null &&
          tableKey !== null &&
          columns.length > 0 &&
          (this.schema?.generatedColumns?.get(tableKey) ?? []).some((g) => !columns.includes(g.column)),
        onConflict: null,
        columnsLookup,
        generated,
      },
    };
  }

  updateLevel(f: AstObject, parent: Level | null, role: LevelRole): Level {
    const level = this.newLevel(parent, role === 'top' ? 'dml' : role);
    level.label = 'UPDATE … FROM';
    const pushed = this.pushCtes(level, obj(f, 'withClause'));
    const rel = obj(f, 'relation');
    const target = rel !== null ? this.addRangeVar(level, rel) : null;
    for (const item of list(f, 'fromClause')) this.addFromItem(level, item);
    this.scanExpr(level, f.whereClause);
    this.addConjuncts(level, f.whereClause);
    if (target !== null) this.assignments(level, target, list(f, 'targetList'));
    this.returning(level, f);
    if (pushed) this.cteScopes.pop();
    return level;
  }

  deleteLevel(f: AstObject, parent: Level | null, role: LevelRole): Level {
    const level = this.newLevel(parent, role === 'top' ? 'dml' : role);
    level.label = 'DELETE … USING';
    const pushed = this.pushCtes(level, obj(f, 'withClause'));
    const rel = obj(f, 'relation');
    if (rel !== null) this.addRangeVar(level, rel);
    for (const item of list(f, 'usingClause')) this.addFromItem(level, item);
    this.scanExpr(level, f.whereClause);
    this.addConjuncts(level, f.whereClause);
    this.returning(level, f);
    if (pushed) this.cteScopes.pop();
    return level;
  }

  mergeLevel(f: AstObject, parent: Level | null, role: LevelRole): Level {
    const level = this.newLevel(parent, role === 'top' ? 'dml' : role);
    level.label = 'MERGE … USING';
    const pushed = this.pushCtes(level, obj(f, 'withClause'));
    const rel = obj(f, 'relation');
    const target = rel !== null ? this.addRangeVar(level, rel) : null;
    const sourceIds = this.addFromItem(level, f.sourceRelation);
    // Target rows matter only where they match the join condition (a RIGHT JOIN from the source's point of view).
    this.scanExpr(level, f.joinCondition);
    this.outerJoinConditions(level, f.joinCondition, [], sourceIds, target !== null ? [target.id] : []);
    let hasInsert = false;
    for (const w of list(f, 'mergeWhenClauses')) {
      const mw = asNode(w, 'MergeWhenClause');
      if (mw === null) continue;
      const command = str(mw, 'commandType');
      if (command === 'CMD_INSERT') hasInsert = true;
      this.scanExpr(level, mw.condition);
      for (const v of list(mw, 'values')) this.scanExpr(level, v);
      if (target === null) continue;
      if (command === 'CMD_UPDATE') this.assignments(level, target, list(mw, 'targetList'));
      else
        for (const t of list(mw, 'targetList')) this.bind(target, str(asNode(t, 'ResTarget'), 'name') ?? '');
    }
    if (hasInsert && target !== null) this.mergeInserts.push({ target, sourceIds });
    this.returning(level, f);
    if (pushed) this.cteScopes.pop();
    return level;
  }

  /** SET col = value lists: scans values, records assignments to the target's sharding column. */
  private assignments(level: Level, target: Ref, items: readonly unknown[]): void {
    for (const t of items) {
      const rt = asNode(t, 'ResTarget');
      if (rt === null) continue;
      this.scanExpr(level, rt.val);
      const name = str(rt, 'name');
      if (name === null) continue;
      this.bind(target, name);
      if (target.shardedBy !== null && name === target.shardedBy.column) {
        this.keyAssignments.push({ level, ref: target, value: rt.val });
      }
    }
  }

  private returning(level: Level, f: AstObject): void {
    const items = [...list(obj(f, 'returningClause'), 'exprs'), ...list(f, 'returningList')];
    if (items.length === 0) return;
    if (level.parent === null) this.hasReturning = true;
    level.targets = this.targets(level, items);
  }

  /** WITH clause: registers the CTE names in order, so later CTEs (and recursive ones) see them. */
  private pushCtes(level: Level, withClause: AstObject | null): boolean {
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

  private findCte(name: string): CteEntry | null {
    for (let i = this.cteScopes.length - 1; i >= 0; i--) {
      const e = this.cteScopes[i].get(name);
      if (e !== undefined) return e;
    }
    return null;
  }

  // ---------------------------------------------------------------- FROM items and references

  private addRef(level: Level, r: NewRef): Ref {
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
    const table = this.tableRefOnly(rv);
    return this.addRef(level, {
      kind: 'table',
      schema: schemaName,
      name: relname,
      qualifier: aliasName ?? relname,
      hasAlias: aliasName !== null,
      inner: null,
      columnAliases: aliasColumns(alias),
      tableKey: tableKeyOf(schemaName, relname),
      shardedBy: table.sharding === 'sharded' ? this.shardedEntry(schemaName, relname) : null,
    });
  }

  /** The `[[sharded_tables]]` entry of a sharded table, or the key-less one of a view over sharded tables. */
  private shardedEntry(schemaName: string | null, relname: string): ShardedColumn | null {
    const entry = this.tableEntry(schemaName, relname);
    if (entry !== null || this.schema === null) return entry;
    return { database: this.schema.database, schema: schemaName, table: relname, ...VIEW_OF_SHARDED };
  }

  /** Records a table in the statement's table list (no scope reference). */
  tableRefOnly(rv: AstObject): MutableTable {
    const schemaName = str(rv, 'schemaname');
    const relname = str(rv, 'relname') ?? '';
    const key = tableKeyOf(schemaName, relname);
    const existing = this.tables.get(key);
    if (existing !== undefined) return existing;
    const isCatalog =
      schemaName === 'pg_catalog' ||
      schemaName === 'information_schema' ||
      (schemaName === null && relname.startsWith('pg_'));
    const entry = isCatalog ? null : this.tableEntry(schemaName, relname);
    const omni = this.schema?.omnishardedTables;
    const isOmni =
      !isCatalog &&
      entry === null &&
      omni !== undefined &&
      (omni.has(relname) || (schemaName !== null && omni.has(`${schemaName}.${relname}`)));
    // A relation the config does not name: what the shards' catalog says of it, once learned.
    let isViewOfSharded = false;
    const catalogFacts = this.schema?.catalog;
    if (!isCatalog && entry === null && !isOmni && catalogFacts !== undefined) {
      const facts = catalogFacts.relations.get(key);
      if (facts === undefined) this.unknownRelations.add(key);
      else {
        if (facts.isTemporary) this.usesTemporary = true;
        isViewOfSharded = facts.readsSharded;
      }
    }
    const catalog = str(rv, 'catalogname');
    const parts = catalog !== null ? 3 : schemaName !== null ? 2 : 1;
    const location = typeof rv.location === 'number' ? rv.location : -1;
    const written =
      (location >= 0 ? this.source.nameAt(location, parts) : null) ??
      [catalog, schemaName, relname].filter((p) => p !== null).join('.');
    const t: MutableTable = {
      schema: schemaName,
      name: relname,
      written,
      isCatalog,
      sharding: entry !== null || isViewOfSharded ? 'sharded' : isOmni ? 'omnisharded' : 'none',
      shardColumn: entry?.column ?? null,
    };
    this.tables.set(key, t);
    return t;
  }

  /** Whether `name` (`table` or `schema.table`, as written in a string: unquoted, folded) is a configured sharded table. */
  isShardedName(name: string): boolean {
    const dot = name.indexOf('.');
    const lower = name.toLowerCase();
    return dot < 0
      ? this.tableEntry(null, lower) !== null
      : this.tableEntry(lower.slice(0, dot), lower.slice(dot + 1)) !== null;
  }

  /** The `[[sharded_tables]]` entry naming this table. */
  private tableEntry(schemaName: string | null, relname: string): ShardedColumn | null {
    for (const c of this.schema?.shardedColumns ?? []) {
      if (c.table === relname && (c.schema === null || schemaName === null || c.schema === schemaName))
        return c;
    }
    return null;
  }

  /** A column-based entry (no table) for this column name. */
  private columnEntry(schemaName: string | null, column: string): ShardedColumn | null {
    for (const c of this.schema?.shardedColumns ?? []) {
      if (c.table !== null || c.column !== column) continue;
      if (c.schema === null || schemaName === null || c.schema === schemaName) return c;
    }
    return null;
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
  private outerJoinConditions(
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
  private addConjuncts(level: Level, expr: unknown): void {
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
  private link(level: Level, key: string, inner: Level, innerKey: string): void {
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
          this.functionCall(stringList(list(f, 'funcname')));
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

  private functionCall(names: string[]): void {
    const name = names[names.length - 1] ?? '';
    const schemaName = names.length > 1 ? names[0] : null;
    const builtin = schemaName === null || schemaName === 'pg_catalog';
    const catalogFacts = this.schema?.catalog;
    if (schemaName !== 'pg_catalog' && catalogFacts !== undefined) {
      const facts = catalogFacts.functions.get(name);
      if (facts === undefined) this.unknownFunctions.add(name);
      else if (facts.mayWrite) {
        this.writes = this.transactionalWrites = true;
        if (facts.opaqueReason !== null)
          this.opaqueCall ??= `it calls ${name}(), which ${facts.opaqueReason}`;
      }
    }
    if (builtin) {
      if (TRANSACTIONAL_WRITE_FUNCTIONS.has(name)) this.writes = this.transactionalWrites = true;
      else if (SIDE_EFFECT_FUNCTIONS.has(name)) this.writes = true;
      if (LARGE_OBJECT_FUNCTIONS.has(name)) this.largeObjectCalls++;
      if (BACKEND_PID_FUNCTIONS.has(name)) this.backendPidCalls++;
      if (name === 'pg_notify') this.notifies = true;
    }
    if (
      schemaName === 'pg_catalog' ||
      (schemaName === null && (name.startsWith('pg_') || SYSTEM_FUNCTIONS.has(name)))
    ) {
      this.systemCalls++;
    }
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
  private targets(level: Level, items: readonly unknown[]): Target[] {
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
  private bind(ref: Ref, column: string): { ref: Ref; key: string } {
    const key = columnKey(ref, column);
    if (ref.kind === 'table' && ref.shardedBy === null && ref.tableKey !== null) {
      const t = this.tables.get(ref.tableKey);
      const entry = t !== undefined && !t.isCatalog ? this.columnEntry(ref.schema, column) : null;
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

  // ---------------------------------------------------------------- utility statements

  /** Tables named anywhere in a utility statement (RangeVars, wrapped or bare; DROP TABLE names). */
  collectRelations(root: unknown): void {
    const visit = (v: unknown): void => {
      if (Array.isArray(v)) {
        for (const x of v) visit(x);
        return;
      }
      if (!isObject(v)) return;
      if (typeof v.relname === 'string' && typeof v.relpersistence === 'string') {
        this.tableRefOnly(v);
        return;
      }
      if (isObject(v.DropStmt)) for (const rv of droppedRelations(v.DropStmt)) this.tableRefOnly(rv);
      for (const k in v) visit(v[k]);
    };
    visit(root);
  }
}

export function tableKeyOf(schemaName: string | null, relname: string): string {
  return schemaName !== null ? `${schemaName}.${relname}` : relname;
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

/**
 * The columns of an INSERT a sequence would fill (`sequenced`: the table's), given the columns it names (`isListed`) or
 * the table's order (then a VALUES row of n items names the first n), and its VALUES rows (none: DEFAULT VALUES): a
 * column left out gets a value in every row; a listed one, in the rows giving DEFAULT.
 */
function generatedFills(
  sequenced: readonly GeneratedColumn[],
  columns: readonly string[],
  isListed: boolean,
  rows: readonly unknown[],
): GeneratedFill[] {
  const fills: GeneratedFill[] = [];
  const items = rows.map((row) => list(asNode(row, 'List'), 'items'));
  const width = isListed ? columns.length : Math.max(0, ...items.map((i) => i.length));
  const all = rows.length === 0 ? [0] : rows.map((_, i) => i);
  for (const g of sequenced) {
    const at = columns.indexOf(g.column);
    if (at < 0 || at >= width) {
      fills.push({ ...g, isAppended: true, rows: all });
      continue;
    }
    const defaults = items.flatMap((row, i) => (asNode(row[at], 'SetToDefault') !== null ? [i] : []));
    if (defaults.length > 0) fills.push({ ...g, isAppended: false, rows: defaults });
  }
  return fills;
}
