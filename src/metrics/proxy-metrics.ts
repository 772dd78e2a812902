// The OpenMetrics registry of one running proxy: every metric is read lazily at scrape time (prom-client collect
// callbacks) from the stats objects, pools, sessions, transaction manager and plan caches, never written by the hot
// path. Names carry `openmetrics_namespace` (default "shardgate_"); the list is in docs/operations.md.
import { Counter, Gauge, Registry } from 'prom-client';
import type { DatabasePools } from '../backend/pool-manager.js';
import type { ClientInfo } from '../admin/context.js';
import type { PlanCacheStats } from '../router/plan-cache.js';
import type { DurationHistogram } from '../stats/duration-histogram.js';
import type { ShardStats } from '../stats/shard-stats.js';
import type { StatsRegistry } from '../stats/stats-registry.js';
import type { TransactionManager } from '../txn/manager.js';
import type { DeadlockStats } from '../txn/deadlock-watch.js';
import type { FenceCounters, VisibilityFences } from '../txn/visibility-fence.js';
import { VERSION } from '../version.js';
import { addReplicaMetrics } from './replica-metrics.js';
import { StatsHistogram } from './stats-histogram.js';

export interface MetricsSource {
  readonly stats: StatsRegistry;
  clients(): ClientInfo[];
  pools(): DatabasePools[];
  txn(): TransactionManager | null;
  /** Distributed deadlock detection's counters (absent: none). */
  deadlocks?(): DeadlockStats | null;
  planCaches(): { database: string; stats: PlanCacheStats }[];
  /** atomic_visibility's fences (absent or null: off). */
  fences?(): VisibilityFences | null;
  readonly isPaused: boolean;
}

const CLIENT_STATES = ['login', 'idle', 'active', 'waiting'] as const;

type Labels = Record<string, string | number>;

