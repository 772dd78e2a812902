// How the proxy reaches shards outside client sessions (the transaction manager's phase-2 retries, recovery, start-up
// check and instance lock; the start-up collation probe): server connections of their own, short-lived except the instance lock's, never taken
// from a client pool (a full pool must not block the finishing of a committed transaction), logged in with the same
// credentials the pools use.
import { serverAddress } from './pool-manager.js';
import { ServerConnection } from './server-connection.js';
import { runQuery, type QueryOutcome } from './server-query.js';
import type { Config, DatabaseConfig, UserConfig } from '../config/types.js';
import { primaryOf, shardMembers } from '../config/roles.js';

export interface ShardAccess {
  /** Databases with two or more shards (the only ones with distributed transactions). */
  shardedDatabases(): readonly string[];
  shardCount(database: string): number;
  /** Client user names configured for `database`, in users.toml order. */
  users(database: string): readonly string[];
  /** The role a user's connections to `shard` log in as (to match pg_prepared_xacts.owner); null if unknown. */
  serverUser(database: string, user: string, shard: number): string | null;
  /** Where `shard` of `database` lives, `host:port/database_name` (two entries on one server database: the same). */
  location(database: string, shard: number): string | null;
  /**
   * A new connection to `shard` of `database` as `user`'s server role, with `applicationName` (default
   * `shardgate-2pc`); the caller closes it (terminate).
   */
  connect(database: string, user: string, shard: number, applicationName?: string): Promise<ServerConnection>;
}

/**
 * Run one statement on a fresh connection to `shard` (closed afterwards). A shard that cannot be reached is a 'lost'
 * outcome with the connect error as its reason: callers treat it like a connection lost mid-statement.
 */
export async function queryShard(
  shards: ShardAccess,
  database: string,
  user: string,
  shard: number,
  sql: string,
): Promise<QueryOutcome> {
  let server: ServerConnection;
  try {
    server = await shards.connect(database, user, shard);
  } catch (err) {
    return { kind: 'lost', reason: `cannot connect: ${(err as Error).message}` };
  }
  try {
    const outcome = await runQuery(server, sql);
    return outcome.kind === 'lost' ? { kind: 'lost', reason: `connection lost: ${outcome.reason}` } : outcome;
  } finally {
    server.terminate('statement of the transaction manager done');
  }
}

/** ShardAccess over the current configuration (re-read on every call, so a reload takes effect). */
export class ConfigShardAccess implements ShardAccess {
  private readonly config: () => Config;
  /** The shard's primary entry now (role = "auto" follows a failover: PoolManager.currentPrimary); default: config's. */
  private readonly primary: ((database: string, shard: number) => DatabaseConfig | undefined) | null;

  constructor(
    config: () => Config,
    primary: ((database: string, shard: number) => DatabaseConfig | undefined) | null = null,
  ) {
    this.config = config;
    this.primary = primary;
  }

  private shardConfig(database: string, shard: number): DatabaseConfig | undefined {
    return this.primary?.(database, shard) ?? primaryOf(this.config().databases, database, shard);
  }

  private user(database: string, user: string): UserConfig | undefined {
    return this.config().users.find((u) => u.name === user && u.database === database);
  }

  shardedDatabases(): readonly string[] {
    const names = new Set(this.config().databases.map((d) => d.name));
    return [...names].filter((name) => this.shardCount(name) >= 2);
  }

  shardCount(database: string): number {
    return shardMembers(this.config().databases, database).length;
  }

  users(database: string): readonly string[] {
    return this.config()
      .users.filter((u) => u.database === database)
      .map((u) => u.name);
  }

  serverUser(database: string, user: string, shard: number): string | null {
    const db = this.shardConfig(database, shard);
    const u = this.user(database, user);
    return db === undefined || u === undefined ? null : serverAddress(db, u).user;
  }

  location(database: string, shard: number): string | null {
    const db = this.shardConfig(database, shard);
    return db === undefined ? null : `${db.host}:${db.port}/${db.databaseName}`;
  }

  async connect(
    database: string,
    user: string,
    shard: number,
    applicationName = 'shardgate-2pc',
  ): Promise<ServerConnection> {
    const db = this.shardConfig(database, shard);
    const u = this.user(database, user);
    if (db === undefined)
      throw new Error(`database "${database}" has no shard ${shard} in the configuration`);
    if (u === undefined) throw new Error(`user "${user}" is not configured for database "${database}"`);
    const server = new ServerConnection(serverAddress(db, u));
    await server.connect(this.config().general.connectTimeoutMs, { application_name: applicationName });
    return server;
  }
}
