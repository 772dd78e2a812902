// The decision table of stateless two-phase commit, `<two_phase_commit_schema>.decisions` on every shard: one row per
// distributed transaction whose decision shard this is — inserted `true` inside the decision branch (so it commits
// exactly when that branch commits) or, with atomic_visibility, in an autocommit insert of its own after every branch
// is prepared; or `false` by whoever resolves an undecided transaction first. Owns the DDL
// (created at start-up when missing), the statements that insert, resolve and delete rows, and reading their replies.
import type { Logger } from 'pino';
import { outcomeFailure, type QueryOutcome } from '../backend/server-query.js';
import { queryShard, type ShardAccess } from '../backend/shard-access.js';

/** txids are base-36 text (gid.ts): safe to write into SQL as a literal; anything else is refused. */
const TXID = /^[0-9a-z]+$/;

function txidLiteral(txid: string): string {
  if (!TXID.test(txid)) throw new Error(`not a shardgate txid: ${JSON.stringify(txid)}`);
  return `'${txid}'`;
}

/**
 * Makes the transaction it runs in flush its commit record before the COMMIT is answered, whatever synchronous_commit
 * says. With `off` (the server's, the database's or role's default, or the client's own SET, which its server
 * connection carries) PostgreSQL answers COMMIT before the commit record is on disk, and a crash of the shard then
 * loses it. A decision lost that way while the other branches' COMMIT PREPARED (always flushed) stand is a half-applied
 * transaction, an acknowledged one at that. PREPARE TRANSACTION and COMMIT PREPARED always flush locally; this makes
 * the decision do as much: `off` becomes `local` for this transaction only, and any stronger level (on, remote_write,
 * remote_apply) is left as it is. A SELECT without columns that returns no row either way (CASE evaluates set_config only
 * when the setting is off), so a reply's rows are only the caller's.
 */
const DURABLE_COMMIT_SQL =
  "SELECT WHERE CASE WHEN current_setting('synchronous_commit') = 'off' " +
  "THEN set_config('synchronous_commit', 'local', true) IS NULL ELSE false END";

export function decisionTable(schema: string): string {
  return `${schema}.decisions`;
}

/** The DDL, idempotent. `participants`: every writer shard (the decision shard too); empty in a `false` row. */
export function createDecisionTableSql(schema: string): string {
  return (
    `CREATE SCHEMA IF NOT EXISTS ${schema}; ` +
    `CREATE TABLE IF NOT EXISTS ${decisionTable(schema)} (txid text PRIMARY KEY, participants int[] NOT NULL, ` +
    `committed boolean NOT NULL, decided_at timestamptz NOT NULL DEFAULT now())`
  );
}

/**
 * Inside the decision branch, in one Query: bound how long the branch may then sit idle (a proxy that vanishes without
 * closing its sockets cannot keep the uncommitted row — and so recovery — waiting for longer), and insert `true`.
 * Only where the row is sent apart from its COMMIT (the failpoint after_decision_row); else decideSql.
 */
export function insertDecisionSql(
  schema: string,
  txid: string,
  participants: readonly number[],
  idleTimeoutMs: number,
): string {
  return (
    `SET LOCAL idle_in_transaction_session_timeout = ${Math.max(1, Math.floor(idleTimeoutMs))}; ` +
    `${DURABLE_COMMIT_SQL}; ${insertTrueSql(schema, txid, participants)}`
  );
}

/**
 * The decision inside the decision branch, as one Query: insert `true`, then COMMIT. The server runs both without
 * waiting for us in between, so the row is never left uncommitted by a proxy that vanished (no idle timeout needed,
 * unlike insertDecisionSql), and answers once (one flush there, one read here). If the insert fails (recovery's
 * `false` was first, the role may not insert) PostgreSQL skips the COMMIT and leaves the branch failed (ReadyForQuery
 * 'E'): nothing committed, and the caller rolls it back.
 */
