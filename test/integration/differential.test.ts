// The differential SQL suite — the main proof of the sharding router. Four PostgreSQL servers: server 0 is a plain
// reference database; servers 1–3 are three shards behind shardgate (users sharded by id, orders and items by user_id,
// countries omnisharded). The same ~12,000 generated rows are loaded into both (COPY-like multi-row INSERTs into the
// reference; single-row parameterized INSERTs through the proxy, several clients in parallel), then every corpus
// query runs on both and the answers are compared: column names and types, command tag and row count, and rows as
// exact text (in order when the query has an ORDER BY, as a multiset otherwise). Queries the router refuses today
// must fail through the proxy with 0A000 while working on the reference. Writes run in BEGIN … ROLLBACK on both sides.
// The corpus is test/differential/corpus.ts; the data generator is test/differential/dataset.ts.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { directShardClients } from '../helpers/sharding.js';
import { buildCorpus, DIFF_SHARDS, shardOf, type CorpusQuery, type Param } from '../differential/corpus.js';
import { generateDataset, tableRows } from '../differential/dataset.js';
import {
  difference,
  exec,
  startDifferential,
  type DifferentialServers,
  type Outcome,
} from '../differential/setup.js';

const dataset = generateDataset();
const tables = tableRows(dataset);
const corpus = buildCorpus(dataset);

let env: DifferentialServers;
let servers: PgCluster;
/** Straight to server 0, the reference. */
let ref: pg.Client;
/** Through shardgate; replaced when a query hangs. */
let via: pg.Client;
const open: pg.Client[] = [];

/** A fresh client through the proxy in place of `via`. */
async function reconnect(): Promise<void> {
  await env.reconnect();
  via = env.via;
}

/** The entry's statement (and, for writes, its checks) inside BEGIN … ROLLBACK. */
async function runEntry(c: pg.Client, q: CorpusQuery): Promise<Outcome[]> {
  if (q.write !== true) return [await exec(c, q.sql, q.params, q.prepared, q.binary === true)];
  await c.query('begin');
  try {
    const outcomes = [await exec(c, q.sql, q.params, q.prepared)];
    if (outcomes[0].ok)
      for (const check of q.checks ?? []) outcomes.push(await exec(c, check.sql, check.params));
    return outcomes;
  } finally {
    await c.query('rollback').catch(() => undefined);
  }
}

function describeQuery(q: CorpusQuery): string {
  const protocol =
    (q.prepared !== undefined
      ? `extended, prepared statement "${q.prepared}"`
      : q.params !== undefined || q.binary === true
        ? 'extended'
        : 'simple') + (q.binary === true ? ', binary results' : '');
  return `SQL: ${q.sql}\nparams: ${q.params === undefined ? '-' : JSON.stringify(q.params)}\nprotocol: ${protocol}`;
}

function describeCheck(sql: string, params: readonly Param[] | undefined): string {
  const protocol = params !== undefined ? 'extended' : 'simple';
  return `check SQL: ${sql}\ncheck params: ${params === undefined ? '-' : JSON.stringify(params)}\nprotocol: ${protocol}`;
}

/** With SHARDGATE_DIFF_LOG=1: each entry's row count on the reference and the proxy's 0A000 messages. */
const log: string[] = [];

beforeAll(async () => {
  env = await startDifferential(dataset);
  ({ servers, ref, via } = env);
}, 90_000);

afterAll(async () => {
  if (process.env.SHARDGATE_DIFF_LOG === '1') console.log(log.join('\n'));
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await env?.close();
});

