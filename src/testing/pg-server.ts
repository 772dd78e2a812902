// The shapes every throwaway-server provider shares (local binaries, Docker, servers given by address) and the
// postgresql.conf settings they all start from. Types and constants only: every module of src/testing may import it.

export type AuthMethod = 'trust' | 'md5' | 'scram-sha-256';

export interface PgServer {
  host: string;
  port: number;
  /** Data directory; null for servers we did not create (Docker, external). */
  dataDir: string | null;
  /** Postmaster pid (our child process); null when not ours. Changes on restart. */
  pid: number | null;
  superuser: string;
  superuserPassword: string;
}

export interface PgCluster {
  servers: PgServer[];
  /** Stop every server and remove the temp directory. Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Stop server `index` if it still runs (fast shutdown) and start it again on the same port and data dir,
   * e.g. after a fault test killed it. Updates `servers[index].pid`. Only for servers this process started.
   */
  restart(index: number): Promise<void>;
  /** Stop server `index` (fast shutdown), leaving it down until startOne(index). Only local servers have it. */
  stopOne?(index: number): Promise<void>;
  /** Start server `index` again after stopOne (same port and data dir). */
  startOne?(index: number): Promise<void>;
  /**
   * Start a streaming replica of server `primaryIndex` (pg_basebackup -R) with `extraConf` over the cluster's
   * settings (e.g. recovery_min_apply_delay); it is appended to `servers` and its index returned, so restart,
   * stopOne and stop reach it too. Only local servers have it.
   */
  addReplica?(primaryIndex: number, extraConf?: Record<string, string>): Promise<number>;
}

export interface StartClusterOptions {
  count: number;
  /** Parent of the temp directory (default: defaultPgTempRoot(), i.e. /dev/shm when roomy, else os.tmpdir()). */
  baseDir?: string;
  authMethod?: AuthMethod;
  users?: { name: string; password: string }[];
  databases?: string[];
  /** postgresql.conf settings, applied after (and over) the defaults below. */
  extraConf?: Record<string, string>;
  log?: (line: string) => void;
}

/** The superuser every provider creates. */
export const SUPERUSER = 'postgres';

/** Settings for fast, disposable servers. 2PC needs max_prepared_transactions > 0. */
export const BASE_CONF: Readonly<Record<string, string>> = {
  max_connections: '200',
  max_prepared_transactions: '200',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  shared_buffers: '32MB',
  logging_collector: 'off',
  log_destination: 'stderr',
  log_line_prefix: '%m [%p] %q%u@%d ',
};

/** A postgresql.conf setting name PostgreSQL accepts (also keeps a name from smuggling in other syntax). */
export function isConfName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_.]*$/.test(name);
}

/**
 * BASE_CONF, then the caller's settings over it. New passwords (e.g. from tests) must be md5 hashes when the
 * server asks for md5, so md5 clusters default password_encryption to md5.
 */
export function clusterConf(
  authMethod: AuthMethod,
  extraConf: Record<string, string> = {},
): Record<string, string> {
  const conf: Record<string, string> = { ...BASE_CONF, ...extraConf };
  if (authMethod === 'md5' && extraConf.password_encryption === undefined) conf.password_encryption = 'md5';
  for (const key of Object.keys(conf)) {
    if (!isConfName(key)) throw new Error(`invalid postgresql.conf setting name: ${key}`);
  }
  return conf;
}
