// The statement's table list: every table it names (FROM items, DML targets, SELECT … INTO, utility statements), each
// classified once — sharded (a `[[sharded_tables]]` entry, or a view the shards' catalog says reads one), omnisharded,
// a system catalog, or neither — with the `[[sharded_tables]]` entry lookups that classification and column-based
// sharding use. Relations neither the config nor the learned catalog facts know are noted for a catalog lookup.
import type { ShardedColumn, ShardingSchema } from '../sharding/schema.js';
import { isObject, str, type AstObject } from './ast.js';
import type { SqlSource } from './parser.js';
import type { TableRef } from './plan.js';
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

export function tableKeyOf(schemaName: string | null, relname: string): string {
  return schemaName !== null ? `${schemaName}.${relname}` : relname;
}

export class StatementTables {
  /** By `schema.table` or `table` as written (tableKeyOf). */
  readonly tables = new Map<string, MutableTable>();
  /** Relations neither in the config nor in the learned catalog facts (`schema.table` or `table`). */
  readonly unknownRelations = new Set<string>();
  /** A temporary relation (learned from the catalog). */
  usesTemporary = false;

  constructor(
    private readonly schema: ShardingSchema | null,
    private readonly source: SqlSource,
  ) {}

  /** The `[[sharded_tables]]` entry of a sharded table, or the key-less one of a view over sharded tables. */
  shardedEntry(schemaName: string | null, relname: string): ShardedColumn | null {
    const entry = this.tableEntry(schemaName, relname);
    if (entry !== null || this.schema === null) return entry;
    return { database: this.schema.database, schema: schemaName, table: relname, ...VIEW_OF_SHARDED };
  }

  /** Records a table in the statement's table list (no scope reference); the entry, new or as recorded before. */
  record(rv: AstObject): MutableTable {
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
  columnEntry(schemaName: string | null, column: string): ShardedColumn | null {
    for (const c of this.schema?.shardedColumns ?? []) {
      if (c.table !== null || c.column !== column) continue;
      if (c.schema === null || schemaName === null || c.schema === schemaName) return c;
    }
    return null;
  }

  /** Tables named anywhere in a utility statement (RangeVars, wrapped or bare; DROP TABLE names). */
  collectRelations(root: unknown): void {
    const visit = (v: unknown): void => {
      if (Array.isArray(v)) {
        for (const x of v) visit(x);
        return;
      }
      if (!isObject(v)) return;
      if (typeof v.relname === 'string' && typeof v.relpersistence === 'string') {
        this.record(v);
        return;
      }
      if (isObject(v.DropStmt)) for (const rv of droppedRelations(v.DropStmt)) this.record(rv);
      for (const k in v) visit(v[k]);
    };
    visit(root);
  }
}
