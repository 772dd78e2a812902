// The routing decision for one statement: its StatementPlan (from the plan cache) + Bind parameters + the session's
// manual-routing state → one shard, several shards (fan-out), "session-level" (transaction control, SET), or "learn
// first" (what routing needs is not known yet: a result the dispatch acts on, engine/route-lookups.ts). Statements
// that cannot be answered correctly across shards throw PgError 0A000 with the reason — never a wrong answer.
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { shardForLiteral, shardForParameter } from '../sharding/shard-of.js';
import { isProxyGid } from '../txn/gid.js';
import type { ShardedColumn, ShardingSchema } from '../sharding/schema.js';
import { decodeArrayParam, type BindParams } from './bind-params.js';
import type { CopyInfo, GeneratedFill, KeySource, StatementPlan } from './plan.js';

export type Route =
  | { readonly kind: 'one'; readonly shard: number }
  /** `isReplicated`: a write to a table copied to every shard — one logical change, reported once. */
  | { readonly kind: 'many'; readonly shards: readonly number[]; readonly isReplicated?: boolean }
  /** A multi-row INSERT whose rows belong to several shards: `rowShards[i]` is the shard of VALUES row i. */
  | { readonly kind: 'split'; readonly rowShards: readonly number[] }
  /** Transaction control and session settings: the session applies them to every participant. */
  | { readonly kind: 'session' }
  /**
   * COPY … FROM STDIN on every shard, the data split by the key column (`copy.keyColumn`; null: a table copied to
   * every shard, every row to every shard).
   */
  | { readonly kind: 'copy_in'; readonly shards: readonly number[]; readonly copy: CopyInfo }
  /** Routing needs something learnt first (engine/route-lookups.ts); the request is routed again once it is. */
  | { readonly kind: 'learn'; readonly need: RouteNeed };

/**
 * What routing needs learnt before it can route a statement:
 * - `tableColumns`: an INSERT without a column list names a sharded table whose column order is not known yet (looked
 *   up on a shard into `schema.tableColumns`);
 * - `catalogFacts`: relations or functions the router has no catalog facts about (views, temporary tables, functions
 *   that may write; engine/catalog-lookup.ts);
 * - `generatedValues`: an INSERT into a sharded table leaves columns for a sequence to fill — values are taken from
 *   the sequence of record (frontend/sequence-values.ts) and written into the statement (generated-values.ts);
 * - `sourceRows`: an INSERT … SELECT whose rows cannot be written where the query runs (its sharding key does not flow
 *   unchanged from a co-located table's key, or it reads sharded rows into a copied table) — the proxy runs the query
 *   itself and writes its rows into the statement as a VALUES list (engine/insert-source.ts). `text`: the statement.
 */
export type RouteNeed =
  | { readonly kind: 'tableColumns'; readonly table: string }
  | {
      readonly kind: 'catalogFacts';
      readonly relations: readonly string[];
      readonly functions: readonly string[];
    }
  | { readonly kind: 'generatedValues'; readonly fills: readonly GeneratedFill[] }
  | { readonly kind: 'sourceRows'; readonly text: string };

function learn(need: RouteNeed): Route {
  return { kind: 'learn', need };
}

export interface RouteContext {
  readonly schema: ShardingSchema;
  /** `SET shardgate.shard TO n` for this session, or null. */
  readonly sessionShard: number | null;
  /** `SET shardgate.sharding_key TO v` for this session, or null. */
  readonly sessionShardingKey: string | null;
  /** Shard for a read any shard can answer (catalogs, omnisharded tables): round-robin by the caller. */
  pickReadShard(): number;
}

const SESSION_KINDS = new Set<StatementPlan['kind']>([
  'begin',
  'commit',
  'rollback',
  'savepoint',
  'set',
  'reset',
  'discard',
  // SQL-level prepared statements are session state, replayed on every server the session uses (like SET).
  'prepare',
  'deallocate',
]);

/** The client's own two-phase commit statements: one shard's business, never a cross-shard one. */
const CLIENT_2PC_KINDS = new Set<StatementPlan['kind']>([
  'prepare_transaction',
  'commit_prepared',
  'rollback_prepared',
]);

const DML_KINDS = new Set<StatementPlan['kind']>(['insert', 'update', 'delete', 'merge']);

const HINT_KEY = 'Add the sharding key to the statement, or route it by hand with /* shardgate: shard=N */.';

function unsupported(message: string, hint = HINT_KEY): PgError {
  return new PgError('ERROR', SqlState.FeatureNotSupported, message, undefined, hint);
}

