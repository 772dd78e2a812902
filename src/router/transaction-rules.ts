// What PostgreSQL allows of a statement around transactions, read from its AST: statements it refuses inside a
// transaction block (VACUUM, CREATE INDEX CONCURRENTLY, CREATE DATABASE, …: the proxy runs them on each shard on
// their own, never inside a transaction of its own), and statements after which it refuses PREPARE TRANSACTION
// (temporary objects, LISTEN / UNLISTEN / NOTIFY, cursors WITH HOLD: such a transaction cannot commit in two phases).
// Pure.
import { flag, int, list, obj, str, stringValue, type AstObject } from './ast.js';

/** Why PREPARE TRANSACTION is refused after LISTEN, UNLISTEN or NOTIFY (or a pg_notify() call). */
export const NOTIFY_PREVENTS_PREPARE = 'it ran LISTEN, UNLISTEN or NOTIFY';

/** Why PREPARE TRANSACTION is refused after a statement used temporary objects. */
export const TEMPORARY_PREVENTS_PREPARE = 'it used temporary objects';

/** `CURSOR_OPT_HOLD` in PostgreSQL's parsenodes.h. */
const CURSOR_OPT_HOLD = 0x0020;

/**
 * Whether PostgreSQL refuses the statement inside a transaction block (PreventInTransactionBlock in its source):
 * the proxy never wraps it in a transaction of its own.
 */
export function isNonTransactional(nodeType: string, f: AstObject): boolean {
  switch (nodeType) {
    case 'VacuumStmt':
      return flag(f, 'is_vacuumcmd'); // ANALYZE alone may run in a block
    case 'IndexStmt':
    case 'DropStmt':
      return flag(f, 'concurrent');
    case 'ReindexStmt': {
      const kind = str(f, 'kind') ?? '';
      return (
        kind === 'REINDEX_OBJECT_DATABASE' ||
        kind === 'REINDEX_OBJECT_SYSTEM' ||
        list(f, 'params').some((p) => str(obj(p as AstObject, 'DefElem'), 'defname') === 'concurrently')
      );
    }
    case 'ClusterStmt':
      return obj(f, 'relation') === null; // CLUSTER of every table
    case 'CreatedbStmt':
    case 'DropdbStmt':
    case 'CreateTableSpaceStmt':
    case 'DropTableSpaceStmt':
    case 'AlterSystemStmt':
    case 'CreateSubscriptionStmt':
    case 'DropSubscriptionStmt':
      return true;
    case 'AlterDatabaseStmt':
      return list(f, 'options').some((o) => str(obj(o as AstObject, 'DefElem'), 'defname') === 'tablespace');
    default:
      return false;
  }
}

/** The relation a CREATE statement makes, for its TEMP-ness (null: not such a statement). */
function createdRelation(nodeType: string, f: AstObject): AstObject | null {
  switch (nodeType) {
    case 'CreateStmt':
      return obj(f, 'relation');
    case 'CreateTableAsStmt':
      return obj(obj(f, 'into'), 'rel');
    case 'ViewStmt':
      return obj(f, 'view');
    case 'CreateSeqStmt':
      return obj(f, 'sequence');
    default:
      return null;
  }
}

/**
 * Why PostgreSQL will refuse PREPARE TRANSACTION in a transaction that ran this statement, or null. Temporary
 * objects are seen when the statement creates them or names the `pg_temp` schema (a temporary table named without
 * it looks like any other table to the proxy).
 */
export function preventsPrepare(nodeType: string, f: AstObject): string | null {
  switch (nodeType) {
    case 'NotifyStmt':
    case 'ListenStmt':
    case 'UnlistenStmt':
      return NOTIFY_PREVENTS_PREPARE;
    case 'DeclareCursorStmt':
      return (int(f, 'options') & CURSOR_OPT_HOLD) !== 0 ? 'it declared a cursor WITH HOLD' : null;
    case 'DiscardStmt':
      return str(f, 'target') === 'DISCARD_TEMP' ? TEMPORARY_PREVENTS_PREPARE : null;
    default: {
      const created = createdRelation(nodeType, f);
      if (created !== null && str(created, 'relpersistence') === 't') return TEMPORARY_PREVENTS_PREPARE;
      return namesTempSchema(f) ? TEMPORARY_PREVENTS_PREPARE : null;
    }
  }
}

/** Some RangeVar (or qualified name) in the tree names the `pg_temp` schema. */
function namesTempSchema(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(namesTempSchema);
  if (typeof node !== 'object' || node === null) return false;
  const o = node as AstObject;
  const schema = str(o, 'schemaname');
  if (schema !== null && (schema === 'pg_temp' || schema.startsWith('pg_temp_'))) return true;
  if (stringValue(node) === 'pg_temp') return true;
  for (const key in o) if (namesTempSchema(o[key])) return true;
  return false;
}
