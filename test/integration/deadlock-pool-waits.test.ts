// Distributed deadlocks closed through the proxy's own pools (issue 18): a transaction waiting to check a server out
// of a pool waits for any one of the transactions holding that pool's servers. When every holder is blocked in turn
// (a knot), the youngest transaction of the knot gets 40P01 within deadlock_timeout plus a check — long before
// checkout_timeout — the others commit, nothing stays locked; a checkout that waits for a holder that is merely slow
// is never failed. Real PostgreSQL shards, pool_size 1 or 2 per shard (2: with two-phase commit, so the survivors
// commit on both shards through it and nothing is left prepared).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { outcome, trackedClient } from '../helpers/outcome.js';
import { directShardClients, idOn } from '../helpers/sharding.js';

const ACCOUNTS_TOML = `
[[sharded_tables]]
database = "${APP_DB}"
name = "accounts"
column = "id"
data_type = "bigint"
`;

/** checkout_timeout far above the 2 s a knot may take to break: a 40P01 cannot be the pool timeout. */
const GENERAL = 'deadlock_timeout = 300\ncheckout_timeout = 15000';

let cluster: PgCluster;
/** One server per shard. */
let single: TestProxy;
/** Two servers per shard, two-phase commit. */
let double: TestProxy;
let walDir: string;
let direct: pg.Client[];
const clients: pg.Client[] = [];

function connect(proxy: TestProxy): Promise<pg.Client> {
  return trackedClient(proxy, clients);
}

/** Balances of `ids`, read on the shards themselves. */
async function balances(ids: number[]): Promise<number[]> {
  const out: number[] = [];
  for (const id of ids) {
    let found: number | null = null;
    for (const d of direct) {
      const r = await d.query('select balance from accounts where id = $1', [id]);
      if (r.rows.length > 0) found = Number(r.rows[0].balance);
    }
    out.push(found ?? NaN);
  }
  return out;
}

/** No lock on accounts held by anyone on any shard (besides the asking connection's own), nothing prepared. */
async function expectNothingLeft(): Promise<void> {
  for (const d of direct) {
    expect((await d.query('select gid from pg_prepared_xacts')).rows).toEqual([]);
    const locks = await d.query(
      `select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation
        where c.relname = 'accounts' and l.pid <> pg_backend_pid()`,
    );
    expect(locks.rows[0].n).toBe(0);
  }
}

/** Wait until the proxy's pools (SHOW POOLS on its admin console) have `n` checkouts queued in all. */
async function waitForCheckouts(proxy: TestProxy, n: number): Promise<void> {
  const admin = new pg.Client({
    host: '127.0.0.1',
    port: proxy.port,
    user: 'admin',
    password: 'admin',
    database: 'admin',
  });
  await admin.connect();
  try {
    for (let i = 0; i < 500; i++) {
      const pools = await admin.query<{ database: string; cl_waiting: string }>('SHOW POOLS');
      const queued = pools.rows
        .filter((r) => r.database === APP_DB)
        .reduce((sum, r) => sum + Number(r.cl_waiting), 0);
      if (queued >= n) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`never saw ${n} checkouts queued`);
  } finally {
    await admin.end();
  }
}

/** Wait until the shards show `n` backends waiting on a lock. */
async function waitForLockWaits(n: number): Promise<void> {
  for (let i = 0; i < 500; i++) {
    let total = 0;
    for (const d of direct) {
      const r = await d.query(`select count(*)::int as n from pg_locks where not granted`);
      total += r.rows[0].n as number;
    }
    if (total >= n) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`never saw ${n} lock waits`);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  single = await startTestProxy(cluster, {
    shards: 2,
    extraPgdog: ACCOUNTS_TOML,
    general: GENERAL,
    userExtra: 'pool_size = 1',
  });
  walDir = mkdtempSync(path.join(tmpdir(), 'sg-deadlock-pool-'));
  double = await startTestProxy(cluster, {
    shards: 2,
    extraPgdog: ACCOUNTS_TOML,
    general: `${GENERAL}\ntwo_phase_commit = true\ntwo_phase_commit_wal_dir = "${walDir}"\ninstance_id = "tdlpool"`,
    userExtra: 'pool_size = 2',
  });
  direct = await directShardClients(cluster);
  for (const d of direct) {
    await d.query('create table accounts (id bigint primary key, balance bigint not null)');
  }
});

beforeEach(async () => {
  for (const d of direct) await d.query('truncate accounts');
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await single?.close();
  await double?.close();
  await cluster?.stop();
  if (walDir !== undefined) rmSync(walDir, { recursive: true, force: true });
});

