// Atomic visibility (issue 14) on 2 real shards, through an in-process proxy with two_phase_commit and the fence:
// a long fan-out reader does not hold up cross-shard commits (it leaves the fence once its snapshots exist); a
// SELECT … FOR UPDATE fan-out waiting for a prepared transaction's rows does not deadlock with its phase 2; a reader
// behind a phase 2 that does not finish gets 40001 naming the transaction after atomic_visibility_timeout, and reads
// the whole transfer once it finished; the fence's waits and timeouts show in SHOW STATS and the metrics; a REPEATABLE
// READ / SERIALIZABLE block that reads shard 0 then shard 1 in two statements sees one cut while transfers run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { clearFailpoints } from '../../src/txn/failpoints.js';
import { holdAt } from '../helpers/failpoint-hold.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients } from '../helpers/sharding.js';
import { BANK_SCHEMA, BANK_SHARDING_TOML, bankAccounts, INITIAL_BALANCE } from '../fault/bank-workload.js';

const PER_SHARD = 5;
const TIMEOUT_MS = 1_500;
let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let walDir: string;
const accounts = bankAccounts(PER_SHARD);
const TOTAL = 2 * PER_SHARD * INITIAL_BALANCE;

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** One cross-shard transfer through `c` (2PC: writes on both shards); resolves with its COMMIT's duration, ms. */
async function transfer(c: pg.Client, amount: number): Promise<number> {
  await c.query('begin');
  await c.query('update accounts set balance = balance - $1 where id = $2', [amount, accounts[0][0]]);
  await c.query('update accounts set balance = balance + $1 where id = $2', [amount, accounts[1][0]]);
  const t0 = performance.now();
  await c.query('commit');
  return performance.now() - t0;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  direct = await directShardClients(cluster);
  for (const [shard, d] of direct.entries()) {
    for (const sql of BANK_SCHEMA) await d.query(sql);
    await d.query(`insert into accounts select unnest($1::bigint[]), ${INITIAL_BALANCE}`, [accounts[shard]]);
  }
  walDir = mkdtempSync(join(tmpdir(), 'shardgate-vis-'));
  proxy = await startTestProxy(cluster, {
    general:
      `two_phase_commit = true\ninstance_id = "visint"\ntwo_phase_commit_wal_dir = "${walDir}"\n` +
      `atomic_visibility_timeout = ${TIMEOUT_MS}`,
    extraPgdog: BANK_SHARDING_TOML(APP_DB),
  });
});

afterEach(() => clearFailpoints());

afterAll(async () => {
  await proxy?.close();
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await cluster?.stop();
  if (walDir) rmSync(walDir, { recursive: true, force: true });
});

