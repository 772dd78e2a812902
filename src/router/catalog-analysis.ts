// Catalog facts (sharding/catalog-facts.ts) made from what a shard's catalog answered: a relation's kind and
// persistence and the base tables it reads through views; a function's overloads that may write, with their bodies
// read the way DO blocks are (do-block.ts) to tell whether shardgate can see where they must run. Pure: the rows come
// from engine/catalog-lookup.ts, the analyser is passed in.
import type { FunctionFacts, RelationFacts } from '../sharding/catalog-facts.js';
import type { ShardingSchema } from '../sharding/schema.js';
import { analyzeDoBlock } from './do-block.js';
import type { StatementPlan } from './plan.js';

/** One row of the relation lookup: the name asked for, its kind and persistence, and one base table it reads. */
export interface RelationRow {
  readonly key: string;
  readonly relkind: string | null;
  readonly relpersistence: string | null;
  readonly baseSchema: string | null;
  readonly baseName: string | null;
}

/** One volatile overload, neither built in nor from an extension, of a function asked for. */
export interface FunctionRow {
  readonly name: string;
  readonly language: string;
  /** The body as stored (pg_proc.prosrc; empty for a SQL-standard BEGIN ATOMIC body). */
  readonly source: string;
  /** pg_get_functiondef(): the whole CREATE FUNCTION statement. */
  readonly definition: string;
}

/** Facts for every relation key asked for (an absent one: relkind null). */
export function relationFacts(
  keys: readonly string[],
  rows: readonly RelationRow[],
  schema: ShardingSchema,
): Map<string, RelationFacts> {
  const facts = new Map<string, RelationFacts>();
  for (const key of keys) {
    const own = rows.filter((r) => r.key === key);
    const first = own[0];
    const isView = first?.relkind === 'v' || first?.relkind === 'm';
    facts.set(key, {
      relkind: first?.relkind ?? null,
      isTemporary: first?.relpersistence === 't',
      readsSharded:
        isView && own.some((r) => r.baseName !== null && isShardedTable(schema, r.baseSchema, r.baseName)),
    });
  }
  return facts;
}

function isShardedTable(schema: ShardingSchema, schemaName: string | null, name: string): boolean {
  return schema.shardedColumns.some(
    (c) => c.table === name && (c.schema === null || schemaName === null || c.schema === schemaName),
  );
}

/**
 * Facts for every function name asked for: `rows` holds the overloads that may write. Their bodies are read to tell
 * whether shardgate can see where such a call must run: not when it is written in another language, builds SQL at
 * run time, or uses a sharded table (run on every shard, it would act on each shard's rows).
 */
export function functionFacts(
  names: readonly string[],
  rows: readonly FunctionRow[],
  analyze: (sql: string) => StatementPlan[],
): Map<string, FunctionFacts> {
  const facts = new Map<string, FunctionFacts>();
  for (const name of names) {
    const own = rows.filter((r) => r.name === name);
    let opaqueReason: string | null = null;
    for (const row of own) {
      opaqueReason ??= whyOpaque(row, analyze);
      if (opaqueReason !== null) break;
    }
    facts.set(name, { mayWrite: own.length > 0, opaqueReason });
  }
  return facts;
}

function whyOpaque(row: FunctionRow, analyze: (sql: string) => StatementPlan[]): string | null {
  let plans: readonly StatementPlan[];
  if (row.language === 'plpgsql') {
    const block = analyzeDoBlock(row.definition, null, analyze);
    if (block.opaque !== null) return block.opaque.replace(/^it /, 'is a function that ');
    plans = block.plans;
  } else if (row.language === 'sql') {
    try {
      plans = analyze(row.source.trim() !== '' ? row.source : row.definition);
    } catch (err) {
      return `has a body shardgate cannot parse: ${(err as Error).message}`;
    }
  } else {
    return `is written in ${row.language}, which shardgate cannot read`;
  }
  const sharded = plans.flatMap((p) => p.tables).find((t) => t.sharding === 'sharded');
  if (sharded !== undefined) return `uses the sharded table ${sharded.written}`;
  const nested = plans.find((p) => p.opaqueReason !== null);
  return nested?.opaqueReason ?? null;
}
