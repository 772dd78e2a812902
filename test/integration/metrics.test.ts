// The OpenMetrics endpoint on 2 real PostgreSQL shards (two-phase commit on): every metric family is there, and the
// values move with traffic — queries and bytes per shard, durations, errors by SQLSTATE class, client states, 2PC
// counters after a two-shard commit, plan cache hits; the namespace setting renames everything.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let walDir: string;
let client: pg.Client;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function scrape(
  port: number,
  path = '/metrics',
): Promise<{ status: number; text: string; type: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples named `name` whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length === 0) throw new Error(`no sample ${name} ${JSON.stringify(labels)}`);
  return found.reduce((sum, s) => sum + s.value, 0);
}

async function samples(): Promise<Sample[]> {
  const port = proxy.proxy.metricsPort as number;
  return parseSamples((await scrape(port)).text);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  walDir = mkdtempSync(join(tmpdir(), 'shardgate-metrics-'));
  proxy = await startTestProxy(cluster, {
    general: `openmetrics_port = 0\ntwo_phase_commit = true\ntwo_phase_commit_wal_dir = "${walDir}"\ninstance_id = "tmetrics"`,
    extraPgdog: USERS_SHARDING_TOML,
  });
  client = new pg.Client({ connectionString: proxy.url });
  await client.connect();
  await client.query('create table users (id bigint primary key, name text)');
});

afterAll(async () => {
  await client?.end();
  await proxy?.close();
  await cluster?.stop();
  if (walDir) rmSync(walDir, { recursive: true, force: true });
});