export function decideSql(schema: string, txid: string, participants: readonly number[]): string {
  return `${insertTrueSql(schema, txid, participants)}; ${DURABLE_COMMIT_SQL}; COMMIT`;
}

function insertTrueSql(schema: string, txid: string, participants: readonly number[]): string {
  return (
    `INSERT INTO ${decisionTable(schema)} (txid, participants, committed) ` +
    `VALUES (${txidLiteral(txid)}, '{${participants.join(',')}}', true)`
  );
}

/**
 * The decision as a transaction of its own (atomic_visibility: every writer, the decision shard's too, is prepared
 * first): an insert of `true` in an implicit transaction (one Query), which commits the decision and makes no data
 * visible. It fails on the key when recovery inserted `false` first. READ WRITE explicitly: it runs on the client's
 * connection, whose session may make transactions read-only by default (`SET default_transaction_read_only`); its
 * failure ends the implicit transaction, so the connection is idle again either way.
 */
export function insertDecisionAutocommitSql(
  schema: string,
  txid: string,
  participants: readonly number[],
): string {
  return `SET TRANSACTION READ WRITE; ${DURABLE_COMMIT_SQL}; ${insertTrueSql(schema, txid, participants)}`;
}

/**
 * Learn (and fix) the outcome of `txid`: insert `false` unless a row exists, then read the row. Explicit READ
 * WRITE (a role may make transactions read-only by default) and READ COMMITTED, so that an insert meeting the owner's uncommitted `true` waits for that branch to end and then either
 * finds the committed row or inserts; `lock_timeout` bounds that wait (the caller retries later).
 */
export function resolveDecisionSql(schema: string, txid: string, lockTimeoutMs: number): string {
  const t = decisionTable(schema);
  const id = txidLiteral(txid);
  return (
    `BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE; SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}; ` +
    `${DURABLE_COMMIT_SQL}; ` +
    `INSERT INTO ${t} (txid, participants, committed) VALUES (${id}, '{}', false) ON CONFLICT (txid) DO NOTHING; ` +
    `SELECT committed FROM ${t} WHERE txid = ${id}; COMMIT`
  );
}

export function deleteDecisionsSql(schema: string, txids: readonly string[]): string {
  return `DELETE FROM ${decisionTable(schema)} WHERE txid IN (${txids.map(txidLiteral).join(', ')})`;
}

/** Every row, oldest first: what clean-up looks at (committed rows only: read with a plain snapshot). */
export function listDecisionsSql(schema: string): string {
  return (
    `SELECT txid, array_to_string(participants, ','), committed, ` +
    `(extract(epoch FROM now() - decided_at) * 1000)::bigint FROM ${decisionTable(schema)} ORDER BY decided_at`
  );
}

export type Resolution =
  { readonly outcome: 'committed' | 'aborted' } | { readonly outcome: 'unknown'; readonly reason: string };

/** Read the reply of resolveDecisionSql. */
export function readResolution(outcome: QueryOutcome): Resolution {
  if (outcome.kind !== 'ok') return { outcome: 'unknown', reason: outcomeFailure(outcome) ?? '' };
  const value = outcome.rows[0]?.[0];
  if (value === 't') return { outcome: 'committed' };
  if (value === 'f') return { outcome: 'aborted' };
  return { outcome: 'unknown', reason: `unexpected reply ${JSON.stringify(outcome.rows)}` };
}

/** Resolve `txid` on its decision shard over a connection of its own, as `user`. */
export async function resolveDecision(
  shards: ShardAccess,
  schema: string,
  database: string,
  user: string,
  shard: number,
  txid: string,
  lockTimeoutMs: number,
): Promise<Resolution> {
  return readResolution(
    await queryShard(shards, database, user, shard, resolveDecisionSql(schema, txid, lockTimeoutMs)),
  );
}

