// Write atomicity outside BEGIN (issue 11, contract section B), as an adversary on 2 real shards: a statement that
// writes on 2+ shards must be all-or-nothing — the proxy wraps it in a transaction of its own, two-phase with
// two_phase_commit_auto — so when shard 1 fails (a deferred 'boom' trigger at COMMIT / PREPARE, or an immediate
// error on shard 1 only) the client gets the error and shard 0 keeps nothing. Multi-statement Queries and
// extended-protocol batches are one implicit transaction: two-phase whenever two_phase_commit is on, also with
// two_phase_commit_auto = false (a second proxy). Statements that cannot run in a transaction block (VACUUM, CREATE
// INDEX CONCURRENTLY) still run on every shard. A few write paths the contract does not list are at the end.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, type TestProxy } from '../helpers/proxy.js';
import { query } from '../../src/protocol/messages.js';
import { firstError, type RawClient } from '../helpers/raw-client.js';
import { directShardClients, idOn } from '../helpers/sharding.js';
import {
  bindFrame,
  BOOM_TRIGGER_SQL,
  countOn,
  errorOf,
  EXECUTE_FRAME,
  expectNothingPrepared,
  kinds,
  MATRIX_TABLES_SQL,
  NOTE_IT_SQL,
  notesOn,
  parseFrame,
  proxyClient,
  rawCopyIn,
  rawSession,
  startAtomicityProxy,
  statusOf,
  SYNC_FRAME,
  tableOn,
  tagsOf,
  usersOn,
} from '../helpers/write-atomicity.js';

let cluster: PgCluster;
let proxy: TestProxy;
/** The same shards behind a proxy with two_phase_commit = true and two_phase_commit_auto = false. */
let noAutoProxy: TestProxy;
let direct: pg.Client[];
let c: pg.Client;
let base = 0;

function idsForTest(): { a: number; b: number; c: number; d: number } {
  base += 1_000;
  return { a: idOn(0, base), b: idOn(1, base), c: idOn(0, base + 500), d: idOn(1, base + 500) };
}

/** The statement failed with `code` and the connection is idle and usable. */
async function expectFailed(err: pg.DatabaseError | null, code: string): Promise<void> {
  expect(err?.code).toBe(code);
  expect((await c.query('select 1 as ok')).rows[0].ok).toBe(1);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startAtomicityProxy(cluster, 'wm_auto');
  noAutoProxy = await startAtomicityProxy(cluster, 'wm_noauto', { isAuto: false });
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
  await noAutoProxy?.close();
  await proxy?.close();
  await cluster?.stop();
});

