// Transaction blocks on a sharded database (2 shards, transaction mode): BEGIN reaches a shard only when a statement
// first needs it (no server is held for a shard the transaction never touches); a shard joining late runs the block's
// BEGIN options, SET LOCALs and savepoints first, so it behaves as if it had been there from the start; COMMIT and
// ROLLBACK go to the shards reached (none: answered by the proxy); a failed transaction's COMMIT rolls back everywhere.
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { testServers } from '../helpers/pg-servers.js';
import { APP_SERVER_OPTIONS, APP_USER, startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
const clients: pg.Client[] = [];

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: proxy.url });
  await c.connect();
  clients.push(c);
  return c;
}

/** A setting as the server connection on `shard` sees it inside the client's transaction. */
async function settingOn(c: pg.Client, shard: number, name: string): Promise<string> {
  const r = await c.query(`select current_setting('${name}') as v /* shardgate: shard=${shard} */`);
  return `${r.rows[0].v}`;
}

/** Server connections of the app user inside a transaction on `shard`, seen on the shard itself. */
async function inTransactionOn(shard: number): Promise<number> {
  const r = await direct[shard].query(
    `select count(*)::int as n from pg_stat_activity where usename = $1 and state like 'idle in transaction%'`,
    [APP_USER],
  );
  return r.rows[0].n as number;
}

async function namesOn(shard: number): Promise<string[]> {
  const r = await direct[shard].query('select name from users order by name');
  return r.rows.map((row: { name: string }) => row.name);
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML, userExtra: 'pool_size = 4' });
  direct = await directShardClients(cluster);
  // A test that fails inside a transaction must not leave the next one's TRUNCATE waiting for its locks forever.
  for (const d of direct) await d.query("set lock_timeout = '5s'");
  const c = await connect();
  await c.query('create table users (id bigint primary key, name text)');
});

beforeEach(async () => {
  for (const d of direct) await d.query('truncate users');
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  await proxy?.close();
  await cluster?.stop();
});

