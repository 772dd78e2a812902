// Write atomicity inside BEGIN … COMMIT (issue 11, contract sections A and C), as an adversary on 2 real shards with
// two-phase commit on: each statement kind that can change data writes on shard 0 (and maybe 1), then a row that a
// deferred trigger on shard 1 refuses at PREPARE / COMMIT ('boom') is added; COMMIT must fail with P0001 and the
// statement's effect must be on no shard. A shard that wrote without being counted as a writer is committed first
// ("readers first") and keeps its rows: that is the defect these tests catch. Section C: COMMIT AND CHAIN compared
// with one plain PostgreSQL (tags, errors, the status after), two-phase across shards, the chained block's
// isolation level and access mode. After every test nothing is left prepared on either shard.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, type TestProxy } from '../helpers/proxy.js';
import { firstError, type RawClient } from '../helpers/raw-client.js';
import { directShardClients, idOn } from '../helpers/sharding.js';
import {
  BOOM_TRIGGER_SQL,
  errorOf,
  expectNothingPrepared,
  kinds,
  MATRIX_TABLES_SQL,
  NOTE_IT_SQL,
  notesOn,
  proxyClient,
  rawCopyIn,
  rawSession,
  startAtomicityProxy,
  statusOf,
  tableOn,
  tagsOf,
  usersOn,
} from '../helpers/write-atomicity.js';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
/** A fresh client through the proxy for each test (a test that fails mid-block cannot disturb the next). */
let c: pg.Client;
let base = 0;

/** Ids for one test: a and c live on shard 0, b and d on shard 1. */
function idsForTest(): { a: number; b: number; c: number; d: number } {
  base += 1_000;
  return { a: idOn(0, base), b: idOn(1, base), c: idOn(0, base + 500), d: idOn(1, base + 500) };
}

/** BEGIN, `write`, then a 'boom' row on shard 1 (`boomId`), then COMMIT: the error COMMIT ends with. */
async function commitWithBoom(
  write: () => Promise<unknown>,
  boomId: number,
): Promise<pg.DatabaseError | null> {
  await c.query('begin');
  await write();
  await c.query("insert into users (id, name) values ($1, 'boom')", [boomId]);
  return errorOf(c.query('commit'));
}

/** COMMIT failed with shard 1's P0001 and the connection is idle and usable. */
async function expectBoom(err: pg.DatabaseError | null): Promise<void> {
  expect(err?.code).toBe('P0001');
  expect(err?.detail).toMatch(/shard 1/);
  expect((await c.query('select 1 as ok')).rows[0].ok).toBe(1);
}

async function balanceOn(shard: number, id: number): Promise<number | null> {
  const r = await direct[shard].query<{ balance: number }>('select balance from users where id = $1', [id]);
  return r.rows[0]?.balance ?? null;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startAtomicityProxy(cluster, 'wm_block');
  direct = await directShardClients(cluster);
  const setup = await proxyClient(proxy);
  await setup.query(MATRIX_TABLES_SQL);
  await setup.query(NOTE_IT_SQL);
  await setup.end();
  await direct[1].query(BOOM_TRIGGER_SQL);
});

beforeEach(async () => {
  c = await proxyClient(proxy);
});

afterEach(async () => {
  await c.end().catch(() => undefined);
  await expectNothingPrepared(direct);
});

