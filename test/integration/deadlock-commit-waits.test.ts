// Distributed deadlocks through a commit's own lock wait (issue 18): a COMMIT whose deferred unique check waits on
// one shard for another transaction's uncommitted row, while that transaction waits on another shard for a row lock
// of the committing one. The commit's statements (PREPARE TRANSACTION, the decision COMMIT, a plain COMMIT) are waits
// the check sees: the youngest transaction is the victim — cancelled in its commit while nothing is decided (its
// client gets 40P01 as the COMMIT's reply, nothing stays prepared) — and a commit that can no longer roll back
// everywhere (a plain COMMIT on 2+ writers) is never the victim: the other transaction is. Two commits whose
// deferred triggers wait for each other are seen too, with no client request in flight.
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

const TABLES_TOML = `
[[sharded_tables]]
database = "${APP_DB}"
name = "accounts"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "${APP_DB}"
name = "tokens"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "${APP_DB}"
name = "audits"
column = "id"
data_type = "bigint"
`;

let cluster: PgCluster;
/** Two shards, two-phase commit (the lower writer, shard 0, holds the decision). */
let twoPhase: TestProxy;
/** Two shards, plain commit. */
let plain: TestProxy;
let walDir: string;
let direct: pg.Client[];
const clients: pg.Client[] = [];

function connect(proxy: TestProxy): Promise<pg.Client> {
  return trackedClient(proxy, clients);
}

/** Nothing prepared and no lock on the test's tables held by anyone, on any shard. */
async function expectNothingLeft(): Promise<void> {
  for (const d of direct) {
    expect((await d.query('select gid from pg_prepared_xacts')).rows).toEqual([]);
    const locks = await d.query(
      `select count(*)::int as n from pg_locks l join pg_class c on c.oid = l.relation
        where c.relname in ('accounts', 'tokens', 'tokens_k', 'audits') and l.pid is distinct from pg_backend_pid()`,
    );
    expect(locks.rows[0].n).toBe(0);
  }
}

/** Wait until the shards show `n` lock waits in all (the statements have reached their waits). */
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

/** Rows of `table` (ids, ascending), read on the shards themselves. */
async function idsIn(table: 'tokens'): Promise<number[]> {
  const ids: number[] = [];
  for (const d of direct)
    for (const r of (await d.query(`select id from ${table}`)).rows) ids.push(Number(r.id));
  return ids.sort((x, y) => x - y);
}

async function balanceOf(id: number): Promise<number> {
  for (const d of direct) {
    const r = await d.query('select balance from accounts where id = $1', [id]);
    if (r.rows.length > 0) return Number(r.rows[0].balance);
  }
  return NaN;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  walDir = mkdtempSync(path.join(tmpdir(), 'sg-deadlock-commit-'));
  twoPhase = await startTestProxy(cluster, {
    shards: 2,
    extraPgdog: TABLES_TOML,
    general: `deadlock_timeout = 300\ntwo_phase_commit = true\ntwo_phase_commit_wal_dir = "${walDir}"\ninstance_id = "tdlcommit"`,
    userExtra: 'pool_size = 6',
  });
  plain = await startTestProxy(cluster, {
    shards: 2,
    extraPgdog: TABLES_TOML,
    general: 'deadlock_timeout = 300',
    userExtra: 'pool_size = 6',
  });
  direct = await directShardClients(cluster);
  for (const d of direct) {
    await d.query('create table accounts (id bigint primary key, balance bigint not null)');
    await d.query(
      'create table tokens (id bigint primary key, k int not null, constraint tokens_k unique (k) deferrable initially deferred)',
    );
    // A deferred constraint trigger that, at commit, adds 1 to the account an audit row names (a row lock then).
    await d.query('create table audits (id bigint primary key, account bigint not null)');
    await d.query(`create function audit_touch() returns trigger language plpgsql as $$
      begin update accounts set balance = balance + 1 where id = new.account; return null; end $$`);
    await d.query(`create constraint trigger audits_touch after insert on audits
      deferrable initially deferred for each row execute function audit_touch()`);
  }
});

beforeEach(async () => {
  for (const d of direct) await d.query('truncate accounts, tokens, audits');
});

afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await twoPhase?.close();
  await plain?.close();
  await cluster?.stop();
  if (walDir !== undefined) rmSync(walDir, { recursive: true, force: true });
});

/**
 * A and B (B begun last) each insert a token with the same key on shard `tokenShard` (the deferred unique check
 * lets both in); B locks a row of the other shard, which A then wants (A waits for B); B's COMMIT checks its token
 * and waits for A's uncommitted one (B waits for A).
 */
async function crossing(
  proxy: TestProxy,
  tokenShard: number,
): Promise<{ a: pg.Client; b: pg.Client; aWaits: Promise<string>; bCommits: Promise<unknown>; row: number }> {
  const rowShard = 1 - tokenShard;
  const row = idOn(rowShard, 1);
  const aToken = idOn(tokenShard, 1);
  const bToken = idOn(tokenShard, aToken + 1);
  const setup = await connect(proxy);
  await setup.query(`insert into accounts values (${row}, 100)`);
  const a = await connect(proxy);
  const b = await connect(proxy);
  await a.query('begin');
  await a.query(`insert into tokens values (${aToken}, 7)`);
  await b.query('begin');
  await b.query(`insert into tokens values (${bToken}, 7)`);
  await b.query(`update accounts set balance = balance - 20 where id = ${row}`);
  const aWaits = outcome(a.query(`update accounts set balance = balance + 10 where id = ${row}`));
  await waitForLockWaits(1);
  const bCommits = b.query('commit');
  bCommits.catch(() => undefined); // awaited by the test
  return { a, b, aWaits, bCommits, row };
}

