// Every statement path that writes makes its shards writers of the transaction (TransactionBlock.participate), on 2
// real shards with two-phase commit: a deferred failure on shard 1 at COMMIT leaves nothing on shard 0. Regression
// tests for paths that used to bypass the coordinator — COPY FROM STDIN inside BEGIN, DDL and TRUNCATE outside
// BEGIN, multi-statement Queries without two_phase_commit_auto — and for what PostgreSQL refuses to prepare
// (temporary tables: committed without 2PC instead of failing).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { errorFields, frame, RawClient, type RawMessage } from '../helpers/raw-client.js';
import { directShardClients, idOn, USERS_SHARDING_TOML } from '../helpers/sharding.js';

let cluster: PgCluster;
/** two_phase_commit + two_phase_commit_auto. */
let auto: TestProxy;
/** two_phase_commit only (scripts are transaction blocks: 2PC all the same). */
let manual: TestProxy;
/** Session mode, 2PC + auto: temporary tables live as long as the session. */
let session: TestProxy;
let direct: pg.Client[];
const walDirs: string[] = [];

function general(instance: string, extra = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'shardgate-wp-'));
  walDirs.push(dir);
  return `two_phase_commit = true\ntwo_phase_commit_wal_dir = "${dir}"\ninstance_id = "${instance}"\n${extra}`;
}

async function login(proxy: TestProxy): Promise<RawClient> {
  const raw = await RawClient.connect(proxy.port);
  const replies = await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
  expect(replies.at(-1)?.type).toBe('Z');
  return raw;
}

/** COPY over the raw protocol: the statement, `rows` in one CopyData, CopyDone; the replies through ReadyForQuery. */
async function rawCopy(raw: RawClient, sql: string, rows: string): Promise<RawMessage[]> {
  raw.write(frame('Q', `${sql}\0`));
  const start = await raw.readMessage();
  expect(start.type).toBe('G');
  raw.write(frame('d', rows));
  raw.write(frame('c'));
  return raw.readUntil('Z');
}

async function countOn(shard: number, sql: string, params: unknown[] = []): Promise<number> {
  const r = await direct[shard].query<{ n: string }>(`select count(*) as n from (${sql}) x`, params);
  return Number(r.rows[0].n);
}

async function preparedAnywhere(): Promise<string[]> {
  const gids: string[] = [];
  for (const d of direct)
    gids.push(
      ...(await d.query<{ gid: string }>('select gid from pg_prepared_xacts')).rows.map((r) => r.gid),
    );
  return gids;
}

const types = (replies: RawMessage[]): string => replies.map((m) => m.type).join('');
const sqlState = (replies: RawMessage[]): string | undefined => {
  const e = replies.find((m) => m.type === 'E');
  return e === undefined ? undefined : errorFields(e.body).C;
};

beforeAll(async () => {
  cluster = await testServers(2, APP_SERVER_OPTIONS);
  auto = await startTestProxy(cluster, {
    general: general('wpauto', 'two_phase_commit_auto = true'),
    extraPgdog: USERS_SHARDING_TOML,
  });
  manual = await startTestProxy(cluster, { general: general('wpman'), extraPgdog: USERS_SHARDING_TOML });
  session = await startTestProxy(cluster, {
    general: general('wpsess', 'two_phase_commit_auto = true\npooler_mode = "session"'),
    extraPgdog: USERS_SHARDING_TOML,
  });
  direct = await directShardClients(cluster);
  const c = new pg.Client({ connectionString: auto.url });
  await c.connect();
  await c.query('create table users (id bigint primary key, name text)');
  await c.end();
  // Shard 1 refuses rows named 'boom' at COMMIT (at PREPARE TRANSACTION with 2PC): after every statement succeeded.
  await direct[1].query(`
    create function no_boom() returns trigger language plpgsql as $$
    begin
      if new.name = 'boom' then raise exception 'boom is not allowed' using errcode = 'P0001'; end if;
      return new;
    end $$;
    create constraint trigger no_boom after insert on users deferrable initially deferred
      for each row execute function no_boom();`);
});

