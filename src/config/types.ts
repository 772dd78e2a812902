// The validated, effective configuration: what the rest of shardgate reads. Built by config/load.ts
// from pgdog.toml + users.toml (PgDog-compatible names); every field here already has its default.

export type PoolerMode = 'transaction' | 'session';
export type AuthType = 'scram' | 'md5' | 'trust';
export type LogFormat = 'json' | 'text';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export type DatabaseRole = 'primary' | 'replica' | 'auto';

export interface GeneralConfig {
  host: string; // default "0.0.0.0"
  port: number; // default 6432
  defaultPoolSize: number; // default 10
  minPoolSize: number; // default 1
  poolerMode: PoolerMode; // default "transaction"
  connectTimeoutMs: number; // default 5000 (always ≥ 1)
  checkoutTimeoutMs: number; // default 5000 (always ≥ 1)
  queryTimeoutMs: number; // 0 = off (default)
  idleTimeoutMs: number; // server connection idle timeout, default 60000; 0 = never close idle ones
  clientIdleTimeoutMs: number; // 0 = off (default)
  clientLoginTimeoutMs: number; // time allowed from connect to logged in, default 60000; 0 = off
  authType: AuthType; // default "scram"
  tlsCertificate: string | null; // path, resolved relative to the config file
  tlsPrivateKey: string | null;
  logLevel: LogLevel; // default "info"
  logFormat: LogFormat; // default "json"
  twoPhaseCommit: boolean; // default false
  twoPhaseCommitAuto: boolean; // default false
  /** Largest client message accepted, bytes (protects against oversized/malformed lengths). */
  maxMessageSizeBytes: number; // default 64 MiB
}

export interface DatabaseConfig {
  name: string; // the name clients connect to
  host: string;
  port: number; // default 5432
  databaseName: string; // real database on the server; default = name
  user: string | null; // server user; default = the connecting client's user
  password: string | null; // server password; default = the client's users.toml password
  shard: number; // default 0
  role: DatabaseRole; // default "primary"
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

export interface Config {
  general: GeneralConfig;
  databases: DatabaseConfig[];
  admin: AdminConfig;
  users: UserConfig[];
  /**
   * PgDog sharding tables, kept as written (not validated yet; later issues give them types).
   * Integers are numbers when they fit in a JS safe integer, bigint otherwise; nested
   * `[[sharded_tables.mapping]]` entries stay inside their table as `mapping`.
   */
  shardedTables: Record<string, unknown>[]; // [[sharded_tables]]
  shardedMappings: Record<string, unknown>[]; // [[sharded_mappings]]
  omnishardedTables: Record<string, unknown>[]; // [[omnisharded_tables]]
  /** Absolute paths of the files the config came from (for messages and reload). */
  configPath: string | null;
  usersPath: string | null;
}
