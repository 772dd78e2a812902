// Atomic visibility in the bank workload (issue 14): 4 writers move money between accounts on 2 shards with 2PC, 2
// readers sum every balance (which must always be the initial total). Through a proxy with atomic_visibility = false
// torn reads show up (the check can fail); through one with the fence, none — in the simple protocol (the readers'
// `SELECT sum(balance)`), the extended protocol (a named prepared statement) and COPY (SELECT …) TO STDOUT.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
import { firstError, RawClient } from '../helpers/raw-client.js';
import { directShardClients } from '../helpers/sharding.js';
import { bankEnd, loadBank, preparedAfter, transfersPast } from '../helpers/bank.js';
import {
  BANK_SHARDING_TOML,
  bankAccounts,
  INITIAL_BALANCE,
  newBankStats,
  runBank,
  type BankStats,
} from './bank-workload.js';

const ACCOUNTS_PER_SHARD = 20;
/** Reads each run must reach (a torn read needs a reader to fall between two COMMIT PREPAREDs). */
const READS_PER_RUN = 1500;
/**
 * Transfers each run must reach too: a run stops once both counts are reached (or at MAX_RUN_MS, and the test fails on
 * the count it missed). Stopping on reads alone let fast readers end a run whose writers, slowed by the fence, had
 * committed only a few transfers — then no read could have fallen between two of their COMMITs.
 */
const TRANSFERS_PER_RUN = 60;
const MAX_RUN_MS = 60_000;

let cluster: PgCluster;
let direct: pg.Client[];
let dir: string;
const proxies: TestProxy[] = [];

async function bankProxy(isFenced: boolean, isTwoPhase = true, extra = ''): Promise<TestProxy> {
  const wal = fs.mkdtempSync(path.join(dir, 'wal-'));
  const proxy = await startTestProxy(cluster, {
    general:
      `two_phase_commit = ${isTwoPhase}\ntwo_phase_commit_auto = ${isTwoPhase}\ninstance_id = "vis${proxies.length}"\n` +
      `two_phase_commit_wal_dir = "${wal}"\natomic_visibility = ${isFenced}\n${extra}`,
    extraPgdog: BANK_SHARDING_TOML(APP_DB),
  });
  proxies.push(proxy);
  return proxy;
}

/** The bank workload through `url` until the readers made READS_PER_RUN reads and the writers TRANSFERS_PER_RUN. */
async function bankRun(
  url: string,
  readMode: 'simple' | 'extended' = 'simple',
  stats: BankStats = newBankStats(),
): Promise<BankStats> {
  const accounts = bankAccounts(ACCOUNTS_PER_SHARD);
  const t0 = Date.now();
  return runBank(
    {
      url,
      accounts,
      writers: 4,
      readers: 2,
      readMode,
      isRunning: () =>
        (stats.reads < READS_PER_RUN || stats.transfers < TRANSFERS_PER_RUN) && Date.now() - t0 < MAX_RUN_MS,
    },
    stats,
  );
}

/** Reads made by COPY readers, and how many saw a wrong total. */
interface CopyReads {
  reads: number;
  torn: number;
}

/** A reader using COPY (SELECT sum(balance) …) TO STDOUT (one line per shard) while `isRunning()`. */
async function copyReader(port: number, counts: CopyReads, isRunning: () => boolean): Promise<void> {
  const raw = await RawClient.connect(port);
  await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
  const expected = 2 * ACCOUNTS_PER_SHARD * INITIAL_BALANCE;
  while (isRunning()) {
    const replies = await raw.query('copy (select sum(balance) from accounts) to stdout', 10_000);
    if (replies.some((m) => m.type === 'E')) throw new Error(JSON.stringify(firstError(replies)));
    const total = replies
      .filter((m) => m.type === 'd')
      .reduce((sum, m) => sum + Number(m.body.toString('utf8').trim()), 0);
    counts.reads++;
    if (total !== expected) counts.torn++;
  }
  raw.close();
}

/** The bank's writers with 2 COPY readers (instead of its own) until they made READS_PER_RUN reads. */
async function copyRun(proxy: TestProxy): Promise<CopyReads & { transfers: number }> {
  const t0 = Date.now();
  const counts: CopyReads = { reads: 0, torn: 0 };
  const isRunning = (): boolean => counts.reads < READS_PER_RUN && Date.now() - t0 < MAX_RUN_MS;
  const stats = newBankStats();
  await Promise.all([
    runBank(
      { url: proxy.url, accounts: bankAccounts(ACCOUNTS_PER_SHARD), writers: 4, readers: 0, isRunning },
      stats,
    ),
    copyReader(proxy.port, counts, isRunning),
    copyReader(proxy.port, counts, isRunning),
  ]);
  return { ...counts, transfers: stats.transfers };
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  await loadBank(direct, bankAccounts(ACCOUNTS_PER_SHARD));
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-vis-'));
});

