// Two-phase commit on 2 real PostgreSQL shards: a transaction writing on both commits through PREPARE TRANSACTION /
// COMMIT PREPARED (seen on the shards while it runs), single-shard and read-only transactions keep plain COMMIT,
// auto-2PC for a multi-shard UPDATE, phase-1 failure (deferred constraint trigger) rolls back everywhere, phase-2
// failure (shard stopped between the phases) is finished by background retries once the shard is back.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { clearFailpoints, setFailpoint } from '../../src/txn/failpoints.js';
import { parseGid } from '../../src/txn/gid.js';
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
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let client: pg.Client;
let walDir: string;

async function preparedOn(shard: number): Promise<string[]> {
  const r = await direct[shard].query<{ gid: string }>('select gid from pg_prepared_xacts order by gid');
  return r.rows.map((row) => row.gid);
}

async function rowsOn(shard: number, ids: number[]): Promise<number> {
  const r = await direct[shard].query('select 1 from users where id = any($1)', [ids]);
  return r.rowCount ?? 0;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** On shard 1 only: a deferred constraint trigger that fails at commit (so at PREPARE) for rows named 'boom'. */
async function installBoomTrigger(): Promise<void> {
  await direct[1].query(`
    create or replace function no_boom() returns trigger language plpgsql as $$
    begin
      if new.name = 'boom' then raise exception 'boom is not allowed' using errcode = 'P0001'; end if;
      return new;
    end $$;
    create constraint trigger no_boom after insert on users deferrable initially deferred
      for each row execute function no_boom();`);
}

/** Decision rows (committed, so visible to another session) on shard 0, the decision shard of these tests. */
async function decisionRows(): Promise<{ txid: string; committed: boolean }[]> {
  return (await direct[0].query('select txid, committed from shardgate.decisions order by txid')).rows;
}

/**
 * Records the prepared transactions on both shards, and the decision rows on shard 0, when phase 1 is over (the
 * decision row inserted, not committed yet).
 */
function watchPrepared(): { seen: string[][] | null; rows: { txid: string }[] | null } {
  const box: { seen: string[][] | null; rows: { txid: string }[] | null } = { seen: null, rows: null };
  setFailpoint('after_decision_row', {
    kind: 'call',
    fn: async () => {
      box.seen = [await preparedOn(0), await preparedOn(1)];
      box.rows = await decisionRows();
    },
  });
  return box;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  walDir = mkdtempSync(join(tmpdir(), 'shardgate-2pc-'));
  proxy = await startTestProxy(cluster, {
    // atomic_visibility off: these tests pin the decision-COMMIT layout (the decision shard not prepared); the
    // prepared-decision layout of atomic_visibility: prepared-decision.test.ts.
    general: `two_phase_commit = true\ntwo_phase_commit_auto = true\ntwo_phase_commit_wal_dir = "${walDir}"\ninstance_id = "t2pc"\natomic_visibility = false`,
    extraPgdog: USERS_SHARDING_TOML,
  });
  direct = await directShardClients(cluster);
  client = new pg.Client({ connectionString: proxy.url });
  await client.connect();
  await client.query('create table users (id bigint primary key, name text, balance int not null default 0)');
});

afterEach(() => clearFailpoints());

afterAll(async () => {
  await client?.end();
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
  if (walDir) rmSync(walDir, { recursive: true, force: true });
});

