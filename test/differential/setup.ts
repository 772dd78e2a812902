// The differential suites' shared setup and comparison (differential.test.ts, sql-fuzz.test.ts): four PostgreSQL
// servers — server 0 a plain reference database, servers 1–3 three shards behind shardgate (users sharded by id,
// orders and items by user_id, countries omnisharded) — loaded with the same generated rows (multi-row INSERTs into
// the reference; single-row parameterized INSERTs through the proxy, several clients in parallel); one query run on
// a client as raw text; and how a proxy's answer differs from the reference's (column names and types, command tag
// and row count, rows as exact text — in order, or as a multiset).
import pg from 'pg';
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
import { DIFF_SHARDS, type Param } from './corpus.js';
import {
  insertSql,
  multiRowInsert,
  SCHEMA_DDL,
  tableRows,
  type Dataset,
  type TableRows,
  type Text,
} from './dataset.js';

export const SHARDING_TOML = `
[[sharded_tables]]
database = "${APP_DB}"
name = "users"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "${APP_DB}"
name = "orders"
column = "user_id"
data_type = "bigint"

[[sharded_tables]]
database = "${APP_DB}"
name = "items"
column = "user_id"
data_type = "bigint"

[[omnisharded_tables]]
database = "${APP_DB}"
tables = ["countries"]
`;

/** Parallel clients loading the proxy. */
const LOADERS = 4;
/** Queued INSERTs per loader before awaiting them. */
const LOAD_BATCH = 250;
/** Rows per multi-row INSERT into the reference. */
const REF_CHUNK = 1_000;
/** A query that has not answered by then is a hang: reported, and the proxy connection replaced. */
const QUERY_TIMEOUT_MS = 8_000;

/** Every value as PostgreSQL's text, untouched by pg's type parsers. */
const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export type Row = Text[];

export type Outcome =
  | {
      ok: true;
      columns: string[];
      types: number[];
      command: string;
      rowCount: number | null;
      rows: Row[];
    }
  | { ok: false; code: string | undefined; message: string };

export type Answer = Extract<Outcome, { ok: true }>;

/** The running servers and proxy, both sides loaded; `via` is replaced by `reconnect()` after a hang. */
export interface DifferentialServers {
  servers: PgCluster;
  proxy: TestProxy;
  /** Straight to server 0, the reference. */
  ref: pg.Client;
  /** Through shardgate. */
  via: pg.Client;
  /** A new client on `port` (closed by `close()`). */
  connect(port: number, host?: string): Promise<pg.Client>;
  /** Ends `via` and opens a new one through the proxy. */
  reconnect(): Promise<void>;
  close(): Promise<void>;
}

