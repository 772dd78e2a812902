// The transaction manager: owns every distributed transaction from its COMMIT on — txids and GIDs, the durable
// decision (decision log), phase-2 and abort retries in the background, recovery after a crash (its own or a
// shard's), and what operators see (SHOW TRANSACTIONS rows, counters). Sessions run the hot path (coordinator.ts)
// on their own server connections and hand over here whatever could not finish there.
import type { Logger } from 'pino';
import { gidLikePattern, makeGid, parseGid, TxidSource } from './gid.js';
import { endsPreparedBranch, outcomeFailure } from '../backend/server-query.js';
import { queryShard, type ShardAccess } from '../backend/shard-access.js';
import { DistributedTransaction, type Branch } from './transaction.js';
import type { VisibilityFences } from './visibility-fence.js';

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
  log: DecisionRecorder;
  shards: ShardAccess;
  logger: Logger;
  /** A prepared transaction of ours with no decision and older than this is rolled back by periodic recovery. */
  orphanTimeoutMs: number;
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

/** One row of SHOW TRANSACTIONS. */
export interface TransactionRow {
  txid: string;
  state: string;
  database: string;
  user: string;
  ageMs: number;
  shards: string;
  retries: number;
  lastError: string | null;
}

export interface RecoveryReport {
  committed: number;
  rolledBack: number;
  pending: number;
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
  private isRecovering = false;
  private isClosed = false;
  /** Why two-phase commits are refused now (another live proxy holds this instance id somewhere); null: they are not. */
  private commitRefusal: string | null = null;

  constructor(opts: TransactionManagerOptions) {
    this.opts = opts;
    this.instanceId = opts.instanceId;
    this.log = opts.logger.child({ component: '2pc' });
  }

  /** A new two-phase transaction over `writers` (get a GID each) and `readers` (plain COMMIT). */
  begin(
    database: string,
    user: string,
    writers: readonly number[],
    readers: readonly number[],
  ): DistributedTransaction {
    const txid = this.txids.nextTxid();
    const branches: Branch[] = [
      ...writers.map((shard) => ({
        shard,
        role: 'writer' as const,
        gid: makeGid(this.instanceId, txid, shard),
        state: 'open' as const,
      })),
      ...readers.map((shard) => ({ shard, role: 'reader' as const, gid: null, state: 'open' as const })),
    ];
    const tx = new DistributedTransaction(txid, database, user, branches);
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
    tx.visibility = await fence.enterWrite(
      tx.writers.map((b) => b.shard),
      tx.txid,
    );
  }

  private finish(tx: DistributedTransaction): void {
    tx.visibility?.release();
    if (tx.state === 'committing') {
      tx.to('done');
      this.opts.log.appendDone(tx.txid);
      this.counters.committed++;
    } else if (tx.state === 'aborting') {
      tx.to('aborted');
      this.counters.rolledBack++;
    }
    this.live.delete(tx.txid);
  }

