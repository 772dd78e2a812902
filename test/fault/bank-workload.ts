// The bank workload (background docs 000/001): accounts on 2 shards, writers moving money between accounts on
// different shards in BEGIN … COMMIT (with a ledger row per side, each on its account's shard), readers summing
// every balance. Shared by the fault test (proxy kill -9'd during the run) and the deadlock test (the two updates of
// a transfer in random order: transfers in both directions deadlock across shards, and the proxy breaks the cycles).
import pg from 'pg';
import { shardForLiteral } from '../../src/sharding/shard-of.js';
import type { ShardedColumn } from '../../src/sharding/schema.js';

export const BANK_SHARDING_TOML = (database: string): string => `
[[sharded_tables]]
database = "${database}"
name = "accounts"
column = "id"
data_type = "bigint"

[[sharded_tables]]
database = "${database}"
name = "ledger"
column = "account_id"
data_type = "bigint"
`;

export const BANK_SCHEMA = [
  'create table accounts (id bigint primary key, balance bigint not null)',
  'create table ledger (transfer_id text not null, account_id bigint not null, amount bigint not null, primary key (transfer_id, account_id))',
];

const ACCOUNT_ID: ShardedColumn = {
  database: 'app',
  schema: null,
  table: 'accounts',
  column: 'id',
  keyType: 'bigint',
  fn: { kind: 'hash' },
};

export const INITIAL_BALANCE = 1_000;

/** `perShard` account ids on each of 2 shards (by PostgreSQL's hash of the id). */
export function bankAccounts(perShard: number): [number[], number[]] {
  const out: [number[], number[]] = [[], []];
  for (let id = 1; out[0].length < perShard || out[1].length < perShard; id++) {
    const shard = shardForLiteral(ACCOUNT_ID, 2, String(id));
    if (out[shard].length < perShard) out[shard].push(id);
  }
  return out;
}

export interface BankStats {
  transfers: number;
  /** Transfers whose COMMIT failed or whose connection died (outcome checked by the ledger later). */
  failedTransfers: number;
  reads: number;
  /** Reads whose total was not accounts × INITIAL_BALANCE (a transfer visible on one shard only). */
  inconsistentReads: number;
  failedReads: number;
  /** Transfers cancelled with 40P01 (a distributed deadlock the proxy broke): rolled back and not retried. */
  deadlocks: number;
  /** Latency of each successful transfer transaction, ms. */
  latencies: number[];
}

/** Per-transfer outcomes as the client saw them (the stateless-2PC fault test checks each against the shards). */
export interface BankOutcomes {
  /** Transfer ids whose COMMIT was answered COMMIT. */
  committed: Set<string>;
  /** Transfer ids that got an ErrorResponse other than 40003 (a definite failure: must be on no shard). */
  failed: Set<string>;
}

export interface BankRun {
  /** The proxy to connect to; a function: asked again at every reconnect (a replaced proxy on a new port). */
  url: string | (() => string);
  accounts: [number[], number[]];
  writers: number;
  readers: number;
  /** Keep going while this returns true. */
  isRunning: () => boolean;
  /** Wait this long after a failed connection before reconnecting, ms. */
  reconnectDelayMs?: number;
  /** Run a transfer's two updates in random order (default: the debit first). */
  isOrderRandom?: boolean;
  /** Client-side timeout per query, ms (a proxy stopped with SIGSTOP never answers); default none. */
  queryTimeoutMs?: number;
  /** Filled with each transfer's outcome when given. */
  outcomes?: BankOutcomes;
  /**
   * How readers sum the balances: 'simple' (default: a simple-protocol Query), 'extended' (a named prepared
   * statement: Parse/Bind/Execute).
   */
  readMode?: 'simple' | 'extended';
}

function pick<T>(list: readonly T[]): T {
  return list[Math.floor(Math.random() * list.length)];
}