describe('distributed deadlocks through pool checkouts', () => {
  it('breaks a knot of two checkouts (pool_size 1): the younger gets 40P01, its servers go to the other', async () => {
    const zero = idOn(0, 1);
    const one = idOn(1, 1);
    const setup = await connect(single);
    await setup.query(`insert into accounts values (${zero}, 100), (${one}, 100)`);
    const a = await connect(single);
    const b = await connect(single);
    await setup.end(); // its servers are back in the pools before anyone begins
    const deadlocksBefore = single.proxy.deadlocks.deadlocks;
    await a.query('begin');
    await a.query(`update accounts set balance = balance - 10 where id = ${zero}`); // A holds shard 0's only server
    await b.query('begin');
    await b.query(`update accounts set balance = balance - 20 where id = ${one}`); // B holds shard 1's
    const started = performance.now();
    const aWaits = outcome(a.query(`update accounts set balance = balance + 10 where id = ${one}`));
    await waitForCheckouts(single, 1);
    let detail = '';
    const bWaits = b.query(`update accounts set balance = balance + 20 where id = ${zero}`).then(
      () => 'ok',
      (err: pg.DatabaseError) => {
        expect(err.message).toBe('deadlock detected');
        detail = err.detail ?? '';
        return err.code;
      },
    );
    expect(await bWaits).toBe('40P01');
    expect(detail).toMatch(/session \d+ waits for a server of shard 0, held by session \d+/);
    expect(detail).toMatch(/session \d+ waits for a server of shard 1, held by session \d+/);
    // Failed until the end of the block, as PostgreSQL's would be; its COMMIT is answered ROLLBACK.
    expect(await outcome(b.query('select 1'))).toBe('25P02');
    expect(await outcome(b.query('savepoint s'))).toBe('25P02');
    expect((await b.query('commit')).command).toBe('ROLLBACK');
    expect(await aWaits).toBe('ok');
    await a.query('commit');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(single.proxy.deadlocks.deadlocks).toBe(deadlocksBefore + 1);
    expect(await balances([zero, one])).toEqual([90, 110]);
    // The victim's session goes on normally after its ROLLBACK.
    await b.query('begin');
    await b.query(`update accounts set balance = balance + 1 where id = ${one}`);
    await b.query(`update accounts set balance = balance + 1 where id = ${zero}`);
    await b.query('commit');
    expect(await balances([zero, one])).toEqual([91, 111]);
    await expectNothingLeft();
  });

  it('breaks a knot of a lock wait and two checkouts (pool_size 2); the youngest, waiting in a pool, gets 40P01', async () => {
    const x = idOn(0, 1);
    const y = idOn(1, 1);
    const z = idOn(1, y + 1);
    const w = idOn(1, z + 1);
    const setup = await connect(double);
    await setup.query(`insert into accounts values (${x}, 0), (${y}, 0), (${z}, 0), (${w}, 0)`);
    const [a, b, c] = [await connect(double), await connect(double), await connect(double)];
    await setup.end();
    const deadlocksBefore = double.proxy.deadlocks.deadlocks;
    await a.query('begin');
    await a.query(`update accounts set balance = balance + 1 where id = ${x}`); // A: a shard-0 server, row x
    await b.query('begin');
    await b.query(`update accounts set balance = balance + 1 where id = ${y}`); // B: a shard-1 server
    await c.query('begin');
    await c.query(`update accounts set balance = balance + 1 where id = ${z}`); // C: the other shard-1 server
    const started = performance.now();
    // B takes the second shard-0 server and waits there for A's row lock.
    const bWaits = outcome(b.query(`update accounts set balance = balance + 1 where id = ${x}`));
    await waitForLockWaits(1);
    // C waits for a shard-0 server (A and B hold both); A waits for a shard-1 server (B and C hold both).
    const cWaits = outcome(c.query(`update accounts set balance = balance + 1 where id = ${x}`));
    await waitForCheckouts(double, 1);
    const aWaits = outcome(a.query(`update accounts set balance = balance + 1 where id = ${w}`));
    // C began last: its checkout is failed; its shard-1 server goes to A, which commits; then B gets row x.
    expect(await cWaits).toBe('40P01');
    expect(await aWaits).toBe('ok');
    await a.query('commit');
    expect(await bWaits).toBe('ok');
    await b.query('commit');
    expect((await c.query('rollback')).command).toBe('ROLLBACK');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(double.proxy.deadlocks.deadlocks).toBe(deadlocksBefore + 1);
    // A added 1 to x and w, B to y and x; C's update of z is gone.
    expect(await balances([x, y, z, w])).toEqual([2, 1, 0, 1]);
    await expectNothingLeft();
  });

  it('breaks a knot whose youngest transaction waits on a lock: its statement is cancelled, its ROLLBACK frees the pool', async () => {
    const x = idOn(0, 1);
    const y = idOn(1, 1);
    const z = idOn(1, y + 1);
    const w = idOn(1, z + 1);
    const setup = await connect(double);
    await setup.query(`insert into accounts values (${x}, 0), (${y}, 0), (${z}, 0), (${w}, 0)`);
    const [a, b, c] = [await connect(double), await connect(double), await connect(double)];
    await setup.end();
    const deadlocksBefore = double.proxy.deadlocks.deadlocks;
    // Begun in the order C, A, B: B is the youngest.
    await c.query('begin');
    await c.query(`update accounts set balance = balance + 1 where id = ${z}`); // C: a shard-1 server
    await a.query('begin');
    await a.query(`update accounts set balance = balance + 1 where id = ${x}`); // A: a shard-0 server, row x
    await b.query('begin');
    await b.query(`update accounts set balance = balance + 1 where id = ${y}`); // B: the other shard-1 server
    const started = performance.now();
    let detail = '';
    const bWaits = b.query(`update accounts set balance = balance + 1 where id = ${x}`).then(
      () => 'ok',
      (err: pg.DatabaseError) => {
        detail = err.detail ?? '';
        return err.code;
      },
    );
    await waitForLockWaits(1);
    const cWaits = outcome(c.query(`update accounts set balance = balance + 1 where id = ${x}`));
    await waitForCheckouts(double, 1);
    const aWaits = outcome(a.query(`update accounts set balance = balance + 1 where id = ${w}`));
    expect(await bWaits).toBe('40P01');
    expect(detail).toMatch(/waits on shard 0 for session \d+/);
    expect(detail).toMatch(/waits for a server of shard 1, held by session \d+/);
    await b.query('rollback'); // gives B's servers back: A gets a shard-1 server
    expect(await aWaits).toBe('ok');
    await a.query('commit'); // and C gets a shard-0 server and row x
    expect(await cWaits).toBe('ok');
    await c.query('commit');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(double.proxy.deadlocks.deadlocks).toBe(deadlocksBefore + 1);
    expect(await balances([x, y, z, w])).toEqual([2, 0, 1, 1]);
    await expectNothingLeft();
  });

  it('never fails a checkout that waits for a holder that is only slow (no knot)', async () => {
    const zero = idOn(0, 1);
    const one = idOn(1, 1);
    const setup = await connect(single);
    await setup.query(`insert into accounts values (${zero}, 0), (${one}, 0)`);
    const a = await connect(single);
    const b = await connect(single);
    await setup.end();
    const deadlocksBefore = single.proxy.deadlocks.deadlocks;
    const checksBefore = single.proxy.deadlocks.checks;
    await a.query('begin');
    await a.query(`update accounts set balance = balance + 1 where id = ${zero}`); // A: shard 0's only server
    await b.query('begin');
    await b.query(`update accounts set balance = balance + 1 where id = ${one}`); // B: shard 1's
    // A runs a slow statement on shard 0 while B, holding shard 1, waits for shard 0's server: a wait, no knot.
    const aSlow = outcome(a.query('select pg_sleep(1.5)'));
    const bWaits = outcome(b.query(`update accounts set balance = balance + 1 where id = ${zero}`));
    const early = await Promise.race([
      bWaits,
      new Promise((resolve) => setTimeout(() => resolve('waiting'), 1_200)),
    ]);
    expect(early).toBe('waiting');
    expect(single.proxy.deadlocks.checks).toBeGreaterThan(checksBefore); // it was looked at
    expect(await aSlow).toBe('ok');
    // A stays idle in its transaction for a while: still no knot (an idle holder can go on).
    await new Promise((resolve) => setTimeout(resolve, 700));
    await a.query('commit');
    expect(await bWaits).toBe('ok');
    await b.query('commit');
    expect(single.proxy.deadlocks.deadlocks).toBe(deadlocksBefore);
    expect(await balances([zero, one])).toEqual([2, 1]); // both updated row zero, one after the other
    await expectNothingLeft();
  });

  it('breaks a knot through a statement that got one server and waits for the other shard (outside a transaction)', async () => {
    const zero = idOn(0, 1);
    const one = idOn(1, 1);
    const setup = await connect(single);
    await setup.query(`insert into accounts values (${zero}, 0), (${one}, 0)`);
    const a = await connect(single);
    const x = await connect(single);
    await setup.end();
    const deadlocksBefore = single.proxy.deadlocks.deadlocks;
    await a.query('begin');
    await a.query(`update accounts set balance = balance + 1 where id = ${one}`); // A: shard 1's only server
    const started = performance.now();
    // X's read of both shards gets shard 0's server at once and waits for shard 1's; A then waits for shard 0's.
    const xReads = outcome(x.query('select sum(balance) from accounts'));
    await waitForCheckouts(single, 1);
    const aWaits = outcome(a.query(`update accounts set balance = balance + 1 where id = ${zero}`));
    // X's wait began last: its statement fails, the shard-0 server it held goes to A.
    expect(await xReads).toBe('40P01');
    expect(await aWaits).toBe('ok');
    await a.query('commit');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(single.proxy.deadlocks.deadlocks).toBe(deadlocksBefore + 1);
    // Outside a transaction nothing stays failed: X's next statement runs.
    expect((await x.query('select sum(balance)::int as s from accounts')).rows[0].s).toBe(2);
    await expectNothingLeft();
  });
});
