// What the router knows of PostgreSQL's built-in functions: which ones write (and whether a transaction rolls that
// back), which need the one shard holding a large object or a backend, and which read server or catalog state — and
// what a call of any function (built-in, or one the shards' catalog told about) makes of the statement calling it.
import type { CatalogFacts } from '../sharding/catalog-facts.js';

/**
 * Built-in functions whose effect a transaction rolls back (large objects, notifications): a SELECT calling them
 * writes, and on several shards outside BEGIN runs inside a transaction of the proxy's own.
 */
export const TRANSACTIONAL_WRITE_FUNCTIONS: ReadonlySet<string> = new Set([
  'pg_notify',
  'lo_create',
  'lo_creat',
  'lo_import',
  'lo_unlink',
  'lo_put',
  'lo_from_bytea',
  'lowrite',
  'lo_truncate',
  'lo_truncate64',
]);

/** The server-side large-object functions: a large object lives on one shard, so the shard must be known. */
export const LARGE_OBJECT_FUNCTIONS: ReadonlySet<string> = new Set([
  'lo_create',
  'lo_creat',
  'lo_import',
  'lo_unlink',
  'lo_put',
  'lo_from_bytea',
  'lowrite',
  'lo_truncate',
  'lo_truncate64',
  'lo_open',
  'lo_close',
  'loread',
  'lo_get',
  'lo_export',
  'lo_lseek',
  'lo_lseek64',
  'lo_tell',
  'lo_tell64',
]);

/** Functions taking a backend's pid: a pid names a process of one server, so the shard must be known. */
export const BACKEND_PID_FUNCTIONS: ReadonlySet<string> = new Set([
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_signal_backend',
  'pg_log_backend_memory_contexts',
]);

/**
 * Built-in functions that change server state no transaction rolls back (sequences, advisory locks, backends): a
 * SELECT calling them is a write, but wrapping it in a transaction would not make it atomic.
 */
export const SIDE_EFFECT_FUNCTIONS: ReadonlySet<string> = new Set([
  'nextval',
  'setval',
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_advisory_xact_lock',
  'pg_advisory_xact_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_try_advisory_xact_lock',
  'pg_try_advisory_xact_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
  'txid_current',
  'pg_current_xact_id',
  'pg_terminate_backend',
  'pg_cancel_backend',
  'pg_reload_conf',
  'pg_switch_wal',
  'pg_create_logical_replication_slot',
  'pg_create_physical_replication_slot',
  'pg_drop_replication_slot',
]);

/** Built-in functions that read server or catalog state (besides pg_* and pg_catalog.*). */
export const SYSTEM_FUNCTIONS: ReadonlySet<string> = new Set([
  'version',
  'current_schema',
  'current_schemas',
  'current_database',
  'current_setting',
  'obj_description',
  'col_description',
  'shobj_description',
  'format_type',
  'to_regclass',
  'to_regtype',
  'to_regproc',
  'to_regprocedure',
  'to_regnamespace',
  'to_regrole',
  'has_table_privilege',
  'has_schema_privilege',
  'has_database_privilege',
  'has_function_privilege',
  'has_column_privilege',
  'has_sequence_privilege',
  'inet_server_addr',
  'inet_server_port',
]);

/** SQLValueFunction operations that read the session's identity or schema (CURRENT_USER, CURRENT_SCHEMA, …). */
export const SYSTEM_VALUE_FUNCTIONS: ReadonlySet<string> = new Set([
  'SVFOP_CURRENT_ROLE',
  'SVFOP_CURRENT_USER',
  'SVFOP_USER',
  'SVFOP_SESSION_USER',
  'SVFOP_CURRENT_CATALOG',
  'SVFOP_CURRENT_SCHEMA',
]);

/** What function calls make of a statement (the scope builder's fields). */
export interface CallEffects {
  /** The statement writes (a write function, or one the catalog says may write). */
  writes: boolean;
  /** …and a transaction rolls those writes back. */
  transactionalWrites: boolean;
  largeObjectCalls: number;
  backendPidCalls: number;
  notifies: boolean;
  systemCalls: number;
  /** Functions whose catalog facts are not known yet. */
  readonly unknownFunctions: Set<string>;
  /** Why a function it calls may write where shardgate cannot tell (first one found), or null. */
  opaqueCall: string | null;
}

/** Note a call of the function named `names` (schema-qualified or not) in `effects`. */
export function noteFunctionCall(
  effects: CallEffects,
  names: readonly string[],
  catalog?: CatalogFacts,
): void {
  const name = names[names.length - 1] ?? '';
  const schemaName = names.length > 1 ? names[0] : null;
  const builtin = schemaName === null || schemaName === 'pg_catalog';
  if (schemaName !== 'pg_catalog' && catalog !== undefined) {
    const facts = catalog.functions.get(name);
    if (facts === undefined) effects.unknownFunctions.add(name);
    else if (facts.mayWrite) {
      effects.writes = effects.transactionalWrites = true;
      if (facts.opaqueReason !== null)
        effects.opaqueCall ??= `it calls ${name}(), which ${facts.opaqueReason}`;
    }
  }
  if (builtin) {
    if (TRANSACTIONAL_WRITE_FUNCTIONS.has(name)) effects.writes = effects.transactionalWrites = true;
    else if (SIDE_EFFECT_FUNCTIONS.has(name)) effects.writes = true;
    if (LARGE_OBJECT_FUNCTIONS.has(name)) effects.largeObjectCalls++;
    if (BACKEND_PID_FUNCTIONS.has(name)) effects.backendPidCalls++;
    if (name === 'pg_notify') effects.notifies = true;
  }
  if (
    schemaName === 'pg_catalog' ||
    (schemaName === null && (name.startsWith('pg_') || SYSTEM_FUNCTIONS.has(name)))
  ) {
    effects.systemCalls++;
  }
}
