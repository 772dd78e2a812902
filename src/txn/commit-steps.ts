// The statements a commit runs on a session's own server connections, shared by plain commit (coordinator.ts) and
// two-phase commit (decision-commit.ts): who takes part (CommitParticipant), running a statement and noting lost
// connections (Runner, which also shows each statement to the distributed deadlock check as a wait of the session's
// transaction: ServerConnection.ownStatement), the client's error for a failed step, phase 1 with its timeout, rolling back prepared
// branches, and the log line for a reader whose COMMIT failed.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { FramedSinkOwner } from '../backend/framed-sink.js';
import type { OwnStatement } from '../backend/own-statement.js';
import type { ServerConnection } from '../backend/server-connection.js';
import {
  endsPreparedBranch,
  expectTag,
  outcomeFailure,
  runQuery,
  type QueryOutcome,
} from '../backend/server-query.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { withShardInDetail } from '../errors/shard-detail.js';
import type { DistributedTransaction } from './transaction.js';

export interface CommitParticipant {
  readonly shard: number;
  readonly server: ServerConnection;
  readonly isWriter: boolean;
}

export interface CommitRun {
  /** null: committed. Else the ErrorResponse for the client (shard named in its detail); nothing was committed. */
  readonly error: Buffer | null;
  /** Shards whose connection died meanwhile: the session must drop them. */
  readonly lost: readonly number[];
}

export type Owner = Pick<FramedSinkOwner, 'onServerParameter'>;

/** Numbers the commit steps and the commits of this process (OwnStatement.seq, .commitId). */
let nextStatementSeq = 1;
let nextCommitId = 1;

/** The GID in `PREPARE TRANSACTION '<gid>'` (GIDs hold no quote: gid.ts). */
const PREPARE_GID = /^PREPARE TRANSACTION '([^']*)'$/;

const NEVER = (): boolean => false;
const ALWAYS = (): boolean => true;

/**
 * Runs a commit's statements, each shown on its server as `ownStatement` while in flight: the deadlock check
 * (deadlock-watch.ts) counts a commit's lock wait — a deferred constraint or trigger, or a deferred unique check,
 * waiting at PREPARE TRANSACTION or COMMIT for another transaction's row — as a wait of the session's transaction.
 * Which of them the check may cancel as a deadlock's victim (PostgreSQL then rolls that branch back, and the commit
 * rolls back everywhere as after any failed step; the client gets the 40P01 as the COMMIT's reply):
 * - PREPARE TRANSACTION: phase 1, nothing is decided yet;
 * - a writer's COMMIT while it is the only writer COMMIT this commit sends: the single writer of a plain commit, or
 *   the decision shard's COMMIT of two-phase commit — that COMMIT is the decision; PostgreSQL answers an error to a
 *   COMMIT only while the transaction can still abort (it holds off cancels from the commit record on), and even so
 *   decision-commit.ts never takes a cancelled decision COMMIT for rolled back: it reads the decision row first;
 * - nothing else: a reader's COMMIT (cancelling it would not roll the writers back), the writers' COMMITs of a plain
 *   commit with 2+ writers (others may have committed: past the point of no return), COMMIT PREPARED (past the
 *   decision), ROLLBACK [PREPARED] and the decision row's INSERT (which waits for no other transaction).
 * A branch it prepared is shown too (ServerConnection.preparedBranch): its locks are then held by a prepared
 * transaction (pid 0 to pg_blocking_pids), which the check counts as this transaction's while its commit runs.
 */
export class Runner {
  readonly lost: number[] = [];
  /** Writer COMMITs sent so far: with more than one, none of them may be cancelled. */
  private writerCommits = 0;
  private readonly commitId = nextCommitId++;
  constructor(private readonly owner: Owner) {}

  async run(p: CommitParticipant, sql: string): Promise<QueryOutcome> {
    return this.runShown(p, sql, NEVER);
  }

  /** COMMIT or PREPARE TRANSACTION: an answer other than its own tag (ROLLBACK) means the transaction was rolled back. */
  async end(p: CommitParticipant, sql: string, tag: 'COMMIT' | 'PREPARE TRANSACTION'): Promise<QueryOutcome> {
    let isCancellable = NEVER;
    if (tag === 'PREPARE TRANSACTION') isCancellable = ALWAYS;
    else if (p.isWriter) {
      this.writerCommits++;
      isCancellable = () => this.writerCommits === 1;
    }
    return expectTag(await this.runShown(p, sql, isCancellable), tag);
  }

  /**
   * The decision shard's decision row and its COMMIT in one Query (decisionSql, decision-table.ts): the COMMIT's
   * outcome (as end(): ROLLBACK is an error), or the row's error, after which the branch is left failed (the caller
   * reads `server.txStatus`). Cancellable as a writer's COMMIT.
   */
  async decide(p: CommitParticipant, decisionSql: string): Promise<QueryOutcome> {
    this.writerCommits++;
    const isCancellable = (): boolean => this.writerCommits === 1;
    return expectTag(await this.runShown(p, decisionSql, isCancellable), 'COMMIT');
  }