describe('B. outside BEGIN, a statement writing on 2+ shards is all-or-nothing', () => {
  it('B1 UPDATE without the key: deferred failure on shard 1', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'b1'), ($2, 'b1')", [a, b]);
    await expectFailed(
      await errorOf(c.query("update users set name = 'boom-b1' where name = 'b1'")),
      'P0001',
    );
    expect(await countOn(direct[0], "select count(*) as n from users where name = 'b1'")).toBe(1);
    expect(await countOn(direct[1], "select count(*) as n from users where name = 'b1'")).toBe(1);
  });

  it('B1 UPDATE without the key: immediate error on shard 1 only', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'b1i'), ($2, 'b1i')", [a, b]);
    // Division by zero for shard 1's row only; shard 0 (first in shard order) has already updated its row.
    const err = await errorOf(c.query(`update users set balance = 1 / (id - ${b}) where name = 'b1i'`));
    await expectFailed(err, '22012');
    expect(
      await countOn(direct[0], "select count(*) as n from users where name = 'b1i' and balance = 0"),
    ).toBe(1);
  });

  it('B2 multi-row INSERT split across the shards', async () => {
    const { a, b, c: a2, d } = idsForTest();
    await expectFailed(
      await errorOf(c.query("insert into users (id, name) values ($1, 'b2'), ($2, 'boom-b2')", [a, b])),
      'P0001',
    );
    expect(await usersOn(direct[0], [a])).toBe(0);
    await direct[1].query("insert into users (id, name) values ($1, 'b2-existing')", [d]);
    await expectFailed(
      await errorOf(c.query("insert into users (id, name) values ($1, 'b2'), ($2, 'b2')", [a2, d])),
      '23505',
    );
    expect(await usersOn(direct[0], [a2])).toBe(0);
  });

  it('B3 COPY FROM STDIN split across the shards', async () => {
    const { a, b } = idsForTest();
    const raw = await rawSession(proxy.port);
    try {
      const reply = await rawCopyIn(raw, 'copy users (id, name) from stdin', [`${a}\tb3\n${b}\tboom-b3\n`]);
      expect(kinds(reply)).toBe('EZ');
      expect(firstError(reply).C).toBe('P0001');
      expect(statusOf(reply)).toBe('I');
      expect(kinds(await raw.query('select 1'))).toBe('TDCZ');
    } finally {
      raw.close();
    }
    expect(await usersOn(direct[0], [a])).toBe(0);
    expect(await usersOn(direct[1], [b])).toBe(0);
  });

  it('B4 INSERT into the omnisharded countries and into notes (copied)', async () => {
    await expectFailed(
      await errorOf(c.query("insert into countries (code, name) values ('b4', 'boom-b4')")),
      'P0001',
    );
    expect(await countOn(direct[0], "select count(*) as n from countries where code = 'b4'")).toBe(0);
    await expectFailed(await errorOf(c.query("insert into notes (body) values ('boom-b4')")), 'P0001');
    expect(await notesOn(direct[0], 'boom-b4')).toBe(0);
  });

  it('B5 TRUNCATE failing on shard 1 (a foreign key there only): shard 0 keeps its rows', async () => {
    await c.query('create table b5_t (id int primary key)');
    await c.query('insert into b5_t values (1), (2)');
    await direct[1].query('create table b5_ref (id int references b5_t)');
    await expectFailed(await errorOf(c.query('truncate b5_t')), '0A000');
    expect(await countOn(direct[0], 'select count(*) as n from b5_t')).toBe(2);
    expect(await countOn(direct[1], 'select count(*) as n from b5_t')).toBe(2);
  });

  it('B6 CREATE TABLE of a table that exists on shard 1 only: error, and no table on shard 0', async () => {
    await direct[1].query('create table b6_t (id int)');
    await expectFailed(await errorOf(c.query('create table b6_t (id int)')), '42P07');
    expect(await tableOn(direct[0], 'b6_t')).toBe(false);
  });

  it('B7 DO block writing notes, failing on shard 1', async () => {
    await expectFailed(
      await errorOf(c.query("do $$ begin insert into notes (body) values ('boom-b7'); end $$")),
      'P0001',
    );
    expect(await notesOn(direct[0], 'boom-b7')).toBe(0);
  });

  it('B8 SELECT f(id) FROM users (fan-out) of a VOLATILE writing function, failing on shard 1', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'b8'), ($2, 'b8')", [a, b]);
    await expectFailed(
      await errorOf(c.query("select note_it('boom-b8-' || id) from users where name = 'b8'")),
      'P0001',
    );
    expect(await notesOn(direct[0], `boom-b8-${a}`)).toBe(0);
  });

  it('B9 writable CTE without the key (WITH d AS (DELETE … RETURNING id) SELECT count(*) FROM d), failing on shard 1', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'b9'), ($2, 'undeletable-b9')", [a, b]);
    const err = await errorOf(
      c.query(
        "with d as (delete from users where name in ('b9', 'undeletable-b9') returning id) select count(*) from d",
      ),
    );
    await expectFailed(err, 'P0001');
    expect(await usersOn(direct[0], [a])).toBe(1);
    expect(await usersOn(direct[1], [b])).toBe(1);
  });

  describe('B10 a multi-statement simple Query and an extended-protocol batch are one (two-phase) transaction', () => {
    let raw: RawClient;
    afterEach(() => raw?.close());

    /** The reply message types plain PostgreSQL (shard 1's server, which has the trigger) gives the same request. */
    async function plainKinds(request: Buffer): Promise<string> {
      const plain = await rawSession(cluster.servers[1].port);
      try {
        plain.write(request);
        return kinds(await plain.readUntil('Z'));
      } finally {
        plain.close();
      }
    }

    const twoInserts = (x: number, y: number, yName: string): string =>
      `insert into users (id, name) values (${x}, 'b10'); insert into users (id, name) values (${y}, '${yName}')`;

    const batch = (x: number, xName: string, y: number, yName: string): Buffer =>
      Buffer.concat([
        parseFrame('', 'insert into users (id, name) values ($1, $2)'),
        bindFrame('', String(x), xName),
        EXECUTE_FRAME,
        parseFrame('', 'insert into users (id, name) values ($1, $2)'),
        bindFrame('', String(y), yName),
        EXECUTE_FRAME,
        SYNC_FRAME,
      ]);

    for (const mode of ['two_phase_commit_auto = true', 'two_phase_commit_auto = false'] as const) {
      const proxyOf = (): TestProxy => (mode === 'two_phase_commit_auto = true' ? proxy : noAutoProxy);

      it(`${mode}: simple Query INSERT (shard 0); INSERT ('boom', shard 1) is atomic, and a good one uses 2PC`, async () => {
        const { a, b, c: a2, d } = idsForTest();
        raw = await rawSession(proxyOf().port);
        const failed = await raw.query(twoInserts(a, b, 'boom-b10'));
        // Soft checks here and below: the report should show every way this goes wrong, not only the first.
        // Plain PostgreSQL sends the last statement's tag only once the implicit COMMIT succeeded (ids < 0: its own).
        expect.soft(kinds(failed)).toBe(await plainKinds(query(twoInserts(-1, -2, 'boom-x'))));
        expect(firstError(failed).C).toBe('P0001');
        expect(statusOf(failed)).toBe('I');
        expect.soft(await usersOn(direct[0], [a])).toBe(0);
        const txn = proxyOf().proxy.txn!;
        const before = txn.counters.prepared;
        const ok = await raw.query(twoInserts(a2, d, 'b10'));
        expect(kinds(ok)).toBe('CCZ');
        expect.soft(txn.counters.prepared).toBe(before + 1);
        expect(await usersOn(direct[0], [a2])).toBe(1);
        expect(await usersOn(direct[1], [d])).toBe(1);
      });

      it(`${mode}: extended-protocol batch (two Parse/Bind/Execute, one Sync) is atomic, and a good one uses 2PC`, async () => {
        const { a, b, c: a2, d } = idsForTest();
        raw = await rawSession(proxyOf().port);
        raw.write(batch(a, 'b10x', b, 'boom-b10x'));
        const failed = await raw.readUntil('Z');
        expect(kinds(failed)).toBe(await plainKinds(batch(-1, 'x', -2, 'boom-x')));
        expect(failed.some((m) => m.type === 'E')).toBe(true);
        expect(firstError(failed).C).toBe('P0001');
        expect(statusOf(failed)).toBe('I');
        expect.soft(await usersOn(direct[0], [a])).toBe(0);
        const txn = proxyOf().proxy.txn!;
        const before = txn.counters.prepared;
        raw.write(batch(a2, 'b10x', d, 'b10x'));
        const ok = await raw.readUntil('Z');
        expect(tagsOf(ok)).toEqual(['INSERT 0 1', 'INSERT 0 1']);
        expect.soft(txn.counters.prepared).toBe(before + 1);
        expect(await usersOn(direct[0], [a2])).toBe(1);
        expect(await usersOn(direct[1], [d])).toBe(1);
      });
    }
  });

  it('B11 VACUUM and CREATE INDEX CONCURRENTLY (not allowed in a transaction block) still run on every shard', async () => {
    expect((await c.query('vacuum notes')).command).toBe('VACUUM');
    expect((await c.query('create index concurrently b11_idx on notes (body)')).command).toBe('CREATE');
    for (const d of direct) {
      expect(await countOn(d, "select count(*) as n from pg_indexes where indexname = 'b11_idx'")).toBe(1);
      expect(
        await countOn(
          d,
          "select count(*) as n from pg_index i join pg_class x on x.oid = i.indexrelid where x.relname = 'b11_idx' and i.indisvalid",
        ),
      ).toBe(1);
    }
    expect((await c.query('vacuum (analyze) users')).command).toBe('VACUUM');
  });
});