/** PostgreSQL's SQLSTATEs the DDL may meet when two proxies create the table at the same moment. */
const CONCURRENT_CREATE = new Set(['23505', '42P06', '42P07']);
const INSUFFICIENT_PRIVILEGE = '42501';

/** The start-up error when the decision table cannot be created (the role lacks the privilege). */
export class DecisionTableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecisionTableError';
  }
}

/**
 * Make sure the decision table exists on every shard of every sharded database, created as the database's first
 * user when missing; check every configured user may insert, read and delete in it (a warning with the GRANT to run
 * when one may not). Throws DecisionTableError when it is missing and cannot be created for lack of privilege.
 * Returns the shards that could not be reached (`database/shard`): retried by recovery.
 */
export async function ensureDecisionTable(
  shards: ShardAccess,
  schema: string,
  logger: Logger,
): Promise<string[]> {
  const unreached: string[] = [];
  for (const database of shards.shardedDatabases()) {
    const users = shards.users(database);
    if (users.length === 0) continue;
    for (let shard = 0; shard < shards.shardCount(database); shard++) {
      const isReady = await ensureOnShard(shards, schema, database, users, shard, logger);
      if (!isReady) unreached.push(`${database}/${shard}`);
    }
  }
  return unreached;
}

async function ensureOnShard(
  shards: ShardAccess,
  schema: string,
  database: string,
  users: readonly string[],
  shard: number,
  logger: Logger,
): Promise<boolean> {
  const table = decisionTable(schema);
  const exists = await queryShard(
    shards,
    database,
    users[0],
    shard,
    `SELECT to_regclass('${table}') IS NOT NULL`,
  );
  if (exists.kind !== 'ok') {
    logger.warn(
      { database, shard, err: outcomeFailure(exists) },
      'two_phase_commit: cannot check the decision table on this shard (unreachable?); retrying in the background',
    );
    return false;
  }
  if (exists.rows[0]?.[0] !== 't') {
    const created = await queryShard(shards, database, users[0], shard, createDecisionTableSql(schema));
    if (created.kind === 'error' && created.code === INSUFFICIENT_PRIVILEGE) {
      const role = shards.serverUser(database, users[0], shard) ?? users[0];
      throw new DecisionTableError(
        `two_phase_commit = true needs the decision table ${table} on shard ${shard} of database "${database}" ` +
          `(${shards.location(database, shard) ?? '?'}), and role "${role}" may not create it: ${created.message}. ` +
          `Create it once as an owner of that database: ${createDecisionTableSql(schema)}; then ` +
          `GRANT USAGE ON SCHEMA ${schema} TO <every server role that commits>; ` +
          `GRANT SELECT, INSERT, DELETE ON ${table} TO <the same roles>`,
      );
    }
    if (created.kind === 'error' && !CONCURRENT_CREATE.has(created.code))
      throw new DecisionTableError(
        `cannot create the decision table ${table} on shard ${shard} of database "${database}": ${created.message}`,
      );
    if (created.kind === 'lost') return false;
    logger.info({ database, shard, table }, 'two_phase_commit: decision table ready on this shard');
  }
  for (const user of users) {
    const may = await queryShard(
      shards,
      database,
      user,
      shard,
      `SELECT has_table_privilege('${table}', 'INSERT') AND has_table_privilege('${table}', 'SELECT') ` +
        `AND has_table_privilege('${table}', 'DELETE')`,
    );
    if (may.kind === 'ok' && may.rows[0]?.[0] === 't') continue;
    const role = shards.serverUser(database, user, shard) ?? user;
    logger.warn(
      { database, shard, user, role, err: outcomeFailure(may) ?? undefined },
      `two_phase_commit: role "${role}" may not use the decision table ${table}: its two-phase commits will fail ` +
        `until an owner runs GRANT USAGE ON SCHEMA ${schema} TO "${role}"; GRANT SELECT, INSERT, DELETE ON ${table} TO "${role}"`,
    );
  }
  return true;
}
