// Turns pgdog.toml + users.toml (PgDog key names) into the validated, effective Config: parseConfig
// is pure (text in, Config + warnings out); loadConfig reads the files and checks the TLS files.

import process from 'node:process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { ConfigError, type ConfigWarning } from './config-error.js';
import {
  ADMIN_NAME_DEFAULT,
  ADMIN_USER_DEFAULT,
  AUTH_TYPES,
  PASSTHROUGH_AUTH_MODES,
  GENERAL_DEFAULTS,
  LOG_FORMATS,
  QUERY_SIZE_LIMIT_ACTIONS,
  TWO_PHASE_COMMIT_REPLIES,
  LOG_LEVELS,
  MAX_MESSAGE_SIZE_BYTES,
  MIB,
  MAX_TIMEOUT_MS,
  MIN_MESSAGE_SIZE_BYTES,
  POOLER_MODES,
  SUPPORTED_ADMIN_KEYS,
  SUPPORTED_GENERAL_KEYS,
  SUPPORTED_PGDOG_SECTIONS,
  SUPPORTED_USER_KEYS,
  SUPPORTED_USERS_SECTIONS,
  UNSUPPORTED_GENERAL_KEYS,
  UNSUPPORTED_PGDOG_SECTIONS,
  UNSUPPORTED_USER_KEYS,
} from './defaults.js';
import { readReplicaSettings } from './replicas.js';
import { readDatabases } from './databases.js';
import { defaultInstanceId, formerDefaultInstanceId, INSTANCE_ID_PATTERN } from './instance-id.js';
import { readSharding } from './sharding.js';
import { SectionReader, type TomlTable } from './toml-values.js';
import { readUniqueId } from './unique-id.js';
import type { AdminConfig, Config, DatabaseConfig, GeneralConfig, UserConfig } from './types.js';

export interface ConfigPaths {
  configPath: string;
  usersPath: string;
}

export interface LoadedConfig {
  config: Config;
  warnings: ConfigWarning[];
}

/** The listener may use 0: the OS picks a free port (tests, embedding); the log line says which. */
const LISTEN_PORT_RULE = {
  min: 0,
  max: 65_535,
  expected: 'an integer port between 0 and 65535 (0 = any free port)',
};
const POOL_SIZE_MAX = 100_000;
const POOL_SIZE_RULE = { min: 1, max: POOL_SIZE_MAX, expected: `an integer between 1 and ${POOL_SIZE_MAX}` };
const MIN_POOL_SIZE_RULE = {
  min: 0,
  max: POOL_SIZE_MAX,
  expected: `an integer between 0 and ${POOL_SIZE_MAX}`,
};
const TIMEOUT_MS_RULE = {
  min: 0,
  max: MAX_TIMEOUT_MS,
  expected: `integer milliseconds between 0 and ${MAX_TIMEOUT_MS} (0 = disabled)`,
};
const POSITIVE_TIMEOUT_MS_RULE = {
  min: 1,
  max: MAX_TIMEOUT_MS,
  expected: `integer milliseconds between 1 and ${MAX_TIMEOUT_MS}`,
};
const SEGMENT_SIZE_RULE = {
  min: 64 * 1024,
  max: 1024 * MIB,
  expected: `integer bytes between ${64 * 1024} and ${1024 * MIB}`,
};
/** Cache sizes in bytes (statement cache, plan cache). */
const CACHE_SIZE_RULE = {
  min: 64 * 1024,
  max: 64 * 1024 * MIB,
  expected: `integer bytes between ${64 * 1024} and ${64 * 1024 * MIB}`,
};
const QUERY_CACHE_LIMIT_RULE = {
  min: 0,
  max: 100_000_000,
  expected: 'an integer number of plans between 0 (no cache) and 100000000',
};
/** query_size_limit: from the smallest Query message (6 bytes) to PostgreSQL's 1 GiB. */
const QUERY_SIZE_LIMIT_RULE = {
  min: 6,
  max: MAX_MESSAGE_SIZE_BYTES,
  expected: `integer bytes between 6 and ${MAX_MESSAGE_SIZE_BYTES}`,
};
/** insert_select_batch_rows: rows of an INSERT … SELECT the proxy moves at a time. */
const BATCH_ROWS_RULE = {
  min: 1,
  max: 1_000_000,
  expected: 'an integer number of rows between 1 and 1000000',
};
const MESSAGE_SIZE_RULE = {
  min: MIN_MESSAGE_SIZE_BYTES,
  max: MAX_MESSAGE_SIZE_BYTES,
  expected: `integer bytes between ${MIN_MESSAGE_SIZE_BYTES} and ${MAX_MESSAGE_SIZE_BYTES}`,
};

