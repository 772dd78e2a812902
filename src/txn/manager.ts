// The transaction manager: owns every distributed transaction from its COMMIT on — txids and GIDs, phase-2 and abort
// retries in the background, deleting decision rows once finished, recovery after a crash (any proxy's, by the
// decision rows on the shards: decision-recovery.ts; and a legacy local decision log's, when one is found), and what
// operators see (SHOW TRANSACTIONS rows, counters). Sessions run the hot path (decision-commit.ts) on their own server
// connections and hand over here whatever could not finish there.
import process from 'node:process';
import type { Logger } from 'pino';
import { makeDecidedGid, makeGid, TxidSource } from './gid.js';
import { rollBackLegacyOrphans, type LegacyOrphanDeps } from './legacy-orphans.js';
import { DecisionRecovery, listInDoubt } from './decision-recovery.js';
import { DecisionRowCleaner } from './decision-rows.js';
import { ensureDecisionTable, resolveDecision, type Resolution } from './decision-table.js';
import { queryShard, type ShardAccess } from '../backend/shard-access.js';
import { foundTransactionRow, ownTransactionRow, type TransactionRow } from './transaction-rows.js';
import { DistributedTransaction, type Branch } from './transaction.js';
import type { VisibilityFence, VisibilityFences } from './visibility-fence.js';
import { failpoint, isFailpointSet } from './failpoints.js';
import { finishBranches } from './branch-finisher.js';
import { PhaseTwoConnections } from './phase-two-connections.js';

/** What the manager needs of the decision log (src/txn/log/decision-log.ts). */
export interface DecisionRecorder {
  appendCommit(record: CommitDecision): Promise<void>;
  appendDone(txid: string): void;
  pendingCommits(): readonly CommitDecision[];
}

export interface CommitDecision {
  readonly txid: string;
  readonly database: string;
  readonly user: string;
  readonly participants: readonly { readonly shard: number; readonly gid: string }[];
  readonly at: number;
}

export interface TransactionManagerOptions {
  instanceId: string;
  /**
   * The default instance id of earlier versions (instance_id not configured): its prepared transactions are settled
   * by the same rules as this instance's own — a COMMIT record in the log commits them, none means presumed abort —
   * except that an ambiguous one (made from a host name cut to 32 characters, which other hosts may share) is rolled
   * back only once older than the orphan timeout, at start-up too: it may be another host's, in flight.
   */
  formerInstanceId?: { readonly id: string; readonly isAmbiguous: boolean } | null;
  /** A legacy local decision log found at start-up (upgrades): its COMMIT records are finished; null: none. */
  log: DecisionRecorder | null;
  shards: ShardAccess;
  /** Schema of the decision table on every shard (two_phase_commit_schema). */
  decisionSchema: string;
  logger: Logger;
  /**
   * Minimum age before recovery settles a prepared transaction (stateless: by its decision row; legacy: presumed
   * abort of this instance's undecided ones); also how long a decision branch may sit idle before its COMMIT.
   */
  orphanTimeoutMs: number;
  /** Longest wait of one resolve on an owner's uncommitted decision row (default 2000 ms; retried next pass). */
  resolveLockTimeoutMs?: number;
  recoveryIntervalMs: number;
  /** First retry delay; doubles up to `maxRetryDelayMs`. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** atomic_visibility: committing transactions hold their writers' shards against readers until finished. */
  fences?: VisibilityFences | null;
}

export interface TxnCounters {
  prepared: number;
  committed: number;
  rolledBack: number;
  phase2Retries: number;
  recovered: number;
}

export type { TransactionRow } from './transaction-rows.js';

export interface RecoveryReport {
  committed: number;
  rolledBack: number;
  pending: number;
  /** Decision rows of finished transactions deleted by this pass. */
  rowsDeleted?: number;
}

/** decide() while two-phase commits are refused (another live proxy uses this instance id): nothing was decided. */
export class CommitRefusedError extends Error {
  constructor(reason: string) {
    super(`two-phase commits are refused: ${reason}`);
    this.name = 'CommitRefusedError';
  }
}

