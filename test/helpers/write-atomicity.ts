// Fixtures for the write-atomicity matrix (issue 11): a proxy with two-phase commit in front of 2 real shards
// (`users` sharded by id, `countries` omnisharded, `notes` in no sharding section: copied to every shard), the
// failure injector on shard 1 (a deferred constraint trigger that raises P0001 at COMMIT / PREPARE), checks made
// straight on each shard (rows, prepared transactions), and raw-protocol pieces (COPY, extended batches, FunctionCall).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { APP_DB, APP_PASSWORD, APP_USER, startTestProxy, type TestProxy } from './proxy.js';
import { frame, RawClient, type RawMessage } from './raw-client.js';
import { USERS_SHARDING_TOML } from './sharding.js';

/** The tables every matrix file works on, created through the proxy (so on both shards). */
export const MATRIX_TABLES_SQL = `
  create table users (id bigint primary key, name text, balance int not null default 0);
  create table countries (code text primary key, name text);
  create table notes (body text)`;

/**
 * The failure injector, installed straight on one shard: at COMMIT (or PREPARE TRANSACTION) a row whose column
 * (the trigger's argument) starts with 'boom' that was inserted or updated, or one starting with 'undeletable' that
 * was deleted, raises P0001 — after every statement of the transaction succeeded. Deferred, so the failure comes
 * exactly where a shard that wrote but was not counted as a writer has already been told to COMMIT.
 */
export const BOOM_TRIGGER_SQL = `
  create or replace function boom_guard() returns trigger language plpgsql as $$
  declare v text;
  begin
    if tg_op = 'DELETE' then
      v := to_jsonb(old) ->> tg_argv[0];
      if v like 'undeletable%' then raise exception 'undeletable row deleted' using errcode = 'P0001'; end if;
      return old;
    end if;
    v := to_jsonb(new) ->> tg_argv[0];
    if v like 'boom%' then raise exception 'boom is not allowed' using errcode = 'P0001'; end if;
    return new;
  end $$;
  create constraint trigger boom_guard after insert or update or delete on users deferrable initially deferred
    for each row execute function boom_guard('name');
  create constraint trigger boom_guard after insert or update or delete on countries deferrable initially deferred
    for each row execute function boom_guard('name');
  create constraint trigger boom_guard after insert or update or delete on notes deferrable initially deferred
    for each row execute function boom_guard('body')`;

/** A VOLATILE function that writes: one row into `notes` per call (created through the proxy: on every shard). */
export const NOTE_IT_SQL = `
  create function note_it(t text) returns int language plpgsql volatile as $$
  begin
    insert into notes (body) values (t);
    return 1;
  end $$`;

/** A proxy with two-phase commit on, its own decision-log directory and instance id; close() removes the directory. */
export async function startAtomicityProxy(
  cluster: PgCluster,
  instanceId: string,
  opts: { isAuto?: boolean; general?: string } = {},
): Promise<TestProxy> {
  const walDir = mkdtempSync(join(tmpdir(), `shardgate-${instanceId}-`));
  const proxy = await startTestProxy(cluster, {
    general:
      `two_phase_commit = true\ntwo_phase_commit_auto = ${opts.isAuto ?? true}\n` +
      `two_phase_commit_wal_dir = "${walDir}"\ninstance_id = "${instanceId}"\n${opts.general ?? ''}`,
    extraPgdog: USERS_SHARDING_TOML,
  });
  return {
    ...proxy,
    close: async () => {
      await proxy.close();
      rmSync(walDir, { recursive: true, force: true });
    },
  };
}