describe('B, write paths the contract does not list', () => {
  it('COPY (WITH d AS (DELETE … RETURNING …) SELECT …) TO STDOUT without the key, failing on shard 1', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'bx1'), ($2, 'undeletable-bx1')", [a, b]);
    const raw = await rawSession(proxy.port);
    try {
      const reply = await raw.query(
        "copy (with d as (delete from users where name in ('bx1', 'undeletable-bx1') returning id) select id from d) to stdout",
      );
      expect(reply.some((m) => m.type === 'E')).toBe(true);
      expect(firstError(reply).C).toBe('P0001');
      expect(statusOf(reply)).toBe('I');
    } finally {
      raw.close();
    }
    expect(await usersOn(direct[0], [a])).toBe(1);
  });

  it('a SELECT with a writable CTE on the copied notes table, failing on shard 1', async () => {
    await expectFailed(
      await errorOf(
        c.query("with i as (insert into notes (body) values ('boom-bx2') returning body) select * from i"),
      ),
      'P0001',
    );
    expect(await notesOn(direct[0], 'boom-bx2')).toBe(0);
  });

  it('SELECT f() without FROM of a VOLATILE function writing the copied notes: the copies must not diverge', async () => {
    for (const body of ['bx3-1', 'bx3-2']) {
      const err = await errorOf(c.query(`select note_it('${body}')`));
      if (err !== null) expect(err.code).toBe('0A000'); // refusing it is fine; writing one copy only is not
      expect(await notesOn(direct[0], body)).toBe(await notesOn(direct[1], body));
    }
  });

  it('EXPLAIN ANALYZE of an UPDATE without the key (it executes on every shard), failing on shard 1', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'bx6'), ($2, 'bx6')", [a, b]);
    await expectFailed(
      await errorOf(c.query("explain analyze update users set name = 'boom-bx6' where name = 'bx6'")),
      'P0001',
    );
    expect(await countOn(direct[0], "select count(*) as n from users where name = 'bx6'")).toBe(1);
  });

  it('INSERT through a view over the sharded users: on the key’s shard only (or refused)', async () => {
    const { a } = idsForTest();
    await c.query('create view users_view as select * from users');
    const err = await errorOf(c.query("insert into users_view (id, name) values ($1, 'bx4')", [a]));
    if (err !== null) expect(err.code).toBe('0A000');
    else expect(await usersOn(direct[0], [a])).toBe(1);
    expect(await usersOn(direct[1], [a])).toBe(0);
  });

  it('CREATE TABLE AS from the sharded users makes a table the proxy copies everywhere: same rows on every shard (or refused)', async () => {
    const { a, b } = idsForTest();
    await c.query("insert into users (id, name) values ($1, 'bx5'), ($2, 'bx5')", [a, b]);
    const err = await errorOf(c.query("create table bx5_t as select id from users where name = 'bx5'"));
    if (err !== null) {
      expect(err.code).toBe('0A000');
      for (const d of direct) expect(await tableOn(d, 'bx5_t')).toBe(false);
    } else {
      for (const d of direct) expect(await countOn(d, 'select count(*) as n from bx5_t')).toBe(2);
    }
  });
});
