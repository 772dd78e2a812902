// The effective configuration (every default filled in) with PgDog key names: as TOML text for `check-config`, and as
// rows for the admin console's SHOW CONFIG. Passwords are always "[redacted]".

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

/** One effective setting, as `check-config` prints it and the admin console's SHOW CONFIG lists it. */
export interface ConfigSetting {
  /** `general`, `admin`, `databases[0]`, `users[1]`, `sharded_tables[0]`, `omnisharded_tables[0]`. */
  section: string;
  key: string;
  /** The value as TOML (strings quoted), passwords "[redacted]"; null = not set. */
  value: string | null;
  /** What applies instead when not set. */
  fallback?: string;
}

type Line = string;

/** The effective config as text; `# key = (not set)` lines show optional settings left empty. */
export function formatEffectiveConfig(config: Config): string {
  const blocks: Line[][] = [headerLines(config)];
  let section = '';
  for (const s of coreSettings(config)) {
    if (s.section !== section) {
      section = s.section;
      const table = section.replace(/\[\d+\]$/, '');
      blocks.push([table === section ? `[${section}]` : `[[${table}]]`]);
    }
    blocks[blocks.length - 1].push(settingLine(s));
  }
  const text = blocks.map((lines) => lines.join('\n')).join('\n\n');
  const sharding = shardingText(config);
  return `${text}\n${sharding === '' ? '' : `\n${sharding}`}`;
}

/** Every effective setting, defaults filled in and passwords redacted, in file order (SHOW CONFIG). */
export function configSettings(config: Config): ConfigSetting[] {
  return [...coreSettings(config), ...shardingSettings(config)];
}

function coreSettings(config: Config): ConfigSetting[] {
  return [
    ...generalSettings(config.general),
    ...adminSettings(config.admin),
    ...config.databases.flatMap((d, i) => databaseSettings(`databases[${i}]`, d)),
    ...config.users.flatMap((u, i) => userSettings(`users[${i}]`, u)),
  ];
}

function settingLine(s: ConfigSetting): Line {
  if (s.value !== null) return `${s.key} = ${s.value}`;
  return s.fallback === undefined ? `# ${s.key} = (not set)` : `# ${s.key} = (not set: ${s.fallback})`;
}

function headerLines(config: Config): Line[] {
  return [
    '# shardgate effective configuration (defaults filled in, passwords redacted)',
    `# pgdog.toml: ${config.configPath ?? '(not from a file)'}`,
    `# users.toml: ${config.usersPath ?? '(not from a file)'}`,
    config.general.nodeIdSource === null
      ? `# NODE_ID: not set (pgdog.unique_id() node id ${config.general.nodeId})`
      : `# NODE_ID: ${JSON.stringify(config.general.nodeIdSource)} (pgdog.unique_id() node id ${config.general.nodeId})`,
  ];
}