function allShards(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function checkShard(shard: number, shardCount: number, origin: string): number {
  if (!Number.isInteger(shard) || shard < 0 || shard >= shardCount) {
    throw new PgError(
      'ERROR',
      SqlState.InvalidParameterValue,
      `${origin} names shard ${shard}, but this database has shards 0..${shardCount - 1}`,
    );
  }
  return shard;
}

/** `{ kind: 'one', shard }` per shard, made once (routes are read-only): routing a one-shard request allocates none. */
const ONE_ROUTES: Route[] = [];

export function oneRoute(shard: number): Route {
  return (ONE_ROUTES[shard] ??= Object.freeze({ kind: 'one', shard }));
}

function fromShards(shards: Set<number>): Route {
  if (shards.size === 1) return oneRoute(shards.values().next().value as number);
  return { kind: 'many', shards: [...shards].sort((a, b) => a - b) };
}

/** Shards holding the rows a key source names (an array parameter can name several). */
function shardsOfSource(
  source: KeySource,
  column: ShardedColumn,
  shardCount: number,
  params: BindParams | null,
  out: Set<number>,
): void {
  if (source.kind === 'param' && source.isArray) {
    const value = boundValue(source, params);
    if (value !== null) {
      const format = (params as BindParams).formats[source.index - 1];
      for (const element of decodeArrayParam(value, format))
        out.add(shardForParameter(column, shardCount, element, format));
      return;
    }
  }
  out.add(shardOfScalar(source, column, shardCount, params));
}

/** The shard of a key source naming one value (a literal, or a parameter that is not an array). */
function shardOfScalar(
  source: KeySource,
  column: ShardedColumn,
  shardCount: number,
  params: BindParams | null,
): number {
  if (source.kind === 'literal') return shardForLiteral(column, shardCount, source.value);
  const value = boundValue(source, params);
  return shardForParameter(column, shardCount, value, (params as BindParams).formats[source.index - 1]);
}

/** The value bound to parameter `source` (null: SQL NULL). Throws 08P01 when the Bind does not supply it. */
function boundValue(source: { readonly index: number }, params: BindParams | null): Buffer | null {
  if (params === null) {
    throw new PgError(
      'ERROR',
      SqlState.ProtocolViolation,
      `the sharding key is parameter $${source.index}, but no parameters were bound`,
    );
  }
  const i = source.index - 1;
  if (i >= params.values.length) {
    throw new PgError(
      'ERROR',
      SqlState.ProtocolViolation,
      `bind message supplies ${params.values.length} parameters, but the sharding key is $${source.index}`,
    );
  }
  return params.values[i];
}

function routeByKey(
  sources: readonly KeySource[],
  column: ShardedColumn,
  ctx: RouteContext,
  params: BindParams | null,
): Set<number> {
  const shards = new Set<number>();
  for (const s of sources) shardsOfSource(s, column, ctx.schema.shardCount, params, shards);
  return shards;
}

/**
 * INSERT … SELECT touching sharded tables. Where every row's key comes unchanged from the key of a co-located sharded
 * table the query reads (or is pinned to one value), each shard inserts its own rows: the statement runs where those
 * rows are. Otherwise the proxy evaluates the query (`sourceRows`).
 */
function routeInsertSelect(plan: StatementPlan, ctx: RouteContext, params: BindParams | null): Route {
  const insert = plan.insert;
  if (insert !== null && insert.columnsLookup !== null)
    return learn({ kind: 'tableColumns', table: insert.columnsLookup });
  const isTargetSharded = plan.tables[0]?.sharding === 'sharded';
  if (!isTargetSharded || plan.crossShardUnsafe !== null || insert?.leavesGenerated === true)
    return learn({ kind: 'sourceRows', text: plan.text });
  const shards =
    plan.shardKey !== null
      ? routeByKey(plan.shardKey.sources, plan.shardKey.column, ctx, params)
      : new Set(allShards(ctx.schema.shardCount));
  if (shards.size === 0) return { kind: 'one', shard: ctx.pickReadShard() }; // no key value: no rows
  return fromShards(shards);
}

function routeInsert(plan: StatementPlan, ctx: RouteContext, params: BindParams | null): Route {
  const insert = plan.insert;
  if (insert !== null && insert.columnsLookup !== null)
    return learn({ kind: 'tableColumns', table: insert.columnsLookup });
  if (insert !== null && insert.generated.length > 0)
    return learn({ kind: 'generatedValues', fills: insert.generated });
  const column = plan.shardKey?.column ?? null;
  if (insert === null || insert.insertKeys === null || column === null) {
    throw unsupported(
      `cannot tell which shard this INSERT belongs to: ${insert?.insertKeysReason ?? 'no sharding key in the statement'}`,
      'List the sharding column in the INSERT and give it a literal or a parameter.',
    );
  }
  const shards = new Set<number>();
  const rowShards: number[] = [];
  for (const key of insert.insertKeys) {
    if (key === null) {
      throw unsupported(
        'an INSERT row gives its sharding key as an expression or DEFAULT; its shard cannot be known',
        'Give the sharding column a literal or a parameter in every row.',
      );
    }
    const row = new Set<number>();
    shardsOfSource(key, column, ctx.schema.shardCount, params, row);
    const shard = row.values().next().value as number;
    rowShards.push(shard);
    shards.add(shard);
  }
  if (shards.size > 1) return { kind: 'split', rowShards };
  return fromShards(shards);
}

function manualRoute(plan: StatementPlan, ctx: RouteContext): Route | null {
  const n = ctx.schema.shardCount;
  if (plan.manualShard !== null)
    return { kind: 'one', shard: checkShard(plan.manualShard, n, 'the shard comment') };
  const key = plan.manualShardingKey ?? ctx.sessionShardingKey;
  if (key !== null) {
    const column = plan.shardKey?.column ?? ctx.schema.shardedColumns[0];
    if (column === undefined)
      throw unsupported('a sharding key was given, but no [[sharded_tables]] are configured');
    return { kind: 'one', shard: shardForLiteral(column, n, key) };
  }
  if (ctx.sessionShard !== null)
    return { kind: 'one', shard: checkShard(ctx.sessionShard, n, 'shardgate.shard') };
  return null;
}

/**
 * Where a FunctionCall message (the fast-path function call: no SQL text to route by) runs: the shard the session
 * routed itself to with SET shardgate.shard / shardgate.sharding_key. Anything else would pick a shard blindly for a
 * call that may write, so it is refused.
 */
export function routeFunctionCall(ctx: RouteContext): Route {
  const n = ctx.schema.shardCount;
  if (ctx.sessionShardingKey !== null) {
    const column = ctx.schema.shardedColumns[0];
    if (column === undefined)
      throw unsupported('a sharding key was given, but no [[sharded_tables]] are configured');
    return { kind: 'one', shard: shardForLiteral(column, n, ctx.sessionShardingKey) };
  }
  if (ctx.sessionShard !== null)
    return { kind: 'one', shard: checkShard(ctx.sessionShard, n, 'shardgate.shard') };
  throw unsupported(
    'a FunctionCall message (fast-path function call) cannot be routed on a sharded database',
    'Route the session first with SET shardgate.shard = N (or shardgate.sharding_key), or call the function with SELECT.',
  );
}

/** CREATE TABLE … AS, SELECT … INTO, CREATE MATERIALIZED VIEW: DDL that fills the new relation with rows it reads. */
function copiesRows(plan: StatementPlan): boolean {
  return plan.nodeType === 'CreateTableAsStmt' || plan.nodeType === 'SelectStmt';
}

/**
 * Decide where `plan` runs, or what must be learnt first (`learn`). Throws PgError for statements that cannot run
 * correctly.
 */
export function routeStatement(plan: StatementPlan, params: BindParams | null, ctx: RouteContext): Route {
  if (SESSION_KINDS.has(plan.kind)) return { kind: 'session' };
  const gid = plan.transaction?.gid ?? null;
  if (CLIENT_2PC_KINDS.has(plan.kind) && gid !== null && isProxyGid(gid)) {
    // The proxy's recovery owns these: a client's could be rolled back under it, or roll back one of the proxy's.
    throw new PgError(
      'ERROR',
      SqlState.ReservedName,
      `transaction identifier "${gid}" is reserved: identifiers starting with "sg_" belong to shardgate's two-phase commit`,
      undefined,
      'Choose another prefix for your own prepared transactions.',
    );
  }
  const manual = manualRoute(plan, ctx);
  if (manual !== null) return manual;
  const n = ctx.schema.shardCount;
  if (CLIENT_2PC_KINDS.has(plan.kind)) {
    if (n === 1) return { kind: 'session' };
    throw unsupported(
      'PREPARE TRANSACTION, COMMIT PREPARED and ROLLBACK PREPARED cannot run across shards',
      'shardgate runs two-phase commit itself: set two_phase_commit = true in pgdog.toml and use plain COMMIT, ' +
        'or route the statement to one shard with /* shardgate: shard=N */ or SET shardgate.shard.',
    );
  }
  if (n === 1) return { kind: 'one', shard: 0 };
  if (plan.kind === 'explain' && plan.inner !== null) return routeStatement(plan.inner, params, ctx);
  if (plan.unknownRelations.length > 0 || plan.unknownFunctions.length > 0)
    return learn({
      kind: 'catalogFacts',
      relations: plan.unknownRelations,
      functions: plan.unknownFunctions,
    });
  if (plan.nodeType === 'CallStmt') {
    throw unsupported(
      'CALL runs a procedure shardgate cannot see into, so the shards it must run on are unknown',
      'Route it by hand: /* shardgate: shard=N */ CALL … (once on each shard that needs it), or SET shardgate.shard.',
    );
  }
  // A DO block, or a call of a function that may write, that shardgate cannot see into: where it must run is unknown
  // (on sharded rows a called function runs where the rows are, a writer there).
  if (plan.opaqueReason !== null && (plan.nodeType === 'DoStmt' || !plan.touchesSharded)) {
    throw unsupported(
      `shardgate cannot tell which shards this statement must run on: ${plan.opaqueReason}`,
      'Route it by hand (/* shardgate: shard=N */, once on each shard that needs it), or send the statements it runs, which shardgate routes.',
    );
  }
  if (plan.nodeType === 'DoStmt') {
    const hint =
      'Route it by hand (/* shardgate: shard=N */ DO …, once on each shard that needs it), or send its statements, which shardgate routes.';
    if (plan.touchesSharded) {
      throw unsupported(
        'this DO block uses a sharded table: run on every shard it would act on each shard’s rows (and insert its rows on every shard)',
        hint,
      );
    }
    // DDL and copied tables only: the same on every shard, as one write (inside one transaction of the proxy's).
    return { kind: 'many', shards: allShards(n), isReplicated: true };
  }
  if (plan.usesLargeObjects && !plan.touchesSharded) {
    throw unsupported(
      'large objects are stored on one shard, and nothing in this statement says which',
      'Route it by hand (/* shardgate: shard=N */ or SET shardgate.shard), the same shard for every use of the object.',
    );
  }
  if (plan.usesBackendPid) {
    throw unsupported(
      'a backend pid names a process of one shard; this statement would act on the same pid on every shard it reaches',
      'Route it by hand to the shard of that backend (/* shardgate: shard=N */ or SET shardgate.shard).',
    );
  }
  // A sharded table's size is the sum of its shards' (summed by the merge).
  if (plan.sumsShardedSizes !== null) return { kind: 'many', shards: allShards(n) };
  // One delivery per notification (listeners through the proxy listen on every shard), in one order: from shard 0.
  if (plan.isNotify && !plan.touchesSharded) return { kind: 'one', shard: 0 };
  if (plan.kind === 'ddl' && plan.touchesSharded && copiesRows(plan)) {
    // Each shard would fill the new table from its own share of the rows, while the proxy treats it as the same
    // table on every shard (a copied table).
    throw unsupported(
      'CREATE TABLE … AS, SELECT … INTO and CREATE MATERIALIZED VIEW cannot copy rows of a sharded table',
      'Create the table, add it to [[sharded_tables]] (or query the sharded table itself), then fill it with INSERT.',
    );
  }
  if (plan.kind === 'ddl') return { kind: 'many', shards: allShards(n) };
  if (plan.touchesSharded) return routeSharded(plan, params, ctx);
  if (
    plan.kind === 'insert' &&
    plan.insert?.columns === null &&
    !plan.touchesOmnisharded &&
    ctx.schema.shardedColumns.some((c) => c.table === null)
  ) {
    // Column-based [[sharded_tables]] entries shard any table that has the column; without a column list the proxy
    // cannot tell whether this table does, and copying the row to every shard could be wrong.
    throw unsupported(
      'INSERT without a column list into a table that may be sharded by column name',
      'List the columns in the INSERT.',
    );
  }
  // Catalogs, omnisharded tables and tables not in [[sharded_tables]] hold the same rows on every shard.
  if (plan.kind === 'copy' && plan.copy?.direction === 'from') return copyIn(plan.copy, n);
  if (plan.isReadOnly || plan.kind === 'show' || plan.touchesCatalog)
    return { kind: 'one', shard: ctx.pickReadShard() };
  return { kind: 'many', shards: allShards(n), isReplicated: plan.isWrite };
}

/**
 * When the shard of `plan` is the shard of one scalar parameter's value and nothing else — routeStatement would give
 * `oneRoute(shard of $n)` whatever the other parameters are (a SELECT on sharded tables with `key = $n`, nearly every
 * request) — that parameter's number n (its column: `plan.shardKey.column`); otherwise 0 (a number, not an object:
 * asked on every request). Lets the hot path hash the key straight from the Bind frame or the
 * literal, without a BindParams (frontend/session-router.ts). Conservative: it must agree with routeStatement, which
 * test/unit/router/key-param.test.ts checks over the corpus; anything unusual takes routeStatement.
 */
export function singleKeyParam(plan: StatementPlan, ctx: RouteContext): number {
  const key = plan.shardKey;
  if (key === null || key.sources.length !== 1) return 0;
  const source = key.sources[0];
  if (source.kind !== 'param' || source.isArray) return 0;
  if (plan.kind !== 'select' || plan.nodeType !== 'SelectStmt' || !plan.touchesSharded) return 0;
  if (ctx.schema.shardCount < 2 || ctx.sessionShard !== null || ctx.sessionShardingKey !== null) return 0;
  if (
    plan.manualShard !== null ||
    plan.manualShardingKey !== null ||
    plan.inner !== null ||
    plan.cursor !== null
  )
    return 0;
  if (plan.unknownRelations.length > 0 || plan.unknownFunctions.length > 0 || plan.opaqueReason !== null)
    return 0;
  if (plan.usesLargeObjects || plan.usesBackendPid || plan.sumsShardedSizes !== null || plan.isNotify)
    return 0;
  if (plan.movesShardKey || plan.transaction !== null) return 0;
  return source.index;
}

/** COPY FROM STDIN: split across every shard by the proxy. From a server file or program: the shards cannot split it. */
function copyIn(copy: CopyInfo, n: number): Route {
  if (copy.isServerSide) {
    throw unsupported(
      'COPY FROM a server file or program cannot be split across shards',
      'Use COPY … FROM STDIN (psql: \\copy), which shardgate splits by the sharding key.',
    );
  }
  return { kind: 'copy_in', shards: allShards(n), copy };
}

function routeSharded(plan: StatementPlan, params: BindParams | null, ctx: RouteContext): Route {
  const n = ctx.schema.shardCount;
  if (plan.movesShardKey) {
    throw unsupported(
      'this statement may change a row’s sharding key, which would move the row to another shard',
      'Delete the row and insert it again with the new key.',
    );
  }
  if (plan.kind === 'copy') {
    if (plan.copy?.direction === 'from') return copyIn(plan.copy, n);
    return { kind: 'many', shards: allShards(n) };
  }
  if (plan.kind === 'insert' && plan.insert?.hasSelectSource === true)
    return routeInsertSelect(plan, ctx, params);
  const target = plan.tables[0];
  if (plan.isWrite && DML_KINDS.has(plan.kind) && target !== undefined && target.sharding !== 'sharded') {
    // Each shard would change its own copy from its own share of the sharded rows: the copies would diverge.
    throw unsupported(
      `a write to ${target.written}, which is copied to every shard, cannot read the sharded tables of this statement`,
      'Read the sharded rows first, then write the copied table with their values.',
    );
  }
  if (plan.kind === 'insert') return routeInsert(plan, ctx, params);
  const key = plan.shardKey;
  if (key !== null && key.sources.length === 1) {
    const source = key.sources[0];
    // One key value (`WHERE id = $1`, nearly every request): its shard, without a set of shards.
    if (source.kind === 'literal' || !source.isArray)
      return oneRoute(shardOfScalar(source, key.column, n, params));
  }
  const shards =
    plan.shardKey !== null
      ? routeByKey(plan.shardKey.sources, plan.shardKey.column, ctx, params)
      : new Set(allShards(n));
  // No key value at all (`= ANY('{}')`, `IN` of only NULLs): no rows anywhere; any one shard gives that answer.
  if (shards.size === 0) return { kind: 'one', shard: ctx.pickReadShard() };
  if (shards.size > 1 && plan.crossShardUnsafe !== null) throw unsupported(plan.crossShardUnsafe);
  for (const index of shards.size > 1 ? plan.zeroOffsetParams : []) {
    if (!isBoundZero(params, index))
      throw unsupported(
        `OFFSET $${index} in a subquery over sharded rows needs every shard's rows (unless it is 0)`,
      );
  }
  if (shards.size > 1 && plan.usesLargeObjects) {
    throw unsupported('large objects are stored on one shard; this statement would use them on several');
  }
  return fromShards(shards);
}

/** Parameter `index` (1-based) is bound to the integer 0 (text, or binary int4 / int8). */
function isBoundZero(params: BindParams | null, index: number): boolean {
  const v = params?.values[index - 1];
  if (v == null) return false;
  if (params?.formats[index - 1] !== 1) return v.toString('latin1').trim() === '0';
  return (v.length === 8 && v.readBigInt64BE(0) === 0n) || (v.length === 4 && v.readInt32BE(0) === 0);
}