describe('two-phase commit', () => {
  it('commits a transaction that wrote on two shards with PREPARE TRANSACTION + COMMIT PREPARED', async () => {
    const txn = proxy.proxy.txn;
    expect(txn).not.toBeNull();
    const before = { ...txn!.counters };
    const a = idOn(0, 100);
    const b = idOn(1, 100);
    const watch = watchPrepared();
    let atDecision: { txid: string; committed: boolean }[] = [];
    setFailpoint('after_decision', {
      kind: 'call',
      fn: async () => void (atDecision = await decisionRows()),
    });
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2)', [a, 'a']);
    await client.query('insert into users (id, name) values ($1, $2)', [b, 'b']);
    const r = await client.query('commit');
    expect(r.command).toBe('COMMIT');
    // While it ran: shard 0 (the decision shard) prepared nothing, its decision row not committed yet; shard 1 held
    // one prepared transaction naming shard 0 as the decision shard.
    expect(watch.seen?.[0]).toEqual([]);
    expect(watch.seen?.[1]).toEqual([expect.stringMatching(/^sg_t2pc_[0-9a-z]+x[0-9a-z]+_1_d0$/)]);
    const txid = parseGid(watch.seen?.[1][0] ?? '')?.txid;
    expect(txid).toBeDefined();
    expect(watch.rows?.map((r) => r.txid)).not.toContain(txid);
    // The decision: shard 0's plain COMMIT made the row visible, before any COMMIT PREPARED.
    expect(atDecision).toContainEqual({ txid, committed: true });
    expect(await preparedOn(0)).toEqual([]);
    expect(await preparedOn(1)).toEqual([]);
    expect(await rowsOn(0, [a])).toBe(1);
    expect(await rowsOn(1, [b])).toBe(1);
    expect(txn!.counters.prepared).toBe(before.prepared + 1);
    expect(txn!.counters.committed).toBe(before.committed + 1);
    expect(txn!.transactions()).toEqual([]);
    // Every participant confirmed: the decision row is deleted (in the background, batched).
    await waitFor(
      async () => !(await decisionRows()).some((r) => r.txid === txid),
      5_000,
      'the decision row to be deleted',
    );
  });

  it('sends the decision row with the decision COMMIT: after phase 1 no row exists, even uncommitted', async () => {
    const a = idOn(0, 110);
    const b = idOn(1, 110);
    let seen: { prepared: string[][]; probe: string } | null = null;
    setFailpoint('after_prepare', {
      kind: 'call',
      fn: async () => {
        const prepared = [await preparedOn(0), await preparedOn(1)];
        const txid = parseGid(prepared[1][0] ?? '')?.txid ?? '';
        // A row inserted by the open decision branch would hold its key: this insert would wait, then time out.
        const probe = await direct[0]
          .query(
            `begin; set local lock_timeout = '300ms'; ` +
              `insert into shardgate.decisions (txid, participants, committed) values ('${txid}', '{}', false); ` +
              'rollback',
          )
          .then(
            () => 'no row',
            async (e: Error) => {
              await direct[0].query('rollback');
              return e.message;
            },
          );
        seen = { prepared, probe };
      },
    });
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2)', [a, 'a']);
    await client.query('insert into users (id, name) values ($1, $2)', [b, 'b']);
    expect((await client.query('commit')).command).toBe('COMMIT');
    expect(seen).not.toBeNull();
    expect(seen!.prepared[0]).toEqual([]);
    expect(seen!.prepared[1]).toHaveLength(1);
    expect(seen!.probe).toBe('no row');
    expect(await rowsOn(0, [a])).toBe(1);
    expect(await rowsOn(1, [b])).toBe(1);
  });

  it('sends the decision row and the decision COMMIT as one Query: the row is never uncommitted between two', async () => {
    const a = idOn(0, 115);
    const b = idOn(1, 115);
    // Once phase 1 is over, a direct session locks the decision table: the decision's INSERT waits there, and
    // pg_stat_activity shows the whole Query it belongs to.
    setFailpoint('after_prepare', {
      kind: 'call',
      fn: async () => {
        await direct[0].query('begin');
        await direct[0].query('lock table shardgate.decisions in exclusive mode');
      },
    });
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2)', [a, 'a']);
    await client.query('insert into users (id, name) values ($1, $2)', [b, 'b']);
    const commit = client.query('commit');
    let waiting: string | null = null;
    await waitFor(
      async () => {
        await direct[0].query('select pg_stat_clear_snapshot()');
        const r = await direct[0].query(
          "select query from pg_stat_activity where wait_event_type = 'Lock' and query like '%shardgate.decisions%'",
        );
        waiting = (r.rows[0] as { query: string } | undefined)?.query ?? null;
        return waiting !== null;
      },
      5_000,
      'the decision insert waiting for the lock',
    );
    await direct[0].query('rollback');
    expect((await commit).command).toBe('COMMIT');
    expect(waiting).toMatch(
      /^INSERT INTO shardgate\.decisions \(txid, participants, committed\) VALUES .*; COMMIT$/,
    );
    expect(await rowsOn(0, [a])).toBe(1);
    expect(await rowsOn(1, [b])).toBe(1);
  });

  it('the decision row refused (recovery inserted `false` first): nothing commits, the client gets the error', async () => {
    const a = idOn(0, 120);
    const b = idOn(1, 120);
    setFailpoint('after_prepare', {
      kind: 'call',
      fn: async () => {
        const txid = parseGid((await preparedOn(1))[0] ?? '')?.txid ?? '';
        await direct[0].query(
          `insert into shardgate.decisions (txid, participants, committed) values ($1, '{}', false)`,
          [txid],
        );
      },
    });
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2)', [a, 'a']);
    await client.query('insert into users (id, name) values ($1, $2)', [b, 'b']);
    const err = await client.query('commit').then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect(err?.code).toBe('23505');
    expect(err?.detail).toContain('shard 0');
    // The session is usable, and nothing of the transaction is anywhere.
    expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await waitFor(async () => (await preparedOn(1)).length === 0, 5_000, 'shard 1 rolled back');
    expect(await rowsOn(0, [a])).toBe(0);
    expect(await rowsOn(1, [b])).toBe(0);
  });

  it('keeps plain COMMIT for a transaction that wrote on one shard, and for a read-only one on both', async () => {
    const txn = proxy.proxy.txn!;
    const before = txn.counters.prepared;
    const watch = watchPrepared();
    const a = idOn(0, 200);
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2)', [a, 'one']);
    await client.query('select count(*) from users'); // reads both shards
    await client.query('commit');
    await client.query('begin');
    await client.query('select count(*) from users');
    await client.query('commit');
    expect(watch.seen).toBeNull();
    expect(txn.counters.prepared).toBe(before);
    expect(await rowsOn(0, [a])).toBe(1);
  });

  it('commits through a named (extended protocol) COMMIT, also when the statement is reused', async () => {
    for (const from of [300, 400]) {
      const watch = watchPrepared();
      const a = idOn(0, from);
      const b = idOn(1, from);
      await client.query('begin');
      await client.query('insert into users (id, name) values ($1, $2), ($3, $4)', [a, 'x', b, 'y']);
      const r = await client.query({ name: 'commit_stmt', text: 'commit' });
      expect(r.command).toBe('COMMIT');
      expect(watch.seen?.map((g) => g.length)).toEqual([0, 1]);
      expect((await rowsOn(0, [a])) + (await rowsOn(1, [b]))).toBe(2);
    }
  });

  it('runs a multi-shard UPDATE outside a transaction as its own two-phase transaction (auto-2PC)', async () => {
    const txn = proxy.proxy.txn!;
    const before = txn.counters.prepared;
    const watch = watchPrepared();
    const total = Number((await client.query('select count(*) as n from users')).rows[0].n);
    const r = await client.query('update users set balance = balance + 1');
    expect(r.command).toBe('UPDATE');
    expect(r.rowCount).toBe(total);
    expect(watch.seen?.map((g) => g.length)).toEqual([0, 1]);
    expect(txn.counters.prepared).toBe(before + 1);
    expect(await preparedOn(0)).toEqual([]);
    expect(await preparedOn(1)).toEqual([]);
  });

  it('phase-1 failure: a deferred trigger raising at PREPARE on shard 1 rolls back both shards', async () => {
    await installBoomTrigger();
    try {
      const a = idOn(0, 500);
      const b = idOn(1, 500);
      await client.query('begin');
      await client.query('insert into users (id, name) values ($1, $2)', [a, 'fine']);
      await client.query('insert into users (id, name) values ($1, $2)', [b, 'boom']);
      const err = await client.query('commit').then(
        () => null,
        (e: pg.DatabaseError) => e,
      );
      expect(err?.code).toBe('P0001');
      expect(err?.message).toBe('boom is not allowed');
      expect(err?.detail).toMatch(/shard 1/);
      expect(await rowsOn(0, [a])).toBe(0);
      expect(await rowsOn(1, [b])).toBe(0);
      expect(await preparedOn(0)).toEqual([]);
      expect(await preparedOn(1)).toEqual([]);
      // The connection goes on: idle, usable, and a later transaction commits.
      expect((await client.query('select 1 as ok')).rows[0].ok).toBe(1);
      await client.query('begin');
      await client.query('insert into users (id, name) values ($1, $2), ($3, $4)', [a, 'fine', b, 'fine']);
      await client.query('commit');
      expect((await rowsOn(0, [a])) + (await rowsOn(1, [b]))).toBe(2);
    } finally {
      await direct[1].query('drop trigger no_boom on users');
    }
  });

  it('auto-2PC phase-1 failure: the simple Query gets the error and no command tag, as PostgreSQL answers', async () => {
    await installBoomTrigger();
    const raw = await RawClient.connect(proxy.port);
    try {
      await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      const a = idOn(0, 700);
      const b = idOn(1, 700);
      const failed = await raw.query(`insert into users (id, name) values (${a}, 'fine'), (${b}, 'boom')`);
      expect(failed.map((m) => m.type)).toEqual(['E', 'Z']);
      expect(firstError(failed).C).toBe('P0001');
      expect(failed[1].body.toString()).toBe('I');
      expect((await rowsOn(0, [a])) + (await rowsOn(1, [b]))).toBe(0);
      expect(await preparedOn(0)).toEqual([]);
      expect(await preparedOn(1)).toEqual([]);
      const ok = await raw.query(`insert into users (id, name) values (${a}, 'fine'), (${b}, 'fine')`);
      expect(ok.map((m) => m.type)).toEqual(['C', 'Z']);
      expect(ok[0].body.toString('utf8', 0, ok[0].body.length - 1)).toBe('INSERT 0 2');
    } finally {
      raw.close();
      await direct[1].query('drop trigger no_boom on users');
    }
  });

  it('commits multi-statement Queries across shards with 2PC: implicit transaction and BEGIN … COMMIT', async () => {
    const raw = await RawClient.connect(proxy.port);
    try {
      await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
      const [a, b, c, d] = [idOn(0, 800), idOn(1, 800), idOn(0, 900), idOn(1, 900)];
      let watch = watchPrepared();
      const implicit = await raw.query(
        `insert into users (id, name) values (${a}, 'i'); insert into users (id, name) values (${b}, 'i')`,
      );
      expect(implicit.map((m) => m.type).join('')).toBe('CCZ');
      expect(watch.seen?.map((g) => g.length)).toEqual([0, 1]);
      watch = watchPrepared();
      const explicit = await raw.query(
        `begin; insert into users (id, name) values (${c}, 'e'); insert into users (id, name) values (${d}, 'e'); commit`,
      );
      expect(explicit.map((m) => m.type).join('')).toBe('CCCCZ');
      expect(watch.seen?.map((g) => g.length)).toEqual([0, 1]);
      expect((await rowsOn(0, [a, c])) + (await rowsOn(1, [b, d]))).toBe(4);
      expect(await preparedOn(0)).toEqual([]);
      expect(await preparedOn(1)).toEqual([]);
    } finally {
      raw.close();
    }
  });

  it('phase-2 failure: shard 1 stops after the decision; the client gets COMMIT and the retry finishes it', async () => {
    const stopOne = cluster.stopOne?.bind(cluster);
    const startOne = cluster.startOne?.bind(cluster);
    if (stopOne === undefined || startOne === undefined) return; // external servers: cannot stop them
    const txn = proxy.proxy.txn!;
    const a = idOn(0, 600);
    const b = idOn(1, 600);
    setFailpoint('after_decision', { kind: 'call', fn: () => stopOne(1) });
    await client.query('begin');
    await client.query('insert into users (id, name) values ($1, $2), ($3, $4)', [a, 'p2', b, 'p2']);
    const r = await client.query('commit');
    expect(r.command).toBe('COMMIT');
    clearFailpoints();
    expect(await rowsOn(0, [a])).toBe(1); // shard 0 committed at once
    const inDoubt = txn.transactions();
    expect(inDoubt).toHaveLength(1);
    expect(inDoubt[0].state).toBe('committing');
    await direct[1].end().catch(() => undefined);
    await startOne(1);
    direct[1] = (await directShardClients(cluster))[1];
    await waitFor(async () => (await rowsOn(1, [b])) === 1, 15_000, 'the retried COMMIT PREPARED on shard 1');
    await waitFor(async () => txn.transactions().length === 0, 5_000, 'the transaction to be done');
    expect(await preparedOn(1)).toEqual([]);
    expect(txn.counters.phase2Retries).toBeGreaterThan(0);
    // The proxy serves shard 1 again.
    const client2 = new pg.Client({ connectionString: proxy.url });
    await client2.connect();
    expect((await client2.query('select name from users where id = $1', [b])).rows).toEqual([{ name: 'p2' }]);
    await client2.end();
  });

  it("refuses the client's own PREPARE TRANSACTION across shards with 0A000", async () => {
    await client.query('begin');
    await client.query('select 1');
    await expect(client.query("prepare transaction 'mine'")).rejects.toMatchObject({ code: '0A000' });
    await client.query('rollback');
  });
});

