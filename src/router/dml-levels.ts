// The levels of INSERT, UPDATE, DELETE and MERGE (top-level or in a CTE): their target reference, what an INSERT's
// rows say about its shard keys and the columns a sequence fills, SET assignments to a sharding column, ON CONFLICT,
// MERGE's WHEN clauses and RETURNING. The scope builder (scope-builder.ts) gives them its level and reference
// operations through DmlScope; SELECT levels, FROM items and column resolution stay there.
import type { GeneratedColumn, ShardedColumn, ShardingSchema } from '../sharding/schema.js';
import { asNode, list, obj, str, type AstObject } from './ast.js';
import { valueSource } from './conditions.js';
import type { GeneratedFill, InsertInfo, KeySource } from './plan.js';
import { columnKey, unionSources, type Level, type LevelRole, type Ref, type Target } from './scope.js';

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

/** A reference as the builder is asked to add it (it assigns the id and level). */
export type NewRef = Omit<Ref, 'id' | 'level' | 'shardedBy' | 'linked'> & {
  shardedBy?: ShardedColumn | null;
};

/** What the DML levels use of the scope builder (ScopeBuilder implements it). */
export interface DmlScope {
  readonly schema: ShardingSchema | null;
  readonly inserts: InsertRecord[];
  readonly mergeInserts: MergeInsertRecord[];
  readonly keyAssignments: KeyAssignment[];
  hasReturning: boolean;
  newLevel(parent: Level | null, role: LevelRole): Level;
  selectLevel(sel: AstObject, parent: Level | null, role: LevelRole): Level;
  /** Registers a WITH clause's CTEs for the level; true when there was one (then popCtes() after the level). */
  pushCtes(level: Level, withClause: AstObject | null): boolean;
  popCtes(): void;
  addRangeVar(level: Level, rv: AstObject): Ref;
  addFromItem(level: Level, item: unknown): number[];
  addRef(level: Level, r: NewRef): Ref;
  bind(ref: Ref, column: string): { ref: Ref; key: string };
  link(level: Level, key: string, inner: Level, innerKey: string): void;
  scanExpr(level: Level, expr: unknown): void;
  addConjuncts(level: Level, expr: unknown): void;
  outerJoinConditions(
    level: Level,
    quals: unknown,
    pairs: [string, string][],
    preserved: readonly number[],
    nullable: readonly number[],
  ): void;
  targets(level: Level, items: readonly unknown[]): Target[];
}

export function insertLevel(b: DmlScope, f: AstObject, parent: Level | null, role: LevelRole): Level {
  const level = b.newLevel(parent, role);
  const pushed = b.pushCtes(level, obj(f, 'withClause'));
  const rel = obj(f, 'relation');
  const target = rel !== null ? b.addRangeVar(level, rel) : null;
  const columns = list(f, 'cols').map((c) => str(asNode(c, 'ResTarget'), 'name') ?? '');
  if (target !== null) for (const c of columns) b.bind(target, c);
  const conflict = obj(f, 'onConflictClause');
  const action = str(conflict, 'action');
  const { info, source } = insertRows(b, level, target, columns, f.selectStmt);
  b.inserts.push({
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
    b.addRef(level, {
      kind: 'excluded',
      schema: null,
      name: 'excluded',
      qualifier: 'excluded',
      hasAlias: true,
      inner: null,
      columnAliases: null,
      tableKey: null,
    });
    for (const e of list(obj(conflict, 'infer'), 'indexElems')) b.scanExpr(level, e);
    assignments(b, level, target, list(conflict, 'targetList'));
    b.scanExpr(level, conflict.whereClause);
  }
  returning(b, level, f);
  if (pushed) b.popCtes();
  return level;
}

/** VALUES rows (their shard keys) or the source query of an INSERT. */
function insertRows(
  b: DmlScope,
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
  const tableColumns = tableKey !== null ? b.schema?.tableColumns?.get(tableKey) : undefined;
  const known = columns.length === 0 ? tableColumns : undefined;
  const keyIndex = keyColumn !== null ? (known ?? columns).indexOf(keyColumn) : -1;
  // Looked up before routing: without a column list (the key's position); with catalog lookups on, for every INSERT
  // into a sharded table (which columns a sequence fills, so the proxy can fill them the same on every shard).
  const needsTable =
    tableColumns === undefined &&
    keyColumn !== null &&
    (b.schema?.catalog !== undefined ? true : columns.length === 0 && sel !== null);
  const columnsLookup = needsTable ? tableKey : null;
  const generated =
    keyColumn !== null && tableKey !== null && (sel === null || isValues)
      ? generatedFills(
          b.schema?.generatedColumns?.get(tableKey) ?? [],
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
    source = b.selectLevel(sel, level, 'insert_source');
    reason = 'INSERT … SELECT: the rows (and their shard keys) come from a query';
    const t = keyIndex >= 0 && target !== null && keyColumn !== null ? source.targets[keyIndex] : undefined;
    // INSERT … SELECT $1, … / SELECT 5, …: a constant key is still a key.
    if (t !== undefined && target !== null && keyColumn !== null) {
      const key = columnKey(target, keyColumn);
      if (t.constants !== null) level.pins.push({ t: 'pin', key, sources: t.constants });
      else if (t.key !== null) b.link(level, key, source, t.key);
    }
  } else {
    for (const row of rows) b.scanExpr(level, row);
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
        (b.schema?.generatedColumns?.get(tableKey) ?? []).some((g) => !columns.includes(g.column)),
      onConflict: null,
      columnsLookup,
      generated,
    },
  };
}

