// All pools, one per (user, database, shard), created on first use from the current configuration.
import type { Logger } from 'pino';
import type { Config, DatabaseConfig, PoolerMode, UserConfig } from '../config/types.js';
import { Pool } from './pool.js';
import type { ServerAddress } from './server-connection.js';

export interface DatabasePools {
  user: UserConfig;
  database: string;
  mode: PoolerMode;
  /** Indexed by shard number. */
  shards: Pool[];
}

/** Where and as whom a user's server connections to one shard log in (users.toml server_user wins, then the database's user). */
export function serverAddress(db: DatabaseConfig, user: UserConfig): ServerAddress {
  return {
    host: db.host,
    port: db.port,
    database: db.databaseName,
    user: user.serverUser ?? db.user ?? user.name,
    password: user.serverPassword ?? db.password ?? user.password,
    shard: db.shard,
  };
}

export class PoolManager {
  private config: Config;
  private readonly logger: Logger;
  private readonly byKey = new Map<string, DatabasePools>();

  constructor(config: Config, logger: Logger) {
    this.config = config;
    this.logger = logger;
  }

  /** Shard entries (primaries) of a database, indexed by shard; empty if the database is not configured. */
  shardsOf(database: string): DatabaseConfig[] {
    const out: DatabaseConfig[] = [];
    for (const d of this.config.databases) if (d.name === database && d.role !== 'replica') out[d.shard] = d;
    return out;
  }

  findUser(user: string, database: string): UserConfig | undefined {
    return this.config.users.find((u) => u.name === user && u.database === database);
  }

  /** The pools for a user's database (created on first call). */
  get(user: UserConfig): DatabasePools {
    const key = `${user.name}\u0000${user.database}`;
    let pools = this.byKey.get(key);
    if (pools) return pools;
    const { general } = this.config;
    const mode = user.poolerMode ?? general.poolerMode;
    const shards = this.shardsOf(user.database).map(
      (db) =>
        new Pool({
          address: serverAddress(db, user),
          maxSize: user.poolSize ?? general.defaultPoolSize,
          minSize: general.minPoolSize,
          checkoutTimeoutMs: general.checkoutTimeoutMs,
          connectTimeoutMs: general.connectTimeoutMs,
          idleTimeoutMs: general.idleTimeoutMs,
          startupParams: {},
          logger: this.logger.child({ database: user.database, user: user.name, shard: db.shard }),
          clientUser: user.name,
          clientDatabase: user.database,
        }),
    );
    pools = { user, database: user.database, mode, shards };
    this.byKey.set(key, pools);
    return pools;
  }

  all(): DatabasePools[] {
    return [...this.byKey.values()];
  }

  close(): void {
    for (const p of this.byKey.values()) for (const pool of p.shards) pool.close();
    this.byKey.clear();
  }
}
