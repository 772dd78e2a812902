// Requests whose statements need different shards: a multi-statement simple Query — or an extended-protocol batch
// (several Parse/Bind/Execute before one Sync: JDBC executeBatch, pgx / Npgsql batches) — runs statement by statement
// with one ReadyForQuery at the end (one implicit transaction outside BEGIN, as PostgreSQL), and pipelined extended
// requests for different shards each run on their own shards, answered in order.
import pg from 'pg';
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
import { firstError, frame, RawClient, type RawMessage } from '../helpers/raw-client.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let raw: RawClient;

const kinds = (messages: RawMessage[]): string => messages.map((m) => m.type).join('');
const tag = (m: RawMessage): string => m.body.toString('utf8', 0, m.body.length - 1);

async function count(where: string): Promise<number> {
  let n = 0;
  for (const d of direct)
    n += Number((await d.query(`select count(*) as n from users where ${where}`)).rows[0].n);
  return n;
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML });
  direct = await directShardClients(cluster);
  const c = new pg.Client({ connectionString: proxy.url });
  await c.connect();
  await c.query('create table users (id bigint primary key, name text)');
  await c.end();
  raw = await RawClient.connect(proxy.port);
  await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
});

afterAll(async () => {
  raw?.close();
  for (const d of direct ?? []) await d.end();
  await proxy?.close();
  await cluster?.stop();
});

describe('a multi-statement simple Query across shards', () => {
  it('runs each statement on its shards, in order, with one ReadyForQuery', async () => {
    const a = idOn(0, 1);
    const b = idOn(1, 1);
    const replies = await raw.query(
      `insert into users values (${a}, 'a'); insert into users values (${b}, 'b'); select name from users where id = ${b}; select count(*) from users`,
    );
    expect(kinds(replies)).toBe('CCTDCTDCZ');
    expect(tag(replies[0])).toBe('INSERT 0 1');
    expect(replies[3].body.toString('utf8', 6)).toBe('b');
    expect(replies[replies.length - 1].body.toString()).toBe('I');
    expect(await count(`id in (${a}, ${b})`)).toBe(2);
  });

  it('is one implicit transaction: a failing statement undoes the earlier ones on every shard', async () => {
    const a = idOn(0, 100);
    const b = idOn(1, 100);
    const dup = idOn(1, 1); // exists already
    const replies = await raw.query(
      `insert into users values (${a}, 'x'); insert into users values (${b}, 'y'); insert into users values (${dup}, 'dup'); insert into users values (${a + 1000}, 'never')`,
    );
    expect(kinds(replies)).toBe('CCEZ');
    expect(firstError(replies).C).toBe('23505');
    expect(replies[3].body.toString()).toBe('I');
    expect(await count(`id in (${a}, ${b}, ${a + 1000})`)).toBe(0);
    expect(kinds(await raw.query('select 1'))).toBe('TDCZ');
  });

  it('inside an explicit transaction, runs in it and leaves it open (or failed)', async () => {
    const a = idOn(0, 200);
    const b = idOn(1, 200);
    expect(kinds(await raw.query('begin'))).toBe('CZ');
    const replies = await raw.query(
      `insert into users values (${a}, 'a'); insert into users values (${b}, 'b')`,
    );
    expect(kinds(replies)).toBe('CCZ');
    expect(replies[2].body.toString()).toBe('T');
    await raw.query('rollback');
    expect(await count(`id in (${a}, ${b})`)).toBe(0);
  });

  it('runs BEGIN … COMMIT inside the Query as the client wrote it', async () => {
    const a = idOn(0, 300);
    const b = idOn(1, 300);
    const replies = await raw.query(
      `begin; insert into users values (${a}, 'a'); insert into users values (${b}, 'b'); commit`,
    );
    expect(kinds(replies)).toBe('CCCCZ');
    expect(tag(replies[3])).toBe('COMMIT');
    expect(replies[4].body.toString()).toBe('I');
    expect(await count(`id in (${a}, ${b})`)).toBe(2);
  });

  it('stops at an error inside BEGIN …: the transaction is left failed, as PostgreSQL leaves it', async () => {
    const a = idOn(0, 350);
    const dup = idOn(1, 1);
    const replies = await raw.query(
      `begin; insert into users values (${a}, 'a'); insert into users values (${dup}, 'dup'); commit`,
    );
    expect(kinds(replies)).toBe('CCEZ');
    expect(replies[3].body.toString()).toBe('E');
    expect(kinds(await raw.query('rollback'))).toBe('CZ');
    expect(await count(`id = ${a}`)).toBe(0);
  });

  it('refuses COPY inside a multi-statement Query for different shards', async () => {
    const replies = await raw.query(`insert into users values (${idOn(0, 360)}, 'a'); copy users from stdin`);
    expect(kinds(replies)).toBe('EZ');
    expect(firstError(replies).C).toBe('0A000');
  });
});