afterAll(async () => {
  for (const d of direct ?? []) await d.end().catch(() => undefined);
  for (const p of [auto, manual, session]) await p?.close();
  await cluster?.stop();
  for (const dir of walDirs) rmSync(dir, { recursive: true, force: true });
});

describe('COPY FROM STDIN inside a transaction block is a write on its shards', () => {
  it('a deferred failure on shard 1 at COMMIT leaves the copied rows on no shard', async () => {
    const raw = await login(auto);
    const [a, b] = [idOn(0, 1000), idOn(1, 1000)];
    expect(types(await raw.query('begin'))).toBe('CZ');
    const copied = await rawCopy(raw, 'copy users (id, name) from stdin', `${a}\tfine\n${b}\tboom\n`);
    expect(copied[0].body.toString('utf8', 0, copied[0].body.length - 1)).toBe('COPY 2');
    const commit = await raw.query('commit');
    expect(sqlState(commit)).toBe('P0001');
    expect(commit.at(-1)?.body.toString('latin1')).toBe('I');
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(0);
    expect(await countOn(1, 'select 1 from users where id = $1', [b])).toBe(0);
    expect(await preparedAnywhere()).toEqual([]);
    raw.close();
  });

  it('also when the transaction wrote on another shard first (the COPY reaches shard 0 only)', async () => {
    const raw = await login(auto);
    const [a, b] = [idOn(0, 1100), idOn(1, 1100)];
    await raw.query('begin');
    expect(sqlState(await raw.query(`insert into users values (${b}, 'boom')`))).toBeUndefined();
    await rawCopy(raw, 'copy users (id, name) from stdin', `${a}\tfine\n`);
    expect(sqlState(await raw.query('commit'))).toBe('P0001');
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(0);
    expect(await preparedAnywhere()).toEqual([]);
    raw.close();
  });

  it('commits on both shards with two-phase commit when nothing fails', async () => {
    const raw = await login(auto);
    const before = auto.proxy.txn!.counters.prepared;
    const [a, b] = [idOn(0, 1200), idOn(1, 1200)];
    await raw.query('begin');
    await rawCopy(raw, 'copy users (id, name) from stdin', `${a}\tone\n${b}\ttwo\n`);
    expect(types(await raw.query('commit'))).toBe('CZ');
    expect(auto.proxy.txn!.counters.prepared).toBe(before + 1);
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(1);
    expect(await countOn(1, 'select 1 from users where id = $1', [b])).toBe(1);
    raw.close();
  });
});

describe('DDL and TRUNCATE outside BEGIN are all or nothing across shards', () => {
  it('CREATE TABLE that fails on shard 1 leaves no table on shard 0', async () => {
    await direct[1].query('create table only_on_one (a int)');
    const raw = await login(auto);
    const replies = await raw.query('create table only_on_one (a int)');
    expect(sqlState(replies)).toBe('42P07');
    expect(await countOn(0, "select 1 from pg_class where relname = 'only_on_one'")).toBe(0);
    expect(await preparedAnywhere()).toEqual([]);
    // The same statement once shard 1 agrees: created on both, with two-phase commit.
    await direct[1].query('drop table only_on_one');
    const before = auto.proxy.txn!.counters.prepared;
    expect(types(await raw.query('create table only_on_one (a int)'))).toBe('CZ');
    expect(auto.proxy.txn!.counters.prepared).toBe(before + 1);
    for (const shard of [0, 1])
      expect(await countOn(shard, "select 1 from pg_class where relname = 'only_on_one'")).toBe(1);
    raw.close();
  });

  it('TRUNCATE that fails on shard 1 (a foreign key there only) truncates nothing on shard 0', async () => {
    const raw = await login(auto);
    await raw.query('create table parts (id int primary key)');
    await raw.query('insert into parts values (1), (2)');
    await direct[1].query('create table part_refs (id int references parts (id))');
    expect(sqlState(await raw.query('truncate parts'))).toBe('0A000');
    expect(await countOn(0, 'select 1 from parts')).toBe(2);
    expect(await countOn(1, 'select 1 from parts')).toBe(2);
    raw.close();
  });

  it('runs what PostgreSQL refuses inside a transaction block on each shard on its own (VACUUM, CREATE INDEX CONCURRENTLY)', async () => {
    const raw = await login(auto);
    expect(types(await raw.query('vacuum users'))).toBe('CZ');
    expect(types(await raw.query('create index concurrently users_name on users (name)'))).toBe('CZ');
    for (const shard of [0, 1])
      expect(await countOn(shard, "select 1 from pg_class where relname = 'users_name'")).toBe(1);
    raw.close();
  });
});