/**
 * Builds the effective Config from the two files' text and the environment (NODE_ID). Pure apart from the host name
 * and the clock: TLS files are not looked at here.
 */
export function parseConfig(
  pgdogToml: string,
  usersToml: string,
  paths: ConfigPaths,
  env: NodeJS.ProcessEnv = process.env,
): LoadedConfig {
  const warnings: ConfigWarning[] = [];
  const pgdogRoot = new SectionReader(paths.configPath, '', parseToml(pgdogToml, paths.configPath));
  const usersRoot = new SectionReader(paths.usersPath, '', parseToml(usersToml, paths.usersPath));

  const general = readGeneral(pgdogRoot, warnings, env);
  const databases = readDatabases(pgdogRoot, warnings);
  if (general.lsnCheckDelayMs === null && databases.some((d) => d.role === 'auto')) {
    // PgDog's warning: role detection runs with the LSN checks.
    warnings.push({
      file: paths.configPath,
      key: 'general.lsn_check_delay',
      message:
        'not set, so the replay-LSN monitor is off: role = "auto" entries keep their starting roles (the first one of a shard is its primary) and no failover is followed',
    });
  }
  const admin = readAdmin(pgdogRoot, usersRoot, warnings);
  const { shardedTables, omnishardedTables } = readSharding(pgdogRoot, databases, warnings);
  warnings.push(...pgdogRoot.warnAboutUnusedKeys(UNSUPPORTED_PGDOG_SECTIONS, SUPPORTED_PGDOG_SECTIONS));
  checkAdminName(pgdogRoot, admin, databases);

  const users = readUsers(usersRoot, general, databases, warnings);
  warnings.push(...usersRoot.warnAboutUnusedKeys(new Set(), SUPPORTED_USERS_SECTIONS));

  const config: Config = {
    general,
    databases,
    admin,
    users,
    shardedTables,
    omnishardedTables,
    configPath: paths.configPath,
    usersPath: paths.usersPath,
  };
  return { config, warnings };
}

/**
 * Reads both files (paths made absolute), parses them, then resolves the TLS files relative to
 * pgdog.toml's folder and checks they can be read.
 */
export function loadConfig(paths: ConfigPaths, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const absolute = { configPath: resolve(paths.configPath), usersPath: resolve(paths.usersPath) };
  const pgdogToml = readConfigFile(absolute.configPath);
  const usersToml = readConfigFile(absolute.usersPath);
  const loaded = parseConfig(pgdogToml, usersToml, absolute, env);
  const general = loaded.config.general;
  const configDir = dirname(absolute.configPath);
  general.tlsCertificate = checkTlsFile(
    absolute.configPath,
    'tls_certificate',
    general.tlsCertificate,
    configDir,
  );
  general.tlsPrivateKey = checkTlsFile(
    absolute.configPath,
    'tls_private_key',
    general.tlsPrivateKey,
    configDir,
  );
  return loaded;
}

// ---- TOML and files ----

function parseToml(text: string, file: string): TomlTable {
  const withoutBom = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    // Integers as bigint so that `5.0` (a float) can be told apart from `5`, as PgDog does.
    return parse(withoutBom, { integersAsBigInt: true, unsafeKeyBehaviour: 'throw' });
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    // Only the first line: the rest is a code excerpt that could contain a password.
    const reason = error.message.split('\n')[0].replace(/^Invalid TOML document:\s*/, '');
    const at = { line: error.line, column: error.column };
    throw new ConfigError(
      file,
      null,
      `line ${at.line}, column ${at.column}: invalid TOML: ${reason}`,
      null,
      at,
    );
  }
}

function readConfigFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      path,
      null,
      `cannot read the file (${describeFsError(error)})`,
      'a readable TOML file',
    );
  }
}

function checkTlsFile(
  configPath: string,
  key: string,
  path: string | null,
  configDir: string,
): string | null {
  if (path === null) return null;
  const absolute = resolve(configDir, path);
  const expected = 'a readable PEM file (relative paths start at the folder of pgdog.toml)';
  try {
    if (!statSync(absolute).isFile())
      throw new ConfigError(configPath, `general.${key}`, `${absolute} is not a file`, expected);
    accessSync(absolute, fsConstants.R_OK);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(
      configPath,
      `general.${key}`,
      `cannot read ${absolute} (${describeFsError(error)})`,
      expected,
    );
  }
  return absolute;
}

