// A sharded database whose collation does not sort text by bytes (ICU en-US): merging text ORDER BY / min / max
// across shards would give a wrong order, so it is refused with 0A000 — unless the query sorts with COLLATE "C".
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
  it('refuses ORDER BY and min/max of text with 0A000 and a hint', async () => {
    if (!hasIcu) return;
    const err = await client.query('select w from words order by w').then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    expect(err?.code).toBe('0A000');
    expect(err?.message).toMatch(/collation/);
    expect(err?.hint).toMatch(/COLLATE "C"/);
    await expect(client.query('select min(w) from words')).rejects.toMatchObject({ code: '0A000' });
    expect((await client.query('select 1 as ok')).rows[0].ok).toBe(1);
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