export class TransactionManager {
  readonly instanceId: string;
  readonly counters: TxnCounters = {
    prepared: 0,
    committed: 0,
    rolledBack: 0,
    phase2Retries: 0,
    recovered: 0,
  };
  private readonly opts: TransactionManagerOptions;
  private readonly log: Logger;
  private readonly txids = new TxidSource();
  private readonly live = new Map<string, DistributedTransaction>();
  private readonly retrying = new Set<string>();
  private recoveryTimer: NodeJS.Timeout | null = null;
  /** The recovery pass running now, if any. */
  private recovering: Promise<RecoveryReport> | null = null;
  private isClosed = false;
  /** Why two-phase commits are refused now (another live proxy holds this instance id somewhere); null: they are not. */
  private commitRefusal: string | null = null;
  private readonly cleaner: DecisionRowCleaner;
  private readonly phaseTwoConnections: PhaseTwoConnections;
  private readonly decisionRecovery: DecisionRecovery;
  /** Shards where the decision table could not be checked yet (unreachable at start-up): retried by recovery. */
  private tableUnchecked: string[] | null = null;

  constructor(opts: TransactionManagerOptions) {
    this.opts = opts;
    this.instanceId = opts.instanceId;
    this.log = opts.logger.child({ component: '2pc' });
    this.phaseTwoConnections = new PhaseTwoConnections(opts.shards);
    const kept = this.phaseTwoConnections;
    this.cleaner = new DecisionRowCleaner(kept.query.bind(kept), opts.decisionSchema, this.log);
    this.decisionRecovery = new DecisionRecovery({
      shards: opts.shards,
      schema: opts.decisionSchema,
      logger: this.log,
      minAgeMs: opts.orphanTimeoutMs,
      lockTimeoutMs: opts.resolveLockTimeoutMs ?? 2_000,
      isLive: (txid) => this.live.has(txid),
      fences: opts.fences,
    });
  }

  /** Schema of the decision table. */
  get decisionSchema(): string {
    return this.opts.decisionSchema;
  }

  /** How long a decision branch may sit idle in its transaction before its COMMIT (SET LOCAL before the insert). */
  get decisionIdleTimeoutMs(): number {
    return this.opts.orphanTimeoutMs;
  }

  /** Create the decision table where missing (start-up); shards not reached are retried by recovery. */
  async ensureDecisionTable(): Promise<void> {
    this.tableUnchecked = await ensureDecisionTable(this.opts.shards, this.opts.decisionSchema, this.log);
  }

  /**
   * A new two-phase transaction over `writers` (get a GID each) and `readers` (plain COMMIT). `decisionShard`: where
   * its decision row goes; its branch is a 'decision' branch (not prepared, its COMMIT decides) unless
   * `isDecisionPrepared` (atomic_visibility: prepared like the others, the decision a separate autocommit insert).
   */
  begin(
    database: string,
    user: string,
    writers: readonly number[],
    readers: readonly number[],
    decisionShard: number | null = null,
    isDecisionPrepared = false,
  ): DistributedTransaction {
    const txid = this.txids.nextTxid();
    const branches: Branch[] = [
      ...writers.map((shard) =>
        shard === decisionShard && !isDecisionPrepared
          ? { shard, role: 'decision' as const, gid: null, state: 'open' as const }
          : {
              shard,
              role: 'writer' as const,
              gid:
                decisionShard === null
                  ? makeGid(this.instanceId, txid, shard)
                  : makeDecidedGid(this.instanceId, txid, shard, decisionShard),
              state: 'open' as const,
            },
      ),
      ...readers.map((shard) => ({ shard, role: 'reader' as const, gid: null, state: 'open' as const })),
    ];
    const tx = new DistributedTransaction(txid, database, user, branches, 'active', decisionShard);
    this.live.set(txid, tx);
    tx.to('preparing');
    return tx;
  }

