// The validated, effective configuration: what the rest of shardgate reads. Built by config/load.ts
// from pgdog.toml + users.toml (PgDog-compatible names); every field here already has its default.
import type { UniqueIdFunction } from '../sharding/unique-id.js';

export type PoolerMode = 'transaction' | 'session';
export type AuthType = 'scram' | 'md5' | 'trust';
/**
 * PgDog's passthrough_auth: users without a password in users.toml (or not listed) log in with the password their
 * server accepts, checked there on first use and then remembered. "enabled": only over TLS; "enabled_plain": also in
 * clear text; "…_allow_change": a different password is checked again and replaces the remembered one.
 */
export type PassthroughAuth =
  'disabled' | 'enabled' | 'enabled_plain' | 'enabled_allow_change' | 'enabled_plain_allow_change';
export type LogFormat = 'json' | 'text';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export type DatabaseRole = 'primary' | 'replica' | 'auto';
export type QuerySizeLimitAction = 'warn' | 'block';
/** When a two-phase COMMIT is answered (shardgate's own key two_phase_commit_reply). */
export type TwoPhaseCommitReply = 'after_commit_prepared' | 'at_decision';
/** PgDog's read_write_split: where reads go when a shard has replicas. */
export type ReadWriteSplit =
  'include_primary' | 'exclude_primary' | 'include_primary_if_replica_banned' | 'prefer_primary';
/** PgDog's load_balancing_strategy: which of the candidate servers a read gets. */
export type LoadBalancingStrategy =
  'random' | 'round_robin' | 'least_active_connections' | 'weighted_round_robin';
/** PgDog's read_write_strategy: conservative = every transaction is a write; aggressive = its first statement decides. */
export type ReadWriteStrategy = 'conservative' | 'aggressive';