describe('distributed deadlocks through a commit', () => {
  for (const [tokenShard, step] of [
    [1, 'PREPARE TRANSACTION'],
    [0, 'the decision COMMIT'],
  ] as const) {
    it(`two-phase commit: cancels the youngest transaction's ${step} (40P01 as the COMMIT's reply), the other commits`, async () => {
      const deadlocksBefore = twoPhase.proxy.deadlocks.deadlocks;
      const { a, aWaits, bCommits, row } = await crossing(twoPhase, tokenShard);
      const started = performance.now(); // B's COMMIT was just sent
      const err = (await bCommits.then(
        () => null,
        (e: pg.DatabaseError) => e,
      )) as pg.DatabaseError | null;
      expect(err?.code).toBe('40P01');
      expect(err?.message).toBe('deadlock detected');
      expect(err?.detail).toMatch(new RegExp(`waits on shard ${tokenShard} for session \\d+`));
      expect(await aWaits).toBe('ok');
      await a.query('commit');
      expect(performance.now() - started).toBeLessThan(2_000);
      expect(twoPhase.proxy.deadlocks.deadlocks).toBe(deadlocksBefore + 1);
      // B is rolled back everywhere: its token is gone, its update too; A's token and update stay.
      expect(await idsIn('tokens')).toEqual([idOn(tokenShard, 1)]);
      expect(await balanceOf(row)).toBe(110);
      await expectNothingLeft();
    });
  }

  it('a plain COMMIT on two writers is never the victim (one may have committed): the other transaction is', async () => {
    // C, then A, then B (the youngest) begin. Shard 0: A and B insert token 7, B's commit there waits for A's.
    // Shard 1: C and B insert token 8, B's commit there waits for C's; B locked row R there, which A waits for.
    // A and B wait for each other across the shards (C, idle, waits for nothing); B's two COMMITs are out, so it
    // cannot be rolled back everywhere: A, the older, is the victim.
    const row = idOn(1, 1);
    const [aToken, bToken0] = [idOn(0, 1), idOn(0, idOn(0, 1) + 1)];
    const [cToken, bToken1] = [idOn(1, row + 1), idOn(1, idOn(1, row + 1) + 1)];
    const setup = await connect(plain);
    await setup.query(`insert into accounts values (${row}, 100)`);
    const deadlocksBefore = plain.proxy.deadlocks.deadlocks;
    const [a, b, c] = [await connect(plain), await connect(plain), await connect(plain)];
    await c.query('begin');
    await c.query(`insert into tokens values (${cToken}, 8)`);
    await a.query('begin');
    await a.query(`insert into tokens values (${aToken}, 7)`);
    await b.query('begin');
    await b.query(`insert into tokens values (${bToken0}, 7), (${bToken1}, 8)`);
    await b.query(`update accounts set balance = balance - 20 where id = ${row}`);
    const started = performance.now();
    const aWaits = outcome(a.query(`update accounts set balance = balance + 10 where id = ${row}`));
    await waitForLockWaits(1);
    const bCommits = outcome(b.query('commit'));
    expect(await aWaits).toBe('40P01');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(plain.proxy.deadlocks.deadlocks).toBe(deadlocksBefore + 1);
    await a.query('rollback'); // B's shard-0 COMMIT goes on; its shard-1 COMMIT still waits for C
    await c.query('rollback');
    expect(await bCommits).toBe('ok');
    expect(await idsIn('tokens')).toEqual([bToken0, bToken1].sort((x, y) => x - y));
    expect(await balanceOf(row)).toBe(80);
    await expectNothingLeft();
  });

  it('two commits waiting for each other (no client request in flight): the younger commit is cancelled', async () => {
    // A locks R0 (shard 0) and leaves an audit row on shard 1 whose deferred trigger updates R1 at commit; B the other
    // way round. Both COMMIT: A's PREPARE on shard 1 waits for B's lock on R1 (B's branch there prepared by then);
    // B's decision COMMIT on shard 0 runs its trigger and waits for A's lock on R0. Only commits wait.
    const [r0, r1] = [idOn(0, 1), idOn(1, 1)];
    const [aAudit, bAudit] = [idOn(1, r1 + 1), idOn(0, r0 + 1)];
    const setup = await connect(twoPhase);
    await setup.query(`insert into accounts values (${r0}, 100), (${r1}, 100)`);
    const deadlocksBefore = twoPhase.proxy.deadlocks.deadlocks;
    const a = await connect(twoPhase);
    const b = await connect(twoPhase);
    await a.query('begin');
    await a.query(`update accounts set balance = balance - 10 where id = ${r0}`);
    await a.query(`insert into audits values (${aAudit}, ${r1})`);
    await b.query('begin');
    await b.query(`update accounts set balance = balance - 20 where id = ${r1}`);
    await b.query(`insert into audits values (${bAudit}, ${r0})`);
    // Past deadlock_timeout with nothing in flight: the check's timer has stopped; the commits alone must restart it.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const started = performance.now();
    const aCommits = outcome(a.query('commit'));
    await waitForLockWaits(1);
    const bCommits = outcome(b.query('commit'));
    expect(await bCommits).toBe('40P01');
    expect(await aCommits).toBe('ok');
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(twoPhase.proxy.deadlocks.deadlocks).toBe(deadlocksBefore + 1);
    // A's update of R0 and its trigger's +1 on R1 stay; nothing of B does.
    expect([await balanceOf(r0), await balanceOf(r1)]).toEqual([90, 101]);
    await expectNothingLeft();
  });
});