function describeFsError(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return error instanceof Error ? error.message : String(error);
}

// ---- [general] ----

function readGeneral(root: SectionReader, warnings: ConfigWarning[], env: NodeJS.ProcessEnv): GeneralConfig {
  const r = new SectionReader(root.file, 'general', root.table('general') ?? {});
  const d = GENERAL_DEFAULTS;
  const general: GeneralConfig = {
    host: r.has('host') ? r.requiredString('host', 'an IP address to listen on, e.g. "0.0.0.0"') : d.host,
    port: r.integer('port', LISTEN_PORT_RULE) ?? d.port,
    defaultPoolSize: readDefaultPoolSize(r),
    minPoolSize: r.integer('min_pool_size', MIN_POOL_SIZE_RULE) ?? d.minPoolSize,
    poolerMode: r.oneOf('pooler_mode', POOLER_MODES) ?? d.poolerMode,
    connectTimeoutMs: r.integer('connect_timeout', POSITIVE_TIMEOUT_MS_RULE) ?? d.connectTimeoutMs,
    checkoutTimeoutMs: r.integer('checkout_timeout', POSITIVE_TIMEOUT_MS_RULE) ?? d.checkoutTimeoutMs,
    queryTimeoutMs: r.integer('query_timeout', TIMEOUT_MS_RULE) ?? d.queryTimeoutMs,
    deadlockTimeoutMs: r.integer('deadlock_timeout', TIMEOUT_MS_RULE) ?? d.deadlockTimeoutMs,
    idleTimeoutMs: r.integer('idle_timeout', TIMEOUT_MS_RULE) ?? d.idleTimeoutMs,
    clientIdleTimeoutMs: r.integer('client_idle_timeout', TIMEOUT_MS_RULE) ?? d.clientIdleTimeoutMs,
    clientLoginTimeoutMs: r.integer('client_login_timeout', TIMEOUT_MS_RULE) ?? d.clientLoginTimeoutMs,
    authType: r.oneOf('auth_type', AUTH_TYPES) ?? d.authType,
    passthroughAuth: r.oneOf('passthrough_auth', PASSTHROUGH_AUTH_MODES) ?? d.passthroughAuth,
    tlsCertificate: r.optionalString('tls_certificate', 'a path to a PEM certificate file'),
    tlsPrivateKey: r.optionalString('tls_private_key', 'a path to a PEM private key file'),
    logLevel: r.oneOf('log_level', LOG_LEVELS) ?? d.logLevel,
    logFormat: r.oneOf('log_format', LOG_FORMATS) ?? d.logFormat,
    twoPhaseCommit: r.boolean('two_phase_commit') ?? d.twoPhaseCommit,
    twoPhaseCommitAuto: r.boolean('two_phase_commit_auto') ?? d.twoPhaseCommitAuto,
    instanceId: '',
    formerInstanceId: null,
    isFormerInstanceIdAmbiguous: false,
    twoPhaseCommitWalDir: resolve(
      dirname(r.file),
      r.optionalString(
        'two_phase_commit_wal_dir',
        'a folder path (relative paths start at the folder of pgdog.toml)',
      ) ?? d.twoPhaseCommitWalDir,
    ),
    twoPhaseCommitWalSegmentSizeBytes:
      r.integer('two_phase_commit_wal_segment_size', SEGMENT_SIZE_RULE) ??
      d.twoPhaseCommitWalSegmentSizeBytes,
    twoPhaseCommitWalFsyncIntervalMs:
      r.integer('two_phase_commit_wal_fsync_interval', TIMEOUT_MS_RULE) ?? d.twoPhaseCommitWalFsyncIntervalMs,
    twoPhaseCommitSchema: readTwoPhaseCommitSchema(r),
    twoPhaseCommitRecoveryIntervalMs:
      r.integer('two_phase_commit_recovery_interval', POSITIVE_TIMEOUT_MS_RULE) ??
      d.twoPhaseCommitRecoveryIntervalMs,
    twoPhaseCommitOrphanTimeoutMs:
      r.integer('two_phase_commit_orphan_timeout', POSITIVE_TIMEOUT_MS_RULE) ??
      d.twoPhaseCommitOrphanTimeoutMs,
    twoPhaseCommitPrepareTimeoutMs:
      r.integer('two_phase_commit_prepare_timeout', TIMEOUT_MS_RULE) ?? d.twoPhaseCommitPrepareTimeoutMs,
    atomicVisibility: r.boolean('atomic_visibility') ?? r.boolean('two_phase_commit') ?? d.atomicVisibility,
    atomicVisibilityTimeoutMs:
      r.integer('atomic_visibility_timeout', POSITIVE_TIMEOUT_MS_RULE) ?? d.atomicVisibilityTimeoutMs,
    twoPhaseCommitReply: r.oneOf('two_phase_commit_reply', TWO_PHASE_COMMIT_REPLIES) ?? d.twoPhaseCommitReply,
    maxMessageSizeBytes: r.integer('max_message_size', MESSAGE_SIZE_RULE) ?? d.maxMessageSizeBytes,
    insertSelectBatchRows: r.integer('insert_select_batch_rows', BATCH_ROWS_RULE) ?? d.insertSelectBatchRows,
    preparedStatementsLimit: readCountLimit(r, 'prepared_statements_limit') ?? d.preparedStatementsLimit,
    preparedStatementsCacheSizeBytes:
      r.integer('prepared_statements_cache_size', CACHE_SIZE_RULE) ?? d.preparedStatementsCacheSizeBytes,
    queryCacheLimit: r.integer('query_cache_limit', QUERY_CACHE_LIMIT_RULE) ?? d.queryCacheLimit,
    queryCacheSizeBytes: r.integer('query_cache_size', CACHE_SIZE_RULE) ?? d.queryCacheSizeBytes,
    querySizeLimitBytes: r.integer('query_size_limit', QUERY_SIZE_LIMIT_RULE) ?? d.querySizeLimitBytes,
    querySizeLimitAction:
      r.oneOf('query_size_limit_action', QUERY_SIZE_LIMIT_ACTIONS) ?? d.querySizeLimitAction,
    openmetricsPort: r.integer('openmetrics_port', LISTEN_PORT_RULE) ?? d.openmetricsPort,
    healthcheckPort: r.integer('healthcheck_port', LISTEN_PORT_RULE) ?? d.healthcheckPort,
    openmetricsNamespace: readMetricsNamespace(r),
    shutdownTimeoutMs: r.integer('shutdown_timeout', TIMEOUT_MS_RULE) ?? d.shutdownTimeoutMs,
    ...readReplicaSettings(r, warnings),
    ...readUniqueId(r, env),
  };
  readInstanceId(r, general);
  if (general.twoPhaseCommitAuto && !general.twoPhaseCommit) {
    warnings.push({
      file: r.file,
      key: 'general.two_phase_commit_auto',
      message: 'has no effect while two_phase_commit is false (automatic 2PC needs two-phase commit enabled)',
    });
  }
  checkReplyMode(r, general);
  checkPoolSizes(r, general);
  checkTlsPair(r, general);
  checkPassthroughTls(r, general);
  warnings.push(...r.warnAboutUnusedKeys(UNSUPPORTED_GENERAL_KEYS, SUPPORTED_GENERAL_KEYS));
  return general;
}