  /** Distributed transactions not finished yet (SHOW TRANSACTIONS). */
  transactions(now: number = Date.now()): TransactionRow[] {
    return [...this.live.values()].map((tx) => ({
      txid: tx.txid,
      state: tx.isHeldInDoubt ? 'in doubt (decision log failed)' : tx.state,
      database: tx.database,
      user: tx.user,
      ageMs: now - tx.startedAt,
      shards: tx.branches.map((b) => `${b.shard}:${b.role === 'writer' ? b.state : 'reader'}`).join(','),
      retries: tx.retries,
      lastError: tx.lastError,
    }));
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

  private retryInBackground(tx: DistributedTransaction): void {
    if (this.retrying.has(tx.txid) || this.isClosed) return;
    this.retrying.add(tx.txid);
    let delay = this.opts.retryDelayMs ?? 100;
    const attempt = async (): Promise<void> => {
      if (this.isClosed) return;
      tx.retries++;
      this.counters.phase2Retries++;
      await this.finishBranches(tx);
      if (tx.unfinishedWriters.length === 0) {
        this.retrying.delete(tx.txid);
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
    setTimeout(() => void attempt(), delay).unref();
  }

  /** One attempt at COMMIT PREPARED (committing) or ROLLBACK PREPARED (aborting) on every unfinished branch. */
  private async finishBranches(tx: DistributedTransaction): Promise<void> {
    const verb = tx.state === 'committing' ? 'COMMIT PREPARED' : 'ROLLBACK PREPARED';
    await Promise.all(
      tx.unfinishedWriters.map(async (branch) => {
        const sql = `${verb} '${branch.gid as string}'`;
        const outcome = await queryShard(this.opts.shards, tx.database, tx.user, branch.shard, sql);
        if (endsPreparedBranch(outcome)) {
          tx.moveBranch(branch, tx.state === 'committing' ? 'committed' : 'rolled_back');
          return;
        }
        const err = outcomeFailure(outcome);
        tx.lastError = `shard ${branch.shard}: ${err}`;
        if (tx.retries % 10 === 1)
          this.log.warn(
            { txid: tx.txid, shard: branch.shard, retries: tx.retries, err },
            `${verb} failed; retrying`,
          );
      }),
    );
  }

  // --- recovery ------------------------------------------------------------------------------------------------

  /**
   * Finish what a crash left behind: every logged COMMIT without DONE → COMMIT PREPARED wherever still prepared
   * (whatever id its GIDs carry: the record names them); every prepared transaction of this instance (or of the
   * former default id, see isOrphanDue) with no COMMIT record, not in progress here and older than the orphan
   * timeout (any age at start-up: nothing can be in progress yet) → ROLLBACK PREPARED. Others' prepared
   * transactions are never touched. One pass; what fails is retried in the background.
   */
  async recover(isStartup: boolean): Promise<RecoveryReport> {
    if (this.isRecovering) return { committed: 0, rolledBack: 0, pending: this.live.size };
    this.isRecovering = true;
    try {
      const decided = new Map<string, CommitDecision>();
      for (const d of this.opts.log.pendingCommits()) decided.set(d.txid, d);
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
      const rolledBack = await this.rollBackOrphans(decided, isStartup);
      return { committed, rolledBack, pending: this.live.size };
    } finally {
      this.isRecovering = false;
    }
  }

  private async rollBackOrphans(
    decided: ReadonlyMap<string, CommitDecision>,
    isStartup: boolean,
  ): Promise<number> {
    if (this.commitRefusal !== null) {
      this.log.warn(
        { reason: this.commitRefusal },
        'recovery: not rolling back undecided prepared transactions while another proxy uses this instance id',
      );
      return 0;
    }
    let rolledBack = 0;
    const shards = this.opts.shards;
    for (const database of shards.shardedDatabases()) {
      const users = shards.users(database);
      if (users.length === 0) continue;
      for (let shard = 0; shard < shards.shardCount(database); shard++) {
        const found = await this.preparedOnShard(database, users[0], shard);
        if (found === null) continue;
        for (const row of found) {
          const gid = parseGid(row.gid);
          if (gid === null || gid.shard !== shard) continue;
          if (decided.has(gid.txid) || this.live.has(gid.txid)) continue;
          if (!this.isOrphanDue(gid.instanceId, row.ageMs, isStartup)) continue;
          const owner = users.find((u) => shards.serverUser(database, u, shard) === row.owner) ?? users[0];
          const outcome = await queryShard(shards, database, owner, shard, `ROLLBACK PREPARED '${row.gid}'`);
          if (endsPreparedBranch(outcome)) {
            rolledBack++;
            this.counters.recovered++;
            this.counters.rolledBack++;
            this.log.info(
              { gid: row.gid, database, shard, ageMs: row.ageMs },
              'recovery: rolled back a prepared transaction with no commit decision',
            );
          } else {
            this.log.error(
              { gid: row.gid, database, shard, err: outcomeFailure(outcome) },
              'recovery: ROLLBACK PREPARED failed; will retry',
            );
          }
        }
      }
    }
    return rolledBack;
  }

  /**
   * An undecided prepared transaction under `instanceId` is presumed aborted now: this instance's own or the former
   * default id's at any age at start-up (nothing of ours can be in flight yet), else once older than the orphan
   * timeout; an ambiguous former id's only once older than the timeout, at start-up too. Anyone else's: never.
   */
  private isOrphanDue(instanceId: string, ageMs: number, isStartup: boolean): boolean {
    const former = this.opts.formerInstanceId ?? null;
    const isOwn = instanceId === this.instanceId;
    const isFormer = former !== null && instanceId === former.id;
    if (!isOwn && !isFormer) return false;
    const isAnyAge = isStartup && (isOwn || !former?.isAmbiguous);
    return isAnyAge || ageMs >= this.opts.orphanTimeoutMs;
  }

  /**
   * Prepared transactions of this instance (and of the former default id) in the shard's database; null (logged)
   * when the shard is unreachable.
   */
  private async preparedOnShard(
    database: string,
    user: string,
    shard: number,
  ): Promise<{ gid: string; ageMs: number; owner: string }[] | null> {
    const ids = [this.instanceId];
    if (this.opts.formerInstanceId) ids.push(this.opts.formerInstanceId.id);
    const matches = ids.map((id) => `gid LIKE '${gidLikePattern(id)}'`).join(' OR ');
    const outcome = await queryShard(
      this.opts.shards,
      database,
      user,
      shard,
      `SELECT gid, (extract(epoch FROM now() - prepared) * 1000)::bigint, owner FROM pg_prepared_xacts ` +
        `WHERE database = current_database() AND (${matches})`,
    );
    if (outcome.kind !== 'ok') {
      const err = outcomeFailure(outcome);
      this.log.warn({ database, shard, err }, 'recovery: cannot list prepared transactions');
      return null;
    }
    return outcome.rows.map((r) => ({ gid: r[0] ?? '', ageMs: Number(r[1]), owner: r[2] ?? '' }));
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
    if (this.recoveryTimer !== null) clearTimeout(this.recoveryTimer);
  }
}