afterAll(async () => {
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('A. inside BEGIN … COMMIT, a statement that wrote is undone on every shard when shard 1 fails at COMMIT', () => {
  it('A1 INSERT with the key (baseline)', async () => {
    const { a, b } = idsForTest();
    const err = await commitWithBoom(() => c.query("insert into users (id, name) values ($1, 'a1')", [a]), b);
    await expectBoom(err);
    expect(await usersOn(direct[0], [a])).toBe(0);
    expect(await usersOn(direct[1], [a, b])).toBe(0);
  });

  it('A2 UPDATE by key', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'a2')", [a]);
    const err = await commitWithBoom(() => c.query('update users set balance = 2 where id = $1', [a]), b);
    await expectBoom(err);
    expect(await balanceOn(0, a)).toBe(0);
  });

  it('A3 DELETE by key', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'a3')", [a]);
    const err = await commitWithBoom(() => c.query('delete from users where id = $1', [a]), b);
    await expectBoom(err);
    expect(await usersOn(direct[0], [a])).toBe(1);
  });

  it('A4 multi-row INSERT split across both shards', async () => {
    const { a, b, d } = idsForTest();
    const err = await commitWithBoom(
      () => c.query("insert into users (id, name) values ($1, 'a4'), ($2, 'a4')", [a, d]),
      b,
    );
    await expectBoom(err);
    expect(await usersOn(direct[0], [a])).toBe(0);
    expect(await usersOn(direct[1], [b, d])).toBe(0);
  });

  it('A5 UPDATE without the key (all shards)', async () => {
    const { a, b, d } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'a5'), ($2, 'a5')", [a, d]);
    const err = await commitWithBoom(() => c.query("update users set balance = 5 where name = 'a5'"), b);
    await expectBoom(err);
    expect(await balanceOn(0, a)).toBe(0);
    expect(await balanceOn(1, d)).toBe(0);
  });

  it('A6 INSERT … ON CONFLICT DO UPDATE', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'a6')", [a]);
    const err = await commitWithBoom(
      () =>
        c.query("insert into users (id, name) values ($1, 'a6') on conflict (id) do update set balance = 6", [
          a,
        ]),
      b,
    );
    await expectBoom(err);
    expect(await balanceOn(0, a)).toBe(0);
  });

  it('A7 MERGE by key: lands on the key’s shard only, and is undone with the transaction', async () => {
    const { a, b, c: a2 } = idsForTest();
    const merge = (id: number): string =>
      `merge into users u using (select 1) s on u.id = ${id}
         when matched then update set balance = 7
         when not matched then insert (id, name) values (${id}, 'a7')`;
    // Placement, committed: the new row exists on shard 0 only.
    const r = await c.query(merge(a2));
    expect(r.command).toBe('MERGE');
    expect(r.rowCount).toBe(1);
    expect(await usersOn(direct[0], [a2])).toBe(1);
    expect(await usersOn(direct[1], [a2])).toBe(0);
    const err = await commitWithBoom(() => c.query(merge(a)), b);
    await expectBoom(err);
    expect(await usersOn(direct[0], [a])).toBe(0);
    expect(await usersOn(direct[1], [a, b])).toBe(0);
  });

  it('A8 writable CTE WITH i AS (INSERT … RETURNING id) SELECT * FROM i', async () => {
    const { a, b, c: a2 } = idsForTest();
    const cte = (id: number): string =>
      `with i as (insert into users (id, name) values (${id}, 'a8') returning id) select * from i`;
    const r = await c.query(cte(a2));
    expect(r.rows).toEqual([{ id: String(a2) }]);
    expect(await usersOn(direct[0], [a2])).toBe(1);
    expect(await usersOn(direct[1], [a2])).toBe(0);
    const err = await commitWithBoom(() => c.query(cte(a)), b);
    await expectBoom(err);
    expect(await usersOn(direct[0], [a])).toBe(0);
    expect(await usersOn(direct[1], [a, b])).toBe(0);
  });

  describe('A9 COPY users FROM STDIN with rows for both shards', () => {
    let raw: RawClient;
    beforeEach(async () => {
      raw = await rawSession(proxy.port);
    });
    afterEach(() => raw.close());

    const expectCommitBoom = async (): Promise<void> => {
      const commit = await raw.query('commit');
      expect(kinds(commit)).toBe('EZ');
      expect(firstError(commit).C).toBe('P0001');
      expect(statusOf(commit)).toBe('I');
      expect(kinds(await raw.query('select 1'))).toBe('TDCZ');
    };

    it('COPY first in the block, then the boom row', async () => {
      const { a, b, d } = idsForTest();
      expect(statusOf(await raw.query('begin'))).toBe('T');
      const copy = await rawCopyIn(raw, 'copy users (id, name) from stdin', [`${a}\ta9\n${d}\ta9\n`]);
      expect(tagsOf(copy)).toEqual(['COPY 2']);
      expect(statusOf(copy)).toBe('T');
      expect(tagsOf(await raw.query(`insert into users (id, name) values (${b}, 'boom')`))).toEqual([
        'INSERT 0 1',
      ]);
      await expectCommitBoom();
      expect(await usersOn(direct[0], [a])).toBe(0);
      expect(await usersOn(direct[1], [b, d])).toBe(0);
    });

    it('the transaction wrote on shard 1 before the COPY', async () => {
      const { a, b, d } = idsForTest();
      await raw.query('begin');
      expect(tagsOf(await raw.query(`insert into users (id, name) values (${b}, 'boom')`))).toEqual([
        'INSERT 0 1',
      ]);
      const copy = await rawCopyIn(raw, 'copy users (id, name) from stdin', [`${a}\ta9\n${d}\ta9\n`]);
      expect(tagsOf(copy)).toEqual(['COPY 2']);
      await expectCommitBoom();
      expect(await usersOn(direct[0], [a])).toBe(0);
      expect(await usersOn(direct[1], [b, d])).toBe(0);
    });
  });

  it('A10 INSERT into the omnisharded countries (all shards)', async () => {
    const { b } = idsForTest();
    const err = await commitWithBoom(
      () => c.query("insert into countries (code, name) values ('a10', 'x')"),
      b,
    );
    await expectBoom(err);
    for (const d of direct) expect(await countOnCountries(d, 'a10')).toBe(0);
  });

  it('A11 INSERT into notes, a table in no sharding section (copied to every shard)', async () => {
    const { b } = idsForTest();
    const err = await commitWithBoom(() => c.query("insert into notes (body) values ('a11')"), b);
    await expectBoom(err);
    for (const d of direct) expect(await notesOn(d, 'a11')).toBe(0);
  });

  it('A12 TRUNCATE notes', async () => {
    const { b } = idsForTest();
    await c.query("insert into notes (body) values ('a12')");
    const err = await commitWithBoom(() => c.query('truncate notes'), b);
    await expectBoom(err);
    for (const d of direct) expect(await notesOn(d, 'a12')).toBe(1);
  });

  it('A13 CREATE TABLE + ALTER TABLE: after the failed COMMIT the table exists on no shard', async () => {
    const { b } = idsForTest();
    const err = await commitWithBoom(async () => {
      await c.query('create table a13_t (id int)');
      await c.query('alter table a13_t add column note text');
    }, b);
    await expectBoom(err);
    for (const d of direct) expect(await tableOn(d, 'a13_t')).toBe(false);
  });

  it('A14 SELECT of a VOLATILE function that inserts into notes, run on shard 0 only: a write there', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'a14')", [a]);
    const err = await commitWithBoom(async () => {
      const r = await c.query("select note_it('a14') as n from users where id = $1", [a]);
      expect(r.rows).toEqual([{ n: 1 }]);
    }, b);
    await expectBoom(err);
    expect(await notesOn(direct[0], 'a14')).toBe(0);
    expect(await notesOn(direct[1], 'a14')).toBe(0);
  });

  describe('A15 PREPARE ins AS INSERT INTO users VALUES ($1, $2); EXECUTE ins(…)', () => {
    it('the row lands on the key’s shard only, tag INSERT 0 1', async () => {
      const { a } = idsForTest();
      await c.query('begin');
      await c.query('prepare ins_a15a as insert into users values ($1, $2)');
      const r = await c.query(`execute ins_a15a(${a}, 'a15')`);
      expect(r.command).toBe('INSERT');
      expect(r.rowCount).toBe(1);
      await c.query('commit');
      expect(await usersOn(direct[0], [a])).toBe(1);
      expect(await usersOn(direct[1], [a])).toBe(0);
    });

    it('in the block it is a writer: undone on every shard when shard 1 fails at COMMIT', async () => {
      const { a, b } = idsForTest();
      const err = await commitWithBoom(async () => {
        await c.query('prepare ins_a15b as insert into users values ($1, $2)');
        await c.query(`execute ins_a15b(${a}, 'a15')`);
      }, b);
      await expectBoom(err);
      expect(await usersOn(direct[0], [a])).toBe(0);
      expect(await usersOn(direct[1], [a, b])).toBe(0);
    });
  });

  it('A16 a DO block inserting into notes: runs on every shard, a writer everywhere', async () => {
    const { b } = idsForTest();
    // Committed: every shard's copy got the row.
    await c.query("do $$ begin insert into notes (body) values ('a16-ok'); end $$");
    for (const d of direct) expect(await notesOn(d, 'a16-ok')).toBe(1);
    const err = await commitWithBoom(
      () => c.query("do $$ begin insert into notes (body) values ('a16'); end $$"),
      b,
    );
    await expectBoom(err);
    for (const d of direct) expect(await notesOn(d, 'a16')).toBe(0);
  });

  it('A17 EXPLAIN ANALYZE of an INSERT (it executes)', async () => {
    const { a, b } = idsForTest();
    const err = await commitWithBoom(
      () => c.query(`explain analyze insert into users (id, name) values (${a}, 'a17')`),
      b,
    );
    await expectBoom(err);
    expect(await usersOn(direct[0], [a])).toBe(0);
  });
});

