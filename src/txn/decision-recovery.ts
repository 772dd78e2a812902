// Recovery of stateless two-phase commits, by any proxy: every prepared branch `sg_…_d<N>` on any shard, whichever
// proxy made it, older than the minimum age and not being committed by this proxy, is settled by its decision row on
// shard N — resolved with the insert-`false`-unless-present race (decision-table.ts), so the unique key decides, never
// a guess about whether the owner is alive — then COMMIT PREPARED or ROLLBACK PREPARED as the role that prepared it.
// Also the clean-up of decision rows whose every participant has finished. One pass per call; what fails (a shard
// down, a lock wait timed out) is retried at the next pass.
import type { Logger } from 'pino';
import { endsPreparedBranch, outcomeFailure } from '../backend/server-query.js';
import { queryShard, type ShardAccess } from '../backend/shard-access.js';
import { deleteDecisionsSql, listDecisionsSql, resolveDecision } from './decision-table.js';
import { DECIDED_GID_LIKE, parseGid } from './gid.js';
import type { FenceHold, VisibilityFences } from './visibility-fence.js';

/** `false` rows exist only to make a late insert of their owner fail: kept this long (see docs/two-phase-commit.md). */
export const ABORT_ROW_RETENTION_MS = 24 * 3600 * 1000;

export interface DecisionRecoveryOptions {
  shards: ShardAccess;
  schema: string;
  logger: Logger;
  /** Branches younger than this are left alone (their owner is probably still committing them). */
  minAgeMs: number;
  /** Longest wait on an owner's uncommitted decision row per resolve; the next pass tries again. */
  lockTimeoutMs: number;
  /** This proxy's session or background phase 2 is finishing `txid` right now. */
  isLive(txid: string): boolean;
  /**
   * atomic_visibility: a decided transaction recovery finishes holds its shards against readers until every branch
   * is committed (its decision shard is already visible: readers wait, bounded, instead of seeing it half).
   */
  fences?: VisibilityFences | null;
}

export interface DecisionRecoveryReport {
  committed: number;
  rolledBack: number;
  /** Transactions still in doubt after this pass (decision shard unreachable, lock wait, branch not finished). */
  pending: number;
  /** Decision rows deleted by the clean-up. */
  rowsDeleted: number;
}

/** One prepared branch of the stateless protocol, as pg_prepared_xacts shows it. */
export interface PreparedBranch {
  readonly database: string;
  readonly shard: number;
  readonly gid: string;
  readonly txid: string;
  readonly instanceId: string;
  readonly decisionShard: number;
  readonly ageMs: number;
  /** pg_prepared_xacts.owner: the role that prepared it, the one that may finish it (or a superuser). */
  readonly owner: string;
}

interface DecisionRow {
  readonly txid: string;
  readonly participants: readonly number[];
  readonly committed: boolean;
  readonly ageMs: number;
}

/**
 * Prepared branches of the stateless protocol on one shard (any proxy's); null (logged) when it cannot be reached.
 * Connects as the database's first configured user.
 */
export async function listPreparedBranches(
  shards: ShardAccess,
  database: string,
  shard: number,
  logger: Logger,
): Promise<PreparedBranch[] | null> {
  const user = shards.users(database)[0];
  if (user === undefined) return [];
  const outcome = await queryShard(
    shards,
    database,
    user,
    shard,
    `SELECT gid, (extract(epoch FROM now() - prepared) * 1000)::bigint, owner FROM pg_prepared_xacts ` +
      `WHERE database = current_database() AND gid LIKE '${DECIDED_GID_LIKE}'`,
  );
  if (outcome.kind !== 'ok') {
    logger.warn(
      { database, shard, err: outcomeFailure(outcome) },
      'recovery: cannot list prepared transactions',
    );
    return null;
  }
  const out: PreparedBranch[] = [];
  for (const [gid, age, owner] of outcome.rows) {
    const parsed = parseGid(gid ?? '');
    if (parsed === null || parsed.decisionShard === undefined || parsed.shard !== shard) continue;
    out.push({
      database,
      shard,
      gid: gid ?? '',
      txid: parsed.txid,
      instanceId: parsed.instanceId,
      decisionShard: parsed.decisionShard,
      ageMs: Number(age),
      owner: owner ?? '',
    });
  }
  return out;
}