  private async runShown(
    p: CommitParticipant,
    sql: string,
    isCancellable: () => boolean,
  ): Promise<QueryOutcome> {
    const shown: OwnStatement = {
      sql,
      sinceMs: performance.now(),
      seq: nextStatementSeq++,
      commitId: this.commitId,
      isCancellable,
    };
    p.server.ownStatement = shown;
    try {
      const outcome = await runQuery(p.server, sql, this.owner);
      if (outcome.kind === 'lost') this.lost.push(p.shard);
      const gid = PREPARE_GID.exec(sql)?.[1];
      if (gid !== undefined && outcome.kind === 'ok' && outcome.tag === 'PREPARE TRANSACTION')
        p.server.preparedBranch = { gid, commitId: this.commitId };
      else if (p.server.preparedBranch?.commitId === this.commitId && endsPreparedBranch(outcome))
        p.server.preparedBranch = null; // COMMIT / ROLLBACK PREPARED of it
      return outcome;
    } finally {
      if (p.server.ownStatement === shown) p.server.ownStatement = null;
    }
  }
}

export function errorFrame(outcome: QueryOutcome, shard: number, lostMeans: string): Buffer | null {
  if (outcome.kind === 'ok') return null;
  if (outcome.kind === 'error') return withShardInDetail(outcome.frame, shard);
  return new PgError(
    'ERROR',
    SqlState.TransactionRollback,
    `connection to shard ${shard} was lost ${lostMeans}`,
    `shard ${shard}: ${outcome.reason}`,
  ).toBuffer();
}

/** How long a PREPARE may ignore its cancel before its connection is closed (the outcome then is 'lost'). */
const PREPARE_CANCEL_GRACE_MS = 5_000;

/**
 * Phase 1 with a bound (`ms` > 0): a shard still preparing after `ms` gets a cancel (PostgreSQL answers 57014 and
 * rolls that branch back); one that ignores it for PREPARE_CANCEL_GRACE_MS more — a hung host — has its connection
 * closed. Either way phase 1 fails and the transaction rolls back everywhere: a hung shard cannot hold the client.
 */
export async function boundedPrepares(
  writers: readonly CommitParticipant[],
  runs: readonly Promise<QueryOutcome>[],
  ms: number,
  logger: Logger,
): Promise<{ outcomes: QueryOutcome[]; timedOut: boolean[] }> {
  const timedOut = writers.map(() => false);
  if (ms <= 0) return { outcomes: await Promise.all(runs), timedOut };
  const isDone = writers.map(() => false);
  runs.forEach((run, i) => void run.then(() => (isDone[i] = true)));
  let grace: NodeJS.Timeout | null = null;
  const timer = setTimeout(() => {
    writers.forEach((p, i) => {
      if (isDone[i]) return;
      timedOut[i] = true;
      logger.warn({ shard: p.shard, timeoutMs: ms }, 'PREPARE TRANSACTION timed out: cancelling it');
      void p.server.cancel();
    });
    grace = setTimeout(() => {
      writers.forEach((p, i) => {
        if (isDone[i]) return;
        logger.error({ shard: p.shard }, 'PREPARE TRANSACTION ignored its cancel: closing the connection');
        p.server.terminate('PREPARE TRANSACTION did not end after its cancel');
      });
    }, PREPARE_CANCEL_GRACE_MS);
  }, ms);
  try {
    return { outcomes: await Promise.all(runs), timedOut };
  } finally {
    clearTimeout(timer);
    if (grace !== null) clearTimeout(grace);
  }
}

/** Phase-1 failure: ROLLBACK PREPARED where PREPARE succeeded; branches left unfinished go to the background. */
export async function rollBackPrepared(
  runner: Runner,
  writers: readonly CommitParticipant[],
  tx: DistributedTransaction,
): Promise<void> {
  await Promise.all(
    writers.map(async (p) => {
      const branch = tx.branchOn(p.shard);
      if (branch.state !== 'prepared') return;
      const o = await runner.run(p, `ROLLBACK PREPARED '${branch.gid}'`);
      if (endsPreparedBranch(o)) tx.moveBranch(branch, 'rolled_back');
    }),
  );
}

/** A reader's COMMIT cannot lose data (it wrote nothing): problems are logged, never reported to the client. */
export function logReaderProblems(
  readers: readonly CommitParticipant[],
  outcomes: readonly QueryOutcome[],
  logger: Logger,
): void {
  outcomes.forEach((o, i) => {
    const why = outcomeFailure(o);
    if (why === null) return;
    logger.warn(
      { shard: readers[i].shard, err: why },
      'COMMIT of a read-only shard failed (nothing was written there)',
    );
  });
}
