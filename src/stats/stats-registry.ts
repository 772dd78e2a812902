// Every database's and shard's counters, created for each configured database (at startup and on reload; never
// removed, so counters stay monotonic). Pools and sessions resolve their stats object here once, not per query.
import type { Config } from '../config/types.js';
import { DatabaseStats, type ShardStats } from './shard-stats.js';

export class StatsRegistry {
  private readonly byName = new Map<string, DatabaseStats>();

  constructor(config: Config) {
    this.addDatabasesOf(config);
  }

  /** Entries for databases and shards of `config` not seen before. */
  addDatabasesOf(config: Config): void {
    for (const d of config.databases) if (d.role !== 'replica') this.database(d.name).shard(d.shard);
  }

  /** The stats of a configured database (created if missing: call only with configured names). */
  database(name: string): DatabaseStats {
    let stats = this.byName.get(name);
    if (stats === undefined) {
      stats = new DatabaseStats(name);
      this.byName.set(name, stats);
    }
    return stats;
  }

  /** Known database stats only (never creates: safe with names clients sent). */
  find(name: string): DatabaseStats | undefined {
    return this.byName.get(name);
  }

  shard(database: string, shard: number): ShardStats {
    return this.database(database).shard(shard);
  }

  databases(): DatabaseStats[] {
    return [...this.byName.values()];
  }

  /** Every (database, shard), in database then shard order. */
  shards(): ShardStats[] {
    const out: ShardStats[] = [];
    for (const db of this.byName.values()) for (const s of db.shards) if (s !== undefined) out.push(s);
    return out;
  }
}