describe('transaction blocks across shards (lazy BEGIN)', () => {
  it('BEGIN holds no server; a shard joins on its first statement, and only that shard', async () => {
    const c = await connect();
    await c.query('begin');
    expect([await inTransactionOn(0), await inTransactionOn(1)]).toEqual([0, 0]);
    await c.query('insert into users values ($1, $2)', [idOn(1, 1), 'one']);
    expect([await inTransactionOn(0), await inTransactionOn(1)]).toEqual([0, 1]);
    await c.query('commit');
    expect([await inTransactionOn(0), await inTransactionOn(1)]).toEqual([0, 0]);
    expect(await namesOn(1)).toEqual(['one']);
  });

  it('answers BEGIN … COMMIT and BEGIN … ROLLBACK with no statement in between itself', async () => {
    const c = await connect();
    for (const end of ['commit', 'rollback', 'end', 'abort']) {
      await c.query('begin');
      const r = await c.query(end);
      expect(r.command).toBe(end === 'commit' || end === 'end' ? 'COMMIT' : 'ROLLBACK');
    }
    // The session is out of the transaction: a write commits on its own.
    await c.query('insert into users values ($1, $2)', [idOn(0, 1), 'after']);
    expect(await namesOn(0)).toEqual(['after']);
  });

  it('carries the isolation level and access mode of BEGIN to every shard that joins', async () => {
    const c = await connect();
    await c.query('begin isolation level repeatable read read only');
    expect(await settingOn(c, 0, 'transaction_isolation')).toBe('repeatable read');
    expect(await settingOn(c, 1, 'transaction_isolation')).toBe('repeatable read');
    expect(await settingOn(c, 1, 'transaction_read_only')).toBe('on');
    await expect(c.query('insert into users values ($1, $2)', [idOn(0, 2), 'x'])).rejects.toMatchObject({
      code: '25006', // read_only_sql_transaction, from the shard itself
    });
    await c.query('rollback');
    // START TRANSACTION + SET TRANSACTION, the extended protocol (values: [] makes node-postgres Parse/Bind)
    await c.query({ text: 'start transaction', values: [] });
    await c.query('set transaction isolation level serializable');
    expect(await settingOn(c, 0, 'transaction_isolation')).toBe('serializable');
    expect(await settingOn(c, 1, 'transaction_isolation')).toBe('serializable');
    await c.query({ text: 'commit', values: [] });
    expect(await settingOn(c, 1, 'transaction_isolation')).toBe('read committed');
  });

  it('carries SET LOCAL to a shard that joins after it, and it ends with the transaction', async () => {
    const c = await connect();
    await c.query('begin');
    await c.query("set local statement_timeout = '7s'");
    expect(await settingOn(c, 0, 'statement_timeout')).toBe('7s');
    expect(await settingOn(c, 1, 'statement_timeout')).toBe('7s');
    await c.query('commit');
    expect(await settingOn(c, 0, 'statement_timeout')).toBe('0');
    expect(await settingOn(c, 1, 'statement_timeout')).toBe('0');
  });

  it('replays savepoints on a joining shard: ROLLBACK TO undoes its writes there too', async () => {
    const c = await connect();
    await c.query('begin');
    await c.query('insert into users values ($1, $2)', [idOn(0, 300), 'kept0']);
    await c.query('savepoint a');
    // Shard 1 joins after the savepoint: without its replay, ROLLBACK TO a would fail there (3B001).
    await c.query('insert into users values ($1, $2)', [idOn(1, 300), 'undone1']);
    await c.query('insert into users values ($1, $2)', [idOn(0, 400), 'undone0']);
    await c.query('rollback to savepoint a');
    await c.query('insert into users values ($1, $2)', [idOn(1, 500), 'kept1']);
    await c.query('release savepoint a');
    await c.query('commit');
    expect(await namesOn(0)).toEqual(['kept0']);
    expect(await namesOn(1)).toEqual(['kept1']);
  });

  it('recovers from an error with ROLLBACK TO across the shards reached', async () => {
    const c = await connect();
    await c.query('begin');
    await c.query('insert into users values ($1, $2)', [idOn(0, 6), 'first']);
    await c.query('savepoint s1');
    await expect(c.query('insert into users values ($1, $2)', [idOn(0, 6), 'dup'])).rejects.toMatchObject({
      code: '23505',
    });
    await expect(c.query('select 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('rollback to s1');
    await c.query('insert into users values ($1, $2)', [idOn(1, 6), 'second']);
    await c.query('commit');
    expect(await namesOn(0)).toEqual(['first']);
    expect(await namesOn(1)).toEqual(['second']);
  });

  it('COMMIT of a failed transaction on two shards rolls back on both (extended protocol too)', async () => {
    const c = await connect();
    for (const commit of [{ text: 'commit' }, { text: 'commit', values: [] }]) {
      await c.query('begin');
      await c.query('insert into users values ($1, $2)', [idOn(0, 7), 'healthy']);
      await c.query('insert into users values ($1, $2)', [idOn(1, 7), 'other']);
      await expect(c.query('select 1 / 0 /* shardgate: shard=1 */')).rejects.toMatchObject({ code: '22012' });
      const r = await c.query(commit);
      expect(r.command).toBe('ROLLBACK');
      expect(await namesOn(0)).toEqual([]);
      expect(await namesOn(1)).toEqual([]);
      expect([await inTransactionOn(0), await inTransactionOn(1)]).toEqual([0, 0]);
    }
  });

  it('warns about a BEGIN inside a transaction, as PostgreSQL does, and carries on', async () => {
    const c = await connect();
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(`${n.code ?? ''} ${n.message}`));
    await c.query('begin');
    await c.query('begin');
    await c.query('insert into users values ($1, $2)', [idOn(1, 8), 'in tx']);
    await c.query('begin');
    await c.query('commit');
    expect(notices).toEqual([
      '25001 there is already a transaction in progress',
      '25001 there is already a transaction in progress',
    ]);
    expect(await namesOn(1)).toEqual(['in tx']);
  });

  it('keeps a SET made inside a transaction for the session once it commits, not when it rolls back', async () => {
    const c = await connect();
    await c.query('begin');
    await c.query("set statement_timeout = '8s'");
    await c.query('rollback');
    expect(await settingOn(c, 1, 'statement_timeout')).toBe('0');
    await c.query('begin');
    await c.query("set statement_timeout = '9s'");
    await c.query('commit');
    // A later transaction-mode request on either shard (maybe another server connection) still has it.
    const other = await connect();
    await other.query('begin');
    await other.query('select count(*) from users');
    expect(await settingOn(c, 0, 'statement_timeout')).toBe('9s');
    expect(await settingOn(c, 1, 'statement_timeout')).toBe('9s');
    await other.query('commit');
  });

  it('a transaction over both shards commits on both; the next client gets clean connections', async () => {
    const c = await connect();
    await c.query('begin');
    await c.query("set local lock_timeout = '3s'");
    await c.query('insert into users values ($1, $2), ($3, $4)', [idOn(0, 9), 'a', idOn(1, 9), 'b']);
    await c.query('commit');
    expect(await namesOn(0)).toEqual(['a']);
    expect(await namesOn(1)).toEqual(['b']);
    const next = await connect();
    expect(await settingOn(next, 0, 'lock_timeout')).toBe('0');
    expect(await settingOn(next, 1, 'lock_timeout')).toBe('0');
  });
});
