// Defaults of every supported setting, and the registry of PgDog keys shardgate knows but does not
// implement yet (accepted with a warning). Sources: docs.pgdog.dev/configuration and pgdog-config.

import type { GeneralConfig } from './types.js';

export const MIB = 1024 * 1024;

/** `[general]` defaults; PgDog's where PgDog has the key (log_format differs: we default to json). */
export const GENERAL_DEFAULTS: Readonly<GeneralConfig> = Object.freeze({
  host: '0.0.0.0',
  port: 6432,
  defaultPoolSize: 10,
  minPoolSize: 1,
  poolerMode: 'transaction',
  connectTimeoutMs: 5_000,
  checkoutTimeoutMs: 5_000,
  queryTimeoutMs: 0,
  deadlockTimeoutMs: 1_000, // PostgreSQL's deadlock_timeout
  idleTimeoutMs: 60_000,
  clientIdleTimeoutMs: 0,
  clientLoginTimeoutMs: 60_000,
  authType: 'scram',
  passthroughAuth: 'disabled',
  tlsCertificate: null,
  tlsPrivateKey: null,
  logLevel: 'info',
  logFormat: 'json',
  twoPhaseCommit: false,
  twoPhaseCommitAuto: false,
  instanceId: '', // derived from the host name and port at load time
  formerInstanceId: null, // set with the derived instanceId
  isFormerInstanceIdAmbiguous: false,
  twoPhaseCommitWalDir: 'shardgate_2pc', // resolved against the folder of pgdog.toml
  twoPhaseCommitWalSegmentSizeBytes: 16 * MIB,
  twoPhaseCommitWalFsyncIntervalMs: 0,
  twoPhaseCommitSchema: 'shardgate',
  twoPhaseCommitRecoveryIntervalMs: 10_000,
  twoPhaseCommitOrphanTimeoutMs: 60_000,
  twoPhaseCommitPrepareTimeoutMs: 0, // off, as statement_timeout
  atomicVisibility: false, // at load: two_phase_commit's value unless set
  atomicVisibilityTimeoutMs: 5_000,
  twoPhaseCommitReply: 'after_commit_prepared',
  maxMessageSizeBytes: 64 * MIB,
  insertSelectBatchRows: 1000,
  preparedStatementsLimit: null, // PgDog: i64::MAX
  preparedStatementsCacheSizeBytes: 64 * MIB,
  queryCacheLimit: 1000, // PgDog's (pgdog-config general.rs)
  queryCacheSizeBytes: 64 * MIB,
  querySizeLimitBytes: null, // PgDog: off
  querySizeLimitAction: 'warn',
  openmetricsPort: null,
  healthcheckPort: null,
  openmetricsNamespace: 'shardgate_',
  shutdownTimeoutMs: 60_000,
  readWriteSplit: 'include_primary',
  loadBalancingStrategy: 'random',
  readWriteStrategy: 'conservative',
  banTimeoutMs: 300_000,
  healthcheckIntervalMs: 30_000,
  idleHealthcheckIntervalMs: 30_000,
  idleHealthcheckDelayMs: 5_000,
  healthcheckTimeoutMs: 5_000,
  lsnCheckIntervalMs: 5_000,
  lsnCheckTimeoutMs: 5_000,
  lsnCheckDelayMs: null, // PgDog: never (the monitor is off)
  banReplicaLagMs: null, // PgDog: i64::MAX (off)
  banReplicaLagBytes: null, // PgDog: i64::MAX (off)
  uniqueIdFunction: 'standard',
  uniqueIdMin: 0n,
  nodeId: 0, // from NODE_ID at load time
  nodeIdSource: null,
});

export const DATABASE_PORT_DEFAULT = 5432;
export const DATABASE_SHARD_DEFAULT = 0;
export const DATABASE_ROLE_DEFAULT = 'primary';
/** PgDog's lb_weight default (u8::MAX). */
export const DATABASE_LB_WEIGHT_DEFAULT = 255;

export const ADMIN_NAME_DEFAULT = 'admin';
export const ADMIN_USER_DEFAULT = 'admin';

/** Largest timeout a Node timer can hold; larger values would fire after 1 ms. */
export const MAX_TIMEOUT_MS = 2_147_483_647;
/** Bounds of `max_message_size`: big enough for a startup packet, no larger than PostgreSQL's 1 GiB. */
export const MIN_MESSAGE_SIZE_BYTES = 4096;
export const MAX_MESSAGE_SIZE_BYTES = 1024 * MIB;

