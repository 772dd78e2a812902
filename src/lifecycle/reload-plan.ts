// What a configuration reload changes: the running and the newly read (already validated) configuration in, the
// configuration to run with out — everything that can change live taken from the new one, everything that needs a
// restart kept from the running one — with both lists of changes by PgDog key. Pure: no I/O, no logging. Values are
// never listed (they may be passwords), only the keys that changed.
import type { Config, DatabaseConfig, GeneralConfig, UserConfig } from '../config/types.js';

export interface ReloadPlan {
  config: Config;
  /** Changes that apply now, e.g. `general.default_pool_size`, `users."alice"@prod: password`. */
  changed: string[];
  /** Changes ignored until a restart, e.g. `general.port`, `databases."prod": shard layout`. */
  needsRestart: string[];
}

/** PgDog key of each [general] setting; `true` = it can only change with a restart. */
const GENERAL_KEYS: Record<keyof GeneralConfig, [key: string, needsRestart: boolean]> = {
  host: ['host', true],
  port: ['port', true],
  defaultPoolSize: ['default_pool_size', false],
  minPoolSize: ['min_pool_size', false],
  poolerMode: ['pooler_mode', false],
  connectTimeoutMs: ['connect_timeout', false],
  checkoutTimeoutMs: ['checkout_timeout', false],
  queryTimeoutMs: ['query_timeout', false],
  deadlockTimeoutMs: ['deadlock_timeout', false],
  idleTimeoutMs: ['idle_timeout', false],
  clientIdleTimeoutMs: ['client_idle_timeout', false],
  clientLoginTimeoutMs: ['client_login_timeout', false],
  authType: ['auth_type', false],
  passthroughAuth: ['passthrough_auth', false],
  tlsCertificate: ['tls_certificate', false],
  tlsPrivateKey: ['tls_private_key', false],
  logLevel: ['log_level', false],
  logFormat: ['log_format', true],
  twoPhaseCommit: ['two_phase_commit', true],
  twoPhaseCommitAuto: ['two_phase_commit_auto', false],
  instanceId: ['instance_id', true],
  formerInstanceId: ['instance_id', true],
  isFormerInstanceIdAmbiguous: ['instance_id', true],
  twoPhaseCommitWalDir: ['two_phase_commit_wal_dir', true],
  twoPhaseCommitWalSegmentSizeBytes: ['two_phase_commit_wal_segment_size', true],
  twoPhaseCommitWalFsyncIntervalMs: ['two_phase_commit_wal_fsync_interval', true],
  twoPhaseCommitSchema: ['two_phase_commit_schema', true],
  twoPhaseCommitRecoveryIntervalMs: ['two_phase_commit_recovery_interval', true],
  twoPhaseCommitOrphanTimeoutMs: ['two_phase_commit_orphan_timeout', true],
  twoPhaseCommitPrepareTimeoutMs: ['two_phase_commit_prepare_timeout', false],
  atomicVisibility: ['atomic_visibility', true],
  atomicVisibilityTimeoutMs: ['atomic_visibility_timeout', false],
  twoPhaseCommitReply: ['two_phase_commit_reply', false],
  maxMessageSizeBytes: ['max_message_size', false],
  insertSelectBatchRows: ['insert_select_batch_rows', false],
  preparedStatementsLimit: ['prepared_statements_limit', false],
  preparedStatementsCacheSizeBytes: ['prepared_statements_cache_size', false],
  queryCacheLimit: ['query_cache_limit', true],
  queryCacheSizeBytes: ['query_cache_size', true],
  querySizeLimitBytes: ['query_size_limit', false],
  querySizeLimitAction: ['query_size_limit_action', false],
  openmetricsPort: ['openmetrics_port', true],
  healthcheckPort: ['healthcheck_port', true],
  openmetricsNamespace: ['openmetrics_namespace', true],
  shutdownTimeoutMs: ['shutdown_timeout', false],
  readWriteSplit: ['read_write_split', false],
  loadBalancingStrategy: ['load_balancing_strategy', false],
  readWriteStrategy: ['read_write_strategy', false],
  banTimeoutMs: ['ban_timeout', false],
  healthcheckIntervalMs: ['healthcheck_interval', false],
  idleHealthcheckIntervalMs: ['idle_healthcheck_interval', false],
  idleHealthcheckDelayMs: ['idle_healthcheck_delay', false],
  healthcheckTimeoutMs: ['healthcheck_timeout', false],
  lsnCheckIntervalMs: ['lsn_check_interval', false],
  lsnCheckTimeoutMs: ['lsn_check_timeout', false],
  lsnCheckDelayMs: ['lsn_check_delay', false],
  banReplicaLagMs: ['ban_replica_lag', false],
  banReplicaLagBytes: ['ban_replica_lag_bytes', false],
  // The id generator is made once: a layout or minimum changed under running ids could repeat earlier ones.
  uniqueIdFunction: ['unique_id_function', true],
  uniqueIdMin: ['unique_id_min', true],
  nodeId: ['NODE_ID', true],
  nodeIdSource: ['NODE_ID', true],
};