export class DecisionRecovery {
  /** Fence holds of decided transactions this recovery is finishing (atomic_visibility), by txid. */
  private readonly holds = new Map<string, FenceHold>();
  private readonly log: Logger;

  constructor(private readonly opts: DecisionRecoveryOptions) {
    this.log = opts.logger;
  }

  async pass(): Promise<DecisionRecoveryReport> {
    const report: DecisionRecoveryReport = { committed: 0, rolledBack: 0, pending: 0, rowsDeleted: 0 };
    for (const database of this.opts.shards.shardedDatabases()) {
      if (this.opts.shards.users(database).length === 0) continue;
      await this.passOnDatabase(database, report);
    }
    return report;
  }

  private async passOnDatabase(database: string, report: DecisionRecoveryReport): Promise<void> {
    const { shards } = this.opts;
    const count = shards.shardCount(database);
    const shardList = Array.from({ length: count }, (_, i) => i);
    // Rows first, prepared branches after: a row read here was committed before the listing, so all its branches
    // were prepared by then — one missing from the listing has finished, never "not prepared yet".
    const rows = await Promise.all(shardList.map((s) => this.readRows(database, s)));
    const prepared = await Promise.all(
      shardList.map((s) => listPreparedBranches(shards, database, s, this.log)),
    );

    const byTxid = new Map<string, PreparedBranch[]>();
    for (const list of prepared)
      for (const b of list ?? []) byTxid.set(b.txid, [...(byTxid.get(b.txid) ?? []), b]);

    await Promise.all(
      [...byTxid.values()].map(async (branches) => {
        const oldest = Math.max(...branches.map((b) => b.ageMs));
        if (oldest < this.opts.minAgeMs || this.opts.isLive(branches[0].txid)) return;
        await this.settle(database, branches, report);
      }),
    );

    const reachable = new Set(shardList.filter((s) => prepared[s] !== null));
    for (const shard of shardList) {
      const list = rows[shard];
      if (list === null) continue;
      const done = list.filter((row) => {
        if (byTxid.has(row.txid) || this.opts.isLive(row.txid)) return false;
        if (!row.committed) return row.ageMs >= ABORT_ROW_RETENTION_MS;
        return row.participants.every((p) => reachable.has(p));
      });
      if (done.length === 0) continue;
      const user = shards.users(database)[0];
      const outcome = await queryShard(
        shards,
        database,
        user,
        shard,
        deleteDecisionsSql(
          this.opts.schema,
          done.map((r) => r.txid),
        ),
      );
      if (outcome.kind === 'ok') report.rowsDeleted += done.length;
    }
  }

  private async readRows(database: string, shard: number): Promise<DecisionRow[] | null> {
    const user = this.opts.shards.users(database)[0];
    const outcome = await queryShard(
      this.opts.shards,
      database,
      user,
      shard,
      listDecisionsSql(this.opts.schema),
    );
    if (outcome.kind !== 'ok') return null;
    return outcome.rows.map(([txid, participants, committed, age]) => ({
      txid: txid ?? '',
      participants: (participants ?? '')
        .split(',')
        .filter((p) => p !== '')
        .map(Number),
      committed: committed === 't',
      ageMs: Number(age),
    }));
  }

