// Recovery of stateless two-phase commits, by any proxy: every prepared branch `sg_…_d<N>` on any shard, whichever
// proxy made it, older than the minimum age and not being committed by this proxy, is settled by its decision row on
// shard N — resolved with the insert-`false`-unless-present race (decision-table.ts), so the unique key decides, never
// a guess about whether the owner is alive — then COMMIT PREPARED or ROLLBACK PREPARED as the role that prepared it.
// A transaction already decided (its row `true`, committed, read plainly) is finished at any age: it is visible on its
// decision shard, so it holds the fence (atomic_visibility) until every branch committed. Also the clean-up of decision
// rows whose every participant has finished. One pass per call; what fails (a shard down, a lock wait timed out) is
// retried at the next pass.
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

/** A transaction recovery keeps track of between passes: one it holds the fence for, or one adopted from its owner. */
interface Taken {
  readonly database: string;
  /** Shards its hold covers (decision shard, prepared branches, listed participants). */
  readonly shards: Set<number>;
  hold: FenceHold | null;
  /** Its owner (this proxy) could not learn its outcome (40003): settled at any age. */
  readonly isAdopted: boolean;
}

export class DecisionRecovery {
  /** Decided transactions this recovery holds the fence for (atomic_visibility), and adopted ones, by txid. */
  private readonly taken = new Map<string, Taken>();
  private readonly log: Logger;

  constructor(private readonly opts: DecisionRecoveryOptions) {
    this.log = opts.logger;
  }

  /**
   * This proxy's commit of `txid` could not learn its outcome (its decision shard unreachable: 40003). Recovery takes
   * it over: its fence hold (if any) stays held — its decision may be committed and visible on the decision shard —
   * and it is settled at the next pass that reaches its decision shard, whatever its age (its owner gave up on it, so
   * resolving cannot race a live commit; the unique key decides as always).
   */
  adopt(database: string, txid: string, shards: readonly number[], hold: FenceHold | null): void {
    this.taken.set(txid, { database, shards: new Set(shards), hold, isAdopted: true });
  }

  /** Transactions recovery holds the fence for or was handed (tests, SHOW output). */
  get heldCount(): number {
    return this.taken.size;
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
    const reachable = new Set(shardList.filter((s) => prepared[s] !== null));

    await Promise.all(
      [...byTxid.values()].map(async (branches) => {
        const { txid, decisionShard } = branches[0];
        if (this.opts.isLive(txid)) return;
        const row = rows[decisionShard]?.find((r) => r.txid === txid) ?? null;
        const oldest = Math.max(...branches.map((b) => b.ageMs));
        if (oldest >= this.opts.minAgeMs || this.taken.get(txid)?.isAdopted === true)
          return this.settle(database, branches, row, reachable, report);
        // Younger than the minimum age: its owner may still be committing it, so it is never resolved (no `false`
        // inserted, no wait). But a decision already committed `true` is visible on its decision shard: finish it now
        // (a proxy killed after its decision must not leave it half visible until the minimum age). A live owner's
        // concurrent COMMIT PREPARED that wins the race leaves 42704 here, which counts as done.
        if (row?.committed === true) await this.settle(database, branches, row, reachable, report);
      }),
    );
    this.releaseFinished(database, byTxid, reachable);

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

  /**
   * Tracked transactions with no prepared branch left on any shard they cover, every one of those reachable: finished
   * (by this recovery, their owner or another proxy) — their fence holds are released.
   */
  private releaseFinished(
    database: string,
    byTxid: ReadonlyMap<string, readonly PreparedBranch[]>,
    reachable: ReadonlySet<number>,
  ): void {
    for (const [txid, t] of this.taken) {
      if (t.database !== database || byTxid.has(txid) || this.opts.isLive(txid)) continue;
      if (![...t.shards].every((s) => reachable.has(s))) continue;
      t.hold?.release();
      this.taken.delete(txid);
    }
  }

  /**
   * Settle one transaction: by `row` when it is a committed `true` decision read this pass, else resolved on its
   * decision shard; then finish every branch found prepared. A committed one holds the fence on its shards until every
   * branch — including those on shards not reachable now — is committed.
   */
  private async settle(
    database: string,
    branches: readonly PreparedBranch[],
    row: DecisionRow | null,
    reachable: ReadonlySet<number>,
    report: DecisionRecoveryReport,
  ): Promise<void> {
    const { shards } = this.opts;
    const { txid, decisionShard } = branches[0];
    let isCommit = row?.committed === true;
    if (!isCommit) {
      const resolution = await resolveDecision(
        shards,
        this.opts.schema,
        database,
        shards.users(database)[0],
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
      isCommit = resolution.outcome === 'committed';
    }
    const verb = isCommit ? 'COMMIT PREPARED' : 'ROLLBACK PREPARED';
    // Shards the transaction wrote on: its decision shard, its prepared branches, and the participants its row lists
    // (a branch on a shard not reachable now is not listed, but is still prepared there).
    const covered = [decisionShard, ...branches.map((b) => b.shard), ...(row?.participants ?? [])];
    if (isCommit) await this.holdFence(database, txid, covered);
    let isFinished = !isCommit || covered.every((s) => reachable.has(s));
    let didFinishAny = false; // else its owner (or another proxy) finished every branch first (42704)
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
      if (outcome.kind === 'ok') didFinishAny = true;
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
    this.taken.get(txid)?.hold?.release();
    this.taken.delete(txid);
    if (!didFinishAny) return;
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

  /**
   * Hold the fence for `txid` (atomic_visibility), once per transaction, on every shard of the database: the branches
   * a pass sees may not be all its shards (one may be unreachable), and a hold that grew later would have to wait for
   * readers queued behind it. Decided transactions left to recovery are rare; readers wait one phase 2 at most.
   */
  private async holdFence(database: string, txid: string, covered: readonly number[]): Promise<void> {
    const t = this.taken.get(txid);
    const shards = new Set([...(t?.shards ?? []), ...covered]);
    const fences = this.opts.fences;
    let hold = t?.hold ?? null;
    if (hold === null && fences != null) {
      const count = this.opts.shards.shardCount(database);
      hold = await fences.of(database, count).enterWrite(
        Array.from({ length: count }, (_, i) => i),
        txid,
      );
    }
    this.taken.set(txid, { database, shards, hold, isAdopted: t?.isAdopted ?? false });
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

/**
 * SHOW TRANSACTIONS' `shards` of an in-doubt transaction, each shard once: `shard:prepared` per prepared branch, in
 * shard order, the decision shard's as `shard:decision prepared` when it is prepared too (the atomic_visibility
 * layout, as the owning proxy lists it), else `shard:decision` last (the decision-COMMIT layout: no branch there).
 */
export function inDoubtShards(prepared: readonly number[], decisionShard: number): string {
  const parts = prepared.map((shard) =>
    shard === decisionShard ? `${shard}:decision prepared` : `${shard}:prepared`,
  );
  if (!prepared.includes(decisionShard)) parts.push(`${decisionShard}:decision`);
  return parts.join(',');
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
        shards: inDoubtShards(
          branches.map((b) => b.shard),
          decisionShard,
        ),
        decision: value === 't' ? true : value === 'f' ? false : null,
      });
    }
  }
  return out;
}
