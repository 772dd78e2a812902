// SHOW STATS: per (database, shard) since startup: transactions, queries, bytes to and from the servers, total and
// average times in ms, query time percentiles (estimated from histogram buckets), pool wait, server errors; the
// replicas' share of transactions and queries, replica health checks and bans; the atomic-visibility fence's waits
// (readers, writers; counted on the shard waited at) and readers cancelled past atomic_visibility_timeout.
import type { AdminContext } from './context.js';
import { cols, type ResultSet } from './result-set.js';
import { newFenceCounters } from '../txn/visibility-fence.js';

const COLUMNS = cols({
  database: 'text',
  shard: 'int8',
  total_xact_count: 'int8',
  total_query_count: 'int8',
  total_received: 'int8',
  total_sent: 'int8',
  total_xact_time: 'numeric',
  total_query_time: 'numeric',
  total_wait_time: 'numeric',
  avg_xact_time: 'numeric',
  avg_query_time: 'numeric',
  avg_wait_time: 'numeric',
  p50_query_time: 'numeric',
  p95_query_time: 'numeric',
  p99_query_time: 'numeric',
  total_errors: 'int8',
  total_server_connects: 'int8',
  replica_xact_count: 'int8',
  replica_query_count: 'int8',
  total_healthchecks: 'int8',
  total_healthcheck_failures: 'int8',
  total_bans: 'int8',
  fence_reader_waits: 'int8',
  fence_reader_wait_time: 'numeric',
  fence_writer_waits: 'int8',
  fence_writer_wait_time: 'numeric',
  fence_timeouts: 'int8',
});

export function showStats(ctx: AdminContext): ResultSet {
  const fences = ctx.fences?.() ?? null;
  const rows = ctx.stats.shards().map((s) => {
    const bytes = s.bytes();
    const fence = fences?.countersOf(s.database, s.shard) ?? newFenceCounters();
    return [
      s.database,
      s.shard,
      s.transactions,
      s.queries,
      bytes.received,
      bytes.sent,
      s.transactionTime.sumMs,
      s.queryTime.sumMs,
      s.waitTime.sumMs,
      s.transactionTime.averageMs,
      s.queryTime.averageMs,
      s.waitTime.averageMs,
      s.queryTime.quantileMs(0.5),
      s.queryTime.quantileMs(0.95),
      s.queryTime.quantileMs(0.99),
      s.errors.total,
      s.connects,
      s.byRole.replica.transactions,
      s.byRole.replica.queries,
      s.health.checks,
      s.health.checkFailures,
      s.health.bans,
      fence.readerWaits,
      fence.readerWaitMs,
      fence.writerWaits,
      fence.writerWaitMs,
      fence.readerTimeouts,
    ];
  });
  return { columns: COLUMNS, rows };
}