describe('differential SQL: one PostgreSQL vs shardgate over 3 shards', () => {
  it('the data set has ≥ 10,000 rows with the edge cases the corpus relies on', () => {
    const total = tables.reduce((n, t) => n + t.rows.length, 0);
    expect(total).toBeGreaterThanOrEqual(10_000);
    const ids = dataset.users.map((u) => BigInt(u.id));
    expect(ids.some((id) => id > 2n ** 53n)).toBe(true);
    expect(ids.some((id) => id < 0n)).toBe(true);
    expect(dataset.users.some((u) => u.name === null)).toBe(true);
    expect(dataset.orders.some((o) => o.amount !== null && o.amount.startsWith('-'))).toBe(true);
    expect(dataset.users.some((u) => u.name !== null && Buffer.byteLength(u.name) > u.name.length)).toBe(
      true,
    );
    const perShard = [0, 0, 0];
    for (const u of dataset.users) perShard[shardOf(u.id)]++;
    for (const n of perShard) expect(n).toBeGreaterThan(dataset.users.length / 5);
  });

  it('the corpus has ≥ 150 queries of every kind', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(150);
    for (const kind of ['same', 'same-unordered', 'rejected'] as const)
      expect(corpus.some((q) => q.expect === kind)).toBe(true);
  });

  it('both sides hold the same row counts', async () => {
    for (const t of tables) {
      const sql = `select count(*)::int as n from ${t.table}`;
      const [a, b] = await Promise.all([ref.query<{ n: number }>(sql), via.query<{ n: number }>(sql)]);
      expect(a.rows[0].n, `${t.table} on the reference`).toBe(t.rows.length);
      expect(b.rows[0].n, `${t.table} through the proxy`).toBe(t.rows.length);
    }
  });

  it('every row sits on the shard its key hashes to; countries on every shard', async () => {
    const direct = await directShardClients({ ...servers, servers: servers.servers.slice(1) });
    open.push(...direct);
    const keyed = [
      { table: 'users', column: 'id' },
      { table: 'orders', column: 'user_id' },
      { table: 'items', column: 'user_id' },
    ];
    for (const { table, column } of keyed) {
      let total = 0;
      for (let s = 0; s < DIFF_SHARDS; s++) {
        const res = await direct[s].query<{ k: string }>(`select ${column}::text as k from ${table}`);
        const misplaced = res.rows.filter((r) => shardOf(r.k) !== s).map((r) => r.k);
        expect(misplaced.slice(0, 5), `${table} rows misplaced on shard ${s}`).toEqual([]);
        expect(res.rows.length, `${table} on shard ${s}`).toBeGreaterThan(0);
        total += res.rows.length;
      }
      expect(total, table).toBe(tables.find((t) => t.table === table)?.rows.length);
    }
    for (let s = 0; s < DIFF_SHARDS; s++) {
      const res = await direct[s].query<{ n: number }>('select count(*)::int as n from countries');
      expect(res.rows[0].n, `countries on shard ${s}`).toBe(dataset.countries.length);
    }
  });

  it.each(corpus)('$id', async (q) => {
    const [expected, actual] = await Promise.all([runEntry(ref, q), runEntry(via, q)]);
    if (actual.some((o) => !o.ok && (o.code === undefined || o.code === 'XX000'))) {
      // A client-side failure (timeout, lost connection) or an internal error (shardgate closes that client):
      // the next query needs a fresh connection.
      await reconnect();
    }
    if (q.expect === 'rejected') {
      const [e, a] = [expected[0], actual[0]];
      if (!e.ok)
        throw new Error(
          `the reference failed (a corpus bug): ${e.code ?? '-'} ${e.message}\n${describeQuery(q)}`,
        );
      if (a.ok) {
        const same = difference(e, a, true) === null;
        throw new Error(
          `expected 0A000, but the proxy answered (${same ? 'the same rows as the reference' : 'DIFFERENTLY from the reference'}); ` +
            `if support landed, flip this entry to 'same'\n${describeQuery(q)}`,
        );
      }
      log.push(`${q.id}: ${a.message}`);
      expect(a.code, `${a.message}\n${describeQuery(q)}`).toBe('0A000');
      if (q.reason !== undefined) expect(a.message, describeQuery(q)).toMatch(q.reason);
      return;
    }
    log.push(
      `${q.id}: ${expected.map((o) => (o.ok ? `${o.command} ${o.rowCount ?? '-'}` : o.code)).join(', ')}`,
    );
    const steps = [{ sql: q.sql, params: q.params, isUnordered: q.expect === 'same-unordered' }];
    for (const c of q.checks ?? [])
      steps.push({ sql: c.sql, params: c.params, isUnordered: c.unordered === true });
    for (let i = 0; i < Math.max(expected.length, actual.length, 1); i++) {
      const step = steps[i] ?? steps[0];
      const e = expected[i] ?? { ok: false, code: undefined, message: 'not run' };
      const a = actual[i] ?? { ok: false, code: undefined, message: 'not run (the write before it failed)' };
      const diff = difference(e, a, step.isUnordered);
      if (diff !== null) {
        if (i === 0) throw new Error(`${diff}\n${describeQuery(q)}`);
        throw new Error(
          `check ${i} after the write (same transaction): ${diff}\n${describeCheck(step.sql, step.params)}\n` +
            `after the write:\n${describeQuery(q)}`,
        );
      }
    }
  });

  it('the data is unchanged after the corpus (writes rolled back on both sides)', async () => {
    const dumps = [
      'select id, name, email, created_at, score, is_active from users order by id',
      'select id, user_id, amount, status, created_at, note from orders order by user_id, id',
      'select order_id, user_id, sku, qty from items order by user_id, order_id, sku',
      'select code, name from countries order by code',
    ];
    for (const sql of dumps) {
      const [e, a] = await Promise.all([exec(ref, sql, undefined), exec(via, sql, undefined)]);
      expect(difference(e, a, false), sql).toBeNull();
    }
  });

  describe('a statement that fails on one shard fails the whole statement and transaction', () => {
    /** unused[s]: ids on shard s that no generated user has; each scenario takes its own. */
    const taken = new Set(dataset.users.map((u) => u.id));
    const unused: string[][] = [[], [], []];
    for (let id = 9_000_000; unused.some((l) => l.length < 5); id++) {
      const l = unused[shardOf(String(id))];
      if (!taken.has(String(id)) && l.length < 5) l.push(String(id));
    }
    /** Existing users on shard `s` with ids in [lo, hi] (duplicate-key and division-by-zero targets). */
    const existing = (s: number, k: number, lo = -(2n ** 63n), hi = 2n ** 63n): string =>
      dataset.users.filter((u) => shardOf(u.id) === s && BigInt(u.id) >= lo && BigInt(u.id) <= hi)[k].id;
    /** is_active counts over users with ids in [lo, hi]: each scenario updates its own range. */
    const activeIn = (lo: number, hi: number): string =>
      `select count(*) filter (where is_active) as t, count(*) filter (where not is_active) as f, ` +
      `count(*) filter (where is_active is null) as n from users where id between ${lo} and ${hi}`;

    /** Runs the steps on both sides in order; each step must fail with the same SQLSTATE or answer the same. */
    async function differential(steps: readonly string[]): Promise<void> {
      const failures: string[] = [];
      for (const sql of steps) {
        const [e, a] = await Promise.all([exec(ref, sql, undefined), exec(via, sql, undefined)]);
        if (!e.ok && !a.ok && e.code === a.code) continue;
        const diff =
          !e.ok && a.ok
            ? `expected ${e.code ?? '-'} ${e.message}, the proxy answered ${a.command} ${a.rowCount}`
            : !e.ok && !a.ok
              ? `expected ${e.code ?? '-'} ${e.message}, the proxy failed with ${a.code ?? '-'} ${a.message}`
              : difference(e, a, false);
        if (diff !== null) failures.push(`${sql}\n  → ${diff}`);
      }
      await Promise.all([
        ref.query('rollback').catch(() => undefined),
        via.query('rollback').catch(() => undefined),
      ]);
      if (failures.some((f) => /XX000|no SQLSTATE/.test(f))) await reconnect();
      if (failures.length > 0) throw new Error(`${failures.join('\n')}\n\nsteps:\n${steps.join(';\n')}`);
    }

    it('BEGIN; write on shard 0; duplicate key on shard 1; COMMIT → ROLLBACK, nothing kept', async () => {
      await differential([
        'begin',
        `insert into users (id, name) values (${unused[0][0]}, 'tx')`,
        `insert into users (id, name) values (${existing(1, 0)}, 'dup')`,
        'select count(*) from users',
        'commit',
        `select id, name from users where id in (${unused[0][0]}, ${existing(1, 0)}) order by id`,
      ]);
    });

    it('BEGIN; fan-out UPDATE failing on one shard (division by zero); COMMIT → ROLLBACK, nothing kept', async () => {
      const victim = existing(0, 0, -1_000_000n, -1n);
      await differential([
        'begin',
        `update users set name = 'kept?' where id = ${existing(2, 1)}`,
        `update users set is_active = 1 / (id - (${victim}))::numeric > 0 where id between -1000000 and -1`,
        'commit',
        activeIn(-1_000_000, -1),
        `select id, name from users where id = ${existing(2, 1)}`,
      ]);
    });

    it('BEGIN; split multi-row INSERT with a duplicate on one shard; COMMIT → ROLLBACK, nothing kept', async () => {
      const ids = [unused[0][1], existing(1, 2), unused[2][1]];
      await differential([
        'begin',
        `insert into users (id, name) values (${ids[0]}, 'a'), (${ids[1]}, 'b'), (${ids[2]}, 'c')`,
        'commit',
        `select id, name from users where id in (${ids.join(', ')}) order by id`,
      ]);
    });

    it('no transaction: split multi-row INSERT with a duplicate on one shard inserts no row', async () => {
      const ids = [unused[0][2], existing(1, 3), unused[2][2]];
      await differential([
        `insert into users (id, name) values (${ids[0]}, 'a'), (${ids[1]}, 'b'), (${ids[2]}, 'c')`,
        `select id, name from users where id in (${ids.join(', ')}) order by id`,
      ]);
    });

    it('no transaction: fan-out UPDATE failing on one shard updates no row', async () => {
      const victim = existing(1, 0, 1n, 1_000_000n);
      await differential([
        `update users set is_active = 1 / (id - ${victim})::numeric > 0 where id between 1 and 1000000`,
        activeIn(1, 1_000_000),
      ]);
    });
  });
});