export interface GeneralConfig {
  host: string; // default "0.0.0.0"
  port: number; // default 6432
  defaultPoolSize: number; // default 10
  minPoolSize: number; // default 1
  poolerMode: PoolerMode; // default "transaction"
  connectTimeoutMs: number; // default 5000 (always ≥ 1)
  checkoutTimeoutMs: number; // default 5000 (always ≥ 1)
  queryTimeoutMs: number; // 0 = off (default)
  /** A multi-shard transaction's statement waiting this long starts a distributed deadlock check; 0 = off. */
  deadlockTimeoutMs: number; // default 1000
  idleTimeoutMs: number; // server connection idle timeout, default 60000; 0 = never close idle ones
  clientIdleTimeoutMs: number; // 0 = off (default)
  clientLoginTimeoutMs: number; // time allowed from connect to logged in, default 60000; 0 = off
  authType: AuthType; // default "scram"
  passthroughAuth: PassthroughAuth; // default "disabled"
  tlsCertificate: string | null; // path, resolved relative to the config file
  tlsPrivateKey: string | null;
  logLevel: LogLevel; // default "info"
  logFormat: LogFormat; // default "json"
  twoPhaseCommit: boolean; // default false
  twoPhaseCommitAuto: boolean; // default false; needs two_phase_commit
  /**
   * This proxy's name inside 2PC transaction ids; [A-Za-z0-9_], ≤ 40. Default: the host name's first 20 characters, a
   * hash of the whole host name, and the listen port (config/instance-id.ts).
   */
  instanceId: string;
  /**
   * With the default instanceId: the default of earlier versions (host name cut to 32 characters + port), whose
   * prepared transactions recovery still settles. null when instance_id is configured.
   */
  formerInstanceId: string | null;
  /** formerInstanceId came from a host name longer than 32 characters: other hosts may have made the same id. */
  isFormerInstanceIdAmbiguous: boolean;
  /** Folder of the 2PC decision log, absolute; default `shardgate_2pc` next to pgdog.toml. */
  twoPhaseCommitWalDir: string;
  twoPhaseCommitWalSegmentSizeBytes: number; // default 16 MiB
  /** Longest wait to gather decisions into one fsync; 0 (default) = fsync at once (concurrent ones still share). */
  twoPhaseCommitWalFsyncIntervalMs: number;
  /** Schema of the decision table on every shard (`<schema>.decisions`); default `shardgate`. */
  twoPhaseCommitSchema: string;
  /** How often recovery looks for unfinished 2PC transactions, ms; default 10000. */
  twoPhaseCommitRecoveryIntervalMs: number;
  /**
   * Minimum age of a prepared transaction before recovery settles it by its decision row (live commits are left
   * alone); also the bound on how long a decision branch may sit idle before its COMMIT. Default 60000.
   */
  twoPhaseCommitOrphanTimeoutMs: number;
  /**
   * Longest wait for a shard's PREPARE TRANSACTION, ms (0 = none, the default): past it the PREPARE is cancelled (its
   * connection closed if the cancel does not end it) and the transaction rolls back everywhere.
   */
  twoPhaseCommitPrepareTimeoutMs: number;
  /**
   * Atomic visibility (shardgate's own key): readers of 2+ shards take their snapshots fenced against cross-shard
   * commits becoming visible, so none sees such a transaction on one shard only. Default: two_phase_commit.
   */
  atomicVisibility: boolean;
  /** Longest a fan-out reader waits for the fence and takes its snapshots, ms; past it: 40001. Default 5000. */
  atomicVisibilityTimeoutMs: number;
  /**
   * When the client hears COMMIT of a two-phase commit (shardgate's own key two_phase_commit_reply):
   * `after_commit_prepared` (default) once phase 2 finished on every shard, so any connection through any proxy reads
   * the writes; `at_decision` right after the decision shard's COMMIT, phase 2 continuing in the background while
   * every read through this proxy of a shard with an unfinished phase 2 waits for it. `at_decision` needs
   * atomic_visibility.
   */
  twoPhaseCommitReply: TwoPhaseCommitReply;
  /** Largest client message accepted, bytes (protects against oversized/malformed lengths). */
  maxMessageSizeBytes: number; // default 64 MiB
  /**
   * Rows an INSERT … SELECT the proxy evaluates moves at a time (shardgate's own key): each batch is fetched from the
   * query's cursor on one shard and inserted before the next, so the proxy holds at most this many rows. Default 1000.
   */
  insertSelectBatchRows: number;
  /**
   * PgDog: named statements one server connection may hold (the least recently used are closed beyond it); also the
   * most statements the proxy's statement cache keeps when some are unused. null = no limit (PgDog's default).
   */
  preparedStatementsLimit: number | null;
  /** Bytes the statement cache may hold before it drops statements no client uses; default 64 MiB. */
  preparedStatementsCacheSizeBytes: number;
  /** PgDog: plans the router caches per sharded database (by SQL text); default 1000; 0 = no cache. */
  queryCacheLimit: number;
  /** Bytes the router's plan cache may hold (text and an estimate of its plan); default 64 MiB. */
  queryCacheSizeBytes: number;
  /** PgDog: Query / Parse messages larger than this (bytes, header included) are logged or refused; null = off. */
  querySizeLimitBytes: number | null;
  /** PgDog: what happens to such a message: "warn" (logged, runs) or "block" (refused with 54000); default warn. */
  querySizeLimitAction: QuerySizeLimitAction;
  /** HTTP port of the OpenMetrics endpoint (/metrics); null = off (default). 0 = any free port. */
  openmetricsPort: number | null;
  /** PgDog's load-balancer health endpoint: HTTP on this port answers `up` (200) or `down` (503). */
  healthcheckPort: number | null;
  /** Prefix of every metric name; default "shardgate_" (PgDog: none). "" = no prefix. */
  openmetricsNamespace: string;
  /** Longest wait for running transactions on SIGTERM/SIGINT/SHUTDOWN before closing them, ms; default 60000. */
  shutdownTimeoutMs: number;
  // Replicas (config/replicas.ts; PgDog's names and defaults)
  readWriteSplit: ReadWriteSplit; // default "include_primary"
  loadBalancingStrategy: LoadBalancingStrategy; // default "random"
  readWriteStrategy: ReadWriteStrategy; // default "conservative"
  /** How long a replica that failed a connect or a check is left out, ms; default 300000. */
  banTimeoutMs: number;
  /** A pool's server is checked before checkout at most this often, ms; default 30000. */
  healthcheckIntervalMs: number;
  /** Idle pools are checked in the background this often, ms; default 30000 (0 = off). */
  idleHealthcheckIntervalMs: number;
  /** Delay before the first background check, ms; default 5000. */
  idleHealthcheckDelayMs: number;
  /** Longest wait for a check's answer, ms; default 5000. */
  healthcheckTimeoutMs: number;
  /** The replay-LSN monitor asks every server of a shard for its LSN this often, ms; default 5000. */
  lsnCheckIntervalMs: number;
  /** Longest wait for the LSN query's answer, ms; default 5000. */
  lsnCheckTimeoutMs: number;
  /** Delay before the monitor's first check, ms; null (default, as PgDog) = the monitor is off. */
  lsnCheckDelayMs: number | null;
  /** A replica whose replay lags the primary by this many ms or more is banned until it catches up; null = off. */
  banReplicaLagMs: number | null;
  /** The same in bytes of WAL; null = off. */
  banReplicaLagBytes: number | null;
  /** PgDog: the layout of `pgdog.unique_id()` ids, "standard" (64-bit, default) or "compact" (53-bit). */
  uniqueIdFunction: UniqueIdFunction;
  /** PgDog: added to every `pgdog.unique_id()` id (ids start above existing keys); default 0. */
  uniqueIdMin: bigint;
  /** This proxy's node in `pgdog.unique_id()` ids: the number at the end of the NODE_ID environment variable; 0 unset. */
  nodeId: number;
  /** NODE_ID as set in the environment; null when it is not set. */
  nodeIdSource: string | null;
}

