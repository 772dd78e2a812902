// The replica metric families (issue 17): bans in force and made, health checks run and failed, requests and
// transactions by the role of the server that answered, and each replica's replay lag (bytes, seconds) as the
// replay-LSN monitor last measured it. Read at scrape time from the shard stats and replica sets.
import type { DatabasePools } from '../backend/pool-manager.js';
import type { Member } from '../backend/replica-set.js';
import type { ShardStats } from '../stats/shard-stats.js';
import type { StatsRegistry } from '../stats/stats-registry.js';

type Labels = Record<string, string | number>;
type Family = (name: string, help: string, labelNames: string[], read: () => [Labels, number][]) => void;

export function addReplicaMetrics(
  source: { readonly stats: StatsRegistry; pools(): DatabasePools[] },
  counter: Family,
  gauge: Family,
): void {
  const { stats } = source;
  const perShard = (read: (s: ShardStats) => number) => (): [Labels, number][] =>
    stats.shards().map((s) => [{ database: s.database, shard: s.shard }, read(s)]);

  gauge(
    'replica_bans',
    'Replica pools banned right now (one per user of the database).',
    ['database', 'shard'],
    () => {
      const out = new Map<string, [Labels, number]>();
      for (const s of stats.shards())
        out.set(`${s.database}\u0000${s.shard}`, [{ database: s.database, shard: s.shard }, 0]);
      const now = Date.now();
      for (const pools of source.pools()) {
        pools.sets.forEach((set, shard) => {
          const entry = out.get(`${pools.database}\u0000${shard}`);
          if (entry === undefined) return;
          for (const m of set.replicas) if (set.isBanned(m, now)) entry[1]++;
        });
      }
      return [...out.values()];
    },
  );
  counter(
    'replica_bans_total',
    'Replica bans made (failed health check, failed connect, or BAN).',
    ['database', 'shard'],
    perShard((s) => s.health.bans),
  );
  counter(
    'healthchecks_total',
    'Replica health checks run (before checkout, idle, HEALTHCHECK).',
    ['database', 'shard'],
    perShard((s) => s.health.checks),
  );
  counter(
    'healthcheck_failures_total',
    'Health checks that failed (no answer within healthcheck_timeout, an error, a lost or refused connection).',
    ['database', 'shard'],
    perShard((s) => s.health.checkFailures),
  );
  const lag = (read: (m: Member) => number) => (): [Labels, number][] =>
    replicaLags(source.pools()).map(([labels, m]) => [labels, read(m)]);
  gauge(
    'replica_lag_bytes',
    'How many bytes of WAL a replica had yet to replay behind its primary at the last replay-LSN check.',
    ['database', 'shard', 'host', 'port'],
    lag((m) => m.lag.bytes),
  );
  gauge(
    'replica_lag_seconds',
    'How long a replica had trailed its primary at the last replay-LSN check (since the primary passed its replay position).',
    ['database', 'shard', 'host', 'port'],
    lag((m) => m.lag.ms / 1000),
  );
  const byRole = (pick: 'queries' | 'transactions') => (): [Labels, number][] =>
    stats
      .shards()
      .flatMap((s) =>
        (['primary', 'replica'] as const).map((role): [Labels, number] => [
          { database: s.database, shard: s.shard, role },
          s.byRole[role][pick],
        ]),
      );
  counter(
    'role_queries_total',
    'Requests answered, by the role of the server (primary, replica).',
    ['database', 'shard', 'role'],
    byRole('queries'),
  );
  counter(
    'role_transactions_total',
    'Transactions ended, by the role of the server (primary, replica).',
    ['database', 'shard', 'role'],
    byRole('transactions'),
  );
}

/**
 * Each replica server that the replay-LSN monitor has read, once (every user of a database has a pool, and a monitor,
 * per replica: the freshest reading wins), with its labels. A replica without a reading has no sample.
 */
function replicaLags(all: readonly DatabasePools[]): [Labels, Member][] {
  const out = new Map<string, [Labels, Member]>();
  for (const pools of all) {
    pools.sets.forEach((set, shard) => {
      for (const m of set.replicas) {
        if (m.lsn === null) continue;
        const { host, port } = m.pool.opts.address;
        const key = `${pools.database}\u0000${shard}\u0000${host}\u0000${port}`;
        const known = out.get(key);
        if (known === undefined || known[1].lsnCheckedAtMs < m.lsnCheckedAtMs)
          out.set(key, [{ database: pools.database, shard, host, port }, m]);
      }
    });
  }
  return [...out.values()];
}