describe('pipelined requests for different shards', () => {
  it('answers each Sync-terminated request from its own shard, in order', async () => {
    const a = idOn(0, 400);
    const b = idOn(1, 400);
    const parse = (name: string, sql: string): Buffer => frame('P', Buffer.from(`${name}\0${sql}\0\0\0`));
    const bind = (stmt: string, value: string): Buffer => {
      const v = Buffer.from(value);
      const len = Buffer.alloc(4);
      len.writeInt32BE(v.length);
      return frame(
        'B',
        Buffer.concat([Buffer.from(`\0${stmt}\0`), Buffer.from([0, 0, 0, 1]), len, v, Buffer.from([0, 0])]),
      );
    };
    const exec = frame('E', Buffer.from('\0\0\0\0\0'));
    const sync = frame('S');
    raw.write(
      Buffer.concat([
        parse('', `insert into users values ($1, 'p') returning id`),
        bind('', String(a)),
        exec,
        sync,
        parse('', `insert into users values ($1, 'q') returning id`),
        bind('', String(b)),
        exec,
        sync,
      ]),
    );
    const first = await raw.readUntil('Z');
    const second = await raw.readUntil('Z');
    expect(kinds(first)).toBe('12DCZ');
    expect(kinds(second)).toBe('12DCZ');
    expect(first[2].body.toString('utf8', 6)).toBe(String(a));
    expect(second[2].body.toString('utf8', 6)).toBe(String(b));
    expect(await count(`id in (${a}, ${b})`)).toBe(2);
  });

  it('answers a refused request with its error and still runs the pipelined request after it', async () => {
    const b = idOn(1, 450);
    const parse = (sql: string): Buffer => frame('P', Buffer.from(`\0${sql}\0\0\0`));
    const bind = frame('B', Buffer.from('\0\0\0\0\0\0\0\0'));
    const exec = frame('E', Buffer.from('\0\0\0\0\0'));
    const sync = frame('S');
    raw.write(
      Buffer.concat([
        // A join of two sharded tables not on the key: refused by the router (0A000).
        parse('select * from users a join users b on a.name = b.name'),
        bind,
        exec,
        sync,
        parse(`insert into users values (${b}, 'after') returning name`),
        bind,
        exec,
        sync,
      ]),
    );
    const refused = await raw.readUntil('Z');
    const next = await raw.readUntil('Z');
    expect(kinds(refused)).toBe('EZ');
    expect(firstError(refused).C).toBe('0A000');
    expect(kinds(next)).toBe('12DCZ');
    expect(await count(`id = ${b}`)).toBe(1);
  });
});

