// Set-up and end-of-run checks of the bank workload (test/fault/bank-workload.ts), shared by the bank fault tests:
// load the accounts on each shard, wait for a number of committed transfers, wait until nothing is left prepared, and
// read what the shards hold at the end (total, half-applied transfers, balances that disagree with the ledger).
import pg from 'pg';
import { BANK_SCHEMA, INITIAL_BALANCE, type BankStats } from '../fault/bank-workload.js';

/** Create the bank tables on each shard (direct clients, in shard order) and put `accounts[shard]` there. */
export async function loadBank(direct: readonly pg.Client[], accounts: readonly number[][]): Promise<void> {
  for (const [shard, d] of direct.entries()) {
    for (const sql of BANK_SCHEMA) await d.query(sql);
    await d.query(`insert into accounts select unnest($1::bigint[]), ${INITIAL_BALANCE}`, [accounts[shard]]);
  }
}

/** Until `stats` counts `n` more committed transfers than `from`; throws after `maxWaitMs` (the proxy does not serve). */
export async function transfersPast(
  stats: BankStats,
  from: number,
  n: number,
  maxWaitMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + maxWaitMs;
  while (stats.transfers < from + n) {
    if (Date.now() > deadline) throw new Error(`only ${stats.transfers - from} transfers in ${maxWaitMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Prepared transactions left on all shards, polled until 0 or `maxWaitMs` passed; the last count. */
export async function preparedAfter(direct: readonly pg.Client[], maxWaitMs: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let prepared = -1;
  while (Date.now() < deadline) {
    prepared = 0;
    for (const d of direct) prepared += (await d.query('select 1 from pg_prepared_xacts')).rowCount ?? 0;
    if (prepared === 0) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return prepared;
}

/** What the shards hold at the end of a run. */
export interface BankEnd {
  /** Sum of every balance on every shard. */
  total: number;
  /** Transfer ids whose two ledger rows (one per shard) are not both there. */
  halfApplied: string[];
  /** Transfers found (ledger ids). */
  transfers: number;
  /** Accounts whose balance is not the initial one plus their ledger rows. */
  badBalances: number;
}

export async function bankEnd(direct: readonly pg.Client[]): Promise<BankEnd> {
  let total = 0;
  const sides = new Map<string, number>();
  let badBalances = 0;
  for (const d of direct) {
    total += Number((await d.query('select sum(balance) as s from accounts')).rows[0].s);
    for (const row of (await d.query<{ transfer_id: string }>('select transfer_id from ledger')).rows)
      sides.set(row.transfer_id, (sides.get(row.transfer_id) ?? 0) + 1);
    const r = await d.query(
      `select count(*) as bad from accounts a left join (select account_id, sum(amount) as s from ledger group by account_id) l
         on l.account_id = a.id where a.balance <> ${INITIAL_BALANCE} + coalesce(l.s, 0)`,
    );
    badBalances += Number(r.rows[0].bad);
  }
  return {
    total,
    halfApplied: [...sides].filter(([, n]) => n !== 2).map(([id]) => id),
    transfers: sides.size,
    badBalances,
  };
}