  /**
   * Every writer is prepared: make COMMIT durable. Resolves at the commit point; rejects if the log cannot, or while
   * commits are refused (CommitRefusedError; nothing was decided, so the caller rolls back everywhere).
   */
  async decide(tx: DistributedTransaction): Promise<void> {
    if (this.commitRefusal !== null) throw new CommitRefusedError(this.commitRefusal);
    if (this.opts.log === null) throw new Error('no decision log: legacy two-phase commit is not available');
    this.counters.prepared++;
    await this.opts.log.appendCommit({
      txid: tx.txid,
      database: tx.database,
      user: tx.user,
      participants: tx.writers.map((b) => ({ shard: b.shard, gid: b.gid as string })),
      at: Date.now(),
    });
    tx.to('committing');
  }

  /** Throws CommitRefusedError while two-phase commits are refused (checked before a decision COMMIT). */
  checkAccepting(): void {
    if (this.commitRefusal !== null) throw new CommitRefusedError(this.commitRefusal);
  }

  /** The decision shard's COMMIT succeeded (or its row was found `true`): the transaction is committed. */
  decided(tx: DistributedTransaction): void {
    this.counters.prepared++;
    const decision = tx.decision;
    if (decision !== null && decision.state === 'open') tx.moveBranch(decision, 'committed');
    tx.to('committing');
  }

  /** Learn a transaction's outcome from its decision row (the reply to the decision COMMIT was lost). */
  resolve(tx: DistributedTransaction, shard: number): Promise<Resolution> {
    return resolveDecision(
      this.opts.shards,
      this.opts.decisionSchema,
      tx.database,
      tx.user,
      shard,
      tx.txid,
      this.opts.resolveLockTimeoutMs ?? 2_000,
    );
  }

  /**
   * The outcome of `tx` could not be learnt (its decision shard unreachable): stop tracking it here. Its branches stay
   * prepared until recovery — of this proxy or any other — settles them by the decision row.
   */
  abandon(tx: DistributedTransaction, reason: string): void {
    // Its decision may be committed, so visible on the decision shard: the fence hold (atomic_visibility) goes to
    // recovery with it, which settles it at its next pass that reaches the decision shard, whatever its age.
    this.decisionRecovery.adopt(
      tx.database,
      tx.txid,
      tx.branches.filter((b) => b.role !== 'reader').map((b) => b.shard),
      tx.visibility,
    );
    tx.visibility = null;
    this.phaseTwoGate(tx)?.closeAll(tx.txid); // never opened unless COMMIT was answered; harmless then
    this.live.delete(tx.txid);
    this.log.error(
      { txid: tx.txid, shards: tx.writers.map((b) => b.shard), err: reason },
      'outcome of a two-phase commit unknown (its decision shard cannot be reached): left to recovery',
    );
  }

  /**
   * The session's phase 2 (or abort) is over: every branch finished → the transaction is done; otherwise the rest
   * is finished in the background, with retries, until it succeeds.
   */
  settle(tx: DistributedTransaction): void {
    if (tx.state === 'preparing') tx.to('aborting');
    if (tx.unfinishedWriters.length === 0) return this.finish(tx);
    this.retryInBackground(tx);
  }

  /**
   * The decision log failed and the COMMIT record may or may not be on disk: neither commit nor roll back. The
   * transaction stays prepared (and listed as in doubt, never presumed aborted here) until a restart's recovery
   * settles it by what the log holds.
   */
  holdInDoubt(tx: DistributedTransaction, reason: string): void {
    tx.isHeldInDoubt = true;
    tx.lastError = `decision log failed: ${reason}`;
    this.log.error(
      { txid: tx.txid, shards: tx.writers.map((b) => b.shard), err: reason },
      'commit decision may or may not be durable: transaction left prepared until shardgate restarts',
    );
  }

  /**
   * Another live proxy holds this instance id on a shard (instance-lock.ts): refuse new commit decisions and stop
   * presuming aborts (the other proxy's prepared transactions carry the same id) until `reason` is null again.
   * Decided transactions are still committed: that is always safe.
   */
  refuseCommits(reason: string | null): void {
    if (reason === this.commitRefusal) return;
    this.commitRefusal = reason;
    if (reason !== null) this.log.error({ reason }, 'two-phase commits refused');
    else this.log.info('two-phase commits accepted again');
  }