/**
 * two_phase_commit_reply = "at_decision" answers COMMIT before phase 2 is over: only safe for this proxy's readers when
 * every read of a shard with an unfinished phase 2 waits for it, which is the fence of atomic_visibility.
 */
function checkReplyMode(r: SectionReader, general: GeneralConfig): void {
  if (general.twoPhaseCommitReply !== 'at_decision' || general.atomicVisibility) return;
  throw r.error(
    'two_phase_commit_reply',
    '"at_decision" needs atomic_visibility = true (reads through this proxy must wait for an unfinished phase 2)',
    'atomic_visibility = true in [general], or two_phase_commit_reply = "after_commit_prepared"',
  );
}

/**
 * A PgDog count limit whose default is i64::MAX ("no limit"): any integer ≥ 0; values past what a JavaScript number
 * holds exactly mean no limit (null), as PgDog's default does.
 */
function readCountLimit(r: SectionReader, key: string): number | null | undefined {
  const expected = 'an integer ≥ 0 (9223372036854775807, PgDog’s default, means no limit)';
  const value = r.raw(key);
  if (value === undefined) return undefined;
  if (typeof value !== 'bigint') throw r.error(key, `got ${typeof value}`, expected);
  if (value < 0n) throw r.error(key, `${value} is out of range`, expected);
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(value);
}

/**
 * `instance_id` as configured (validated, used as given), or the default made from the whole host name and the listen
 * port (config/instance-id.ts) together with the default of earlier versions, whose prepared transactions recovery
 * still settles.
 */