export const POOLER_MODES = ['transaction', 'session'] as const;
export const AUTH_TYPES = ['scram', 'md5', 'trust'] as const;
export const PASSTHROUGH_AUTH_MODES = [
  'disabled',
  'enabled',
  'enabled_plain',
  'enabled_allow_change',
  'enabled_plain_allow_change',
] as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export const LOG_FORMATS = ['json', 'text'] as const;
export const QUERY_SIZE_LIMIT_ACTIONS = ['warn', 'block'] as const;
export const TWO_PHASE_COMMIT_REPLIES = ['after_commit_prepared', 'at_decision'] as const;
export const DATABASE_ROLES = ['primary', 'replica', 'auto'] as const;
export const READ_WRITE_SPLITS = [
  'include_primary',
  'exclude_primary',
  'include_primary_if_replica_banned',
  'prefer_primary',
] as const;
export const LOAD_BALANCING_STRATEGIES = [
  'random',
  'round_robin',
  'least_active_connections',
  'weighted_round_robin',
] as const;
export const READ_WRITE_STRATEGIES = ['conservative', 'aggressive'] as const;

/** Top-level pgdog.toml sections PgDog has that shardgate ignores (with a warning). */
export const UNSUPPORTED_PGDOG_SECTIONS: ReadonlySet<string> = new Set([
  'rewrite',
  'tcp',
  'multi_tenant',
  'plugins',
  'manual_queries',
  'sharded_schemas',
  'replica_lag',
  'replication',
  'mirroring',
  'memory',
  'otel',
  'vault',
  'control',
  'fdw',
]);

/** `[general]` keys PgDog has that shardgate ignores (with a warning). */
export const UNSUPPORTED_GENERAL_KEYS: ReadonlySet<string> = new Set([
  'workers',
  'rollback_timeout',
  'tls_client_required',
  'tls_client_ca_certificate',
  'tls_verify',
  'tls_server_ca_certificate',
  'shutdown_termination_timeout',
  'broadcast_address',
  'broadcast_port',
  'query_log',
  'prepared_statements',
  'prepared_statements_ttl',
  'prepared_statements_ttl_jitter',
  'query_parser_enabled',
  'query_parser',
  'query_parser_engine',
  'regex_parser_limit',
  'log_query_sample_length',
  'connect_attempts',
  'connect_attempt_delay',
  'client_idle_in_transaction_timeout',
  'dry_run',
  'server_lifetime',
  'server_lifetime_jitter',
  'mirror_queue',
  'mirror_exposure',
  'cross_shard_disabled',
  'dns_ttl',
  'pub_sub_channel_size',
  'log_connections',
  'log_disconnections',
  'log_dedup_window',
  'log_dedup_threshold',
  'two_phase_commit_wal_checkpoint_interval',
  'expanded_explain',
  'stats_period',
  'connection_recovery',
  'client_connection_recovery',
  'system_catalogs',
  'omnisharded_sticky',
  'resharding_copy_format',
  'resharding_parallel_copies',
  'resharding_copy_retry_max_attempts',
  'resharding_copy_retry_min_delay',
  'resharding_replication_retry_max_attempts',
  'resharding_replication_retry_min_delay',
  'reload_schema_on_ddl',
  'load_schema',
  'cutover_traffic_stop_threshold',
  'cutover_replication_lag_threshold',
  'cutover_last_transaction_delay',
  'cutover_timeout',
  'cutover_timeout_action',
  'cutover_save_config',
]);

/** `[[databases]]` keys PgDog has that shardgate ignores (with a warning). */
export const UNSUPPORTED_DATABASE_KEYS: ReadonlySet<string> = new Set([
  'pool_size',
  'min_pool_size',
  'pooler_mode',
  'statement_timeout',
  'lock_timeout',
  'idle_timeout',
  'read_only',
  'server_lifetime',
  'server_lifetime_jitter',
  'resharding_only',
]);

/** users.toml `[[users]]` keys PgDog has that shardgate ignores (with a warning). */
export const UNSUPPORTED_USER_KEYS: ReadonlySet<string> = new Set([
  'identity',
  'databases',
  'all_databases',
  'passwords',
  'password_hash',
  'min_pool_size',
  'server_auth',
  'server_iam_region',
  'server_vault_path',
  'vault_path',
  'vault_refresh_percent',
  'statement_timeout',
  'lock_timeout',
  'replication_mode',
  'replication_sharding',
  'idle_timeout',
  'client_idle_timeout',
  'read_only',
  'schema_admin',
  'cross_shard_disabled',
  'two_phase_commit',
  'two_phase_commit_auto',
  'server_lifetime',
  'server_lifetime_jitter',
  'tls_client_certificate_required',
]);

