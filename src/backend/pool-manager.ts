// All pools, one per (user, database, server entry): per shard the primary's and the replicas' (a ReplicaSet),
// created on first use from the current configuration; a reload
// resizes and re-points them in place (clients keep their connections), PAUSE/RESUME and shutdown reach all of them.
// With passthrough_auth, users without a password (listed without one, or not listed) connect with the password their
// server accepted at their first login, remembered here across reloads.
import type { Logger } from 'pino';
import type { Config, DatabaseConfig, PoolerMode, UserConfig } from '../config/types.js';
import type { PgError } from '../errors/pg-error.js';
import type { DatabaseStats } from '../stats/shard-stats.js';
import { StatsRegistry } from '../stats/stats-registry.js';
import { shardMembers } from '../config/roles.js';
import { Pool, type PoolSettings } from './pool.js';
import { IdleHealthMonitor } from './idle-health-monitor.js';
import { LsnMonitor } from './lsn-monitor.js';
import { ReplicaSet, type Member } from './replica-set.js';
import type { ServerAddress } from './server-connection.js';

export interface DatabasePools {
  user: UserConfig;
  database: string;
  mode: PoolerMode;
  /** The primaries' pools, indexed by shard number (2PC, catalog lookups and the startup check use these). */
  shards: Pool[];
  /** Per shard, its primary and replicas: where a request that only reads may go (`ReplicaSet.acquire`). */
  sets: ReplicaSet[];
  /** Some shard has replicas: requests are classified as reads or writes. */
  hasReplicas: boolean;
  /** Counters of the database (errors raised by the proxy go here). */
  stats: DatabaseStats;
  /** The user is no longer in users.toml (a reload removed it); its clients keep working until they leave. */
  isRemoved: boolean;
}

/**
 * Where and as whom a user's server connections to one shard log in (users.toml server_user wins, then the database's
 * user); the password: server_password, the database's, the user's, else the one passthrough_auth remembered.
 */
export function serverAddress(
  db: DatabaseConfig,
  user: UserConfig,
  passthroughPassword: string | null = null,
): ServerAddress {
  return {
    host: db.host,
    port: db.port,
    database: db.databaseName,
    user: user.serverUser ?? db.user ?? user.name,
    password: user.serverPassword ?? db.password ?? user.password ?? passthroughPassword,
    shard: db.shard,
  };
}

function userKey(name: string, database: string): string {
  return `${name}\u0000${database}`;
}

export class PoolManager {
  private config: Config;
  private readonly logger: Logger;
  private readonly byKey = new Map<string, DatabasePools>();
  /** The background checks of each replica set: health and replay LSN (sets without replicas have none running). */
  private readonly monitors: { stop(): void }[] = [];
  readonly stats: StatsRegistry;
  private isPaused = false;
  private refusal: PgError | null = null;
  /** passthrough_auth: the password each (user, database) without one in users.toml logged in with, as checked. */
  private readonly passthroughPasswords = new Map<string, string>();

  constructor(config: Config, logger: Logger, stats: StatsRegistry = new StatsRegistry(config)) {
    this.config = config;
    this.logger = logger;
    this.stats = stats;
  }

  /** Shard entries (primaries) of a database, indexed by shard; empty if the database is not configured. */
  shardsOf(database: string): DatabaseConfig[] {
    return shardMembers(this.config.databases, database).map((m) => m.primary);
  }

  /** `database` is configured (has a [[databases]] entry). Allocates nothing: asked at every login. */
  hasDatabase(database: string): boolean {
    return this.config.databases.some((d) => d.name === database);
  }

  /**
   * The entry of `shard`'s primary now: the configured one, unless the shard is `role = "auto"` and its servers said
   * another is the primary (ReplicaSet.follow). Undefined: not configured.
   */
  currentPrimary(database: string, shard: number): DatabaseConfig | undefined {
    const entries = shardMembers(this.config.databases, database)[shard];
    if (entries === undefined) return undefined;
    for (const pools of this.byKey.values()) {
      const set = pools.database === database ? pools.sets[shard] : undefined;
      if (set === undefined || set.primary === set.inConfigOrder[0]) continue;
      return (
        [entries.primary, ...entries.replicas][set.inConfigOrder.indexOf(set.primary)] ?? entries.primary
      );
    }
    return entries.primary;
  }

  /**
   * The users.toml entry of `user` for `database`; with passthrough_auth, a user not listed there may still log in to
   * a configured database (as PgDog): an entry with no password and default settings.
   */
  findUser(user: string, database: string): UserConfig | undefined {
    const listed = this.config.users.find((u) => u.name === user && u.database === database);
    if (listed !== undefined || this.config.general.passthroughAuth === 'disabled') return listed;
    if (!this.hasDatabase(database)) return undefined;
    return {
      name: user,
      database,
      password: null,
      poolSize: null,
      poolerMode: null,
      serverUser: null,
      serverPassword: null,
    };
  }

  /** `user` logs in through passthrough_auth (no password of its own, and passthrough_auth on). */
  isPassthrough(user: UserConfig): boolean {
    return user.password === null && this.config.general.passthroughAuth !== 'disabled';
  }

  /** The password passthrough_auth remembered for `user` (null: none yet). */
  passthroughPassword(user: UserConfig): string | null {
    return this.passthroughPasswords.get(userKey(user.name, user.database)) ?? null;
  }

