// Prints the effective configuration (every default filled in) as TOML-like text with PgDog key
// names, for `--print-config`-style output and startup logs. Passwords are always "[redacted]".

import { stringify } from 'smol-toml';
import type {
  AdminConfig,
  Config,
  DatabaseConfig,
  GeneralConfig,
  ShardedMappingConfig,
  ShardedTableConfig,
  UserConfig,
} from './types.js';

export const REDACTED = '[redacted]';

type Line = string;

/** The effective config as text; `# key = (not set)` lines show optional settings left empty. */
export function formatEffectiveConfig(config: Config): string {
  const blocks: Line[][] = [
    headerLines(config),
    generalLines(config.general),
    adminLines(config.admin),
    ...config.databases.map(databaseLines),
    ...config.users.map(userLines),
  ];
  const text = blocks.map((lines) => lines.join('\n')).join('\n\n');
  const sharding = shardingText(config);
  return `${text}\n${sharding === '' ? '' : `\n${sharding}`}`;
}

function headerLines(config: Config): Line[] {
  return [
    '# shardgate effective configuration (defaults filled in, passwords redacted)',
    `# pgdog.toml: ${config.configPath ?? '(not from a file)'}`,
    `# users.toml: ${config.usersPath ?? '(not from a file)'}`,
  ];
}

function generalLines(general: GeneralConfig): Line[] {
  return [
    '[general]',
    setting('host', general.host),
    setting('port', general.port),
    setting('default_pool_size', general.defaultPoolSize),
    setting('min_pool_size', general.minPoolSize),
    setting('pooler_mode', general.poolerMode),
    setting('connect_timeout', general.connectTimeoutMs),
    setting('checkout_timeout', general.checkoutTimeoutMs),
    setting('query_timeout', general.queryTimeoutMs),
    setting('idle_timeout', general.idleTimeoutMs),
    setting('client_idle_timeout', general.clientIdleTimeoutMs),
    setting('client_login_timeout', general.clientLoginTimeoutMs),
    setting('auth_type', general.authType),
    setting('tls_certificate', general.tlsCertificate),
    setting('tls_private_key', general.tlsPrivateKey),
    setting('log_level', general.logLevel),
    setting('log_format', general.logFormat),
    setting('two_phase_commit', general.twoPhaseCommit),
    setting('two_phase_commit_auto', general.twoPhaseCommitAuto),
    setting('instance_id', general.instanceId),
    setting('two_phase_commit_wal_dir', general.twoPhaseCommitWalDir),
    setting('two_phase_commit_wal_segment_size', general.twoPhaseCommitWalSegmentSizeBytes),
    setting('two_phase_commit_wal_fsync_interval', general.twoPhaseCommitWalFsyncIntervalMs),
    setting('two_phase_commit_recovery_interval', general.twoPhaseCommitRecoveryIntervalMs),
    setting('two_phase_commit_orphan_timeout', general.twoPhaseCommitOrphanTimeoutMs),
    setting('max_message_size', general.maxMessageSizeBytes),
  ];
}

function adminLines(admin: AdminConfig): Line[] {
  return [
    '[admin]',
    setting('name', admin.name),
    setting('user', admin.user),
    secret('password', admin.password),
  ];
}

function databaseLines(database: DatabaseConfig): Line[] {
  return [
    '[[databases]]',
    setting('name', database.name),
    setting('host', database.host),
    setting('port', database.port),
    setting('database_name', database.databaseName),
    setting('user', database.user, "the client's user"),
    secret('password', database.password, "the client's users.toml password"),
    setting('shard', database.shard),
    setting('role', database.role),
  ];
}

function userLines(user: UserConfig): Line[] {
  return [
    '[[users]]',
    setting('name', user.name),
    setting('database', user.database),
    secret('password', user.password),
    setting('pool_size', user.poolSize, 'general.default_pool_size'),
    setting('pooler_mode', user.poolerMode, 'general.pooler_mode'),
    setting('server_user', user.serverUser, 'name'),
    secret('server_password', user.serverPassword, 'password'),
  ];
}

/** `key = value`, or `# key = (not set)` with what applies instead. */
function setting(key: string, value: string | number | boolean | null, fallback?: string): Line {
  if (value === null)
    return fallback === undefined ? `# ${key} = (not set)` : `# ${key} = (not set: ${fallback})`;
  return `${key} = ${tomlScalar(value)}`;
}

function secret(key: string, value: string | null, fallback?: string): Line {
  return setting(key, value === null ? null : REDACTED, fallback);
}

function tomlScalar(value: string | number | boolean): string {
  if (typeof value !== 'string') return String(value);
  // JSON string escapes are valid TOML basic-string escapes; TOML also forbids a raw DEL.
  return JSON.stringify(value).replace(/\x7f/g, '\\u007f');
}

/** The sharding sections as real TOML: defaults filled in, mapping rules nested under their table. */
function shardingText(config: Config): string {
  const sections: Record<string, Record<string, unknown>[]> = {};
  if (config.shardedTables.length > 0) sections.sharded_tables = config.shardedTables.map(shardedTableToml);
  if (config.omnishardedTables.length > 0) {
    sections.omnisharded_tables = config.omnishardedTables.map(({ database, tables }) => ({
      database,
      tables,
    }));
  }
  return Object.keys(sections).length === 0 ? '' : stringify(sections);
}

function shardedTableToml(table: ShardedTableConfig): Record<string, unknown> {
  const entry: Record<string, unknown> = { database: table.database };
  if (table.name !== null) entry.name = table.name;
  if (table.schema !== null) entry.schema = table.schema;
  entry.column = table.column;
  entry.data_type = table.dataType;
  entry.primary = table.isPrimary;
  if (table.mappings.length > 0) entry.mapping = table.mappings.map(mappingToml);
  return entry;
}

function mappingToml(rule: ShardedMappingConfig): Record<string, unknown> {
  const entry: Record<string, unknown> = { kind: rule.kind };
  if (rule.kind === 'list') entry.values = rule.values;
  if (rule.start !== null) entry.start = rule.start;
  if (rule.end !== null) entry.end = rule.end;
  entry.shard = rule.shard;
  return entry;
}