/** Keys shardgate implements, per section (for "unknown key" suggestions). */
export const SUPPORTED_GENERAL_KEYS: readonly string[] = [
  'read_write_split',
  'load_balancing_strategy',
  'read_write_strategy',
  'ban_timeout',
  'healthcheck_interval',
  'idle_healthcheck_interval',
  'idle_healthcheck_delay',
  'healthcheck_timeout',
  'lsn_check_interval',
  'lsn_check_timeout',
  'lsn_check_delay',
  'ban_replica_lag',
  'ban_replica_lag_bytes',
  'host',
  'port',
  'default_pool_size',
  'max_pool_size',
  'min_pool_size',
  'pooler_mode',
  'connect_timeout',
  'checkout_timeout',
  'query_timeout',
  'deadlock_timeout',
  'idle_timeout',
  'client_idle_timeout',
  'client_login_timeout',
  'auth_type',
  'passthrough_auth',
  'tls_certificate',
  'tls_private_key',
  'log_level',
  'log_format',
  'two_phase_commit',
  'two_phase_commit_auto',
  'instance_id',
  'two_phase_commit_wal_dir',
  'two_phase_commit_wal_segment_size',
  'two_phase_commit_wal_fsync_interval',
  'two_phase_commit_schema',
  'two_phase_commit_recovery_interval',
  'two_phase_commit_orphan_timeout',
  'two_phase_commit_prepare_timeout',
  'atomic_visibility',
  'atomic_visibility_timeout',
  'two_phase_commit_reply',
  'max_message_size',
  'insert_select_batch_rows',
  'prepared_statements_limit',
  'prepared_statements_cache_size',
  'query_cache_limit',
  'query_cache_size',
  'query_size_limit',
  'query_size_limit_action',
  'openmetrics_port',
  'healthcheck_port',
  'openmetrics_namespace',
  'shutdown_timeout',
  'unique_id_function',
  'unique_id_min',
];
export const SUPPORTED_DATABASE_KEYS: readonly string[] = [
  'name',
  'host',
  'port',
  'database_name',
  'user',
  'password',
  'shard',
  'role',
  'lb_weight',
];
export const SUPPORTED_ADMIN_KEYS: readonly string[] = ['name', 'user', 'password'];
export const SUPPORTED_USER_KEYS: readonly string[] = [
  'name',
  'database',
  'password',
  'pool_size',
  'pooler_mode',
  'server_user',
  'server_password',
];
export const SUPPORTED_PGDOG_SECTIONS: readonly string[] = [
  'general',
  'databases',
  'admin',
  'sharded_tables',
  'sharded_mappings',
  'omnisharded_tables',
];
export const SUPPORTED_USERS_SECTIONS: readonly string[] = ['users', 'admin'];

// ---- sharding sections (docs.pgdog.dev/configuration/pgdog.toml/sharded_tables) ----

/** data_type values; PgDog's default is bigint. "vector" (PgDog's centroid sharding) is not supported. */
export const SHARDED_DATA_TYPES = ['bigint', 'integer', 'text', 'varchar', 'uuid'] as const;
export const SHARDED_DATA_TYPE_DEFAULT = 'bigint';
export const SHARDED_MAPPING_KINDS = ['list', 'range', 'default'] as const;

export const SUPPORTED_SHARDED_TABLE_KEYS: readonly string[] = [
  'database',
  'name',
  'schema',
  'column',
  'data_type',
  'primary',
  'hasher',
  'mapping',
];
/** `[[sharded_tables]]` keys of PgDog's vector sharding, ignored with a warning. */
export const UNSUPPORTED_SHARDED_TABLE_KEYS: ReadonlySet<string> = new Set([
  'centroids',
  'centroids_path',
  'centroid_probes',
]);
/** `[[sharded_tables.mapping]]` keys (the table gives database, table and column). */
export const SUPPORTED_NESTED_MAPPING_KEYS: readonly string[] = ['kind', 'values', 'start', 'end', 'shard'];
export const SUPPORTED_SHARDED_MAPPING_KEYS: readonly string[] = [
  'database',
  'table',
  'schema',
  'column',
  ...SUPPORTED_NESTED_MAPPING_KEYS,
];
export const SUPPORTED_OMNISHARDED_KEYS: readonly string[] = ['database', 'tables'];
/** PgDog's sticky routing of omnisharded reads, ignored with a warning. */
export const UNSUPPORTED_OMNISHARDED_KEYS: ReadonlySet<string> = new Set(['sticky']);