export interface DatabaseConfig {
  name: string; // the name clients connect to
  /** Host name or IP address; an absolute path: the directory of the server's Unix-domain socket (server-host.ts). */
  host: string;
  port: number; // default 5432
  databaseName: string; // real database on the server; default = name
  user: string | null; // server user; default = the connecting client's user
  password: string | null; // server password; default = the client's users.toml password
  shard: number; // default 0
  role: DatabaseRole; // default "primary"
  /** Weight among the shard's servers for load_balancing_strategy = "weighted_round_robin", 0–255; default 255. */
  lbWeight: number;
}

export interface AdminConfig {
  name: string; // default "admin"
  user: string; // default "admin"
  password: string; // default: random at startup (logged as a warning that admin is unreachable)
}

export interface UserConfig {
  name: string;
  database: string;
  password: string | null;
  poolSize: number | null; // null = general.defaultPoolSize
  poolerMode: PoolerMode | null; // null = general.poolerMode
  serverUser: string | null; // PgDog: server_user
  serverPassword: string | null; // PgDog: server_password
}

/** PgDog's data_type; "varchar" and "text" are the same key type. */
export type ShardedDataType = 'bigint' | 'integer' | 'text' | 'varchar' | 'uuid';
export type ShardedMappingKind = 'list' | 'range' | 'default';

/** A list value or range bound: bigint for bigint/integer keys; string for text, uuid (lower-case 8-4-4-4-12). */
export type ShardKeyLiteral = bigint | string;

/** One list/range/default rule, from `[[sharded_mappings]]` or `[[sharded_tables.mapping]]`. */
export interface ShardedMappingConfig {
  kind: ShardedMappingKind;
  values: ShardKeyLiteral[]; // list only
  start: ShardKeyLiteral | null; // range only, inclusive; null = unbounded
  end: ShardKeyLiteral | null; // range only, exclusive; null = unbounded
  shard: number;
  /** Where it was written, e.g. `sharded_mappings[2]` or `sharded_tables[0].mapping[1]`. */
  source: string;
}

/** One `[[sharded_tables]]` entry. Names are kept as written (see docs/configuration.md). */
export interface ShardedTableConfig {
  database: string;
  name: string | null; // table; null = every table that has `column`
  schema: string | null; // null = any schema
  column: string;
  dataType: ShardedDataType; // default "bigint"
  isPrimary: boolean; // PgDog: primary (accepted, not used for routing yet)
  /** List/range rules for this column; empty = hash sharding (PostgreSQL PARTITION BY HASH). */
  mappings: ShardedMappingConfig[];
}

/** One `[[omnisharded_tables]]` entry: tables with the same rows on every shard. */
export interface OmnishardedTablesConfig {
  database: string;
  tables: string[];
}

export interface Config {
  general: GeneralConfig;
  databases: DatabaseConfig[];
  admin: AdminConfig;
  users: UserConfig[];
  shardedTables: ShardedTableConfig[]; // [[sharded_tables]], with their mappings
  omnishardedTables: OmnishardedTablesConfig[]; // [[omnisharded_tables]]
  /** Absolute paths of the files the config came from (for messages and reload). */
  configPath: string | null;
  usersPath: string | null;
}
