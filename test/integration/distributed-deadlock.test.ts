// Distributed deadlocks through the proxy (issue 18): a wait cycle across shards — which no shard sees, each seeing one
// ordinary lock wait — is broken within deadlock_timeout plus a check: exactly one transaction (the youngest) gets
// 40P01 "deadlock detected" and is failed until ROLLBACK, the others commit; nothing stays prepared or locked. A long
// wait with no cycle and many short pooled transactions (backend pids reused) are never cancelled.
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

let cluster: PgCluster;
/** Two shards (servers 0 and 1), plain commit. */
let proxy2: TestProxy;
/** Three shards, two-phase commit. */
let proxy3: TestProxy;
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

/** Nothing prepared, no lock held by anyone on any shard (besides the asking connection's own). */
async function expectNothingLeft(): Promise<void> {
  for (const d of direct) {
    const prepared = await d.query('select gid from pg_prepared_xacts');
    expect(prepared.rows).toEqual([]);
    const waits = await d.query(
      `select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation
        where c.relname = 'accounts' and l.pid <> pg_backend_pid()`,
    );
    expect(waits.rows[0].n).toBe(0);
  }
}

/** Wait until the shard `shard` shows `n` backends waiting on a lock (the statements have reached their waits). */
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
  cluster = await testServers(3, APP_SERVER_OPTIONS);
  walDir = mkdtempSync(path.join(tmpdir(), 'sg-deadlock-'));
  proxy2 = await startTestProxy(cluster, {
    shards: 2,
    extraPgdog: ACCOUNTS_TOML,
    general: 'deadlock_timeout = 300',
    userExtra: 'pool_size = 6',
  });
  proxy3 = await startTestProxy(cluster, {
    shards: 3,
    extraPgdog: ACCOUNTS_TOML,
    general: `deadlock_timeout = 300\ntwo_phase_commit = true\ntwo_phase_commit_wal_dir = "${walDir}"\ninstance_id = "tdeadlock"`,
    userExtra: 'pool_size = 6',
  });
  direct = await directShardClients(cluster);
  for (const d of direct) {
    await d.query('create table accounts (id bigint primary key, balance bigint not null)');
    await d.query("set lock_timeout = '10s'");
  }
});

beforeEach(async () => {
  for (const d of direct) await d.query('truncate accounts');
});

afterEach(async () => {
  // A test that failed half-way leaves sessions in transactions: end them so the next test's TRUNCATE is not stuck.
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy2?.close();
  await proxy3?.close();
  await cluster?.stop();
  if (walDir !== undefined) rmSync(walDir, { recursive: true, force: true });
});