  /** passthrough_auth: `password` was accepted by the servers: remembered, and used by this user's pools from now. */
  rememberPassthroughPassword(user: UserConfig, password: string): void {
    const key = userKey(user.name, user.database);
    this.passthroughPasswords.set(key, password);
    const pools = this.byKey.get(key);
    if (pools === undefined) return;
    this.reconfigureSets(pools, pools.user);
  }

  /** Each pool of `pools` gets the settings of its entry (same shards and roles: reload-plan.ts keeps them). */
  private reconfigureSets(pools: DatabasePools, user: UserConfig): void {
    const members = shardMembers(this.config.databases, pools.database);
    pools.sets.forEach((set, shard) => {
      const entries = members[shard];
      if (entries === undefined) return;
      // By entry, not by role: role = "auto" may have moved the primary to another entry's pool.
      const dbs = [entries.primary, ...entries.replicas];
      set.inConfigOrder.forEach((m, i) => {
        const db = dbs[i];
        if (db === undefined) return;
        m.pool.reconfigure(this.poolSettings(db, user));
        m.weight = db.lbWeight;
      });
    });
  }

  /** The pools for a user's database (created on first call). */
  get(user: UserConfig): DatabasePools {
    const key = userKey(user.name, user.database);
    let pools = this.byKey.get(key);
    if (pools) return pools;
    const mode = user.poolerMode ?? this.config.general.poolerMode;
    const stats = this.stats.database(user.database);
    const newPool = (db: DatabaseConfig, role: Member['role']): Pool => {
      const pool = new Pool({
        ...this.poolSettings(db, user),
        startupParams: {},
        logger: this.logger.child({ database: user.database, user: user.name, shard: db.shard, role }),
        clientUser: user.name,
        clientDatabase: user.database,
        stats: stats.shard(db.shard),
        role,
      });
      if (this.isPaused) pool.pause();
      if (this.refusal !== null) pool.refuseCheckouts(this.refusal);
      return pool;
    };
    const sets = shardMembers(this.config.databases, user.database).map(
      (m) =>
        new ReplicaSet(
          newPool(m.primary, 'primary'),
          m.primary,
          m.replicas.map((db) => ({ pool: newPool(db, 'replica'), db })),
          () => this.config.general,
        ),
    );
    for (const set of sets) {
      if (!set.hasReplicas) continue;
      this.monitors.push(
        new IdleHealthMonitor(set, () => this.config.general),
        new LsnMonitor(set, () => this.config.general),
      );
    }
    const shards = sets.map((set) => set.primary.pool);
    sets.forEach((set, shard) => {
      // role = "auto": the shard's pool for writes, 2PC and lookups follows the primary the servers report.
      set.onPrimaryChange = (primary) => (shards[shard] = primary.pool);
    });
    const hasReplicas = sets.some((set) => set.hasReplicas);
    pools = { user, database: user.database, mode, shards, sets, hasReplicas, stats, isRemoved: false };
    this.byKey.set(key, pools);
    return pools;
  }

  private poolSettings(db: DatabaseConfig, user: UserConfig): PoolSettings {
    const { general } = this.config;
    return {
      address: serverAddress(
        db,
        user,
        this.passthroughPasswords.get(userKey(user.name, user.database)) ?? null,
      ),
      maxSize: user.poolSize ?? general.defaultPoolSize,
      minSize: general.minPoolSize,
      checkoutTimeoutMs: general.checkoutTimeoutMs,
      connectTimeoutMs: general.connectTimeoutMs,
      idleTimeoutMs: general.idleTimeoutMs,
    };
  }

  all(): DatabasePools[] {
    return [...this.byKey.values()];
  }

  /**
   * A reloaded configuration (its database layout already checked to match): users and passwords for new logins,
   * pool sizes, timeouts and server addresses for existing pools. Pools of removed users stop keeping connections
   * open (min size 0) and serve their remaining clients.
   */
  reconfigure(config: Config): void {
    this.config = config;
    this.stats.addDatabasesOf(config);
    for (const pools of this.byKey.values()) {
      const user = this.findUser(pools.user.name, pools.database);
      pools.isRemoved = user === undefined;
      if (user === undefined) {
        for (const pool of setPools(pools)) pool.reconfigure({ ...pool.opts, minSize: 0 });
        continue;
      }
      pools.user = user;
      pools.mode = user.poolerMode ?? config.general.poolerMode;
      this.reconfigureSets(pools, user);
    }
  }

  /** PAUSE: no pool hands out connections until resume(). */
  pause(): void {
    this.isPaused = true;
    for (const pool of this.pools()) pool.pause();
  }

  resume(): void {
    this.isPaused = false;
    for (const pool of this.pools()) pool.resume();
  }

  get paused(): boolean {
    return this.isPaused;
  }

  /** Shutdown: no new checkouts anywhere (waiting ones fail with `err`). */
  refuseCheckouts(err: PgError): void {
    this.refusal = err;
    for (const pool of this.pools()) pool.refuseCheckouts(err);
  }

  /** Server connections checked out right now, over every pool. */
  activeCount(): number {
    let n = 0;
    for (const pool of this.pools()) n += pool.activeCount;
    return n;
  }

  private *pools(): Iterable<Pool> {
    for (const p of this.byKey.values()) yield* setPools(p);
  }

  close(): void {
    for (const monitor of this.monitors.splice(0)) monitor.stop();
    for (const pool of this.pools()) pool.close();
    this.byKey.clear();
  }
}

/** Every pool of a user's database: each shard's primary, then its replicas. */
export function* setPools(pools: DatabasePools): Iterable<Pool> {
  for (const set of pools.sets) for (const m of set.members()) yield m.pool;
}
