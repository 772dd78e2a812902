// Asking a shard's catalog about relations and functions the config does not name (router/catalog-analysis.ts makes
// the facts): which relations are views over sharded tables or temporary, and which functions may write, with their
// bodies. Two statements of the proxy's own on one server the session holds; the request waits meanwhile.
import type { FramedSinkOwner } from '../backend/framed-sink.js';
import type { ServerConnection } from '../backend/server-connection.js';
import { runQuery, type QueryOutcome } from '../backend/server-query.js';
import { escapeStringLiteral, quoteIdentifier } from '../router/sql-text.js';
import {
  functionFacts,
  relationFacts,
  type FunctionRow,
  type RelationRow,
} from '../router/catalog-analysis.js';
import type { StatementPlan } from '../router/plan.js';
import type { ShardingSchema } from '../sharding/schema.js';
import type { CatalogFacts } from '../sharding/catalog-facts.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState, type SqlStateCode } from '../errors/sqlstate.js';

export type CatalogLookup =
  | { readonly kind: 'ok' }
  | { readonly kind: 'error'; readonly error: PgError }
  | { readonly kind: 'lost'; readonly reason: string };

/** `schema.table` / `table` (PostgreSQL's names, unquoted) as text for to_regclass(). */
function regclassText(key: string): string {
  const dot = key.indexOf('.');
  const parts = dot < 0 ? [key] : [key.slice(0, dot), key.slice(dot + 1)];
  return parts.map(quoteIdentifier).join('.');
}

/**
 * Each relation, its kind and persistence, and the base tables it reads through views (one row per base table; a
 * view of views is followed through pg_rewrite's dependencies).
 */
function relationsSql(keys: readonly string[]): string {
  const values = keys.map((k) => `(${escapeStringLiteral(k)}, ${escapeStringLiteral(regclassText(k))})`);
  return `WITH RECURSIVE input(key, oid) AS (
      SELECT k, pg_catalog.to_regclass(q)::oid FROM (VALUES ${values.join(', ')}) AS v(k, q)
    ), walk(key, oid) AS (
      SELECT key, oid FROM input WHERE oid IS NOT NULL
      UNION
      SELECT w.key, d.refobjid FROM walk w
        JOIN pg_catalog.pg_rewrite r ON r.ev_class = w.oid
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
          AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> w.oid
    )
    SELECT i.key, c.relkind, c.relpersistence, bn.nspname, b.relname
    FROM input i
    LEFT JOIN pg_catalog.pg_class c ON c.oid = i.oid
    LEFT JOIN walk w ON w.key = i.key
    LEFT JOIN pg_catalog.pg_class b ON b.oid = w.oid AND b.relkind IN ('r', 'p', 'f')
    LEFT JOIN pg_catalog.pg_namespace bn ON bn.oid = b.relnamespace`;
}

/** The overloads of each function that may write: volatile, not in pg_catalog, not part of an extension. */
function functionsSql(names: readonly string[]): string {
  return `SELECT p.proname, l.lanname, p.prosrc, pg_catalog.pg_get_functiondef(p.oid)
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
    WHERE p.proname = ANY (ARRAY[${names.map(escapeStringLiteral).join(', ')}]::text[])
      AND p.provolatile = 'v' AND p.prokind IN ('f', 'p')
      AND p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace
      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e')`;
}

function failure(outcome: Exclude<QueryOutcome, { kind: 'ok' }>): CatalogLookup {
  if (outcome.kind === 'lost') return outcome;
  const code = /^[0-9A-Z]{5}$/.test(outcome.code) ? (outcome.code as SqlStateCode) : SqlState.InternalError;
  return { kind: 'error', error: new PgError('ERROR', code, outcome.message) };
}

/**
 * Learn the facts of `relations` and `functions` on `server` into `facts` (every name asked for gets facts, so a
 * request routed again does not ask twice). `analyze` reads function bodies against `schema`.
 */
export async function lookUpCatalogFacts(
  server: ServerConnection,
  request: { readonly relations: readonly string[]; readonly functions: readonly string[] },
  schema: ShardingSchema,
  facts: CatalogFacts,
  analyze: (sql: string) => StatementPlan[],
  owner: Pick<FramedSinkOwner, 'onServerParameter'>,
): Promise<CatalogLookup> {
  if (request.relations.length > 0) {
    const outcome = await runQuery(server, relationsSql(request.relations), owner);
    if (outcome.kind !== 'ok') return failure(outcome);
    const rows: RelationRow[] = outcome.rows.map((r) => ({
      key: r[0] ?? '',
      relkind: r[1],
      relpersistence: r[2],
      baseSchema: r[3],
      baseName: r[4],
    }));
    for (const [key, f] of relationFacts(request.relations, rows, schema)) facts.relations.set(key, f);
  }
  if (request.functions.length > 0) {
    const outcome = await runQuery(server, functionsSql(request.functions), owner);
    if (outcome.kind !== 'ok') return failure(outcome);
    const rows: FunctionRow[] = outcome.rows.map((r) => ({
      name: r[0] ?? '',
      language: r[1] ?? '',
      source: r[2] ?? '',
      definition: r[3] ?? '',
    }));
    for (const [name, f] of functionFacts(request.functions, rows, analyze)) facts.functions.set(name, f);
  }
  return { kind: 'ok' };
}