describe('an extended-protocol batch across shards (several statements before one Sync)', () => {
  const parse = (name: string, sql: string): Buffer => frame('P', Buffer.from(`${name}\0${sql}\0\0\0`));
  const bind = (stmt: string, ...values: string[]): Buffer => {
    const params = values.map((value) => {
      const v = Buffer.from(value);
      const len = Buffer.alloc(4);
      len.writeInt32BE(v.length);
      return Buffer.concat([len, v]);
    });
    const count = Buffer.alloc(2);
    count.writeInt16BE(values.length);
    return frame('B', Buffer.concat([Buffer.from(`\0${stmt}\0\0\0`), count, ...params, Buffer.from([0, 0])]));
  };
  const describePortal = frame('D', Buffer.from('P\0'));
  const exec = frame('E', Buffer.from('\0\0\0\0\0'));
  const sync = frame('S');
  const insert = 'insert into users values ($1, $2)';

  it('runs a JDBC-style batch (Parse per statement) on each statement’s shard, with one ReadyForQuery', async () => {
    const a = idOn(0, 600);
    const b = idOn(1, 600);
    const c = idOn(0, 700);
    raw.write(
      Buffer.concat([
        ...[a, b, c].flatMap((id) => [
          parse('', insert),
          bind('', String(id), 'batch'),
          describePortal,
          exec,
        ]),
        sync,
      ]),
    );
    const replies = await raw.readUntil('Z');
    expect(kinds(replies)).toBe('12nC12nC12nCZ');
    expect(replies.filter((m) => m.type === 'C').map(tag)).toEqual([
      'INSERT 0 1',
      'INSERT 0 1',
      'INSERT 0 1',
    ]);
    expect(replies[replies.length - 1].body.toString()).toBe('I');
    expect(await count(`id in (${a}, ${b}, ${c})`)).toBe(3);
  });

  it('runs a pgx-style batch (one named statement bound for several shards)', async () => {
    const a = idOn(0, 800);
    const b = idOn(1, 800);
    raw.write(
      Buffer.concat([
        parse('ins_batch', insert),
        bind('ins_batch', String(a), 'named'),
        exec,
        bind('ins_batch', String(b), 'named'),
        exec,
        parse('', 'select count(*) from users where name = $1'),
        bind('', 'named'),
        exec,
        sync,
      ]),
    );
    const replies = await raw.readUntil('Z');
    expect(kinds(replies)).toBe('12C2C12DCZ');
    expect(replies[7].body.toString('utf8', 6)).toBe('2'); // the count sees both rows: the same transaction
    expect(await count(`id in (${a}, ${b})`)).toBe(2);
  });

  it('is all or nothing outside a transaction: an error skips the rest and undoes what ran', async () => {
    const a = idOn(0, 900);
    const b = idOn(1, 900);
    const dup = idOn(1, 600); // inserted by the first batch test
    raw.write(
      Buffer.concat([
        parse('', insert),
        bind('', String(a), 'undone'),
        exec,
        parse('', insert),
        bind('', String(dup), 'duplicate'),
        exec,
        parse('', insert),
        bind('', String(b), 'skipped'),
        exec,
        sync,
      ]),
    );
    const replies = await raw.readUntil('Z');
    expect(kinds(replies)).toBe('12C12EZ');
    expect(firstError(replies).C).toBe('23505');
    expect(replies[replies.length - 1].body.toString()).toBe('I');
    expect(await count(`id in (${a}, ${b})`)).toBe(0);
    expect(kinds(await raw.query('select 1'))).toBe('TDCZ');
  });

  it('inside a transaction, a failing statement leaves the transaction failed, as PostgreSQL', async () => {
    const a = idOn(0, 1000);
    const dup = idOn(1, 600);
    expect(kinds(await raw.query('begin'))).toBe('CZ');
    raw.write(
      Buffer.concat([
        parse('', insert),
        bind('', String(a), 'in tx'),
        exec,
        parse('', insert),
        bind('', String(dup), 'duplicate'),
        exec,
        sync,
      ]),
    );
    const replies = await raw.readUntil('Z');
    expect(kinds(replies)).toBe('12C12EZ');
    expect(replies[replies.length - 1].body.toString()).toBe('E');
    expect(kinds(await raw.query('rollback'))).toBe('CZ');
    expect(await count(`id = ${a}`)).toBe(0);
  });

  it('refuses a batch that binds the unnamed statement again for another shard without its Parse', async () => {
    const a = idOn(0, 1100);
    const b = idOn(1, 1100);
    raw.write(
      Buffer.concat([
        parse('', insert),
        bind('', String(a), 'x'),
        exec,
        bind('', String(b), 'y'),
        exec,
        sync,
      ]),
    );
    const replies = await raw.readUntil('Z');
    expect(kinds(replies)).toBe('EZ');
    expect(firstError(replies).C).toBe('0A000');
    expect(await count(`id in (${a}, ${b})`)).toBe(0);
    expect(kinds(await raw.query('select 1'))).toBe('TDCZ');
  });
});