describe('A, write paths the contract does not list', () => {
  it('SELECT f() without FROM of a VOLATILE writing function (sent to "any" shard): undone with the transaction', async () => {
    const { b } = idsForTest();
    await c.query('begin');
    // Twice: a round-robin pick of a shard sends one of the two to shard 0.
    const refusals = [
      await errorOf(c.query("select note_it('ax1-1')")),
      await errorOf(c.query("select note_it('ax1-2')")),
    ];
    if (refusals.some((e) => e !== null)) {
      // Refusing the call (it cannot be placed) is an answer too; running it on one shard uncounted is not.
      expect(refusals.find((e) => e !== null)?.code).toBe('0A000');
      await c.query('rollback');
    } else {
      await c.query("insert into users (id, name) values ($1, 'boom')", [b]);
      await expectBoom(await errorOf(c.query('commit')));
    }
    for (const d of direct) {
      expect(await notesOn(d, 'ax1-1')).toBe(0);
      expect(await notesOn(d, 'ax1-2')).toBe(0);
    }
  });

  it('COPY (WITH d AS (DELETE … by key RETURNING …) SELECT …) TO STDOUT: a write on the key’s shard', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'ax2')", [a]);
    const raw = await rawSession(proxy.port);
    try {
      await raw.query('begin');
      const copy = await raw.query(
        `copy (with d as (delete from users where id = ${a} returning id) select id from d) to stdout`,
      );
      expect(tagsOf(copy)).toEqual(['COPY 1']);
      await raw.query(`insert into users (id, name) values (${b}, 'boom')`);
      const commit = await raw.query('commit');
      expect(firstError(commit).C).toBe('P0001');
    } finally {
      raw.close();
    }
    expect(await usersOn(direct[0], [a])).toBe(1);
  });

  it('BEGIN; NOTIFY; COMMIT commits, as PostgreSQL (NOTIFY changes no rows; PREPARE TRANSACTION refuses it)', async () => {
    await c.query('begin');
    await c.query("notify wm_channel, 'x'");
    expect((await c.query('commit')).command).toBe('COMMIT');
  });

  it('BEGIN; CREATE TEMP TABLE … ON COMMIT DROP; COMMIT commits, as PostgreSQL (PREPARE TRANSACTION refuses temp objects)', async () => {
    await c.query('begin');
    await c.query('create temp table wm_tmp (x int) on commit drop');
    await c.query('insert into wm_tmp values (1)');
    expect((await c.query('commit')).command).toBe('COMMIT');
  });
});