describe('distributed deadlock detection', () => {
  it('breaks a two-session cycle on two shards: one 40P01 (the younger), the other commits', async () => {
    const one = idOn(0, 1);
    const three = idOn(1, 1);
    const setup = await connect(proxy2);
    await setup.query(`insert into accounts values (${one}, 100), (${three}, 100)`);
    const a = await connect(proxy2);
    const b = await connect(proxy2);
    await a.query('begin');
    await a.query(`update accounts set balance = balance - 10 where id = ${one}`);
    await b.query('begin');
    await b.query(`update accounts set balance = balance - 20 where id = ${three}`);
    const started = performance.now();
    const aWaits = outcome(a.query(`update accounts set balance = balance + 10 where id = ${three}`));
    await waitForLockWaits(1);
    const bWaits = b.query(`update accounts set balance = balance + 20 where id = ${one}`).then(
      () => 'ok',
      (err: pg.DatabaseError) => {
        expect(err.message).toBe('deadlock detected');
        expect(err.detail).toMatch(
          /waits on shard 0 for session \d+; session \d+ waits on shard 1 for session/,
        );
        return err.code;
      },
    );
    // B began last: B is the victim; A's update goes on once B's locks are gone.
    expect(await bWaits).toBe('40P01');
    expect(await outcome(b.query('select 1'))).toBe('25P02');
    expect(await outcome(b.query('commit'))).toBe('ok'); // ROLLBACK, as PostgreSQL answers COMMIT of a failed block
    expect(await aWaits).toBe('ok');
    await a.query('commit');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(await balances([one, three])).toEqual([90, 110]);
    await expectNothingLeft();
  });

  it('breaks a three-session cycle on three shards with two-phase commit; the victim leaves nothing anywhere', async () => {
    const ids = [idOn(0, 1, 3), idOn(1, 1, 3), idOn(2, 1, 3)];
    const setup = await connect(proxy3);
    await setup.query(`insert into accounts values ${ids.map((id) => `(${id}, 100)`).join(', ')}`);
    const sessions = [await connect(proxy3), await connect(proxy3), await connect(proxy3)];
    // Session i takes row i (on shard i), then wants row i+1: a cycle 0 → 1 → 2 → 0 across the three shards.
    for (let i = 0; i < 3; i++) {
      await sessions[i].query('begin');
      await sessions[i].query(`update accounts set balance = balance + 1 where id = ${ids[i]}`);
    }
    const started = performance.now();
    const results: Promise<string>[] = [];
    for (let i = 0; i < 3; i++) {
      results.push(
        outcome(
          sessions[i].query(`update accounts set balance = balance + 1 where id = ${ids[(i + 1) % 3]}`),
        ),
      );
      await waitForLockWaits(Math.min(i + 1, 2));
    }
    // The youngest transaction (session 2, begun last) is cancelled; session 1 then gets its row, and once it
    // commits, session 0 gets its own.
    expect(await results[2]).toBe('40P01');
    expect(await outcome(sessions[2].query('commit'))).toBe('ok'); // answered ROLLBACK
    expect(await results[1]).toBe('ok');
    await sessions[1].query('commit');
    expect(await results[0]).toBe('ok');
    await sessions[0].query('commit');
    expect(performance.now() - started).toBeLessThan(2_000);
    // Sessions 0 and 1 added 1 to their own row and the next one; session 2's two updates are gone everywhere.
    expect(await balances(ids)).toEqual([101, 102, 101]);
    await expectNothingLeft();
  });

  it('leaves a long lock wait without a cycle alone (checked, not cancelled)', async () => {
    const one = idOn(0, 1);
    const three = idOn(1, 1);
    const four = idOn(1, three + 1);
    const setup = await connect(proxy2);
    await setup.query(`insert into accounts values (${one}, 100), (${three}, 100), (${four}, 100)`);
    const a = await connect(proxy2);
    const b = await connect(proxy2);
    await a.query('begin');
    await a.query(`update accounts set balance = 1 where id = ${one}`);
    await a.query(`update accounts set balance = 1 where id = ${three}`);
    await b.query('begin');
    await b.query(`update accounts set balance = 2 where id = ${four}`);
    const checksBefore = proxy2.proxy.deadlocks.checks;
    // B holds shard 1 and waits on shard 0 for A, which waits for nothing: a wait, no cycle.
    const bWaits = outcome(b.query(`update accounts set balance = 2 where id = ${one}`));
    const early = await Promise.race([
      bWaits,
      new Promise((resolve) => setTimeout(() => resolve('waiting'), 1_500)),
    ]);
    expect(early).toBe('waiting');
    expect(proxy2.proxy.deadlocks.checks).toBeGreaterThan(checksBefore);
    await a.query('commit');
    expect(await bWaits).toBe('ok');
    await b.query('commit');
    expect(await balances([one, three, four])).toEqual([2, 1, 2]);
    await expectNothingLeft();
  });

  it('breaks a cycle whose victim is an extended-protocol client (Parse/Bind/Execute/Sync)', async () => {
    const one = idOn(0, 1);
    const three = idOn(1, 1);
    const setup = await connect(proxy2);
    await setup.query(`insert into accounts values (${one}, 100), (${three}, 100)`);
    const simple = await connect(proxy2);
    const extended = await connect(proxy2);
    const update = 'update accounts set balance = balance + $1 where id = $2';
    await simple.query('begin');
    await simple.query(`update accounts set balance = balance - 5 where id = ${one}`);
    await extended.query('begin');
    await extended.query({ text: update, values: [-7, three], name: 'move' });
    const started = performance.now();
    const simpleWaits = outcome(
      simple.query(`update accounts set balance = balance + 5 where id = ${three}`),
    );
    await waitForLockWaits(1);
    const extendedWaits = outcome(extended.query({ text: update, values: [7, one], name: 'move' }));
    expect(await extendedWaits).toBe('40P01');
    // Failed until the end of the block, as PostgreSQL's would be; the prepared statement survives.
    expect(await outcome(extended.query({ text: update, values: [1, three], name: 'move' }))).toBe('25P02');
    await extended.query('rollback');
    expect(await simpleWaits).toBe('ok');
    await simple.query('commit');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(await outcome(extended.query({ text: update, values: [1, three], name: 'move' }))).toBe('ok');
    expect(await balances([one, three])).toEqual([95, 106]);
    await expectNothingLeft();
  });

  it('never cancels short pooled transactions that wait for each other in one order (backend pids reused)', async () => {
    const hot = idOn(0, 1);
    const own = Array.from({ length: 5 }, (_, i) => idOn(1, 100 + i * 10));
    // Fewer servers than workers (pool_size 3, 5 workers): backend pids must pass from one session to the next.
    const pooled = await startTestProxy(cluster, {
      shards: 2,
      extraPgdog: ACCOUNTS_TOML,
      general: 'deadlock_timeout = 300',
      userExtra: 'pool_size = 3',
    });
    const setup = await connect(pooled);
    await setup.query(`insert into accounts values (${hot}, 0), ${own.map((id) => `(${id}, 0)`).join(', ')}`);
    const deadlocksBefore = pooled.proxy.deadlocks.deadlocks;
    const checksBefore = pooled.proxy.deadlocks.checks;
    const workers = await Promise.all(own.map(() => connect(pooled)));
    const codes: string[] = [];
    /** Which workers each shard-0 backend pid served. */
    const pidUsers = new Map<number, Set<number>>();
    const until = performance.now() + 3_000;
    // Under load few transactions fit in 3 s: go on (up to 20 s) until some backend pid has served two sessions.
    const hardUntil = performance.now() + 20_000;
    const isPidShared = (): boolean => [...pidUsers.values()].some((users) => users.size >= 2);
    await Promise.all(
      workers.map(async (c, i) => {
        while (performance.now() < until || (!isPidShared() && performance.now() < hardUntil)) {
          // Each transaction holds shard 1 (its own row), then queues on shard 0 for the hot row held ~100 ms by
          // each one before it: waits well past deadlock_timeout, on servers passed from one transaction to the next.
          const code = await outcome(
            (async () => {
              await c.query('begin');
              await c.query(`update accounts set balance = balance + 1 where id = ${own[i]}`);
              const r = await c.query(
                `update accounts set balance = balance + 1 where id = ${hot} returning pg_backend_pid() as pid`,
              );
              const users = pidUsers.get(r.rows[0].pid) ?? new Set<number>();
              pidUsers.set(r.rows[0].pid, users.add(i));
              await c.query('select pg_sleep(0.1)');
              await c.query('commit');
            })(),
          );
          codes.push(code);
          if (code !== 'ok') await c.query('rollback').catch(() => undefined);
        }
      }),
    );
    expect(codes.filter((c) => c !== 'ok')).toEqual([]);
    expect(isPidShared()).toBe(true); // pids passed between sessions
    expect(pooled.proxy.deadlocks.checks).toBeGreaterThan(checksBefore);
    expect(pooled.proxy.deadlocks.deadlocks).toBe(deadlocksBefore);
    expect(await balances([hot])).toEqual([codes.length]);
    for (const c of clients.splice(0)) await c.end().catch(() => undefined);
    await pooled.close();
    await expectNothingLeft();
  });
});