  /** Why two-phase commits are refused now; null when they are not. */
  get refusal(): string | null {
    return this.commitRefusal;
  }

  /**
   * A decided transaction is about to become visible (its first COMMIT PREPARED): hold its writers' shards against
   * readers (atomic_visibility) until finish() — across background retries too. Resolves once readers in the middle
   * of taking their snapshots are out.
   */
  async holdVisibility(tx: DistributedTransaction): Promise<void> {
    const fences = this.opts.fences;
    if (fences == null || tx.visibility !== null) return;
    const fence = fences.of(tx.database, this.opts.shards.shardCount(tx.database));
    // Every shard it wrote on: the prepared writers and the decision shard (stateless 2PC), whose COMMIT is visible first.
    tx.visibility = await fence.enterWrite(
      tx.branches.filter((b) => b.role !== 'reader').map((b) => b.shard),
      tx.txid,
    );
  }

  /**
   * Whether the decision shard's branch is prepared too and the decision is a separate autocommit insert
   * (decision-commit-prepared.ts): with atomic_visibility, so the fence covers one round trip (COMMIT PREPARED on every
   * writer) instead of two (the decision COMMIT, then COMMIT PREPARED). The at_decision reply keeps the other layout
   * (coordinator.ts).
   */
  get isDecisionPrepared(): boolean {
    return this.opts.fences != null;
  }

  /** Whether a COMMIT may be answered at its decision (two_phase_commit_reply = "at_decision"): the fence runs. */
  get canReplyAtDecision(): boolean {
    return this.opts.fences != null;
  }

  /**
   * two_phase_commit_reply = "at_decision": `tx` is decided and its client is answered now. Until each prepared
   * branch is committed, requests through this proxy to its shard wait (phase-two-gate.ts); phase 2 runs at once in
   * the background on connections of the manager's own (never the client's), retried until done. The fence hold
   * taken before the decision is kept until then (finish()).
   */
  continueAfterReply(tx: DistributedTransaction): void {
    this.phaseTwoGate(tx)?.open(
      tx.txid,
      tx.unfinishedWriters.map((b) => b.shard),
    );
    this.retryInBackground(tx, true);
  }

  private phaseTwoGate(tx: DistributedTransaction): VisibilityFence['phaseTwo'] | null {
    const fences = this.opts.fences;
    if (fences == null) return null;
    return fences.of(tx.database, this.opts.shards.shardCount(tx.database)).phaseTwo;
  }

  private finish(tx: DistributedTransaction): void {
    tx.visibility?.release();
    this.phaseTwoGate(tx)?.closeAll(tx.txid);
    if (tx.state === 'committing') {
      tx.to('done');
      if (tx.decisionShard !== null) this.cleaner.forget(tx.database, tx.user, tx.decisionShard, tx.txid);
      else this.opts.log?.appendDone(tx.txid);
      this.counters.committed++;
    } else if (tx.state === 'aborting') {
      tx.to('aborted');
      this.counters.rolledBack++;
    }
    this.live.delete(tx.txid);
  }

  /** Distributed transactions not finished yet (SHOW TRANSACTIONS). */
  transactions(now: number = Date.now()): TransactionRow[] {
    return [...this.live.values()].map((tx) => ownTransactionRow(tx, this.instanceId, now));
  }

  /**
   * SHOW TRANSACTIONS: this proxy's unfinished transactions, then every other in-doubt transaction prepared on the
   * shards, whichever proxy started it (read from pg_prepared_xacts and the decision rows).
   */
  async transactionsEverywhere(now: number = Date.now()): Promise<TransactionRow[]> {
    const found = await listInDoubt(this.opts.shards, this.opts.decisionSchema, this.log);
    return [
      ...this.transactions(now),
      ...found.filter((t) => !this.live.has(t.txid)).map(foundTransactionRow),
    ];
  }

