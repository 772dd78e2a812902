// pgbench through shardgate in transaction mode: initialization (COPY, VACUUM, DDL), then select-only runs in each
// query mode (simple, extended, prepared) and a short TPC-B-like run, each without a single failed transaction.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { findPgTool, libpqEnv, runTool, type ToolResult } from '../helpers/clients/pg-tools.js';

const pgbenchPath = findPgTool('pgbench');

let cluster: PgCluster;
let proxy: TestProxy;

function pgbench(args: string[], timeoutMs: number): Promise<ToolResult> {
  return runTool(pgbenchPath as string, [...args, APP_DB], {
    env: libpqEnv(proxy.port, APP_USER, APP_PASSWORD, APP_DB),
    timeoutMs,
  });
}

async function queryProxy(text: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client(proxy.url);
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

interface RunSummary {
  processed: number;
  failed: number;
  tps: number;
}

/** The numbers pgbench prints at the end of a run; a line missing fails the test. */
function summarize(res: ToolResult): RunSummary {
  const processed = /number of transactions actually processed: (\d+)/.exec(res.stdout);
  const failed = /number of failed transactions: (\d+)/.exec(res.stdout);
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(res.stdout);
  expect(processed, `no 'processed' line in:\n${res.stdout}\n${res.stderr}`).not.toBeNull();
  expect(failed, `no 'failed' line in:\n${res.stdout}\n${res.stderr}`).not.toBeNull();
  expect(tps, `no 'tps' line in:\n${res.stdout}\n${res.stderr}`).not.toBeNull();
  return { processed: Number(processed?.[1]), failed: Number(failed?.[1]), tps: Number(tps?.[1]) };
}

describe.skipIf(pgbenchPath === null)('pgbench through the transaction-mode proxy', () => {
  beforeAll(async () => {
    cluster = await testServers(1, APP_SERVER_OPTIONS);
    proxy = await startTestProxy(cluster);
  });

  afterAll(async () => {
    await proxy?.close();
    await cluster?.stop();
  });

  it('initializes scale 1 (pgbench -i -s 1)', async () => {
    const res = await pgbench(['-i', '-s', '1', '-q'], 30_000);
    expect(res.stderr).toContain('done in');
    expect(res.code).toBe(0);
    const counts = await queryProxy(
      'SELECT (SELECT count(*) FROM pgbench_accounts)::int AS accounts, (SELECT count(*) FROM pgbench_branches)::int AS branches, ' +
        '(SELECT count(*) FROM pgbench_tellers)::int AS tellers, (SELECT count(*) FROM pgbench_history)::int AS history',
    );
    expect(counts).toEqual([{ accounts: 100_000, branches: 1, tellers: 10, history: 0 }]);
  });

  it.each(['simple', 'extended', 'prepared'])(
    'runs 5 s of select-only with 4 clients in -M %s, no failed transactions',
    async (queryMode) => {
      const res = await pgbench(['-S', '-c', '4', '-j', '2', '-T', '5', '-M', queryMode, '-P', '5'], 20_000);
      expect(res.code, res.stderr).toBe(0);
      const summary = summarize(res);
      console.log(
        `pgbench -S -M ${queryMode}: tps ${summary.tps.toFixed(0)}, ${summary.processed} transactions`,
      );
      expect(res.stdout).toContain(`query mode: ${queryMode}`);
      expect(summary.failed).toBe(0);
      expect(summary.processed).toBeGreaterThan(100);
      expect(res.stderr).not.toMatch(/error|abort/i);
    },
    20_000,
  );

  it('runs 3 s of the default TPC-B-like script in -M prepared, no failed transactions', async () => {
    const res = await pgbench(['-c', '4', '-j', '2', '-T', '3', '-M', 'prepared'], 20_000);
    expect(res.code, res.stderr).toBe(0);
    const summary = summarize(res);
    console.log(
      `pgbench tpcb-like -M prepared: tps ${summary.tps.toFixed(0)}, ${summary.processed} transactions`,
    );
    expect(res.stdout).toContain('transaction type: <builtin: TPC-B (sort of)>');
    expect(summary.failed).toBe(0);
    expect(summary.processed).toBeGreaterThan(50);
    expect(res.stderr).not.toMatch(/error|abort/i);
    // Every committed TPC-B transaction moved the same delta through all four tables.
    const sums = await queryProxy(
      'SELECT (SELECT sum(abalance) FROM pgbench_accounts)::int8::text AS a, (SELECT sum(bbalance) FROM pgbench_branches)::int8::text AS b, ' +
        '(SELECT sum(tbalance) FROM pgbench_tellers)::int8::text AS t, (SELECT sum(delta) FROM pgbench_history)::int8::text AS h, ' +
        '(SELECT count(*) FROM pgbench_history)::int AS n',
    );
    expect(sums[0].n).toBe(summary.processed);
    expect(new Set([sums[0].a, sums[0].b, sums[0].t, sums[0].h]).size).toBe(1);
  }, 20_000);
});
