// Shared fixtures for the router tests: a sharding schema (users/orders by user id, Prisma's "User", pgbench's
// accounts and history by aid, a column-based tenant_id entry, omnisharded lookup tables) and compact formatters.
import type { KeySource, StatementPlan } from '../../../src/router/plan.js';
import type { ShardedColumn, ShardingSchema } from '../../../src/sharding/schema.js';

function column(
  table: string | null,
  name: string,
  keyType: ShardedColumn['keyType'] = 'bigint',
): ShardedColumn {
  return { database: 'app', schema: null, table, column: name, keyType, fn: { kind: 'hash' } };
}

export const SCHEMA: ShardingSchema = {
  database: 'app',
  shardCount: 2,
  shardedColumns: [
    column('users', 'id'),
    column('orders', 'user_id'),
    column('User', 'id'),
    column('pgbench_accounts', 'aid', 'integer'),
    column('pgbench_history', 'aid', 'integer'),
    column('devices', 'serial', 'uuid'),
    column(null, 'tenant_id'),
  ],
  omnishardedTables: new Set(['countries', 'pgbench_branches', 'pgbench_tellers']),
};

/** `$1`, `$2[]` (array parameter) or the literal's text. */
export function source(s: KeySource): string {
  return s.kind === 'param' ? `$${s.index}${s.isArray ? '[]' : ''}` : s.value;
}

/** The shard key as a comma list (`$1,7`), or null for "no key". */
export function keyOf(plan: StatementPlan): string | null {
  return plan.shardKey === null ? null : plan.shardKey.sources.map(source).join(',');
}

/** Table names as `schema.name` / `name`. */
export function tablesOf(plan: StatementPlan): string[] {
  return plan.tables.map((t) => (t.schema !== null ? `${t.schema}.${t.name}` : t.name));
}