describe('a multi-statement Query writing on several shards is a transaction block', () => {
  it('uses two-phase commit with two_phase_commit = true even without two_phase_commit_auto', async () => {
    const raw = await login(manual);
    const before = manual.proxy.txn!.counters.prepared;
    const [a, b] = [idOn(0, 1300), idOn(1, 1300)];
    const ok = await raw.query(`insert into users values (${a}, 'x'); insert into users values (${b}, 'y')`);
    expect(types(ok)).toBe('CCZ');
    expect(manual.proxy.txn!.counters.prepared).toBe(before + 1);
    raw.close();
  });

  it('a deferred failure on shard 1 leaves nothing on shard 0; the last tag is not sent, as PostgreSQL does', async () => {
    const raw = await login(manual);
    const [a, b] = [idOn(0, 1400), idOn(1, 1400)];
    const failed = await raw.query(
      `insert into users values (${a}, 'x'); insert into users values (${b}, 'boom')`,
    );
    // PostgreSQL: the first statement's CommandComplete, then the commit's error instead of the last one's tag.
    expect(types(failed)).toBe('CEZ');
    expect(sqlState(failed)).toBe('P0001');
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(0);
    expect(await preparedAnywhere()).toEqual([]);
    raw.close();
  });
});

describe('transactions PostgreSQL cannot prepare', () => {
  it('CREATE TEMP TABLE on a sharded database commits without two-phase commit instead of failing', async () => {
    const raw = await login(session);
    expect(types(await raw.query('create temp table scratch (a int)'))).toBe('CZ');
    expect(types(await raw.query('insert into pg_temp.scratch values (1)'))).toBe('CZ');
    const rows = await raw.query('select count(*) from pg_temp.scratch');
    expect(rows.find((m) => m.type === 'C')?.body.toString('utf8')).toContain('SELECT 1');
    expect(await preparedAnywhere()).toEqual([]);
    raw.close();
  });
});