  /** Resolve one transaction on its decision shard, then finish every branch found prepared. */
  private async settle(
    database: string,
    branches: readonly PreparedBranch[],
    report: DecisionRecoveryReport,
  ): Promise<void> {
    const { shards } = this.opts;
    const { txid, decisionShard } = branches[0];
    const user = shards.users(database)[0];
    const resolution = await resolveDecision(
      shards,
      this.opts.schema,
      database,
      user,
      decisionShard,
      txid,
      this.opts.lockTimeoutMs,
    );
    if (resolution.outcome === 'unknown') {
      report.pending++;
      this.log.warn(
        { txid, database, decisionShard, err: resolution.reason },
        'recovery: cannot learn the decision of a prepared transaction yet; retrying at the next pass',
      );
      return;
    }
    const isCommit = resolution.outcome === 'committed';
    const verb = isCommit ? 'COMMIT PREPARED' : 'ROLLBACK PREPARED';
    const fences = this.opts.fences;
    if (isCommit && fences != null && !this.holds.has(txid)) {
      const fence = fences.of(database, shards.shardCount(database));
      const held = [...new Set([decisionShard, ...branches.map((b) => b.shard)])];
      this.holds.set(txid, await fence.enterWrite(held, txid));
    }
    let isFinished = true;
    for (const b of branches) {
      const asUser = this.userFor(database, b);
      if (asUser === null) {
        isFinished = false;
        this.log.error(
          { gid: b.gid, database, shard: b.shard, owner: b.owner },
          `recovery: no configured user logs in as role "${b.owner}", which prepared this transaction: add one ` +
            `to users.toml, or run ${verb} '${b.gid}' as a superuser`,
        );
        continue;
      }
      const outcome = await queryShard(shards, database, asUser, b.shard, `${verb} '${b.gid}'`);
      if (!endsPreparedBranch(outcome)) {
        isFinished = false;
        this.log.warn(
          { gid: b.gid, database, shard: b.shard, err: outcomeFailure(outcome) },
          `recovery: ${verb} failed; retrying at the next pass`,
        );
      }
    }
    if (!isFinished) {
      report.pending++;
      return; // the fence stays held until a later pass finishes it
    }
    this.holds.get(txid)?.release();
    this.holds.delete(txid);
    if (isCommit) report.committed++;
    else report.rolledBack++;
    this.log.info(
      {
        txid,
        database,
        decisionShard,
        shards: branches.map((b) => b.shard),
        instanceId: branches[0].instanceId,
      },
      isCommit
        ? 'recovery: committed a transaction its decision row says is committed'
        : 'recovery: rolled back a transaction with no committed decision row',
    );
  }

  /** The configured user whose server role prepared `branch` (COMMIT/ROLLBACK PREPARED must run as it). */
  private userFor(database: string, branch: PreparedBranch): string | null {
    const { shards } = this.opts;
    return (
      shards.users(database).find((u) => shards.serverUser(database, u, branch.shard) === branch.owner) ??
      null
    );
  }
}

/** One in-doubt transaction found on the shards (SHOW TRANSACTIONS), whichever proxy started it. */
export interface InDoubtOnShards {
  readonly txid: string;
  readonly database: string;
  /** The role that prepared its branches. */
  readonly owner: string;
  readonly instanceId: string;
  readonly ageMs: number;
  /** `shard:prepared` per branch found, then `decision shard:decision`. */
  readonly shards: string;
  /** What the decision row says now (a plain read: an uncommitted row is not seen): true, false, or null (none). */
  readonly decision: boolean | null;
}

/** Every prepared branch of the stateless protocol on every shard, grouped by transaction, with its decision row. */
export async function listInDoubt(
  shards: ShardAccess,
  schema: string,
  logger: Logger,
): Promise<InDoubtOnShards[]> {
  const out: InDoubtOnShards[] = [];
  for (const database of shards.shardedDatabases()) {
    const user = shards.users(database)[0];
    if (user === undefined) continue;
    const byTxid = new Map<string, PreparedBranch[]>();
    for (let shard = 0; shard < shards.shardCount(database); shard++) {
      for (const b of (await listPreparedBranches(shards, database, shard, logger)) ?? [])
        byTxid.set(b.txid, [...(byTxid.get(b.txid) ?? []), b]);
    }
    for (const [txid, branches] of byTxid) {
      const decisionShard = branches[0].decisionShard;
      const row = await queryShard(
        shards,
        database,
        user,
        decisionShard,
        `SELECT committed FROM ${schema}.decisions WHERE txid = '${txid}'`,
      );
      const value = row.kind === 'ok' ? row.rows[0]?.[0] : undefined;
      out.push({
        txid,
        database,
        owner: branches[0].owner,
        instanceId: branches[0].instanceId,
        ageMs: Math.max(...branches.map((b) => b.ageMs)),
        shards: [...branches.map((b) => `${b.shard}:prepared`), `${decisionShard}:decision`].join(','),
        decision: value === 't' ? true : value === 'f' ? false : null,
      });
    }
  }
  return out;
}