async function connect(url: string, queryTimeoutMs?: number): Promise<pg.Client> {
  // A stopped proxy still accepts TCP connections (the kernel does) but never answers: bound the login too.
  const c = new pg.Client({
    connectionString: url,
    query_timeout: queryTimeoutMs,
    connectionTimeoutMillis: queryTimeoutMs,
  });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** Counters for a run, all zero. */
export function newBankStats(): BankStats {
  return {
    transfers: 0,
    failedTransfers: 0,
    reads: 0,
    inconsistentReads: 0,
    failedReads: 0,
    deadlocks: 0,
    latencies: [],
  };
}

/**
 * Run writers and readers until `isRunning()` is false; survives the proxy going away and coming back. `stats` is
 * filled as the run goes (the caller may watch it).
 */
export async function runBank(run: BankRun, stats: BankStats = newBankStats()): Promise<BankStats> {
  const expected = (run.accounts[0].length + run.accounts[1].length) * INITIAL_BALANCE;
  const delay = run.reconnectDelayMs ?? 50;
  const loop = async (body: (c: pg.Client) => Promise<void>, onError: () => void): Promise<void> => {
    let client: pg.Client | null = null;
    while (run.isRunning()) {
      try {
        client ??= await connect(typeof run.url === 'string' ? run.url : run.url(), run.queryTimeoutMs);
        await body(client);
      } catch (err) {
        if ((err as { code?: string }).code === '40P01' && client !== null) {
          // The proxy broke a deadlock by cancelling this transaction: it is failed, the connection is fine.
          stats.deadlocks++;
          const isRolledBack = await client.query('rollback').then(
            () => true,
            () => false,
          );
          if (isRolledBack) continue;
        }
        onError();
        await client?.end().catch(() => undefined);
        client = null;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    await client?.end().catch(() => undefined);
  };
  const writer = (w: number) => {
    let n = 0;
    return loop(
      async (c) => {
        const from = pick(run.accounts[n % 2]);
        const to = pick(run.accounts[(n + 1) % 2]);
        const amount = 1 + Math.floor(Math.random() * 20);
        const id = `w${w}-${process.pid}-${Date.now().toString(36)}-${n++}`;
        const t0 = performance.now();
        const updates: [number, number][] = [
          [-amount, from],
          [amount, to],
        ];
        if (run.isOrderRandom === true && Math.random() < 0.5) updates.reverse();
        try {
          await c.query('begin');
          for (const [delta, id] of updates)
            await c.query('update accounts set balance = balance + $1 where id = $2', [delta, id]);
          await c.query(
            'insert into ledger (transfer_id, account_id, amount) values ($1, $2, $3), ($1, $4, $5)',
            [id, from, -amount, to, amount],
          );
          await c.query('commit');
        } catch (err) {
          // An ErrorResponse is a definite answer (except 40003, outcome unknown); a lost connection is not.
          if (err instanceof pg.DatabaseError && err.code !== '40003') run.outcomes?.failed.add(id);
          throw err;
        }
        run.outcomes?.committed.add(id);
        stats.latencies.push(performance.now() - t0);
        stats.transfers++;
      },
      () => stats.failedTransfers++,
    );
  };
  const reader = () =>
    loop(
      async (c) => {
        const total = await readTotal(c, run.readMode ?? 'simple');
        stats.reads++;
        if (total !== expected) stats.inconsistentReads++;
      },
      () => stats.failedReads++,
    );
  await Promise.all([
    ...Array.from({ length: run.writers }, (_, w) => writer(w)),
    ...Array.from({ length: run.readers }, () => reader()),
  ]);
  return stats;
}

/** The sum of every balance, read as `mode` says (BankRun.readMode). */
async function readTotal(c: pg.Client, mode: 'simple' | 'extended'): Promise<number> {
  if (mode === 'simple')
    return Number(
      (await c.query<{ total: string }>('select sum(balance) as total from accounts')).rows[0].total,
    );
  const r = await c.query<{ total: string }>({
    name: 'bank_total',
    text: 'select sum(balance) as total from accounts where balance > $1',
    values: [-1e12],
  });
  return Number(r.rows[0].total);
}

/** Percentile of `values` (ms), p in [0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
