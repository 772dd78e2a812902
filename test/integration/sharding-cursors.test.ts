// Cursors across shards (2 shards): a fan-out read executed with a row limit (PortalSuspended), or sent with Flush
// and no Sync, as postgres.js `.cursor()`, pg-cursor and JDBC's fetch size do. The proxy runs it to the end on each
// shard, merges, and hands the rows out Execute by Execute exactly as PostgreSQL would (the message sequence of a
// single server, checked here against one); a failing cursor answers its error and the connection serves on.
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import {
  APP_DB,
  APP_PASSWORD,
  APP_SERVER_OPTIONS,
  APP_USER,
  startTestProxy,
  type TestProxy,
} from '../helpers/proxy.js';
import { errorFields, frame, RawClient, type RawMessage } from '../helpers/raw-client.js';
import { idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let raw: RawClient;
let reference: RawClient;
/** Every user id, in order (rows on both shards). */
let ids: number[] = [];

const parse = (sql: string): Buffer => frame('P', Buffer.from(`\0${sql}\0\0\0`));
const bind = (portal = ''): Buffer => frame('B', Buffer.from(`${portal}\0\0\0\0\0\0\0\0`));
const execute = (rows: number, portal = ''): Buffer => {
  const body = Buffer.alloc(portal.length + 5);
  body.write(portal);
  body.writeInt32BE(rows, portal.length + 1);
  return frame('E', body);
};
const describePortal = (portal = ''): Buffer => frame('D', Buffer.from(`P${portal}\0`));
const closePortal = (portal = ''): Buffer => frame('C', Buffer.from(`P${portal}\0`));
const FLUSH = frame('H');
const SYNC = frame('S');
const query = (sql: string): Buffer => frame('Q', Buffer.from(`${sql}\0`));

/** Reply types, with DataRow values and CommandComplete tags spelled out. */
function spell(messages: RawMessage[]): string[] {
  return messages.map((m) => {
    if (m.type === 'D') return `D:${m.body.toString('utf8', 6)}`;
    if (m.type === 'C') return `C:${m.body.toString('utf8', 0, m.body.length - 1)}`;
    if (m.type === 'E') return `E:${errorFields(m.body).C}`;
    return m.type;
  });
}

async function read(client: RawClient, count: number): Promise<string[]> {
  const out: RawMessage[] = [];
  for (let i = 0; i < count; i++) out.push(await client.readMessage());
  return spell(out);
}

/** The same bytes to the proxy and to one plain PostgreSQL holding every row: the same replies must come back. */
async function both(bytes: Buffer, count: number): Promise<string[]> {
  raw.write(bytes);
  reference.write(bytes);
  const [viaProxy, direct] = await Promise.all([read(raw, count), read(reference, count)]);
  expect(viaProxy).toEqual(direct);
  return viaProxy;
}

/** Replies up to and including the next ReadyForQuery. */
async function untilReady(client: RawClient): Promise<string[]> {
  const out: RawMessage[] = [];
  for (;;) {
    const m = await client.readMessage();
    out.push(m);
    if (m.type === 'Z') return [...spell(out.slice(0, -1)), `Z:${m.body.toString()}`];
  }
}

/** As `both`, reading each side up to its next ReadyForQuery (its status spelled out). */
async function bothUntilReady(bytes: Buffer): Promise<string[]> {
  raw.write(bytes);
  reference.write(bytes);
  const [viaProxy, direct] = await Promise.all([untilReady(raw), untilReady(reference)]);
  expect(viaProxy).toEqual(direct);
  return viaProxy;
}

beforeAll(async () => {
  cluster = await testServers(3, APP_SERVER_OPTIONS);
  // Shards 0 and 1 behind the proxy; server 2 is the reference with every row.
  const shards = { ...cluster, servers: cluster.servers.slice(0, 2) } as PgCluster;
  proxy = await startTestProxy(shards, { extraPgdog: USERS_SHARDING_TOML });
  const setup = new pg.Client({ connectionString: proxy.url });
  await setup.connect();
  await setup.query('create table users (id bigint primary key, name text)');
  ids = Array.from({ length: 12 }, (_, i) => idOn(i % 2, 100 * (i + 1))).sort((a, b) => a - b);
  const values = ids.map((id) => `(${id}, 'u${id}')`).join(', ');
  await setup.query(`insert into users values ${values}`);
  await setup.end();
  const ref = cluster.servers[2];
  const direct = new pg.Client({
    host: ref.host,
    port: ref.port,
    user: APP_USER,
    password: APP_PASSWORD,
    database: APP_DB,
  });
  await direct.connect();
  await direct.query('create table users (id bigint primary key, name text)');
  await direct.query(`insert into users values ${values}`);
  await direct.end();
  raw = await RawClient.connect(proxy.port);
  await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
  reference = await RawClient.connect(ref.port, ref.host);
  await reference.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
});

afterAll(async () => {
  raw?.socket.destroy();
  reference?.socket.destroy();
  await proxy?.close();
  await cluster?.stop();
});

describe('cursors across shards', () => {
  it('streams an ordered fan-out Execute by Execute with Flush, as one PostgreSQL does', async () => {
    const sql = 'select id from users order by id';
    const first = await both(Buffer.concat([parse(sql), bind(), execute(5), FLUSH]), 8);
    expect(first).toEqual(['1', '2', ...ids.slice(0, 5).map((id) => `D:${id}`), 's']);
    expect(await both(Buffer.concat([execute(5), FLUSH]), 6)).toEqual([
      ...ids.slice(5, 10).map((id) => `D:${id}`),
      's',
    ]);
    // The last rows: the tag counts this Execute's rows; then an exhausted portal answers SELECT 0.
    expect(await both(Buffer.concat([execute(5), FLUSH]), 3)).toEqual([
      ...ids.slice(10).map((id) => `D:${id}`),
      'C:SELECT 2',
    ]);
    expect(await both(Buffer.concat([execute(5), FLUSH]), 1)).toEqual(['C:SELECT 0']);
    expect(await both(SYNC, 1)).toEqual(['Z']);
    // Sync ended the portal (outside a transaction): Execute of it fails, as in PostgreSQL.
    const gone = await both(Buffer.concat([execute(5), SYNC]), 2);
    expect(gone).toEqual(['E:34000', 'Z']);
  });

  it('keeps a named portal across Syncs inside a transaction (JDBC fetch size), with Describe and Close', async () => {
    const sql = 'select id from users where id > 0 order by id desc';
    const desc = [...ids].reverse().map((id) => `D:${id}`);
    expect(await both(query('begin'), 2)).toEqual(['C:BEGIN', 'Z']);
    const first = await both(
      Buffer.concat([parse(sql), bind('c1'), describePortal('c1'), execute(4, 'c1'), SYNC]),
      9,
    );
    expect(first).toEqual(['1', '2', 'T', ...desc.slice(0, 4), 's', 'Z']);
    expect(await both(Buffer.concat([describePortal('c1'), execute(4, 'c1'), SYNC]), 7)).toEqual([
      'T',
      ...desc.slice(4, 8),
      's',
      'Z',
    ]);
    expect(await both(Buffer.concat([closePortal('c1'), SYNC]), 2)).toEqual(['3', 'Z']);
    expect(await both(query('commit'), 2)).toEqual(['C:COMMIT', 'Z']);
  });

  it('answers a failing cursor with its error, then serves on', async () => {
    const sql = 'select 1 / (id - id) from users';
    const failed = await both(Buffer.concat([parse(sql), bind(), execute(3), FLUSH]), 3);
    expect(failed).toEqual(['1', '2', 'E:22012']);
    expect(await both(SYNC, 1)).toEqual(['Z']);
    expect(await both(query('select count(*) from users'), 4)).toEqual(['T', 'D:12', 'C:SELECT 1', 'Z']);
  });

  it('answers a cursor in a failed transaction with 25P02 and no ReadyForQuery until the client’s Sync (regression)', async () => {
    expect(await both(query('begin'), 2)).toEqual(['C:BEGIN', 'Z']);
    expect((await both(query('select 1 / (id - id) from users'), 3)).slice(-2)).toEqual(['E:22012', 'Z']);
    const refused = await both(
      Buffer.concat([parse('select id from users order by id'), bind(), execute(3), FLUSH]),
      1,
    );
    expect(refused).toEqual(['E:25P02']);
    expect(await both(SYNC, 1)).toEqual(['Z']);
    expect(await both(query('rollback'), 2)).toEqual(['C:ROLLBACK', 'Z']);
  });

  it('refuses a cursor over a write on several shards, clearly', async () => {
    raw.write(Buffer.concat([parse('update users set name = name returning id'), bind(), execute(2), FLUSH]));
    const refused = await read(raw, 1);
    expect(refused).toEqual(['E:0A000']);
    raw.write(SYNC);
    expect(await read(raw, 1)).toEqual(['Z']);
  });

  it('postgres.js .cursor() walks a fan-out query in batches to the end', async () => {
    const sql = postgres(proxy.url, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
    try {
      const seen: number[] = [];
      let batches = 0;
      for await (const rows of sql`select id from users where id > ${0} order by id`.cursor(5)) {
        batches++;
        for (const r of rows) seen.push(Number(r.id));
      }
      expect(seen).toEqual(ids);
      expect(batches).toBe(3);
      // Breaking out early closes the cursor; the connection is fine after.
      for await (const rows of sql`select id from users order by id`.cursor(2)) {
        expect(rows).toHaveLength(2);
        break;
      }
      expect((await sql`select count(*)::int as n from users`)[0].n).toBe(12);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
});

describe("a statement of a script answered from the proxy's cursor portal (regression: it sent a ReadyForQuery mid-batch and the script ran on into the client's next request)", () => {
  const sql = 'select id from users order by id';
  /** Statements for both shards before one Sync (a script), with an Execute of `portal` between them. */
  const batch = (portal: string, n: number): Buffer =>
    Buffer.concat([
      parse(`insert into users values (${idOn(0, n)}, 'x')`),
      bind(),
      execute(0),
      execute(0, portal),
      parse(`insert into users values (${idOn(1, n)}, 'y')`),
      bind(),
      execute(0),
      SYNC,
    ]);

  it('inside BEGIN: the portal answers its rows in place, the script goes on, one ReadyForQuery', async () => {
    expect(await both(query('begin'), 2)).toEqual(['C:BEGIN', 'Z']);
    const first = await both(Buffer.concat([parse(sql), bind('c2'), execute(2, 'c2'), SYNC]), 6);
    expect(first).toEqual(['1', '2', `D:${ids[0]}`, `D:${ids[1]}`, 's', 'Z']);
    const replies = await bothUntilReady(batch('c2', 9001));
    expect(replies).toEqual([
      '1',
      '2',
      'C:INSERT 0 1',
      ...ids.slice(2).map((id) => `D:${id}`),
      `C:SELECT ${ids.length - 2}`,
      '1',
      '2',
      'C:INSERT 0 1',
      'Z:T',
    ]);
    // The script is over: the next request is answered on its own, in the same transaction, with both rows written.
    expect(
      await bothUntilReady(
        query(`select count(*) from users where id in (${idOn(0, 9001)}, ${idOn(1, 9001)})`),
      ),
    ).toEqual(['T', 'D:2', 'C:SELECT 1', 'Z:T']);
    expect(await bothUntilReady(query('rollback'))).toEqual(['C:ROLLBACK', 'Z:I']);
  });

  it("outside a transaction (a portal kept by a Flush-only cursor): the batch is one implicit transaction, committed at the client's Sync, which ends the portal", async () => {
    const first = await both(Buffer.concat([parse(sql), bind('c3'), execute(2, 'c3'), FLUSH]), 5);
    expect(first).toEqual(['1', '2', `D:${ids[0]}`, `D:${ids[1]}`, 's']);
    const replies = await bothUntilReady(batch('c3', 9002));
    expect(replies.slice(-5)).toEqual([`C:SELECT ${ids.length - 2}`, '1', '2', 'C:INSERT 0 1', 'Z:I']);
    expect(await bothUntilReady(Buffer.concat([execute(1, 'c3'), SYNC]))).toEqual(['E:34000', 'Z:I']);
    const written = `id in (${idOn(0, 9002)}, ${idOn(1, 9002)})`;
    expect(await bothUntilReady(query(`select count(*) from users where ${written}`))).toEqual([
      'T',
      'D:2',
      'C:SELECT 1',
      'Z:I',
    ]);
    expect(await bothUntilReady(query(`delete from users where ${written}`))).toEqual(['C:DELETE 2', 'Z:I']);
  });
});