export function updateLevel(b: DmlScope, f: AstObject, parent: Level | null, role: LevelRole): Level {
  const level = b.newLevel(parent, role === 'top' ? 'dml' : role);
  level.label = 'UPDATE … FROM';
  const pushed = b.pushCtes(level, obj(f, 'withClause'));
  const rel = obj(f, 'relation');
  const target = rel !== null ? b.addRangeVar(level, rel) : null;
  for (const item of list(f, 'fromClause')) b.addFromItem(level, item);
  b.scanExpr(level, f.whereClause);
  b.addConjuncts(level, f.whereClause);
  if (target !== null) assignments(b, level, target, list(f, 'targetList'));
  returning(b, level, f);
  if (pushed) b.popCtes();
  return level;
}

export function deleteLevel(b: DmlScope, f: AstObject, parent: Level | null, role: LevelRole): Level {
  const level = b.newLevel(parent, role === 'top' ? 'dml' : role);
  level.label = 'DELETE … USING';
  const pushed = b.pushCtes(level, obj(f, 'withClause'));
  const rel = obj(f, 'relation');
  if (rel !== null) b.addRangeVar(level, rel);
  for (const item of list(f, 'usingClause')) b.addFromItem(level, item);
  b.scanExpr(level, f.whereClause);
  b.addConjuncts(level, f.whereClause);
  returning(b, level, f);
  if (pushed) b.popCtes();
  return level;
}

export function mergeLevel(b: DmlScope, f: AstObject, parent: Level | null, role: LevelRole): Level {
  const level = b.newLevel(parent, role === 'top' ? 'dml' : role);
  level.label = 'MERGE … USING';
  const pushed = b.pushCtes(level, obj(f, 'withClause'));
  const rel = obj(f, 'relation');
  const target = rel !== null ? b.addRangeVar(level, rel) : null;
  const sourceIds = b.addFromItem(level, f.sourceRelation);
  // Target rows matter only where they match the join condition (a RIGHT JOIN from the source's point of view).
  b.scanExpr(level, f.joinCondition);
  b.outerJoinConditions(level, f.joinCondition, [], sourceIds, target !== null ? [target.id] : []);
  let hasInsert = false;
  for (const w of list(f, 'mergeWhenClauses')) {
    const mw = asNode(w, 'MergeWhenClause');
    if (mw === null) continue;
    const command = str(mw, 'commandType');
    if (command === 'CMD_INSERT') hasInsert = true;
    b.scanExpr(level, mw.condition);
    for (const v of list(mw, 'values')) b.scanExpr(level, v);
    if (target === null) continue;
    if (command === 'CMD_UPDATE') assignments(b, level, target, list(mw, 'targetList'));
    else for (const t of list(mw, 'targetList')) b.bind(target, str(asNode(t, 'ResTarget'), 'name') ?? '');
  }
  if (hasInsert && target !== null) b.mergeInserts.push({ target, sourceIds });
  returning(b, level, f);
  if (pushed) b.popCtes();
  return level;
}

/** SET col = value lists: scans values, records assignments to the target's sharding column. */
function assignments(b: DmlScope, level: Level, target: Ref, items: readonly unknown[]): void {
  for (const t of items) {
    const rt = asNode(t, 'ResTarget');
    if (rt === null) continue;
    b.scanExpr(level, rt.val);
    const name = str(rt, 'name');
    if (name === null) continue;
    b.bind(target, name);
    if (target.shardedBy !== null && name === target.shardedBy.column) {
      b.keyAssignments.push({ level, ref: target, value: rt.val });
    }
  }
}

function returning(b: DmlScope, level: Level, f: AstObject): void {
  const items = [...list(obj(f, 'returningClause'), 'exprs'), ...list(f, 'returningList')];
  if (items.length === 0) return;
  if (level.parent === null) b.hasReturning = true;
  level.targets = b.targets(level, items);
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

/** The level builder of each DML statement type. */
export const DML_LEVELS: Readonly<
  Record<
    'InsertStmt' | 'UpdateStmt' | 'DeleteStmt' | 'MergeStmt',
    (b: DmlScope, f: AstObject, parent: Level | null, role: LevelRole) => Level
  >
> = { InsertStmt: insertLevel, UpdateStmt: updateLevel, DeleteStmt: deleteLevel, MergeStmt: mergeLevel };