async function countOnCountries(d: pg.Client, code: string): Promise<number> {
  return Number((await d.query('select count(*) as n from countries where code = $1', [code])).rows[0].n);
}

describe('C. COMMIT AND CHAIN, compared with one plain PostgreSQL', () => {
  /** One statement's answer: command tags, SQLSTATE of an error (or null), the transaction status after it. */
  interface Answer {
    tags: string[];
    code: string | null;
    status: string;
  }

  async function answers(raw: RawClient, statements: readonly string[]): Promise<Answer[]> {
    const out: Answer[] = [];
    for (const sql of statements) {
      const reply = await raw.query(sql);
      out.push({
        tags: tagsOf(reply),
        code: reply.some((m) => m.type === 'E') ? firstError(reply).C : null,
        status: statusOf(reply),
      });
    }
    return out;
  }

  let proxyRaw: RawClient;
  let plainRaw: RawClient;
  let refBase = 0;
  /** On shard 0's server, not known to the proxy: a table with the same deferred 'boom' trigger, for reference. */
  beforeAll(async () => {
    await direct[0].query(`create table chain_ref (id bigint primary key, name text);
      ${BOOM_TRIGGER_SQL.slice(0, BOOM_TRIGGER_SQL.indexOf('create constraint trigger'))}
      create constraint trigger boom_guard after insert or update or delete on chain_ref
        deferrable initially deferred for each row execute function boom_guard('name')`);
  });
  beforeEach(async () => {
    proxyRaw = await rawSession(proxy.port);
    plainRaw = await rawSession(cluster.servers[0].port);
    refBase += 100;
  });
  afterEach(() => {
    proxyRaw.close();
    plainRaw.close();
  });

  it('C1 REPEATABLE READ block writing both shards, shard 1 fails: error P0001, nothing anywhere, status as PostgreSQL', async () => {
    const { a, b } = idsForTest();
    const script = (table: string, x: number, y: number): string[] => [
      'begin isolation level repeatable read',
      `insert into ${table} (id, name) values (${x}, 'c1')`,
      `insert into ${table} (id, name) values (${y}, 'boom')`,
      'commit and chain',
      'select 1',
      'rollback',
    ];
    const viaProxy = await answers(proxyRaw, script('users', a, b));
    const plain = await answers(plainRaw, script('chain_ref', refBase + 1, refBase + 2));
    expect(plain[3].code).toBe('P0001');
    expect.soft(viaProxy).toEqual(plain);
    expect(await usersOn(direct[0], [a])).toBe(0);
    expect(await usersOn(direct[1], [a, b])).toBe(0);
  });

  it('C2 after an error inside the block: ROLLBACK and a new block; the healthy shard does not commit', async () => {
    const { a, b } = idsForTest();
    await direct[1].query("insert into users (id, name) values ($1, 'c2-existing')", [b]);
    await direct[0].query("insert into chain_ref (id, name) values ($1, 'c2-existing')", [refBase + 2]);
    const script = (table: string, x: number, y: number): string[] => [
      'begin',
      `insert into ${table} (id, name) values (${x}, 'c2')`,
      `insert into ${table} (id, name) values (${y}, 'duplicate')`, // fails (23505) on shard 1 only
      'commit and chain',
      'select 1',
      'rollback',
    ];
    const viaProxy = await answers(proxyRaw, script('users', a, b));
    const plain = await answers(plainRaw, script('chain_ref', refBase + 1, refBase + 2));
    expect(plain[2].code).toBe('23505');
    expect(plain[3]).toEqual({ tags: ['ROLLBACK'], code: null, status: 'T' });
    expect.soft(viaProxy).toEqual(plain);
    expect(await usersOn(direct[0], [a])).toBe(0);
  });

  it('C3 a successful COMMIT AND CHAIN across two shards is two-phase; the chained block keeps REPEATABLE READ', async () => {
    const { a, b } = idsForTest();
    const txn = proxy.proxy.txn!;
    const before = txn.counters.prepared;
    await c.query('begin isolation level repeatable read');
    await c.query("insert into users (id, name) values ($1, 'c3'), ($2, 'c3')", [a, b]);
    const r = await c.query('commit and chain');
    expect(r.command).toBe('COMMIT');
    expect.soft(txn.counters.prepared).toBe(before + 1);
    expect(await usersOn(direct[0], [a])).toBe(1);
    expect(await usersOn(direct[1], [b])).toBe(1);
    for (const id of [a, b]) {
      const iso = await c.query(
        "select current_setting('transaction_isolation') as iso from users where id = $1",
        [id],
      );
      expect(iso.rows).toEqual([{ iso: 'repeatable read' }]);
    }
    await c.query('commit');
  });

  it('C3 READ ONLY carries over: a write in the chained block fails with 25006 on a shard the first block reached and on a new one', async () => {
    const { a, b } = idsForTest();
    for (const target of [a, b]) {
      await c.query('begin isolation level repeatable read read only');
      await c.query('select count(*) from users where id = $1', [a]); // the first block reaches shard 0
      await c.query('commit and chain');
      const err = await errorOf(c.query("insert into users (id, name) values ($1, 'c3-ro')", [target]));
      expect(err?.code).toBe('25006');
      await c.query('rollback');
    }
    expect(await usersOn(direct[0], [a])).toBe(0);
    expect(await usersOn(direct[1], [b])).toBe(0);
  });
});