function generalSettings(general: GeneralConfig): ConfigSetting[] {
  const setting = settingIn('general');
  return [
    setting('host', general.host),
    setting('port', general.port),
    setting('default_pool_size', general.defaultPoolSize),
    setting('min_pool_size', general.minPoolSize),
    setting('pooler_mode', general.poolerMode),
    setting('connect_timeout', general.connectTimeoutMs),
    setting('checkout_timeout', general.checkoutTimeoutMs),
    setting('query_timeout', general.queryTimeoutMs),
    setting('deadlock_timeout', general.deadlockTimeoutMs),
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
    setting('two_phase_commit_schema', general.twoPhaseCommitSchema),
    setting('two_phase_commit_recovery_interval', general.twoPhaseCommitRecoveryIntervalMs),
    setting('two_phase_commit_orphan_timeout', general.twoPhaseCommitOrphanTimeoutMs),
    setting('two_phase_commit_prepare_timeout', general.twoPhaseCommitPrepareTimeoutMs),
    setting('atomic_visibility', general.atomicVisibility),
    setting('atomic_visibility_timeout', general.atomicVisibilityTimeoutMs),
    setting('two_phase_commit_reply', general.twoPhaseCommitReply),
    setting('max_message_size', general.maxMessageSizeBytes),
    setting('insert_select_batch_rows', general.insertSelectBatchRows),
    setting('prepared_statements_limit', general.preparedStatementsLimit, 'no limit'),
    setting('prepared_statements_cache_size', general.preparedStatementsCacheSizeBytes),
    setting('query_cache_limit', general.queryCacheLimit),
    setting('query_cache_size', general.queryCacheSizeBytes),
    setting('query_size_limit', general.querySizeLimitBytes, 'no limit'),
    setting('query_size_limit_action', general.querySizeLimitAction),
    setting('openmetrics_port', general.openmetricsPort, 'OpenMetrics endpoint off'),
    setting('healthcheck_port', general.healthcheckPort, 'health endpoint off'),
    setting('openmetrics_namespace', general.openmetricsNamespace),
    setting('shutdown_timeout', general.shutdownTimeoutMs),
    setting('read_write_split', general.readWriteSplit),
    setting('load_balancing_strategy', general.loadBalancingStrategy),
    setting('read_write_strategy', general.readWriteStrategy),
    setting('ban_timeout', general.banTimeoutMs),
    setting('healthcheck_interval', general.healthcheckIntervalMs),
    setting('idle_healthcheck_interval', general.idleHealthcheckIntervalMs),
    setting('idle_healthcheck_delay', general.idleHealthcheckDelayMs),
    setting('healthcheck_timeout', general.healthcheckTimeoutMs),
    setting('lsn_check_interval', general.lsnCheckIntervalMs),
    setting('lsn_check_timeout', general.lsnCheckTimeoutMs),
    setting('lsn_check_delay', general.lsnCheckDelayMs, 'LSN monitor off'),
    setting('ban_replica_lag', general.banReplicaLagMs, 'no limit'),
    setting('ban_replica_lag_bytes', general.banReplicaLagBytes, 'no limit'),
    setting('unique_id_function', general.uniqueIdFunction),
    setting('unique_id_min', general.uniqueIdMin),
  ];
}

function adminSettings(admin: AdminConfig): ConfigSetting[] {
  const setting = settingIn('admin');
  return [
    setting('name', admin.name),
    setting('user', admin.user),
    secret(setting, 'password', admin.password),
  ];
}

function databaseSettings(section: string, database: DatabaseConfig): ConfigSetting[] {
  const setting = settingIn(section);
  return [
    setting('name', database.name),
    setting('host', database.host),
    setting('port', database.port),
    setting('database_name', database.databaseName),
    setting('user', database.user, "the client's user"),
    secret(setting, 'password', database.password, "the client's users.toml password"),
    setting('shard', database.shard),
    setting('role', database.role),
    setting('lb_weight', database.lbWeight),
  ];
}

function userSettings(section: string, user: UserConfig): ConfigSetting[] {
  const setting = settingIn(section);
  return [
    setting('name', user.name),
    setting('database', user.database),
    secret(setting, 'password', user.password),
    setting('pool_size', user.poolSize, 'general.default_pool_size'),
    setting('pooler_mode', user.poolerMode, 'general.pooler_mode'),
    setting('server_user', user.serverUser, 'name'),
    secret(setting, 'server_password', user.serverPassword, 'password'),
  ];
}

type SettingFn = (
  key: string,
  value: string | number | bigint | boolean | null,
  fallback?: string,
) => ConfigSetting;

/** `key = value` of one section, or `(not set)` with what applies instead. */
function settingIn(section: string): SettingFn {
  return (key, value, fallback) => ({
    section,
    key,
    value: value === null ? null : tomlScalar(value),
    ...(fallback === undefined ? {} : { fallback }),
  });
}

function secret(setting: SettingFn, key: string, value: string | null, fallback?: string): ConfigSetting {
  return setting(key, value === null ? null : REDACTED, fallback);
}

/** The sharding sections as rows: scalar keys as TOML values, mapping rules summed up. */
function shardingSettings(config: Config): ConfigSetting[] {
  const rows: ConfigSetting[] = [];
  config.shardedTables.forEach((table, i) => {
    const section = `sharded_tables[${i}]`;
    for (const [key, value] of Object.entries(shardedTableToml(table))) {
      const text = Array.isArray(value) && key === 'mapping' ? `${value.length} rule(s)` : tomlValue(value);
      rows.push({ section, key, value: text });
    }
  });
  config.omnishardedTables.forEach((entry, i) => {
    const section = `omnisharded_tables[${i}]`;
    rows.push({ section, key: 'database', value: tomlScalar(entry.database) });
    rows.push({ section, key: 'tables', value: tomlValue(entry.tables) });
  });
  return rows;
}

function tomlValue(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(tomlValue).join(', ')}]`;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return tomlScalar(value);
  return String(value);
}

function tomlScalar(value: string | number | bigint | boolean): string {
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