describe('atomic visibility', () => {
  it('a long reader over 2 shards does not delay concurrent two-phase commits', async () => {
    const reader = await connect();
    const writer = await connect();
    try {
      await transfer(writer, 1); // warm: servers checked out, statements planned
      await reader.query('select sum(balance) from accounts');
      const t0 = performance.now();
      const read = reader.query<{ total: string }>(
        'select sum(balance) as total from accounts, (select pg_sleep(3)) as s',
      );
      await new Promise((r) => setTimeout(r, 300)); // the reader is running (sleeping) on both shards
      const commitMs = await transfer(writer, 7);
      const r = await read;
      const readMs = performance.now() - t0;
      console.log(
        `long reader: COMMIT took ${commitMs.toFixed(1)} ms while the reader ran ${readMs.toFixed(0)} ms`,
      );
      expect(readMs).toBeGreaterThan(2_900);
      expect(commitMs).toBeLessThan(1_000); // not held for the reader's 3 s
      expect(Number(r.rows[0].total)).toBe(TOTAL);
    } finally {
      await reader.end();
      await writer.end();
    }
  });

  it('a SELECT … FOR UPDATE fan-out and a prepared transaction holding its rows do not deadlock', async () => {
    const reader = await connect();
    const writer = await connect();
    try {
      // Hold the transfer with its rows locked on both shards (prepared on one, the decision row inserted on the other)
      // until the reader waits for those locks.
      const { reached: prepared, release } = holdAt('after_decision_row');
      const commit = transfer(writer, 3);
      await prepared;
      const locked = reader.query<{ id: string; balance: string }>(
        `select id, balance from accounts where id = any($1) for update`,
        [[accounts[0][0], accounts[1][0]]],
      );
      await new Promise((r) => setTimeout(r, 300)); // the reader waits for the prepared rows' locks
      const t0 = performance.now();
      release();
      await commit;
      const commitMs = performance.now() - t0;
      const rows = (await locked).rows;
      console.log(`FOR UPDATE reader: phase 2 took ${commitMs.toFixed(1)} ms`);
      expect(commitMs).toBeLessThan(TIMEOUT_MS); // not held until the reader's bound
      expect(rows.map((r) => Number(r.balance)).reduce((a, b) => a + b, 0)).toBe(
        // both rows as committed by every transfer so far (READ COMMITTED FOR UPDATE reads the newest versions)
        Number(
          (await direct[0].query('select balance from accounts where id = $1', [accounts[0][0]])).rows[0]
            .balance,
        ) +
          Number(
            (await direct[1].query('select balance from accounts where id = $1', [accounts[1][0]])).rows[0]
              .balance,
          ),
      );
    } finally {
      await reader.end();
      await writer.end();
    }
  });

  it('a reader behind a phase 2 that does not finish gets 40001 naming the transaction, then the whole transfer', async () => {
    const reader = await connect();
    const writer = await connect();
    const admin = new pg.Client({
      connectionString: `postgres://admin:admin@127.0.0.1:${proxy.port}/admin`,
    });
    await admin.connect();
    try {
      const { reached: decided, release } = holdAt('after_decision');
      const commit = transfer(writer, 5);
      await decided; // decided, holding the fence, COMMIT PREPARED not sent yet
      const t0 = performance.now();
      const err = await reader.query('select sum(balance) as total from accounts').then(
        () => null,
        (e: unknown) => e as { code?: string; message: string; detail?: string },
      );
      const waitedMs = performance.now() - t0;
      expect(err?.code).toBe('40001');
      expect(err?.message).toMatch(/atomic_visibility_timeout \(1500 ms\)/);
      expect(err?.detail).toMatch(/shard 0 is held by cross-shard transaction \S+ while it becomes visible/);
      expect(waitedMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
      const stats = await admin.query('show stats');
      const shard0 = stats.rows.find(
        (r: Record<string, string>) => r.database === APP_DB && Number(r.shard) === 0,
      );
      expect(Number(shard0.fence_timeouts)).toBeGreaterThanOrEqual(1);
      expect(Number(shard0.fence_reader_waits)).toBeGreaterThanOrEqual(0);
      release();
      await commit;
      // The connection is usable and the retried read sees the whole transfer.
      const r = await reader.query<{ total: string }>('select sum(balance) as total from accounts');
      expect(Number(r.rows[0].total)).toBe(TOTAL);
    } finally {
      clearFailpoints();
      await admin.end();
      await reader.end();
      await writer.end();
    }
  });

  it('a reload that adds a shard while a commit is between its decision and COMMIT PREPARED keeps readers fenced', async () => {
    const reader = await connect();
    const writer = await connect();
    const filesBefore = proxy.files.pgdog;
    try {
      await reader.query('select sum(balance) from accounts'); // the fence exists before the reload
      const { reached: decided, release } = holdAt('after_decision');
      const commit = transfer(writer, 11);
      await decided; // decided, holding the fence on both shards, COMMIT PREPARED not sent yet
      const s = cluster.servers[0];
      proxy.files.pgdog +=
        `\n[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\n` +
        `database_name = "${APP_DB}"\nshard = 2\n`;
      const outcome = proxy.proxy.reload();
      // The shard layout is kept until a restart: the database still has 2 shards, and its fence its open section.
      expect(outcome).toMatchObject({ ok: true });
      expect(outcome.ok && outcome.needsRestart).toContain(`databases."${APP_DB}": shards or roles`);
      const t0 = performance.now();
      const read = reader.query<{ total: string }>('select sum(balance) as total from accounts');
      await new Promise((r) => setTimeout(r, 300));
      release();
      await commit;
      const r = await read;
      expect(performance.now() - t0).toBeGreaterThanOrEqual(250); // it waited for the held commit
      expect(Number(r.rows[0].total)).toBe(TOTAL);
    } finally {
      clearFailpoints();
      proxy.files.pgdog = filesBefore;
      proxy.proxy.reload();
      await reader.end();
      await writer.end();
    }
  });

  it('a REPEATABLE READ / SERIALIZABLE block reading each shard in its own statement sees one cut while transfers run', async () => {
    const writers = [await connect(), await connect()];
    const reader = await connect();
    const sumOn = (shard: number): string =>
      `select sum(balance) as s from accounts where id in (${accounts[shard].join(', ')})`;
    /** `blocks` blocks opened by `begin` (more statements after it), each reading shard 0 then shard 1; wrong totals. */
    const readBlocks = async (begin: string[], blocks: number): Promise<number> => {
      let wrong = 0;
      for (let i = 0; i < blocks; i++) {
        for (const sql of begin) await reader.query(sql);
        const a = await reader.query<{ s: string }>(sumOn(0));
        const b = await reader.query<{ s: string }>(sumOn(1));
        await reader.query('commit');
        if (Number(a.rows[0].s) + Number(b.rows[0].s) !== TOTAL) wrong++;
      }
      return wrong;
    };
    let isRunning = true;
    let transfers = 0;
    const work = writers.map(async (w) => {
      while (isRunning) {
        await transfer(w, 1);
        transfers++;
      }
    });
    try {
      const BLOCKS = 100;
      // READ COMMITTED: each statement has its own snapshot, so the two sums can straddle a transfer (the check fails).
      const perStatement = await readBlocks(['begin'], BLOCKS);
      const repeatable = await readBlocks(['begin isolation level repeatable read'], BLOCKS);
      const setTransaction = await readBlocks(
        ['begin', 'set transaction isolation level serializable'],
        BLOCKS,
      );
      console.log(
        `two-statement blocks while ${transfers} transfers ran: read committed ${perStatement}/${BLOCKS} wrong, ` +
          `repeatable read ${repeatable}/${BLOCKS}, serializable (SET TRANSACTION) ${setTransaction}/${BLOCKS}`,
      );
      expect(perStatement).toBeGreaterThan(0);
      expect(repeatable).toBe(0);
      expect(setTransaction).toBe(0);
    } finally {
      isRunning = false;
      await Promise.all(work);
      for (const c of [...writers, reader]) await c.end();
    }
  }, 120_000);
});