function readInstanceId(r: SectionReader, general: GeneralConfig): void {
  const expected = 'letters, digits and _ only, at most 40 characters';
  const value = r.optionalString('instance_id', expected);
  if (value !== null) {
    if (!INSTANCE_ID_PATTERN.test(value)) throw r.error('instance_id', `"${value}" is not allowed`, expected);
    general.instanceId = value;
    return;
  }
  const host = hostname();
  const former = formerDefaultInstanceId(host, general.port);
  general.instanceId = defaultInstanceId(host, general.port);
  general.formerInstanceId = former.id;
  general.isFormerInstanceIdAmbiguous = former.isAmbiguous;
}

/** The decision table's schema: a plain lower-case identifier (it is written into SQL unquoted). */
function readTwoPhaseCommitSchema(r: SectionReader): string {
  const expected =
    'a schema name of lower-case letters, digits and _ not starting with a digit (e.g. "shardgate")';
  const value = r.string('two_phase_commit_schema', expected);
  if (value === undefined) return GENERAL_DEFAULTS.twoPhaseCommitSchema;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value))
    throw r.error('two_phase_commit_schema', `"${value}" is not allowed`, expected);
  return value;
}

/** Metric names must stay valid Prometheus names: letters, digits and _ (PgDog also allows "." for Datadog). */
function readMetricsNamespace(r: SectionReader): string {
  const expected =
    'a metric name prefix of letters, digits and _ not starting with a digit (e.g. "pgdog_"), or ""';
  const value = r.string('openmetrics_namespace', expected);
  if (value === undefined) return GENERAL_DEFAULTS.openmetricsNamespace;
  if (!/^([A-Za-z_][A-Za-z0-9_]*)?$/.test(value))
    throw r.error('openmetrics_namespace', `"${value}" would make invalid metric names`, expected);
  return value;
}

/** PgDog accepts `max_pool_size` as another name for `default_pool_size`. */
function readDefaultPoolSize(r: SectionReader): number {
  if (r.has('default_pool_size') && r.has('max_pool_size')) {
    throw r.error(
      'max_pool_size',
      'set together with default_pool_size (it is another name for it)',
      'only one of the two',
    );
  }
  const key = r.has('max_pool_size') ? 'max_pool_size' : 'default_pool_size';
  return r.integer(key, POOL_SIZE_RULE) ?? GENERAL_DEFAULTS.defaultPoolSize;
}

function checkPoolSizes(r: SectionReader, general: GeneralConfig): void {
  if (general.minPoolSize > general.defaultPoolSize) {
    const problem = `${general.minPoolSize} is larger than default_pool_size (${general.defaultPoolSize})`;
    throw r.error('min_pool_size', problem, `at most default_pool_size (${general.defaultPoolSize})`);
  }
}

function checkTlsPair(r: SectionReader, general: GeneralConfig): void {
  const expected = 'both tls_certificate and tls_private_key, or neither';
  if (general.tlsCertificate !== null && general.tlsPrivateKey === null) {
    throw r.error('tls_private_key', 'missing while tls_certificate is set', expected);
  }
  if (general.tlsPrivateKey !== null && general.tlsCertificate === null) {
    throw r.error('tls_certificate', 'missing while tls_private_key is set', expected);
  }
}

/** passthrough_auth = "enabled" takes passwords in clear text: only over TLS, so a certificate must be configured. */
function checkPassthroughTls(r: SectionReader, general: GeneralConfig): void {
  const mode = general.passthroughAuth;
  if ((mode === 'enabled' || mode === 'enabled_allow_change') && general.tlsCertificate === null) {
    throw r.error(
      'passthrough_auth',
      `"${mode}" takes client passwords in clear text, which it accepts only over TLS, and no tls_certificate / tls_private_key is configured`,
      `tls_certificate and tls_private_key set, or passthrough_auth = "${mode.replace('enabled', 'enabled_plain')}" to accept passwords without TLS`,
    );
  }
}

// ---- [admin] ----