afterAll(async () => {
  for (const p of proxies) await p.close();
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('bank workload: torn reads', () => {
  it('shows torn reads with atomic_visibility = false (the check can fail)', async () => {
    const proxy = await bankProxy(false);
    const stats = await bankRun(proxy.url);
    console.log(
      `atomic_visibility = false: ${stats.transfers} transfers, ${stats.reads} reads, ${stats.inconsistentReads} torn`,
    );
    expect(stats.reads).toBeGreaterThanOrEqual(READS_PER_RUN);
    expect(stats.inconsistentReads).toBeGreaterThan(0);
  }, 90_000);

  it('shows no torn read with the fence (simple-protocol readers)', async () => {
    const proxy = await bankProxy(true);
    const stats = await bankRun(proxy.url);
    console.log(
      `atomic_visibility = true: ${stats.transfers} transfers, ${stats.reads} reads, ${stats.inconsistentReads} torn`,
    );
    expect(stats.reads).toBeGreaterThanOrEqual(READS_PER_RUN);
    expect(stats.transfers).toBeGreaterThanOrEqual(TRANSFERS_PER_RUN);
    expect(stats.failedReads).toBe(0);
    expect(stats.inconsistentReads).toBe(0);
  }, 90_000);

  it('shows no torn read with the fence for extended-protocol readers (named prepared statement)', async () => {
    const proxy = await bankProxy(true);
    const stats = await bankRun(proxy.url, 'extended');
    console.log(
      `extended readers, fenced: ${stats.transfers} transfers, ${stats.reads} reads, ${stats.inconsistentReads} torn`,
    );
    expect(stats.reads).toBeGreaterThanOrEqual(READS_PER_RUN);
    expect(stats.failedReads).toBe(0);
    expect(stats.inconsistentReads).toBe(0);
  }, 90_000);

  it('tears COPY-out readers without the fence, and not with it', async () => {
    const open = await copyRun(await bankProxy(false));
    const fenced = await copyRun(await bankProxy(true));
    console.log(
      `COPY readers: unfenced ${open.reads} reads, ${open.torn} torn (${open.transfers} transfers); ` +
        `fenced ${fenced.reads} reads, ${fenced.torn} torn (${fenced.transfers} transfers)`,
    );
    expect(open.reads).toBeGreaterThanOrEqual(READS_PER_RUN);
    expect(open.torn).toBeGreaterThan(0);
    expect(fenced.reads).toBeGreaterThanOrEqual(READS_PER_RUN);
    expect(fenced.torn).toBe(0);
  }, 180_000);

  it('fences commits without 2PC too (two_phase_commit = false, atomic_visibility = true)', async () => {
    const stats = await bankRun((await bankProxy(true, false)).url);
    console.log(
      `plain commits, fenced: ${stats.transfers} transfers, ${stats.reads} reads, ${stats.inconsistentReads} torn`,
    );
    expect(stats.reads).toBeGreaterThanOrEqual(READS_PER_RUN);
    expect(stats.transfers).toBeGreaterThanOrEqual(TRANSFERS_PER_RUN);
    expect(stats.inconsistentReads).toBe(0);
  }, 90_000);

  it('shows no torn read with the fence while each shard is restarted mid-run; writers recover, nothing is lost', async () => {
    const stopOne = cluster.stopOne?.bind(cluster);
    const startOne = cluster.startOne?.bind(cluster);
    if (stopOne === undefined || startOne === undefined) return; // external servers: cannot restart them
    const proxy = await bankProxy(
      true,
      true,
      'two_phase_commit_recovery_interval = 500\ntwo_phase_commit_orphan_timeout = 2000',
    );
    const stats = newBankStats();
    let isRunning = true;
    const work = runBank(
      {
        url: proxy.url,
        accounts: bankAccounts(ACCOUNTS_PER_SHARD),
        writers: 4,
        readers: 2,
        isRunning: () => isRunning,
        queryTimeoutMs: 30_000,
      },
      stats,
    );
    const restarts: string[] = [];
    try {
      // Shard 0 is every transfer's decision shard (its lowest writer): its restart cuts decision COMMITs (40003,
      // left to recovery with the fence held); shard 1's cuts PREPAREs and COMMIT PREPAREDs (retried, fence held).
      for (const shard of [0, 1]) {
        await transfersPast(stats, stats.transfers, 30);
        const before = { transfers: stats.transfers, reads: stats.reads };
        await stopOne(shard);
        await startOne(shard);
        restarts.push(`shard ${shard} restarted after ${before.transfers} transfers, ${before.reads} reads`);
      }
      await transfersPast(stats, stats.transfers, 30); // the writers recovered
    } finally {
      isRunning = false;
      await work;
    }
    for (const d of direct) await d.end().catch(() => undefined);
    direct = await directShardClients(cluster);
    const prepared = await preparedAfter(direct, 20_000);
    const end = await bankEnd(direct);
    console.log(
      `shard restarts, fenced: ${restarts.join('; ')}; in all ${stats.transfers} transfers ` +
        `(${stats.failedTransfers} failed), ${stats.reads} reads (${stats.failedReads} failed), ` +
        `${stats.inconsistentReads} torn; ${prepared} left prepared`,
    );
    expect(stats.inconsistentReads).toBe(0);
    expect(stats.reads).toBeGreaterThan(0);
    expect(stats.failedTransfers).toBeGreaterThan(0); // the restarts did cut into the work
    expect(prepared).toBe(0);
    expect(end.total).toBe(2 * ACCOUNTS_PER_SHARD * INITIAL_BALANCE);
    expect(end.halfApplied).toEqual([]);
    expect(end.badBalances).toBe(0);
  }, 180_000);
});