describe('COMMIT AND CHAIN ends the transaction like COMMIT', () => {
  const tag = (replies: RawMessage[]): string | undefined => {
    const c = replies.find((m) => m.type === 'C');
    return c?.body.toString('utf8', 0, c.body.length - 1);
  };
  const status = (replies: RawMessage[]): string | undefined => replies.at(-1)?.body.toString('latin1');
  /** A setting as the shard holding users.id = `id` sees it. */
  const setting = async (raw: RawClient, id: number, name: string): Promise<string> => {
    const r = await raw.query(`/* shardgate: sharding_key=${id} */ select current_setting('${name}')`);
    const row = r.find((m) => m.type === 'D');
    expect(row).toBeDefined();
    return row!.body.toString('utf8', 6);
  };

  it('a deferred failure on shard 1 fails it everywhere, and (as in PostgreSQL) no new transaction starts', async () => {
    const raw = await login(auto);
    const [a, b] = [idOn(0, 1500), idOn(1, 1500)];
    await raw.query('begin isolation level repeatable read');
    await raw.query(`insert into users values (${a}, 'x')`);
    await raw.query(`insert into users values (${b}, 'boom')`);
    const chained = await raw.query('commit and chain');
    expect([sqlState(chained), status(chained)]).toEqual(['P0001', 'I']);
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(0);
    expect(await preparedAnywhere()).toEqual([]);
    raw.close();
  });

  it('after an error in the block it rolls back on every shard (the healthy one too) and chains', async () => {
    const raw = await login(auto);
    const [a, b] = [idOn(0, 1600), idOn(1, 1600)];
    await raw.query('begin');
    await raw.query(`insert into users values (${a}, 'x')`);
    expect(sqlState(await raw.query(`select 1 / 0 from users where id = ${b}`))).toBe('22012');
    const chained = await raw.query('commit and chain');
    expect([tag(chained), status(chained)]).toEqual(['ROLLBACK', 'T']);
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(0);
    expect(status(await raw.query(`insert into users values (${a}, 'y')`))).toBe('T');
    expect(status(await raw.query('rollback'))).toBe('I');
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(0);
    raw.close();
  });

  it('commits with two-phase commit, then the chained block has the same isolation level on every shard', async () => {
    const raw = await login(auto);
    const before = auto.proxy.txn!.counters.prepared;
    const [a, b] = [idOn(0, 1700), idOn(1, 1700)];
    await raw.query('begin isolation level repeatable read');
    await raw.query(`insert into users values (${a}, 'x')`);
    await raw.query(`insert into users values (${b}, 'y')`);
    const chained = await raw.query('commit and chain');
    expect([tag(chained), status(chained)]).toEqual(['COMMIT', 'T']);
    expect(auto.proxy.txn!.counters.prepared).toBe(before + 1);
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(1);
    expect(await countOn(1, 'select 1 from users where id = $1', [b])).toBe(1);
    expect(await setting(raw, a, 'transaction_isolation')).toBe('repeatable read');
    expect(await setting(raw, b, 'transaction_isolation')).toBe('repeatable read');
    expect(status(await raw.query('commit'))).toBe('I');
    raw.close();
  });

  it('carries SET TRANSACTION READ ONLY over to the chained block', async () => {
    const raw = await login(auto);
    const [a, b] = [idOn(0, 1800), idOn(1, 1800)];
    await raw.query('begin isolation level serializable');
    await raw.query('set transaction read only');
    await raw.query(`select * from users where id = ${a}`);
    await raw.query(`select * from users where id = ${b}`);
    expect(status(await raw.query('commit and chain'))).toBe('T');
    expect(await setting(raw, b, 'transaction_isolation')).toBe('serializable');
    expect(sqlState(await raw.query(`insert into users values (${a}, 'z')`))).toBe('25006');
    expect(status(await raw.query('rollback'))).toBe('I');
    raw.close();
  });
});

describe('the proxy’s own GID prefix is reserved', () => {
  it('refuses PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED naming sg_… also under manual routing', async () => {
    const raw = await login(auto);
    for (const sql of [
      "/* shardgate: shard=0 */ prepare transaction 'sg_mine_1'",
      "/* shardgate: shard=1 */ commit prepared 'sg_wpauto_1x1_1'",
      "/* shardgate: shard=0 */ rollback prepared 'sg_x'",
    ]) {
      const replies = await raw.query(sql);
      expect([sqlState(replies), replies.at(-1)?.type]).toEqual(['42939', 'Z']);
    }
    await raw.query('set shardgate.shard = 0');
    expect(sqlState(await raw.query("commit prepared 'sg_wpauto_1x1_0'"))).toBe('42939');
    // Another prefix under manual routing reaches the shard, which answers for itself.
    expect(sqlState(await raw.query("commit prepared 'other_1'"))).toBe('42704');
    await raw.query('reset shardgate.shard');
    expect(types(await raw.query('select 1'))).toBe('TDCZ');
    raw.close();
  });
});