describe('OpenMetrics endpoint', () => {
  it('serves every metric family on /metrics in the Prometheus text format, 404 elsewhere', async () => {
    const port = proxy.proxy.metricsPort as number;
    expect(port).toBeGreaterThan(0);
    const { status, text, type } = await scrape(port);
    expect(status).toBe(200);
    expect(type).toContain('text/plain');
    for (const family of [
      'shardgate_info gauge',
      'shardgate_paused gauge',
      'shardgate_clients gauge',
      'shardgate_servers gauge',
      'shardgate_pool_waiting_clients gauge',
      'shardgate_pool_wait_seconds histogram',
      'shardgate_query_duration_seconds histogram',
      'shardgate_transaction_duration_seconds histogram',
      'shardgate_queries_total counter',
      'shardgate_transactions_total counter',
      'shardgate_server_connects_total counter',
      'shardgate_server_bytes_sent_total counter',
      'shardgate_server_bytes_received_total counter',
      'shardgate_client_bytes_received_total counter',
      'shardgate_client_bytes_sent_total counter',
      'shardgate_errors_total counter',
      'shardgate_twopc_prepared_total counter',
      'shardgate_twopc_committed_total counter',
      'shardgate_twopc_rolled_back_total counter',
      'shardgate_twopc_phase2_retries_total counter',
      'shardgate_twopc_recovered_total counter',
      'shardgate_twopc_in_doubt gauge',
      'shardgate_deadlocks_detected_total counter',
      'shardgate_deadlock_checks_total counter',
      'shardgate_deadlock_check_duration_seconds histogram',
      'shardgate_visibility_fence_waits_total counter',
      'shardgate_visibility_fence_wait_seconds_total counter',
      'shardgate_visibility_fence_timeouts_total counter',
      'shardgate_plan_cache_hits_total counter',
      'shardgate_plan_cache_misses_total counter',
      'shardgate_plan_cache_entries gauge',
    ]) {
      expect(text).toContain(`# TYPE ${family}\n`);
    }
    expect(parseSamples(text).length).toBeGreaterThan(50);
    expect((await scrape(port, '/')).status).toBe(404);
  });

  it('counts queries, transactions, bytes and durations per shard', async () => {
    const before = await samples();
    const shard0 = { database: 'app', shard: '0' };
    const id = idOn(0, 1);
    for (let i = 0; i < 10; i++) await client.query('select * from users where id = $1', [id]);
    const after = await samples();
    expect(value(after, 'shardgate_queries_total', shard0)).toBeGreaterThanOrEqual(
      value(before, 'shardgate_queries_total', shard0) + 10,
    );
    expect(value(after, 'shardgate_transactions_total', shard0)).toBeGreaterThanOrEqual(
      value(before, 'shardgate_transactions_total', shard0) + 10,
    );
    expect(value(after, 'shardgate_query_duration_seconds_count', shard0)).toBeGreaterThanOrEqual(
      value(before, 'shardgate_query_duration_seconds_count', shard0) + 10,
    );
    expect(value(after, 'shardgate_query_duration_seconds_sum', shard0)).toBeGreaterThan(
      value(before, 'shardgate_query_duration_seconds_sum', shard0),
    );
    const inf = value(after, 'shardgate_query_duration_seconds_bucket', { ...shard0, le: '+Inf' });
    expect(inf).toBe(value(after, 'shardgate_query_duration_seconds_count', shard0));
    expect(
      value(after, 'shardgate_query_duration_seconds_bucket', { ...shard0, le: '0.0001' }),
    ).toBeLessThanOrEqual(inf);
    expect(value(after, 'shardgate_pool_wait_seconds_count', shard0)).toBeGreaterThan(
      value(before, 'shardgate_pool_wait_seconds_count', shard0),
    );
    for (const name of ['shardgate_server_bytes_sent_total', 'shardgate_server_bytes_received_total']) {
      expect(value(after, name, shard0)).toBeGreaterThan(value(before, name, shard0));
    }
    for (const name of ['shardgate_client_bytes_received_total', 'shardgate_client_bytes_sent_total']) {
      expect(value(after, name, { database: 'app' })).toBeGreaterThan(
        value(before, name, { database: 'app' }),
      );
    }
    expect(value(after, 'shardgate_servers', { ...shard0 })).toBeGreaterThanOrEqual(1);
  });

  it('counts errors by SQLSTATE class, from servers and from the proxy', async () => {
    const count = (s: Sample[], labels: Record<string, string>): number => {
      try {
        return value(s, 'shardgate_errors_total', labels);
      } catch {
        return 0;
      }
    };
    const before = await samples();
    await client.query('select 1/0').catch(() => undefined); // 22012 from a server
    await client.query('select * from nowhere_table').catch(() => undefined); // 42P01 from a server
    const after = await samples();
    expect(count(after, { class: '22', origin: 'server' })).toBe(
      count(before, { class: '22', origin: 'server' }) + 1,
    );
    expect(count(after, { class: '42', origin: 'server' })).toBeGreaterThan(
      count(before, { class: '42', origin: 'server' }),
    );
  });

  it('shows client connections by state', async () => {
    const other = new pg.Client({ connectionString: proxy.url });
    await other.connect();
    try {
      await other.query('begin');
      await other.query('select * from users where id = $1', [idOn(1, 1)]);
      const during = await samples();
      expect(value(during, 'shardgate_clients', { state: 'active' })).toBeGreaterThanOrEqual(1);
      await other.query('commit');
      const after = await samples();
      expect(value(after, 'shardgate_clients', { state: 'active' })).toBe(
        value(during, 'shardgate_clients', { state: 'active' }) - 1,
      );
      expect(value(after, 'shardgate_clients', { state: 'idle' })).toBeGreaterThanOrEqual(2);
    } finally {
      await other.end();
    }
  });

  it('counts two-phase commits', async () => {
    const before = await samples();
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2)', [idOn(0, 1000), 'a']);
    await client.query('insert into users (id, name) values ($1, $2)', [idOn(1, 1000), 'b']);
    await client.query('commit');
    const after = await samples();
    expect(value(after, 'shardgate_twopc_prepared_total')).toBe(
      value(before, 'shardgate_twopc_prepared_total') + 1,
    );
    expect(value(after, 'shardgate_twopc_committed_total')).toBe(
      value(before, 'shardgate_twopc_committed_total') + 1,
    );
    expect(value(after, 'shardgate_twopc_in_doubt')).toBe(0);
    expect(value(after, 'shardgate_twopc_rolled_back_total')).toBe(
      value(before, 'shardgate_twopc_rolled_back_total'),
    );
  });

  it('counts plan cache hits and misses', async () => {
    const before = await samples();
    const sql = `select name from users where id = $1 and name <> 'metrics-plan-cache'`;
    for (let i = 0; i < 5; i++) await client.query(sql, [i]);
    const after = await samples();
    const app = { database: 'app' };
    expect(value(after, 'shardgate_plan_cache_misses_total', app)).toBeGreaterThanOrEqual(
      value(before, 'shardgate_plan_cache_misses_total', app) + 1,
    );
    expect(value(after, 'shardgate_plan_cache_hits_total', app)).toBeGreaterThanOrEqual(
      value(before, 'shardgate_plan_cache_hits_total', app) + 4,
    );
    expect(value(after, 'shardgate_plan_cache_entries', app)).toBeGreaterThan(0);
    // Simple queries differing only in their literals share one (literal-normalized) plan: hits, not parses.
    const mid = await samples();
    for (let i = 0; i < 5; i++) await client.query(`select name from users where id = ${1000 + i}`);
    const end = await samples();
    expect(value(end, 'shardgate_plan_cache_hits_total', app)).toBeGreaterThanOrEqual(
      value(mid, 'shardgate_plan_cache_hits_total', app) + 4,
    );
    expect(value(end, 'shardgate_plan_cache_misses_total', app)).toBeLessThanOrEqual(
      value(mid, 'shardgate_plan_cache_misses_total', app) + 1,
    );
  });

  it('uses openmetrics_namespace as the prefix (PgDog-style "pgdog_"); counts errors the proxy raises', async () => {
    const other = await startTestProxy(cluster, {
      shards: 1,
      general: 'openmetrics_port = 0\nopenmetrics_namespace = "pgdog_"\ncheckout_timeout = 200',
      userExtra: 'pool_size = 1',
    });
    const holder = new pg.Client({ connectionString: other.url });
    const waiter = new pg.Client({ connectionString: other.url });
    try {
      await holder.connect();
      await waiter.connect();
      await holder.query('begin'); // holds the only server connection
      await holder.query('select 1');
      const err = (await waiter.query('select 2').catch((e: unknown) => e)) as { code?: string };
      expect(err.code).toBe('08006'); // pool timeout, raised by shardgate
      await holder.query('commit');
      const s = parseSamples((await scrape(other.proxy.metricsPort as number)).text);
      const shard0 = { database: 'app', shard: '0' };
      expect(value(s, 'pgdog_queries_total', shard0)).toBeGreaterThanOrEqual(2);
      expect(value(s, 'pgdog_errors_total', { database: 'app', class: '08', origin: 'proxy' })).toBe(1);
      // The timed-out checkout waited checkout_timeout: it is counted above 0.1 s (other checkouts may be too, on a
      // loaded machine — only this one must be).
      expect(value(s, 'pgdog_pool_wait_seconds_sum', shard0)).toBeGreaterThanOrEqual(0.19);
      expect(value(s, 'pgdog_pool_wait_seconds_bucket', { ...shard0, le: '0.1' })).toBeLessThanOrEqual(
        value(s, 'pgdog_pool_wait_seconds_count', shard0) - 1,
      );
      expect(s.some((x) => x.name.startsWith('shardgate_'))).toBe(false);
    } finally {
      await holder.end().catch(() => undefined);
      await waiter.end().catch(() => undefined);
      await other.close();
    }
  });
});
