// The bank workload with transfers in both directions (each transfer's two updates in random order) on a few hot
// accounts through the proxy with two-phase commit: transfers deadlock across shards, where no shard can see it. The
// proxy breaks each cycle (one transfer gets 40P01 and is rolled back by its writer); the run ends with no hung
// connection, the total unchanged, every transfer on both shards or neither, nothing prepared, and as many deadlocks
// counted by the writers as by the proxy.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients } from '../helpers/sharding.js';
import {
  BANK_SCHEMA,
  BANK_SHARDING_TOML,
  bankAccounts,
  INITIAL_BALANCE,
  newBankStats,
  runBank,
} from './bank-workload.js';

/** Few accounts: most transfers meet another one on both shards. */
const ACCOUNTS_PER_SHARD = 2;
const MIN_TRANSFERS = 40;
const MIN_DEADLOCKS = 3;
/** The run fails if it has not seen both minimums by then. */
const MAX_RUN_MS = 40_000;
/** Every writer and reader must have ended this long after they were told to stop (else a connection hung). */
const MAX_STOP_MS = 10_000;

let cluster: PgCluster;
let direct: pg.Client[];
let dir: string;
let proxy: TestProxy;

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  const accounts = bankAccounts(ACCOUNTS_PER_SHARD);
  for (const [shard, d] of direct.entries()) {
    for (const sql of BANK_SCHEMA) await d.query(sql);
    await d.query(`insert into accounts select unnest($1::bigint[]), ${INITIAL_BALANCE}`, [accounts[shard]]);
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-bank-deadlocks-'));
  proxy = await startTestProxy(cluster, {
    general: `two_phase_commit = true\ninstance_id = "bankdl"\ntwo_phase_commit_wal_dir = "${path.join(dir, 'wal')}"\ndeadlock_timeout = 200`,
    extraPgdog: BANK_SHARDING_TOML(APP_DB),
    userExtra: 'pool_size = 10',
  });
});

afterAll(async () => {
  await proxy?.close();
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('bank workload with transfers in both directions', () => {
  it('resolves every distributed deadlock: no hung connection, the books balance, nothing prepared', async () => {
    const accounts = bankAccounts(ACCOUNTS_PER_SHARD);
    let isRunning = true;
    const t0 = Date.now();
    const stats = newBankStats();
    const work = runBank(
      { url: proxy.url, accounts, writers: 6, readers: 1, isRunning: () => isRunning, isOrderRandom: true },
      stats,
    );
    while (
      (stats.transfers < MIN_TRANSFERS || stats.deadlocks < MIN_DEADLOCKS) &&
      Date.now() - t0 < MAX_RUN_MS
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    isRunning = false;
    const stopped = await Promise.race([
      work.then(() => 'stopped'),
      new Promise((r) => setTimeout(() => r('hung'), MAX_STOP_MS)),
    ]);
    const seconds = (Date.now() - t0) / 1000;
    console.log(
      `bank (both directions): ${stats.transfers} transfers in ${seconds.toFixed(1)} s, ` +
        `${stats.deadlocks} distributed deadlocks resolved (proxy counted ${proxy.proxy.deadlocks.deadlocks} in ` +
        `${proxy.proxy.deadlocks.checks} checks), ${stats.failedTransfers} transfers failed otherwise`,
    );
    expect(stopped).toBe('stopped');
    expect(stats.transfers).toBeGreaterThanOrEqual(MIN_TRANSFERS);
    expect(stats.deadlocks).toBeGreaterThanOrEqual(MIN_DEADLOCKS);
    expect(proxy.proxy.deadlocks.deadlocks).toBe(stats.deadlocks);
    expect(stats.failedTransfers).toBe(0);

    let total = 0;
    for (const d of direct)
      total += Number((await d.query('select sum(balance) as s from accounts')).rows[0].s);
    expect(total).toBe(2 * ACCOUNTS_PER_SHARD * INITIAL_BALANCE);
    const sides = new Map<string, number>();
    for (const d of direct) {
      for (const row of (await d.query<{ transfer_id: string }>('select transfer_id from ledger')).rows)
        sides.set(row.transfer_id, (sides.get(row.transfer_id) ?? 0) + 1);
    }
    expect([...sides].filter(([, n]) => n !== 2)).toEqual([]);
    expect(sides.size).toBe(stats.transfers);
    for (const d of direct) {
      expect((await d.query('select gid from pg_prepared_xacts')).rows).toEqual([]);
      const locks = await d.query(
        `select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation
          where c.relname in ('accounts', 'ledger') and l.pid <> pg_backend_pid()`,
      );
      expect(locks.rows[0].n).toBe(0);
    }
  }, 90_000);
});