/** users.toml `[admin]`, when present, replaces pgdog.toml `[admin]` (as in PgDog). */
function readAdmin(
  pgdogRoot: SectionReader,
  usersRoot: SectionReader,
  warnings: ConfigWarning[],
): AdminConfig {
  const fromPgdog = readAdminSection(pgdogRoot, warnings);
  const fromUsers = readAdminSection(usersRoot, warnings);
  const chosen = fromUsers ?? fromPgdog;
  if (chosen !== undefined && chosen.password !== null) {
    return { name: chosen.name, user: chosen.user, password: chosen.password };
  }
  const file = chosen === undefined ? pgdogRoot.file : chosen.file;
  warnings.push({
    file,
    key: 'admin.password',
    message:
      'not set: the admin console needs a password set; a random one was generated, so admin logins fail until you set admin.password',
  });
  return {
    name: chosen?.name ?? ADMIN_NAME_DEFAULT,
    user: chosen?.user ?? ADMIN_USER_DEFAULT,
    password: randomBytes(24).toString('base64url'),
  };
}

interface AdminSection {
  file: string;
  name: string;
  user: string;
  password: string | null;
}

function readAdminSection(root: SectionReader, warnings: ConfigWarning[]): AdminSection | undefined {
  const table = root.table('admin');
  if (table === undefined) return undefined;
  const r = new SectionReader(root.file, 'admin', table);
  const section = {
    file: root.file,
    name: r.has('name') ? r.requiredString('name', 'the admin database name (string)') : ADMIN_NAME_DEFAULT,
    user: r.has('user') ? r.requiredString('user', 'the admin user name (string)') : ADMIN_USER_DEFAULT,
    password: r.optionalString('password'),
  };
  warnings.push(...r.warnAboutUnusedKeys(new Set(), SUPPORTED_ADMIN_KEYS));
  return section;
}

function checkAdminName(root: SectionReader, admin: AdminConfig, databases: DatabaseConfig[]): void {
  if (databases.some((database) => database.name === admin.name)) {
    const problem = `"${admin.name}" is also the name of a [[databases]] entry`;
    throw root.errorAt('admin.name', problem, 'an admin database name that no [[databases]] entry uses');
  }
}

// ---- users.toml [[users]] ----

function readUsers(
  root: SectionReader,
  general: GeneralConfig,
  databases: DatabaseConfig[],
  warnings: ConfigWarning[],
): UserConfig[] {
  const databaseNames = [...new Set(databases.map((database) => database.name))];
  const users = root.tables('users').map((table, index) => {
    const r = new SectionReader(root.file, `users[${index}]`, table);
    const user = readUser(r, databaseNames, general);
    warnings.push(...r.warnAboutUnusedKeys(UNSUPPORTED_USER_KEYS, SUPPORTED_USER_KEYS));
    return user;
  });
  checkDuplicateUsers(root, users);
  if (users.length === 0) {
    warnings.push({
      file: root.file,
      key: 'users',
      message: 'no [[users]] entries: only the admin console accepts logins',
    });
  }
  return users;
}

function readUser(r: SectionReader, databaseNames: string[], general: GeneralConfig): UserConfig {
  const user: UserConfig = {
    name: r.requiredString('name', 'the user name clients log in with (string)'),
    database: r.requiredString('database', 'the name of a [[databases]] entry (string)'),
    password: r.optionalString('password'),
    poolSize: r.integer('pool_size', POOL_SIZE_RULE) ?? null,
    poolerMode: r.oneOf('pooler_mode', POOLER_MODES) ?? null,
    serverUser: r.optionalString('server_user'),
    serverPassword: r.optionalString('server_password'),
  };
  if (!databaseNames.includes(user.database)) {
    const known = databaseNames.map((name) => JSON.stringify(name)).join(', ');
    const problem = `database ${JSON.stringify(user.database)} is not defined in pgdog.toml`;
    throw r.error('database', problem, `the name of a [[databases]] entry (one of ${known})`);
  }
  if (user.password === null && general.authType !== 'trust' && general.passthroughAuth === 'disabled') {
    const problem = `missing for user "${user.name}"`;
    const expected = `a password, since general.auth_type = "${general.authType}" checks client passwords (auth_type = "trust" allows none; passthrough_auth lets the server check them)`;
    throw r.error('password', problem, expected);
  }
  return user;
}

function checkDuplicateUsers(root: SectionReader, users: UserConfig[]): void {
  const seen = new Map<string, number>();
  users.forEach((user, index) => {
    const identity = JSON.stringify([user.name, user.database]);
    const first = seen.get(identity);
    if (first === undefined) {
      seen.set(identity, index);
      return;
    }
    const problem = `user "${user.name}" for database "${user.database}" is already defined by users[${first}]`;
    throw root.errorAt(`users[${index}]`, problem, 'one [[users]] entry per (name, database)');
  });
}