describe('calls the proxy cannot see into', () => {
  /** A FunctionCall ('F') message: function `oid`, text arguments, text result. */
  function functionCall(oid: number, args: string[]): Buffer {
    const parts: Buffer[] = [];
    const int32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeInt32BE(n);
      return b;
    };
    const int16 = (n: number): Buffer => {
      const b = Buffer.alloc(2);
      b.writeInt16BE(n);
      return b;
    };
    parts.push(int32(oid), int16(1), int16(0), int16(args.length));
    for (const a of args) parts.push(int32(Buffer.byteLength(a)), Buffer.from(a));
    parts.push(int16(0));
    return frame('F', Buffer.concat(parts));
  }

  beforeAll(async () => {
    const c = new pg.Client({ connectionString: auto.url });
    await c.connect();
    await c.query(`create function add_user(uid bigint, uname text) returns int language sql
      as 'insert into users values (uid, uname) returning 1'`);
    await c.query(`create procedure add_user_proc(uid bigint, uname text) language sql
      as 'insert into users values (uid, uname)'`);
    await c.end();
  });

  it('refuses CALL without a routing hint; with one it runs on that shard only', async () => {
    const raw = await login(auto);
    const a = idOn(0, 1900);
    expect(sqlState(await raw.query(`call add_user_proc(${a}, 'p')`))).toBe('0A000');
    expect(types(await raw.query(`/* shardgate: shard=0 */ call add_user_proc(${a}, 'p')`))).toBe('CZ');
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(1);
    expect(await countOn(1, 'select 1 from users where id = $1', [a])).toBe(0);
    raw.close();
  });

  it('refuses a FunctionCall message unless the session is routed by hand; then it is a writer there', async () => {
    const raw = await login(auto);
    raw.write(functionCall(2026 /* pg_backend_pid */, []));
    const refused = await raw.readUntil('Z');
    expect([sqlState(refused), types(await raw.query('select 1'))]).toEqual(['0A000', 'TDCZ']);
    const oid = Number((await direct[0].query("select 'add_user'::regproc::oid as oid")).rows[0].oid);
    const [a, b] = [idOn(0, 2000), idOn(1, 2000)];
    await raw.query('set shardgate.shard = 0');
    await raw.query('begin');
    raw.write(functionCall(oid, [String(a), 'f']));
    expect(types(await raw.readUntil('Z'))).toBe('VZ');
    await raw.query(`/* shardgate: sharding_key=${b} */ insert into users values (${b}, 'boom')`);
    expect(sqlState(await raw.query('commit'))).toBe('P0001');
    expect(await countOn(0, 'select 1 from users where id = $1', [a])).toBe(0);
    expect(await preparedAnywhere()).toEqual([]);
    raw.close();
  });

  it('refuses large-object functions unless routed by hand', async () => {
    const raw = await login(auto);
    expect(sqlState(await raw.query('select lo_create(0)'))).toBe('0A000');
    expect(types(await raw.query('/* shardgate: shard=1 */ select lo_unlink(lo_create(0))'))).toBe('TDCZ');
    raw.close();
  });
});

describe('notifications', () => {
  it('NOTIFY and pg_notify reach a listener through the proxy once each (not once per shard)', async () => {
    const listener = new pg.Client({ connectionString: session.url });
    listener.on('error', () => undefined);
    await listener.connect();
    const got: string[] = [];
    listener.on('notification', (n) => got.push(n.payload ?? ''));
    await listener.query('listen news');
    const notifier = new pg.Client({ connectionString: auto.url });
    notifier.on('error', () => undefined);
    await notifier.connect();
    await notifier.query("notify news, 'one'");
    await notifier.query("select pg_notify('news', 'two')");
    const deadline = Date.now() + 5_000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 300)); // a duplicate from another shard would arrive by now
    expect(got).toEqual(['one', 'two']);
    await notifier.end();
    await listener.end();
  });
});