/** Starts the reference and the 3 shards behind shardgate, creates the schema on both and loads `dataset`. */
export async function startDifferential(dataset: Dataset): Promise<DifferentialServers> {
  const tables = tableRows(dataset);
  const open: pg.Client[] = [];
  const connect = async (port: number, host = '127.0.0.1'): Promise<pg.Client> => {
    const c = new pg.Client({
      host,
      port,
      user: APP_USER,
      password: APP_PASSWORD,
      database: APP_DB,
      query_timeout: QUERY_TIMEOUT_MS,
    });
    c.on('error', () => undefined);
    await c.connect();
    open.push(c);
    return c;
  };
  const servers = await testServers(DIFF_SHARDS + 1, APP_SERVER_OPTIONS);
  let proxy: TestProxy | undefined;
  const close = async (): Promise<void> => {
    await Promise.all(open.map((c) => c.end().catch(() => undefined)));
    await proxy?.close();
    await servers.stop();
  };
  try {
    // Servers 1..3 are the shards 0..2 of `app`; server 0 stays the reference.
    proxy = await startTestProxy(
      { ...servers, servers: servers.servers.slice(1) },
      { extraPgdog: SHARDING_TOML },
    );
    const started = proxy;
    const ref = await connect(servers.servers[0].port, servers.servers[0].host);
    const via = await connect(started.port);
    for (const ddl of SCHEMA_DDL) {
      await ref.query(ddl);
      await via.query(ddl);
    }
    await Promise.all([loadReference(ref, tables), loadProxy(via, tables, () => connect(started.port))]);
    const env: DifferentialServers = {
      servers,
      proxy: started,
      ref,
      via,
      connect,
      reconnect: async () => {
        await env.via.end().catch(() => undefined);
        env.via = await connect(started.port);
      },
      close,
    };
    return env;
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

async function loadReference(ref: pg.Client, tables: readonly TableRows[]): Promise<void> {
  for (const t of tables) {
    for (let i = 0; i < t.rows.length; i += REF_CHUNK) {
      const { sql, params } = multiRowInsert(t, t.rows.slice(i, i + REF_CHUNK));
      await ref.query(sql, params);
    }
  }
}

async function loadProxy(
  via: pg.Client,
  tables: readonly TableRows[],
  connect: () => Promise<pg.Client>,
): Promise<void> {
  const loaders = [via, ...(await Promise.all(Array.from({ length: LOADERS - 1 }, connect)))];
  await Promise.all(
    loaders.map(async (c, k) => {
      for (const t of tables) {
        const sql = insertSql(t.table, t.columns);
        const mine = t.rows.filter((_, i) => i % LOADERS === k);
        for (let i = 0; i < mine.length; i += LOAD_BATCH) {
          const results = await Promise.all(mine.slice(i, i + LOAD_BATCH).map((row) => c.query(sql, row)));
          for (const r of results) if (r.rowCount !== 1) throw new Error(`${t.table}: INSERT ${r.rowCount}`);
        }
      }
    }),
  );
  await Promise.all(loaders.slice(1).map((c) => c.end()));
}

/**
 * Runs `sql` on `c` and returns its answer with every value as text (binary results as hex), or its error. With
 * `params` (or `name`, `isBinary`, `isExtended`) it runs in the extended protocol, else in the simple one.
 */
export async function exec(
  c: pg.Client,
  sql: string,
  params: readonly Param[] | undefined,
  name?: string,
  isBinary = false,
  isExtended = false,
): Promise<Outcome> {
  try {
    const res = await c.query<(string | Buffer | null)[]>({
      text: sql,
      values: params === undefined ? undefined : [...params],
      name,
      rowMode: 'array',
      types: RAW_TEXT,
      ...(isBinary ? { binary: true } : {}),
      ...(isBinary || isExtended ? { queryMode: 'extended' as const } : {}),
    });
    return {
      ok: true,
      columns: res.fields.map((f) => f.name),
      types: res.fields.map((f) => f.dataTypeID),
      command: res.command,
      rowCount: res.rowCount,
      // Binary values arrive as the bytes PostgreSQL sent: compared as hex.
      rows: res.rows.map((r) => r.map((v) => (Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : v))),
    };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { ok: false, code: e.code, message: e.message ?? String(err) };
  }
}

export const show = (row: Row | undefined): string => (row === undefined ? '(none)' : JSON.stringify(row));

/** Rows of `a` not matched in `b` (multiset difference), at most `max`. */
export function missingFrom(a: readonly Row[], b: readonly Row[], max = 3): Row[] {
  const counts = new Map<string, number>();
  for (const r of b) counts.set(JSON.stringify(r), (counts.get(JSON.stringify(r)) ?? 0) + 1);
  const out: Row[] = [];
  for (const r of a) {
    const k = JSON.stringify(r);
    const n = counts.get(k) ?? 0;
    if (n > 0) counts.set(k, n - 1);
    else if (out.length < max) out.push(r);
  }
  return out;
}

/** How the proxy's answer differs from the reference's, or null when it does not. */
export function difference(expected: Outcome, actual: Outcome, isUnordered: boolean): string | null {
  return differenceBy(expected, actual, (e, a) => rowDifference(e, a, isUnordered));
}

/** `difference` with the rows compared by `rows` (columns, types, command and row count as always). */
export function differenceBy(
  expected: Outcome,
  actual: Outcome,
  rows: (expected: Answer, actual: Answer) => string | null,
): string | null {
  if (!expected.ok) return `the reference failed (a corpus bug): ${expected.code ?? '-'} ${expected.message}`;
  if (!actual.ok) return `the proxy failed: ${actual.code ?? '(no SQLSTATE: client-side)'} ${actual.message}`;
  if (JSON.stringify(expected.columns) !== JSON.stringify(actual.columns))
    return `columns: expected ${JSON.stringify(expected.columns)}, actual ${JSON.stringify(actual.columns)}`;
  if (JSON.stringify(expected.types) !== JSON.stringify(actual.types))
    return `column types: expected ${JSON.stringify(expected.types)}, actual ${JSON.stringify(actual.types)}`;
  if (expected.command !== actual.command)
    return `command: expected ${expected.command} ${expected.rowCount}, actual ${actual.command} ${actual.rowCount}`;
  const diff = rows(expected, actual);
  if (diff !== null) return diff;
  if (expected.rowCount !== actual.rowCount)
    return `command tag: expected ${expected.command} ${expected.rowCount}, actual ${actual.command} ${actual.rowCount}`;
  return null;
}

/** The rows compared as a multiset (`isUnordered`) or in order. */
export function rowDifference(expected: Answer, actual: Answer, isUnordered: boolean): string | null {
  const counts = `expected ${expected.rows.length} rows, actual ${actual.rows.length}`;
  if (isUnordered) {
    const missing = missingFrom(expected.rows, actual.rows);
    const extra = missingFrom(actual.rows, expected.rows);
    if (missing.length === 0 && extra.length === 0) return null;
    return `${counts}; missing through the proxy: ${missing.map(show).join(' ') || '-'}; extra: ${extra.map(show).join(' ') || '-'}`;
  }
  const n = Math.max(expected.rows.length, actual.rows.length);
  for (let i = 0; i < n; i++) {
    const e = expected.rows[i];
    const a = actual.rows[i];
    if (JSON.stringify(e) !== JSON.stringify(a))
      return `${counts}; first difference at row ${i}: expected ${show(e)}, actual ${show(a)}`;
  }
  return null;
}