export function buildMetricsRegistry(source: MetricsSource, namespace: string): Registry {
  const registry = new Registry();
  const n = (name: string): string => `${namespace}${name}`;
  const { stats } = source;

  /** A counter whose values are read from `read` at each scrape. */
  const counter = (
    name: string,
    help: string,
    labelNames: string[],
    read: () => [Labels, number][],
  ): void => {
    new Counter({
      name: n(name),
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.inc(labels, value);
      },
    });
  };
  const gauge = (name: string, help: string, labelNames: string[], read: () => [Labels, number][]): void => {
    new Gauge({
      name: n(name),
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) this.set(labels, value);
      },
    });
  };
  const shardLabels = (database: string, shard: number): Labels => ({ database, shard });
  const perShard = (read: (s: ShardStats) => number) => () =>
    stats.shards().map((s): [Labels, number] => [shardLabels(s.database, s.shard), read(s)]);

  gauge('info', 'shardgate version (value 1).', ['version'], () => [[{ version: VERSION }, 1]]);
  gauge('paused', '1 while the admin console has paused the pools (PAUSE), else 0.', [], () => [
    [{}, source.isPaused ? 1 : 0],
  ]);

  gauge('clients', 'Client connections by state (login, idle, active, waiting).', ['state'], () => {
    const counts = new Map<string, number>(CLIENT_STATES.map((s) => [s, 0]));
    for (const c of source.clients()) counts.set(c.activity, (counts.get(c.activity) ?? 0) + 1);
    return [...counts].map(([state, value]) => [{ state }, value]);
  });

  gauge(
    'servers',
    'Server connections by database, shard and state (idle, active, connecting).',
    ['database', 'shard', 'state'],
    () => {
      const totals = new Map<string, [Labels, number]>();
      const add = (database: string, shard: number, state: string, value: number): void => {
        const key = `${database}\u0000${shard}\u0000${state}`;
        const entry = totals.get(key) ?? [{ database, shard, state }, 0];
        entry[1] += value;
        totals.set(key, entry);
      };
      for (const s of stats.shards())
        for (const state of ['idle', 'active', 'connecting']) add(s.database, s.shard, state, 0);
      for (const pools of source.pools()) {
        pools.shards.forEach((pool, shard) => {
          const p = pool.stats();
          add(pools.database, shard, 'idle', p.idle);
          add(pools.database, shard, 'active', p.active);
          add(pools.database, shard, 'connecting', p.connecting);
        });
      }
      return [...totals.values()];
    },
  );

  gauge('pool_waiting_clients', 'Checkouts waiting for a server connection.', ['database', 'shard'], () => {
    const out = new Map<string, [Labels, number]>();
    for (const s of stats.shards())
      out.set(`${s.database}\u0000${s.shard}`, [shardLabels(s.database, s.shard), 0]);
    for (const pools of source.pools()) {
      pools.shards.forEach((pool, shard) => {
        const entry = out.get(`${pools.database}\u0000${shard}`);
        if (entry !== undefined) entry[1] += pool.waiting;
      });
    }
    return [...out.values()];
  });

  const shardSeries = (pick: (s: ShardStats) => DurationHistogram) => () =>
    stats.shards().map((s) => ({ labels: shardLabels(s.database, s.shard), histogram: pick(s) }));
  new StatsHistogram({
    name: n('pool_wait_seconds'),
    help: 'Time a checkout waited for a server connection (0 when one was idle).',
    labelNames: ['database', 'shard'],
    registry,
    series: shardSeries((s) => s.waitTime),
  });
  new StatsHistogram({
    name: n('query_duration_seconds'),
    help: 'Time from a request sent to a server to its ReadyForQuery.',
    labelNames: ['database', 'shard'],
    registry,
    series: shardSeries((s) => s.queryTime),
  });
  new StatsHistogram({
    name: n('transaction_duration_seconds'),
    help: 'Time from the first request of a transaction to the ReadyForQuery ending it (autocommit statements too).',
    labelNames: ['database', 'shard'],
    registry,
    series: shardSeries((s) => s.transactionTime),
  });

  counter(
    'queries_total',
    'Requests answered by servers (one per ReadyForQuery).',
    ['database', 'shard'],
    perShard((s) => s.queries),
  );
  counter(
    'transactions_total',
    'Transactions ended on servers (autocommit statements included).',
    ['database', 'shard'],
    perShard((s) => s.transactions),
  );
  counter(
    'server_connects_total',
    'Server connections opened.',
    ['database', 'shard'],
    perShard((s) => s.connects),
  );
  counter(
    'server_bytes_sent_total',
    'Bytes sent to PostgreSQL servers.',
    ['database', 'shard'],
    perShard((s) => s.bytes().sent),
  );
  counter(
    'server_bytes_received_total',
    'Bytes received from PostgreSQL servers.',
    ['database', 'shard'],
    perShard((s) => s.bytes().received),
  );

  const clientBytes = (pick: 'received' | 'sent') => (): [Labels, number][] => {
    const totals = new Map<string, number>();
    for (const db of stats.databases()) {
      totals.set(db.name, pick === 'received' ? db.closedClientBytesReceived : db.closedClientBytesSent);
    }
    for (const c of source.clients()) {
      const total = totals.get(c.database);
      if (total === undefined || c.isAdmin) continue;
      totals.set(c.database, total + (pick === 'received' ? c.bytesReceived : c.bytesSent));
    }
    return [...totals].map(([database, value]) => [{ database }, value]);
  };
  counter(
    'client_bytes_received_total',
    'Bytes received from clients.',
    ['database'],
    clientBytes('received'),
  );
  counter('client_bytes_sent_total', 'Bytes sent to clients.', ['database'], clientBytes('sent'));

  counter(
    'errors_total',
    'Errors by SQLSTATE class: from servers (origin="server", per shard) and raised by shardgate (origin="proxy").',
    ['database', 'shard', 'class', 'origin'],
    () => {
      const out: [Labels, number][] = [];
      for (const s of stats.shards()) {
        for (const [cls, count] of s.errors.entries()) {
          out.push([{ database: s.database, shard: s.shard, class: cls, origin: 'server' }, count]);
        }
      }
      for (const db of stats.databases()) {
        for (const [cls, count] of db.proxyErrors.entries()) {
          out.push([{ database: db.name, shard: '', class: cls, origin: 'proxy' }, count]);
        }
      }
      return out;
    },
  );

  const txn = (read: (t: TransactionManager) => number) => (): [Labels, number][] => {
    const t = source.txn();
    return [[{}, t === null ? 0 : read(t)]];
  };
  counter(
    'twopc_prepared_total',
    'Two-phase transactions whose branches were all prepared (commit decided).',
    [],
    txn((t) => t.counters.prepared),
  );
  counter(
    'twopc_committed_total',
    'Two-phase transactions committed on every shard.',
    [],
    txn((t) => t.counters.committed),
  );
  counter(
    'twopc_rolled_back_total',
    'Two-phase transactions rolled back (phase 1 failed, or orphans).',
    [],
    txn((t) => t.counters.rolledBack),
  );
  counter(
    'twopc_phase2_retries_total',
    'Background retries of COMMIT/ROLLBACK PREPARED.',
    [],
    txn((t) => t.counters.phase2Retries),
  );
  counter(
    'twopc_recovered_total',
    'Prepared transactions finished by recovery.',
    [],
    txn((t) => t.counters.recovered),
  );
  gauge(
    'twopc_in_doubt',
    'Two-phase transactions prepared somewhere and not finished everywhere yet.',
    [],
    txn((t) => t.inDoubt),
  );

  const deadlocks = (read: (d: DeadlockStats) => number) => (): [Labels, number][] => {
    const d = source.deadlocks?.() ?? null;
    return [[{}, d === null ? 0 : read(d)]];
  };
  counter(
    'deadlocks_detected_total',
    'Distributed deadlocks (lock waits and pool checkouts across shards) broken by cancelling their youngest transaction.',
    [],
    deadlocks((d) => d.deadlocks),
  );
  counter(
    'deadlock_checks_total',
    'Distributed deadlock checks run (a multi-shard transaction, or a checkout of one holding a server, waited deadlock_timeout).',
    [],
    deadlocks((d) => d.checks),
  );
  new StatsHistogram({
    name: n('deadlock_check_duration_seconds'),
    help: 'Time a distributed deadlock check took (asking the servers, twice when a cycle was seen).',
    labelNames: [],
    registry,
    series: () => {
      const d = source.deadlocks?.() ?? null;
      return d === null ? [] : [{ labels: {}, histogram: d.checkTime }];
    },
  });

  addReplicaMetrics(source, counter, gauge);

  const fence = (read: (c: FenceCounters) => [Labels, number][]) => (): [Labels, number][] => {
    const fences = source.fences?.() ?? null;
    if (fences === null) return [];
    return stats.shards().flatMap((s) => {
      const c = fences.countersOf(s.database, s.shard);
      if (c === null) return [];
      return read(c).map(([labels, v]): [Labels, number] => [
        { database: s.database, shard: s.shard, ...labels },
        v,
      ]);
    });
  };
  counter(
    'visibility_fence_waits_total',
    'Fan-out readers (role="reader") and cross-shard commits (role="writer") that waited in the atomic-visibility fence.',
    ['database', 'shard', 'role'],
    fence((c) => [
      [{ role: 'reader' }, c.readerWaits],
      [{ role: 'writer' }, c.writerWaits],
    ]),
  );
  counter(
    'visibility_fence_wait_seconds_total',
    'Time spent waiting in the atomic-visibility fence, by role.',
    ['database', 'shard', 'role'],
    fence((c) => [
      [{ role: 'reader' }, c.readerWaitMs / 1000],
      [{ role: 'writer' }, c.writerWaitMs / 1000],
    ]),
  );
  counter(
    'visibility_fence_timeouts_total',
    'Fan-out readers answered 40001 because they could not take their snapshots within atomic_visibility_timeout.',
    ['database', 'shard'],
    fence((c) => [[{}, c.readerTimeouts]]),
  );

  const plans = (pick: (p: PlanCacheStats) => number) => (): [Labels, number][] =>
    source.planCaches().map(({ database, stats: p }) => [{ database }, pick(p)]);
  counter(
    'plan_cache_hits_total',
    'Statement plans found in the plan cache (sharded databases).',
    ['database'],
    plans((p) => p.hits),
  );
  counter(
    'plan_cache_misses_total',
    'Statements parsed because their plan was not cached.',
    ['database'],
    plans((p) => p.misses),
  );
  gauge(
    'plan_cache_entries',
    'Statement plans in the plan cache.',
    ['database'],
    plans((p) => p.size),
  );

  return registry;
}
