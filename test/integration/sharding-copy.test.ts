// COPY … FROM STDIN through a 2-shard proxy: every row lands on the shard PostgreSQL's hash picks (100,000 rows with
// psql \copy; text, CSV with HEADER and quoted newlines, binary), copied tables get every row on every shard, and
// failures (a key that does not parse, a duplicate key on one shard) change nothing anywhere and leave the
// connection usable.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
import { findPgTool, libpqEnv, runTool } from '../helpers/clients/pg-tools.js';
import { errorFields, firstError, frame, RawClient, type RawMessage } from '../helpers/raw-client.js';
import { directShardClients, USERS_SHARDING_TOML, userShard } from '../helpers/sharding.js';

const psqlPath = findPgTool('psql') as string;
const PGBENCH_SHARDING_TOML = `
[[sharded_tables]]
database = "${APP_DB}"
name = "pgbench_accounts"
column = "aid"
data_type = "integer"
`;
let cluster: PgCluster;
let proxy: TestProxy;
let direct: pg.Client[];
let client: pg.Client;
let dir: string;

async function countOn(shard: number, sql: string): Promise<number> {
  return Number((await direct[shard].query(sql)).rows[0].n);
}

/** Rows of `users` with ids in [from, to) that are on a shard other than their own. */
async function misplaced(from: number, to: number): Promise<number> {
  let bad = 0;
  for (const [shard, d] of direct.entries()) {
    const ids = (await d.query<{ id: string }>('select id from users where id >= $1 and id < $2', [from, to]))
      .rows;
    bad += ids.filter((r) => userShard(Number(r.id)) !== shard).length;
  }
  return bad;
}

/** COPY over the raw protocol: the statement, then `chunks` as separate CopyData messages, then CopyDone. */
async function rawCopy(raw: RawClient, sql: string, chunks: Buffer[]): Promise<RawMessage[]> {
  raw.write(frame('Q', `${sql}\0`));
  const first = await raw.readMessage();
  if (first.type !== 'G') return [first, ...(await raw.readUntil('Z'))];
  for (const c of chunks) raw.write(frame('d', c));
  raw.write(frame('c'));
  return raw.readUntil('Z');
}

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  proxy = await startTestProxy(cluster, { extraPgdog: USERS_SHARDING_TOML + PGBENCH_SHARDING_TOML });
  direct = await directShardClients(cluster);
  client = new pg.Client({ connectionString: proxy.url });
  await client.connect();
  await client.query('create table users (id bigint primary key, name text, note text)');
  await client.query('create table countries (code text primary key, name text)');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-copy-'));
});

