// A sharded database whose collation does not sort text by bytes (ICU en-US): the proxy cannot compare such text, so
// a cross-shard ORDER BY on text gets the database's order from a shard (it ranks the key values) — exact; min/max of
// text are refused with 0A000 and a COLLATE "C" hint; a column with a collation of its own is refused, not misordered.
// count(DISTINCT text) is exact (a deterministic collation's equality is byte equality); string_agg/array_agg ordered by
// text inside need COLLATE "C".
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';

let cluster: PgCluster;
let proxy: TestProxy;
let client: pg.Client;
let hasIcu = true;

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  for (const s of cluster.servers) {
    const su = new pg.Client({
      host: s.host,
      port: s.port,
      user: s.superuser,
      password: s.superuserPassword,
      database: 'postgres',
    });
    await su.connect();
    try {
      await su.query(
        `create database icudb owner ${APP_USER} locale_provider icu icu_locale 'en-US' template template0`,
      );
    } catch {
      hasIcu = false; // PostgreSQL built without ICU: nothing to test here (said below, not silently)
    }
    await su.end();
  }
  if (!hasIcu) {
    console.warn(
      'sharding-collation: these PostgreSQL binaries have no ICU; the collation tests check nothing',
    );
    return;
  }
  const dbs = cluster.servers
    .map(
      (s, i) =>
        `[[databases]]\nname = "icu"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "icudb"\nshard = ${i}\n`,
    )
    .join('\n');
  proxy = await startTestProxy(cluster, {
    extraPgdog: `${dbs}\n[[sharded_tables]]\ndatabase = "icu"\nname = "words"\ncolumn = "id"\ndata_type = "bigint"\n`,
    moreUsers: `[[users]]\nname = "${APP_USER}"\ndatabase = "icu"\npassword = "${APP_PASSWORD}"\n`,
  });
  client = new pg.Client({ connectionString: proxy.url.replace(/\/app$/, '/icu') });
  await client.connect();
  await client.query('create table words (id bigint primary key, w text)');
  // In en-US, 'a' < 'B' < 'c'; in byte order 'B' < 'a' < 'c'.
  await client.query(`insert into words values (1, 'a'), (2, 'B'), (3, 'c'), (4, 'D'), (5, 'e'), (6, 'F')`);
});

afterAll(async () => {
  await client?.end();
  await proxy?.close();
  await cluster?.stop();
});

describe('text ordering across shards in a database that does not sort by bytes', () => {
  it('orders text across shards in the database collation: a shard ranks the values', async () => {
    if (!hasIcu) return;
    const words = async (sql: string, values?: unknown[]): Promise<string[]> =>
      (await client.query(sql, values)).rows.map((r: { w: string }) => r.w);
    expect(await words('select w from words order by w')).toEqual(['a', 'B', 'c', 'D', 'e', 'F']);
    expect(await words('select w from words order by w desc limit 4 offset 1')).toEqual(['e', 'D', 'c', 'B']);
    // Extended protocol with parameters, an expression key (its collation named), a hidden sort column, NULLs
    expect(
      await words('select w from words where id > $1 order by lower(w) collate "default" desc', [2]),
    ).toEqual(['F', 'e', 'D', 'c']);
    expect(await words('select id::text as w from words order by w collate "default", id')).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
    ]);
    expect(
      await words('select w from words order by upper(w) collate "default" nulls first limit 2'),
    ).toEqual(['a', 'B']);
    // An expression without COLLATE takes its collation from columns the proxy cannot see: refused, with the fix.
    const expr = await client.query('select w from words order by lower(w)').then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect(expr?.code).toBe('0A000');
    expect(expr?.hint).toMatch(/COLLATE "default"/);
    // min/max of text would need the same; still refused with a hint
    const err = await client.query('select min(w) from words').then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect(err?.code).toBe('0A000');
    expect(err?.message).toMatch(/"en-US \(ICU\)"/); // named by its ICU locale, not its datcollate ("C")
    expect(err?.hint).toMatch(/COLLATE "C"/);
    // GROUP BY … ORDER BY the text group key: the groups are ranked the same way
    const grouped = await client.query(
      `select upper(w) as w, count(*)::int as n from words group by upper(w) order by upper(w) collate "default" desc`,
    );
    expect(grouped.rows.map((r: { w: string }) => r.w)).toEqual(['F', 'E', 'D', 'C', 'B', 'A']);
    const mixed = await client.query(`select w, count(*)::int as n from words group by w order by w limit 3`);
    expect(mixed.rows).toEqual([
      { w: 'a', n: 1 },
      { w: 'B', n: 1 },
      { w: 'c', n: 1 },
    ]);
    // HAVING may test text for equality; ordering it would need the collation too (refused, not answered by bytes)
    const eq = await client.query(`select w, count(*)::int as n from words group by w having w = 'B'`);
    expect(eq.rows).toEqual([{ w: 'B', n: 1 }]);
    await expect(
      client.query(`select w, count(*) from words group by w having w > 'b'`),
    ).rejects.toMatchObject({ code: '0A000' });
    expect((await client.query('select 1 as ok')).rows[0].ok).toBe(1);
  });

  it('refuses (rather than misorders) a text column with a collation of its own', async () => {
    if (!hasIcu) return;
    await client.query('alter table words add column t text collate "C"');
    await client.query('update words set t = w');
    const err = await client.query('select t from words order by t').then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect(err?.code).toBe('0A000');
    expect(err?.message).toMatch(/collation of its own/);
    // Naming a collation in the ORDER BY ranks in that one.
    const c = await client.query('select t from words order by t collate "en-US-x-icu"');
    expect(c.rows.map((r: { t: string }) => r.t)).toEqual(['a', 'B', 'c', 'D', 'e', 'F']);
    await client.query('alter table words drop column t');
  });

  it('count(DISTINCT text) is exact (equal means equal bytes here); string_agg ORDER BY text needs COLLATE "C"', async () => {
    if (!hasIcu) return;
    const counts = await client.query(
      `select count(distinct w)::int as w, count(distinct lower(w))::int as l, count(distinct w > 'b')::int as b from words`,
    );
    // 'a' … 'F' are six words, six lower-case words; w > 'b' is true or false (en-US: 'a' < 'b' < 'B' < 'c').
    expect(counts.rows).toEqual([{ w: 6, l: 6, b: 2 }]);
    const byText = await client.query(`select string_agg(w, ',' order by w) from words`).then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect(byText?.code).toBe('0A000');
    expect(byText?.message).toMatch(/ORDER BY text inside string_agg/);
    expect(byText?.hint).toMatch(/COLLATE "C"/);
    const bytes = await client.query(`select string_agg(w, ',' order by w collate "C") as s from words`);
    expect(bytes.rows).toEqual([{ s: 'B,D,F,a,c,e' }]);
    const byId = await client.query(`select array_agg(w order by id desc) as a from words`);
    expect(byId.rows).toEqual([{ a: ['F', 'e', 'D', 'c', 'B', 'a'] }]);
  });

  it('merges ORDER BY … COLLATE "C" (byte order), non-text keys, and single-shard sorts', async () => {
    if (!hasIcu) return;
    const c = await client.query('select w from words order by w collate "C"');
    expect(c.rows.map((r: { w: string }) => r.w)).toEqual(['B', 'D', 'F', 'a', 'c', 'e']);
    const byId = await client.query('select w from words order by id desc');
    expect(byId.rows.map((r: { w: string }) => r.w)).toEqual(['F', 'e', 'D', 'c', 'B', 'a']);
    const one = await client.query('select w from words where id = 2 order by w');
    expect(one.rows).toEqual([{ w: 'B' }]);
  });
});