const DATABASE_KEYS: [keyof DatabaseConfig, string][] = [
  ['host', 'host'],
  ['port', 'port'],
  ['databaseName', 'database_name'],
  ['user', 'user'],
  ['password', 'password'],
  ['lbWeight', 'lb_weight'],
];

const USER_KEYS: [keyof UserConfig, string][] = [
  ['password', 'password'],
  ['poolSize', 'pool_size'],
  ['poolerMode', 'pooler_mode'],
  ['serverUser', 'server_user'],
  ['serverPassword', 'server_password'],
];

export function planReload(running: Config, next: Config): ReloadPlan {
  const changed: string[] = [];
  const needsRestart: string[] = [];
  const general = planGeneral(running.general, next.general, changed, needsRestart);
  const databases = planDatabases(running.databases, next.databases, changed, needsRestart);
  planUsers(running.users, next.users, changed);
  for (const key of ['name', 'user', 'password'] as const) {
    if (running.admin[key] !== next.admin[key]) changed.push(`admin.${key}`);
  }
  if (shardingText(running) !== shardingText(next)) needsRestart.push('sharding rules');
  return {
    config: {
      ...next,
      general,
      databases,
      shardedTables: running.shardedTables,
      omnishardedTables: running.omnishardedTables,
    },
    changed,
    needsRestart,
  };
}

function planGeneral(
  running: GeneralConfig,
  next: GeneralConfig,
  changed: string[],
  needsRestart: string[],
): GeneralConfig {
  const out: GeneralConfig = { ...next };
  for (const field of Object.keys(GENERAL_KEYS) as (keyof GeneralConfig)[]) {
    if (running[field] === next[field]) continue;
    const [key, isRestart] = GENERAL_KEYS[field];
    if (isRestart) {
      if (!needsRestart.includes(`general.${key}`)) needsRestart.push(`general.${key}`);
      (out as unknown as Record<string, unknown>)[field] = running[field];
    } else {
      changed.push(`general.${key}`);
    }
  }
  return out;
}

/** A database's shard entries, by name, in file order. */
function byName(databases: readonly DatabaseConfig[]): Map<string, DatabaseConfig[]> {
  const out = new Map<string, DatabaseConfig[]>();
  for (const d of databases) {
    const list = out.get(d.name) ?? [];
    list.push(d);
    out.set(d.name, list);
  }
  return out;
}

/** The shard numbers and roles of a database, in a comparable form. */
function layout(entries: readonly DatabaseConfig[]): string {
  return entries
    .map((d) => `${d.shard}:${d.role}`)
    .sort()
    .join(',');
}

/**
 * Per database: the same shards and roles → the new entries (a server's host, port, database name, user or password
 * applies to new connections); anything else (shards or roles changed, database added or removed) → the running
 * entries, and a restart is needed.
 */
function planDatabases(
  running: readonly DatabaseConfig[],
  next: readonly DatabaseConfig[],
  changed: string[],
  needsRestart: string[],
): DatabaseConfig[] {
  const old = byName(running);
  const fresh = byName(next);
  const out: DatabaseConfig[] = [];
  for (const [name, entries] of old) {
    const nextEntries = fresh.get(name);
    if (nextEntries === undefined) {
      needsRestart.push(`databases."${name}": removed`);
      out.push(...entries);
      continue;
    }
    if (layout(entries) !== layout(nextEntries)) {
      needsRestart.push(`databases."${name}": shards or roles`);
      out.push(...entries);
      continue;
    }
    for (const d of nextEntries) {
      const before = entries.find((e) => e.shard === d.shard && e.role === d.role);
      const keys = DATABASE_KEYS.filter(([field]) => before?.[field] !== d[field]).map(([, key]) => key);
      if (keys.length > 0) changed.push(`databases."${name}" shard ${d.shard}: ${keys.join(', ')}`);
    }
    out.push(...nextEntries);
  }
  for (const name of fresh.keys()) if (!old.has(name)) needsRestart.push(`databases."${name}": added`);
  return out;
}

function planUsers(running: readonly UserConfig[], next: readonly UserConfig[], changed: string[]): void {
  const id = (u: UserConfig): string => `"${u.name}"@${u.database}`;
  const old = new Map(running.map((u) => [id(u), u]));
  const fresh = new Map(next.map((u) => [id(u), u]));
  for (const [key, u] of fresh) {
    const before = old.get(key);
    if (before === undefined) {
      changed.push(`users.${key}: added`);
      continue;
    }
    const keys = USER_KEYS.filter(([field]) => before[field] !== u[field]).map(([, k]) => k);
    if (keys.length > 0) changed.push(`users.${key}: ${keys.join(', ')}`);
  }
  for (const key of old.keys()) if (!fresh.has(key)) changed.push(`users.${key}: removed`);
}

function shardingText(config: Config): string {
  return JSON.stringify([config.shardedTables, config.omnishardedTables], (_key, value: unknown) =>
    typeof value === 'bigint' ? `${value}n` : value,
  );
}