  /** In-doubt: prepared somewhere, not finished everywhere. */
  get inDoubt(): number {
    let n = 0;
    for (const tx of this.live.values()) {
      if (tx.state === 'committing' || tx.state === 'aborting' || tx.isHeldInDoubt) n++;
    }
    return n;
  }

  // --- background phase 2 / abort -------------------------------------------------------------------------------

  /**
   * Finish `tx`'s branches in the background, retrying with backoff. `isFirstTry`: phase 2 of a transaction answered
   * at its decision, whose first attempt is not a retry: it starts at once (after the client's answer is written),
   * with the failpoints of the session's phase 2.
   */
  private retryInBackground(tx: DistributedTransaction, isFirstTry = false): void {
    if (this.retrying.has(tx.txid) || this.isClosed) return;
    this.retrying.add(tx.txid);
    let delay = this.opts.retryDelayMs ?? 100;
    let isFirst = isFirstTry;
    const attempt = async (): Promise<void> => {
      if (this.isClosed) return;
      if (isFirst) {
        // Dies here or during this phase 2: the client heard COMMIT; the row says `true`, recovery commits the rest.
        await failpoint('before_commit_prepared');
      } else {
        tx.retries++;
        this.counters.phase2Retries++;
      }
      await this.finishBranches(tx, isFirst);
      isFirst = false;
      if (tx.unfinishedWriters.length === 0) {
        this.retrying.delete(tx.txid);
        if (tx.retries > 0)
          this.log.info(
            { txid: tx.txid, state: tx.state, retries: tx.retries },
            'distributed transaction finished',
          );
        this.finish(tx);
        return;
      }
      delay = Math.min(delay * 2, this.opts.maxRetryDelayMs ?? 5_000);
      setTimeout(() => void attempt(), delay).unref();
    };
    if (isFirstTry && !isFailpointSet('before_commit_prepared')) {
      // at_decision: COMMIT PREPARED goes out in this tick, not after a timer (≥ 1 ms in Node): this proxy's requests
      // to those shards wait for it (phase-two-gate.ts). On the next tick, i.e. once the promise jobs running now
      // are done, so the client's reply (written in one of them) goes out first and does not wait for these writes.
      process.nextTick(() => void attempt());
      return;
    }
    // A retry; or the failpoint, which fires only once the client's reply is written (the timer runs after it).
    setTimeout(() => void attempt(), isFirstTry ? 0 : delay).unref();
  }

  /** One attempt per unfinished branch; `isFirst` (at_decision): kept connections, mid_commit_prepared honoured. */
  private finishBranches(tx: DistributedTransaction, isFirst = false): Promise<void> {
    const c = this.phaseTwoConnections;
    const query = isFirst ? c.query.bind(c) : queryShard.bind(null, this.opts.shards);
    return finishBranches(query, tx, this.phaseTwoGate(tx), this.log, isFirst);
  }

  // --- recovery ------------------------------------------------------------------------------------------------

  /**
   * Finish what a crash left behind. Stateless GIDs of any proxy: settled by their decision rows once older than the
   * minimum age (decision-recovery.ts). Legacy GIDs (an earlier version's local decision log): every logged COMMIT
   * without DONE → COMMIT PREPARED wherever still prepared; every legacy prepared transaction of this instance (or of
   * the former default id, see isOrphanDue) with no COMMIT record, not in progress here and older than the orphan
   * timeout (any age at start-up) → ROLLBACK PREPARED. Other software's prepared transactions are never touched. One
   * pass; what fails is retried in the background or at the next pass.
   */
  async recover(isStartup: boolean): Promise<RecoveryReport> {
    // One pass at a time. A call while one runs (an operator's RECOVER during a periodic pass) waits for it and then
    // runs its own, so what it reports is a pass that started after it was asked for (never a report of zeros).
    while (this.recovering !== null) await this.recovering.then(noop, noop);
    const pass = this.recoverOnce(isStartup);
    this.recovering = pass;
    try {
      return await pass;
    } finally {
      this.recovering = null;
    }
  }

