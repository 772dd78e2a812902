// INSERT … SELECT streamed by the proxy (issue 12) on 2 real shards with two-phase commit: a query whose rows need no
// merge is read batch by batch from a cursor on each shard it reads and inserted where each row belongs, so the proxy
// holds one batch (insert_select_batch_rows, small here) however many rows move — more than the 64 MiB the collected
// path holds — and an error in a late batch undoes every batch on every shard.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { INSERT_SOURCE_MAX_BYTES } from '../../src/engine/insert-source.js';
import { insertStreamMemory } from '../../src/engine/insert-stream.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_DB, APP_SERVER_OPTIONS, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, userShard } from '../helpers/sharding.js';
import { errorOf, expectNothingPrepared } from '../helpers/write-atomicity.js';

const BATCH_ROWS = 2000;
const BIG_ROWS = 200_000;
/** Bytes of `name` per row: 200,000 rows are ~84 MB of VALUES text, over the collected path's 64 MiB. */
const NAME_BYTES = 400;

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let c: pg.Client;

const SHARDING = `
[[sharded_tables]]
database = "${APP_DB}"
name = "users"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "${APP_DB}"
name = "targets"
column = "id"
data_type = "bigint"
`;

/** Rows of `table` on each shard, read directly. */
async function countsOn(table: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of direct)
    out.push((await d.query(`select count(*)::int as n from ${table}`)).rows[0].n as number);
  return out;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, {
    extraPgdog: SHARDING,
    general: `two_phase_commit = true\ntwo_phase_commit_auto = true\ninstance_id = "stream"\ninsert_select_batch_rows = ${BATCH_ROWS}`,
  });
  direct = await directShardClients(cluster);
  const setup = new pg.Client({ connectionString: proxy.url });
  await setup.connect();
  await setup.query(`
    create table users (id bigint primary key, name text);
    create table targets (id bigint primary key, name text)`);
  await setup.end();
  c = new pg.Client({ connectionString: proxy.url });
  c.on('error', () => undefined);
  await c.connect();
});

beforeEach(() => {
  insertStreamMemory.peakBytes = 0;
});

afterEach(async () => {
  await expectNothingPrepared(direct);
});

afterAll(async () => {
  await c?.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('INSERT … SELECT streamed in batches', () => {
  it('moves 200,000 rows (more than the collected path’s 64 MiB) holding one batch at a time', async () => {
    const r = await c.query(
      `insert into users (id, name) select g, repeat('x', ${NAME_BYTES}) || g from generate_series(1, ${BIG_ROWS}) g`,
    );
    expect(r.command).toBe('INSERT');
    expect(r.rowCount).toBe(BIG_ROWS);
    const counts = await countsOn('users');
    expect(counts[0] + counts[1]).toBe(BIG_ROWS);
    // Each row on the shard that owns it (checked on a sample on each shard; the counts add up to every row).
    for (const [shard, d] of direct.entries()) {
      const sample = await d.query<{ id: string }>('select id from users order by random() limit 200');
      for (const row of sample.rows) expect(userShard(Number(row.id))).toBe(shard);
    }
    const total = await c.query<{ bytes: string }>('select sum(length(name))::bigint as bytes from users');
    expect(Number(total.rows[0].bytes)).toBeGreaterThan(INSERT_SOURCE_MAX_BYTES);
    // The proxy held one batch of rows at most: about BATCH_ROWS × ~440 bytes, nowhere near the rows' total.
    expect(insertStreamMemory.peakBytes).toBeGreaterThan(BATCH_ROWS * NAME_BYTES);
    expect(insertStreamMemory.peakBytes).toBeLessThan(BATCH_ROWS * (NAME_BYTES + 100));
  }, 180_000);

  it('reads a sharded table on every shard and gives every batch’s RETURNING rows, one description, one tag', async () => {
    const r = await c.query<{ id: string; n: number }>({
      text: 'insert into targets (id, name) select id + $1, $2 from users where id <= $3 returning id, length(name) as n',
      values: [1_000_000, 'copied', 5000],
    });
    expect(r.rowCount).toBe(5000);
    expect(r.rows).toHaveLength(5000);
    expect(r.fields.map((f) => f.name)).toEqual(['id', 'n']);
    expect(new Set(r.rows.map((row) => Number(row.id))).size).toBe(5000);
    expect(r.rows.every((row) => row.n === 6)).toBe(true);
    const counts = await countsOn('targets');
    expect(counts[0] + counts[1]).toBe(5000);
    expect(Math.min(...counts)).toBeGreaterThan(0);
  });

  it('counts what ON CONFLICT DO NOTHING wrote across batches', async () => {
    const r = await c.query(
      'insert into targets (id, name) select id + 999000, name from users where id <= 6000 on conflict (id) do nothing',
    );
    // 999001 … 1005000: 1000001 … 1005000 were written by the test before, so 1000 are new.
    expect(r.rowCount).toBe(1000);
  });

  it('is all-or-nothing: a unique violation at the 150,000th row undoes every batch on every shard', async () => {
    await c.query('delete from targets');
    await c.query("insert into targets (id, name) values (150000, 'taken')");
    const err = await errorOf(
      c.query(`insert into targets (id, name) select g, 'new' from generate_series(1, ${BIG_ROWS}) g`),
    );
    expect(err?.code).toBe('23505');
    expect(err?.detail).toContain('(id)=(150000)');
    expect(await countsOn('targets')).toEqual(userShard(150000) === 0 ? [1, 0] : [0, 1]);
    // Inside the client's transaction: the statement fails, the transaction is aborted, ROLLBACK leaves nothing.
    await c.query('begin');
    expect(
      (
        await errorOf(
          c.query(`insert into targets (id, name) select g, 'tx' from generate_series(1, ${BIG_ROWS}) g`),
        )
      )?.code,
    ).toBe('23505');
    expect((await errorOf(c.query('select 1')))?.code).toBe('25P02');
    await c.query('rollback');
    expect(await countsOn('targets')).toEqual(userShard(150000) === 0 ? [1, 0] : [0, 1]);
    // The session goes on, and a cursor of an earlier statement is not in the way of the next one.
    const again = await c.query(
      "insert into targets (id, name) select g, 'after' from generate_series(1, 3) g",
    );
    expect(again.rowCount).toBe(3);
  }, 180_000);

  it('inside BEGIN, two statements in a row, committed together', async () => {
    await c.query('begin');
    await c.query("insert into targets (id, name) select g, 'b1' from generate_series(2000001, 2004500) g");
    const r = await c.query(
      "insert into targets (id, name) select id + 10000, 'b2' from targets where name = 'b1'",
    );
    expect(r.rowCount).toBe(4500);
    await c.query('commit');
    const counts = await countsOn("targets where name in ('b1', 'b2')");
    expect(counts[0] + counts[1]).toBe(9000);
  });
});