describe('two-phase commit with two_phase_commit_prepare_timeout', () => {
  it('cancels a PREPARE that hangs on a shard and rolls back everywhere, in about the timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shardgate-2pc-timeout-'));
    const timed = await startTestProxy(cluster, {
      general: `two_phase_commit = true\ntwo_phase_commit_wal_dir = "${dir}"\ninstance_id = "t2pc_timeout"\ntwo_phase_commit_prepare_timeout = 500`,
      extraPgdog: USERS_SHARDING_TOML,
    });
    // On shard 1, a deferred trigger that sleeps at commit time — so in PREPARE — for rows named 'slow'.
    await direct[1].query(`
      create or replace function slow_prepare() returns trigger language plpgsql as $$
      begin
        if new.name = 'slow' then perform pg_sleep(30); end if;
        return new;
      end $$;
      create constraint trigger slow_prepare after insert on users deferrable initially deferred
        for each row execute function slow_prepare();`);
    const c = new pg.Client({ connectionString: timed.url });
    await c.connect();
    try {
      const a = idOn(0, 9100);
      const b = idOn(1, 9100);
      await c.query('begin');
      await c.query('insert into users (id, name) values ($1, $2)', [a, 'fast']);
      await c.query('insert into users (id, name) values ($1, $2)', [b, 'slow']);
      const t0 = Date.now();
      const err = await c.query('commit').then(
        () => null,
        (e: pg.DatabaseError) => e,
      );
      const took = Date.now() - t0;
      expect(err?.code).toBe('57014');
      expect(err?.message).toMatch(/two_phase_commit_prepare_timeout/);
      expect(err?.message).toMatch(/shard 1/);
      expect(took).toBeGreaterThanOrEqual(450);
      expect(took).toBeLessThan(5_000); // not the trigger's 30 s
      expect(await rowsOn(0, [a])).toBe(0);
      expect(await rowsOn(1, [b])).toBe(0);
      expect(await preparedOn(0)).toEqual([]);
      expect(await preparedOn(1)).toEqual([]);
      expect((await c.query('select 1 as ok')).rows[0].ok).toBe(1); // the client goes on
    } finally {
      await c.end().catch(() => undefined);
      await direct[1].query('drop trigger slow_prepare on users');
      await timed.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('two-phase commit start-up check', () => {
  it('refuses to start when a shard has max_prepared_transactions = 0, naming the shard', async () => {
    const off = await testServers(1, {
      ...APP_SERVER_OPTIONS,
      extraConf: { max_prepared_transactions: '0' },
    });
    const dir = mkdtempSync(join(tmpdir(), 'shardgate-2pc-off-'));
    try {
      // Shard 0 is fine (the main cluster), shard 1 cannot prepare.
      const mixed = { ...off, servers: [cluster.servers[0], off.servers[0]] };
      await expect(
        startTestProxy(mixed, {
          general: `two_phase_commit = true\ntwo_phase_commit_wal_dir = "${dir}"`,
          extraPgdog: USERS_SHARDING_TOML,
        }),
      ).rejects.toThrow(/shard 1 of database "app" has max_prepared_transactions = 0/);
    } finally {
      await off.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