afterAll(async () => {
  await client?.end();
  for (const d of direct ?? []) await d.end();
  await proxy?.close();
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('COPY FROM STDIN across shards', () => {
  it('splits 100,000 rows from psql \\copy by the sharding key', async () => {
    const file = path.join(dir, 'users.tsv');
    const lines: string[] = [];
    for (let id = 1; id <= 100_000; id++)
      lines.push(`${id}\tuser ${id}\t${id % 7 === 0 ? '\\N' : `tab\\there ${id}`}`);
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    const r = await runTool(
      psqlPath,
      ['-X', '-v', 'ON_ERROR_STOP=1', '-c', `\\copy users (id, name, note) from '${file}'`],
      {
        env: libpqEnv(proxy.port, APP_USER, APP_PASSWORD, APP_DB),
        cwd: dir,
        timeoutMs: 60_000,
      },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('COPY 100000');
    const on0 = await countOn(0, 'select count(*) as n from users where id <= 100000');
    const on1 = await countOn(1, 'select count(*) as n from users where id <= 100000');
    expect(on0 + on1).toBe(100_000);
    expect(on0).toBeGreaterThan(40_000);
    expect(on1).toBeGreaterThan(40_000);
    expect(await misplaced(1, 100_001)).toBe(0);
    const row = (await client.query('select name, note from users where id = 6')).rows[0];
    expect(row).toEqual({ name: 'user 6', note: 'tab\there 6' });
    expect((await client.query('select note from users where id = 7')).rows[0].note).toBeNull();
  });

  it('finds the key column itself when COPY lists no columns, and splits rows cut anywhere by CopyData', async () => {
    const raw = await RawClient.connect(proxy.port);
    await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    const data = Buffer.from(Array.from({ length: 50 }, (_, k) => `${200_000 + k}\tn${k}\tx\n`).join(''));
    const chunks = [data.subarray(0, 7), data.subarray(7, 300), data.subarray(300)];
    const replies = await rawCopy(raw, 'copy users from stdin', chunks);
    raw.close();
    expect(replies.map((m) => m.type)).toEqual(['C', 'Z']);
    expect(replies[0].body.toString('utf8', 0, replies[0].body.length - 1)).toBe('COPY 50');
    expect(await misplaced(200_000, 200_050)).toBe(0);
    expect(
      Number(
        (await client.query('select count(*) as n from users where id >= 200000 and id < 200050')).rows[0].n,
      ),
    ).toBe(50);
  });

  it('splits CSV with HEADER, quoted delimiters and newlines', async () => {
    const raw = await RawClient.connect(proxy.port);
    await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    const csv = 'name,id\n"multi\nline, name",300001\nplain,300002\n"q ""x""",300003\n';
    const replies = await rawCopy(raw, 'copy users (name, id) from stdin with (format csv, header)', [
      Buffer.from(csv),
    ]);
    raw.close();
    expect(replies.map((m) => m.type)).toEqual(['C', 'Z']);
    const rows = (await client.query('select id, name from users where id > 300000 order by id')).rows;
    expect(rows).toEqual([
      { id: '300001', name: 'multi\nline, name' },
      { id: '300002', name: 'plain' },
      { id: '300003', name: 'q "x"' },
    ]);
    expect(await misplaced(300_000, 300_010)).toBe(0);
  });

  it('splits binary COPY data', async () => {
    // Binary rows made by PostgreSQL itself (COPY TO on one shard), then removed there and copied in through the proxy.
    await direct[0].query(
      `insert into users (id, name) select g, 'bin ' || g from generate_series(400000, 400019) g`,
    );
    const binFile = path.join(dir, 'users.bin');
    const out = await runTool(
      psqlPath,
      [
        '-X',
        '-c',
        `\\copy (select id, name from users where id >= 400000 order by id) to '${binFile}' with (format binary)`,
      ],
      { env: libpqEnv(cluster.servers[0].port, APP_USER, APP_PASSWORD, APP_DB), cwd: dir, timeoutMs: 20_000 },
    );
    expect(out.stderr).toBe('');
    await direct[0].query('delete from users where id >= 400000');
    const r = await runTool(
      psqlPath,
      ['-X', '-c', `\\copy users (id, name) from '${binFile}' with (format binary)`],
      {
        env: libpqEnv(proxy.port, APP_USER, APP_PASSWORD, APP_DB),
        cwd: dir,
        timeoutMs: 20_000,
      },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('COPY 20');
    expect(await misplaced(400_000, 400_020)).toBe(0);
    expect(Number((await client.query('select count(*) as n from users where id >= 400000')).rows[0].n)).toBe(
      20,
    );
  });

  it('COPY … TO STDOUT gathers the rows of every shard (text and binary headers once)', async () => {
    const out = await runTool(
      psqlPath,
      ['-X', '-c', `\\copy (select id from users where id > 300000 and id < 300010) to stdout`],
      {
        env: libpqEnv(proxy.port, APP_USER, APP_PASSWORD, APP_DB),
        cwd: dir,
        timeoutMs: 20_000,
      },
    );
    expect(out.stderr).toBe('');
    expect(out.stdout.trim().split('\n').sort()).toEqual(['300001', '300002', '300003']);
    const binFile = path.join(dir, 'all.bin');
    const bin = await runTool(
      psqlPath,
      [
        '-X',
        '-c',
        `\\copy (select id from users where id > 300000 and id < 300010) to '${binFile}' with (format binary)`,
      ],
      {
        env: libpqEnv(proxy.port, APP_USER, APP_PASSWORD, APP_DB),
        cwd: dir,
        timeoutMs: 20_000,
      },
    );
    expect(bin.stderr).toBe('');
    // One file header and one trailer around the rows of both shards: it loads back into PostgreSQL as is.
    await direct[0].query('create table copy_back (id bigint)');
    const load = await runTool(
      psqlPath,
      ['-X', '-c', `\\copy copy_back from '${binFile}' with (format binary)`],
      {
        env: libpqEnv(cluster.servers[0].port, APP_USER, APP_PASSWORD, APP_DB),
        cwd: dir,
        timeoutMs: 20_000,
      },
    );
    expect(load.stderr).toBe('');
    expect(load.stdout.trim()).toBe('COPY 3');
    await direct[0].query('drop table copy_back');
    const csv = await runTool(
      psqlPath,
      [
        '-X',
        '-c',
        `\\copy (select id, name from users where id > 300000 and id < 300010) to stdout with (format csv, header)`,
      ],
      { env: libpqEnv(proxy.port, APP_USER, APP_PASSWORD, APP_DB), cwd: dir, timeoutMs: 20_000 },
    );
    const lines = csv.stdout.trim().split('\n');
    expect(lines[0]).toBe('id,name');
    expect(lines.filter((l) => l === 'id,name')).toHaveLength(1); // one header, not one per shard
    for (const id of ['300001', '300002', '300003'])
      expect(lines.some((l) => l.startsWith(`${id},`))).toBe(true);
  });

  it('copies every row to every shard for a table that is copied to every shard', async () => {
    const raw = await RawClient.connect(proxy.port);
    await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    const replies = await rawCopy(raw, 'copy countries from stdin', [
      Buffer.from('fr\tFrance\nde\tGermany\n'),
    ]);
    raw.close();
    expect(replies.map((m) => m.type)).toEqual(['C', 'Z']);
    expect(replies[0].body.toString('utf8', 0, replies[0].body.length - 1)).toBe('COPY 2');
    expect(await countOn(0, 'select count(*) as n from countries')).toBe(2);
    expect(await countOn(1, 'select count(*) as n from countries')).toBe(2);
  });

  it('refuses a key that does not parse: 22P02 naming the row, nothing copied anywhere, connection usable', async () => {
    const raw = await RawClient.connect(proxy.port);
    await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    const replies = await rawCopy(raw, 'copy users (id, name) from stdin', [
      Buffer.from('500001\tok\n500002\tok\nnot-a-number\tbad\n'),
    ]);
    expect(replies.map((m) => m.type)).toEqual(['E', 'Z']);
    const err = firstError(replies);
    expect(err.C).toBe('22P02');
    expect(err.D).toMatch(/COPY data row 3/);
    expect(replies[1].body.toString()).toBe('I');
    expect(Number((await client.query('select count(*) as n from users where id > 500000')).rows[0].n)).toBe(
      0,
    );
    const again = await raw.query('select 1');
    expect(again.map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    raw.close();
  });

  it('answers a Query sent in the middle of COPY data as PostgreSQL: ERROR 08P01, FATAL 08P01, closed (was: hung)', async () => {
    // Found by the protocol fuzzer. PostgreSQL fails the COPY ("unexpected message type 0x51 during COPY from stdin")
    // and, having lost track of the client's messages, ends the connection; Sync and Flush it ignores.
    const raw = await RawClient.connect(proxy.port);
    await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    raw.write(frame('Q', 'copy users (id, name) from stdin\0'));
    expect((await raw.readMessage()).type).toBe('G');
    raw.write(Buffer.concat([frame('d', '600001\tok\n'), frame('S'), frame('H'), frame('Q', 'select 1\0')]));
    const error = await raw.readMessage();
    expect(error.type).toBe('E');
    expect(errorFields(error.body)).toMatchObject({ S: 'ERROR', C: '08P01' });
    const fatal = await raw.readMessage();
    expect(errorFields(fatal.body)).toMatchObject({ S: 'FATAL', C: '08P01' });
    expect(await raw.waitClosed()).toBe(true);
    raw.close();
    const n = await client.query('select count(*) as n from users where id = 600001');
    expect(Number(n.rows[0].n)).toBe(0);
    const c = new pg.Client({ connectionString: proxy.url });
    await c.connect();
    expect((await c.query('select 1 as one')).rows[0].one).toBe(1);
    await c.end();
  });

  it('rolls back every shard when one shard fails (duplicate key), and keeps the connection usable', async () => {
    const dupOn = userShard(1); // id 1 exists from the first test
    const fresh = Array.from({ length: 40 }, (_, k) => 600_000 + k);
    const raw = await RawClient.connect(proxy.port);
    await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    const data = [
      ...fresh.map((id) => `${id}\tnew\n`),
      '1\tduplicate\n',
      ...fresh.map((id) => `${id + 100}\tlate\n`),
    ];
    const replies = await rawCopy(raw, 'copy users (id, name) from stdin', [Buffer.from(data.join(''))]);
    expect(replies.map((m) => m.type)).toEqual(['E', 'Z']);
    expect(firstError(replies).C).toBe('23505');
    expect(firstError(replies).D).toMatch(new RegExp(`shard ${dupOn}`));
    expect(Number((await client.query('select count(*) as n from users where id >= 600000')).rows[0].n)).toBe(
      0,
    );
    expect((await raw.query('select 1')).map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    raw.close();
  });

  it('runs inside a client transaction: rolled back with it, committed with it', async () => {
    const raw = await RawClient.connect(proxy.port);
    await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
    const rows = Buffer.from('700001\ta\n700002\tb\n700003\tc\n700004\td\n');
    const count = async (): Promise<number> =>
      Number((await client.query('select count(*) as n from users where id > 700000')).rows[0].n);
    expect((await raw.query('begin')).map((m) => m.type)).toEqual(['C', 'Z']);
    const inTx = await rawCopy(raw, 'copy users (id, name) from stdin', [rows]);
    expect(inTx.map((m) => m.type)).toEqual(['C', 'Z']);
    expect(inTx[1].body.toString()).toBe('T');
    await raw.query('rollback');
    expect(await count()).toBe(0);
    await raw.query('begin');
    await rawCopy(raw, 'copy users (id, name) from stdin', [rows]);
    expect((await raw.query('commit')).map((m) => m.type)).toEqual(['C', 'Z']);
    expect(await count()).toBe(4);
    expect(await misplaced(700_000, 700_010)).toBe(0);
    raw.close();
  });

  it('lets pgbench -i load pgbench_accounts through the proxy (COPY without a column list, in a transaction)', async () => {
    const pgbench = findPgTool('pgbench') as string;
    const r = await runTool(pgbench, ['-i', '-s', '1', '-q', APP_DB], {
      env: libpqEnv(proxy.port, APP_USER, APP_PASSWORD, APP_DB),
      cwd: dir,
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    let total = 0;
    for (const [shard, d] of direct.entries()) {
      const n = Number((await d.query('select count(*) as n from pgbench_accounts')).rows[0].n);
      total += n;
      // PostgreSQL's own hash partitioning decides which shard each aid belongs to.
      await d.query('create table if not exists sg_hash_check (aid int) partition by hash (aid)');
      const wrong = await d.query(
        `select count(*) as n from pgbench_accounts where not satisfies_hash_partition('sg_hash_check'::regclass, 2, ${shard}, aid)`,
      );
      expect(Number(wrong.rows[0].n)).toBe(0);
    }
    expect(total).toBe(100_000);
    // Copied tables (branches, tellers) are whole on every shard.
    for (const d of direct)
      expect(Number((await d.query('select count(*) as n from pgbench_tellers')).rows[0].n)).toBe(10);
  });
});