  private async recoverOnce(isStartup: boolean): Promise<RecoveryReport> {
    const stateless = await this.recoverDecided();
    const decided = new Map<string, CommitDecision>();
    for (const d of this.opts.log?.pendingCommits() ?? []) decided.set(d.txid, d);
    let committed = 0;
    for (const d of decided.values()) {
      if (this.live.has(d.txid)) continue; // still being committed by its session or retried
      const tx = new DistributedTransaction(
        d.txid,
        d.database,
        d.user,
        d.participants.map((p) => ({
          shard: p.shard,
          role: 'writer' as const,
          gid: p.gid,
          state: 'prepared' as const,
        })),
        'committing',
      );
      this.live.set(tx.txid, tx);
      await this.holdVisibility(tx); // readers of its shards wait (bounded) until it is committed everywhere
      await this.finishBranches(tx);
      if (tx.unfinishedWriters.length === 0) {
        this.finish(tx);
        this.counters.recovered++;
        committed++;
        this.log.info(
          { txid: tx.txid, shards: d.participants.map((p) => p.shard) },
          'recovery: committed a decided transaction',
        );
      } else {
        this.log.warn(
          { txid: tx.txid, err: tx.lastError },
          'recovery: decided transaction not finished yet; retrying',
        );
        this.retryInBackground(tx);
      }
    }
    // Legacy GIDs (no decision shard) of this instance: an earlier version's; no COMMIT record = presumed abort.
    const rolledBack =
      this.commitRefusal !== null
        ? this.skipOrphans(this.commitRefusal)
        : await rollBackLegacyOrphans(
            this.legacyOrphanDeps(),
            (txid) => decided.has(txid) || this.live.has(txid),
            isStartup,
          );
    return {
      committed: committed + stateless.committed,
      rolledBack: rolledBack + stateless.rolledBack,
      pending: this.live.size + stateless.pending,
      rowsDeleted: stateless.rowsDeleted,
    };
  }

  /** The stateless part of a pass: prepared `sg_…_d<N>` branches of any proxy, settled by their decision rows. */
  private async recoverDecided(): Promise<{
    committed: number;
    rolledBack: number;
    pending: number;
    rowsDeleted: number;
  }> {
    if (this.tableUnchecked !== null && this.tableUnchecked.length > 0) await this.ensureDecisionTable();
    const report = await this.decisionRecovery.pass();
    this.counters.recovered += report.committed + report.rolledBack;
    this.counters.committed += report.committed;
    this.counters.rolledBack += report.rolledBack;
    return report;
  }

  private skipOrphans(reason: string): number {
    this.log.warn(
      { reason },
      'recovery: not rolling back undecided prepared transactions while another proxy uses this instance id',
    );
    return 0;
  }

  private legacyOrphanDeps(): LegacyOrphanDeps {
    const { shards, formerInstanceId, orphanTimeoutMs } = this.opts;
    return {
      shards,
      instanceId: this.instanceId,
      formerInstanceId,
      orphanTimeoutMs,
      counters: this.counters,
      log: this.log,
    };
  }

  /** Recovery every `recoveryIntervalMs` until close(). */
  startPeriodicRecovery(): void {
    const tick = (): void => {
      this.recoveryTimer = setTimeout(() => {
        this.recover(false).then(
          () => !this.isClosed && tick(),
          (err: unknown) => {
            this.log.error({ err: (err as Error).message }, 'recovery pass failed');
            if (!this.isClosed) tick();
          },
        );
      }, this.opts.recoveryIntervalMs);
      this.recoveryTimer.unref();
    };
    tick();
  }

  /** Stop background work. Unfinished decided transactions stay in the log for the next start's recovery. */
  close(): void {
    this.isClosed = true;
    this.cleaner.close();
    this.phaseTwoConnections.close();
    if (this.recoveryTimer !== null) clearTimeout(this.recoveryTimer);
  }
}

function noop(): void {}