/** A connected pg client through `proxy` (errors on the socket are left to the queries that see them). */
export async function proxyClient(proxy: TestProxy): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: proxy.url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** A raw-protocol session through `proxy` (or straight to a server's port), logged in as the app user. */
export async function rawSession(port: number): Promise<RawClient> {
  const raw = await RawClient.connect(port);
  await raw.login({ user: APP_USER, database: APP_DB }, APP_PASSWORD);
  return raw;
}

/** The error a query ends with, or null when it succeeded. */
export async function errorOf(query: Promise<unknown>): Promise<pg.DatabaseError | null> {
  return query.then(
    () => null,
    (e: pg.DatabaseError) => e,
  );
}

/** One number from a direct query (`select count(*) as n …`). */
export async function countOn(direct: pg.Client, sql: string, params: unknown[] = []): Promise<number> {
  return Number((await direct.query<{ n: string }>(sql, params)).rows[0].n);
}

/** Rows of `users` with these ids on one shard. */
export async function usersOn(direct: pg.Client, ids: readonly number[]): Promise<number> {
  return countOn(direct, 'select count(*) as n from users where id = any($1)', [ids]);
}

/** Rows of `notes` with this body on one shard. */
export async function notesOn(direct: pg.Client, body: string): Promise<number> {
  return countOn(direct, 'select count(*) as n from notes where body = $1', [body]);
}

/** Whether a table of this name exists on one shard. */
export async function tableOn(direct: pg.Client, table: string): Promise<boolean> {
  return (await direct.query('select to_regclass($1) as t', [table])).rows[0].t !== null;
}

export async function preparedOn(direct: pg.Client): Promise<string[]> {
  const r = await direct.query<{ gid: string }>('select gid from pg_prepared_xacts order by gid');
  return r.rows.map((row) => row.gid);
}

/**
 * Every shard ends with nothing prepared. Phase 2 may finish just after the client's reply, so this polls for a
 * while; whatever is still prepared after that is rolled back (so later tests are not blocked) and reported.
 */
export async function expectNothingPrepared(direct: readonly pg.Client[], timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = await Promise.all(direct.map((d) => preparedOn(d)));
    if (left.every((gids) => gids.length === 0)) return;
    if (Date.now() > deadline) {
      for (const [shard, gids] of left.entries()) {
        for (const gid of gids)
          await direct[shard].query(`rollback prepared '${gid}'`).catch(() => undefined);
      }
      throw new Error(`prepared transactions left behind: ${JSON.stringify(left)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// --- raw protocol ------------------------------------------------------------------------------------------------

/** The message types of a reply, e.g. 'CCZ'. */
export const kinds = (messages: readonly RawMessage[]): string => messages.map((m) => m.type).join('');

/** A CommandComplete's tag. */
export const tagOf = (m: RawMessage): string => m.body.toString('utf8', 0, m.body.length - 1);

/** The command tags of a reply, in order. */
export const tagsOf = (messages: readonly RawMessage[]): string[] =>
  messages.filter((m) => m.type === 'C').map(tagOf);

/** The transaction status of a reply's last ReadyForQuery ('I', 'T' or 'E'). */
export function statusOf(messages: readonly RawMessage[]): string {
  const z = messages[messages.length - 1];
  if (z?.type !== 'Z') throw new Error(`reply does not end with ReadyForQuery: ${kinds(messages)}`);
  return z.body.toString('latin1');
}

/** COPY … FROM STDIN over the simple protocol: the statement, `chunks` as CopyData, CopyDone; the reply to Z. */
export async function rawCopyIn(
  raw: RawClient,
  sql: string,
  chunks: readonly string[],
): Promise<RawMessage[]> {
  raw.write(frame('Q', `${sql}\0`));
  const first = await raw.readMessage();
  if (first.type !== 'G') return [first, ...(await raw.readUntil('Z'))];
  for (const c of chunks) raw.write(frame('d', c));
  raw.write(frame('c'));
  return raw.readUntil('Z');
}

/** Parse (statement `name`, no declared parameter types). */
export const parseFrame = (name: string, sql: string): Buffer =>
  frame('P', Buffer.from(`${name}\0${sql}\0\0\0`));

/** Bind of statement `stmt` to the unnamed portal, text parameters, text results. */
export function bindFrame(stmt: string, ...values: string[]): Buffer {
  const params = values.map((value) => {
    const v = Buffer.from(value);
    const len = Buffer.alloc(4);
    len.writeInt32BE(v.length);
    return Buffer.concat([len, v]);
  });
  const count = Buffer.alloc(2);
  count.writeInt16BE(values.length);
  return frame('B', Buffer.concat([Buffer.from(`\0${stmt}\0\0\0`), count, ...params, Buffer.from([0, 0])]));
}

/** Execute of the unnamed portal, no row limit. */
export const EXECUTE_FRAME = frame('E', Buffer.from('\0\0\0\0\0'));
export const SYNC_FRAME = frame('S');

/**
 * FunctionCall ('F'): the function's OID, one format code (text) for all arguments, the arguments, text result.
 * (PostgreSQL protocol, "FunctionCall (F)": Int32 oid, Int16 n formats, Int16[n], Int16 n args, (Int32 len, bytes)*,
 * Int16 result format.)
 */
export function functionCallFrame(oid: number, args: readonly string[]): Buffer {
  const head = Buffer.alloc(4 + 2 + 2 + 2);
  head.writeInt32BE(oid, 0);
  head.writeInt16BE(1, 4); // one format code, for every argument
  head.writeInt16BE(0, 6); // text
  head.writeInt16BE(args.length, 8);
  const values = args.map((a) => {
    const v = Buffer.from(a);
    const len = Buffer.alloc(4);
    len.writeInt32BE(v.length);
    return Buffer.concat([len, v]);
  });
  return frame('F', Buffer.concat([head, ...values, Buffer.from([0, 0])]));
}
