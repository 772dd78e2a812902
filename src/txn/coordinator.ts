// The commit of one client transaction that spans several shards, run on the session's own server connections:
// plain COMMIT (readers first, then the writer) when at most one shard wrote or two-phase commit is off, else
// PREPARE TRANSACTION on every writer → durable COMMIT decision → COMMIT PREPARED. What cannot finish here (a
// connection lost, a shard down in phase 2) is handed to the TransactionManager, which retries in the background.
import type { Logger } from 'pino';
import type { FramedSinkOwner } from '../backend/framed-sink.js';
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
import { failpoint } from './failpoints.js';
import { DecisionNotDurableError } from './log/decision-log.js';
import { CommitRefusedError, type TransactionManager } from './manager.js';
import type { Branch, DistributedTransaction } from './transaction.js';
import type { VisibilityFence } from './visibility-fence.js';

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

type Owner = Pick<FramedSinkOwner, 'onServerParameter'>;

class Runner {
  readonly lost: number[] = [];
  constructor(private readonly owner: Owner) {}

  async run(p: CommitParticipant, sql: string): Promise<QueryOutcome> {
    const outcome = await runQuery(p.server, sql, this.owner);
    if (outcome.kind === 'lost') this.lost.push(p.shard);
    return outcome;
  }

  /** COMMIT or PREPARE TRANSACTION: an answer other than its own tag (ROLLBACK) means the transaction was rolled back. */
  async end(p: CommitParticipant, sql: string, tag: 'COMMIT' | 'PREPARE TRANSACTION'): Promise<QueryOutcome> {
    return expectTag(await this.run(p, sql), tag);
  }
}

function errorFrame(outcome: QueryOutcome, shard: number, lostMeans: string): Buffer | null {
  if (outcome.kind === 'ok') return null;
  if (outcome.kind === 'error') return withShardInDetail(outcome.frame, shard);
  return new PgError(
    'ERROR',
    SqlState.TransactionRollback,
    `connection to shard ${shard} was lost ${lostMeans}`,
    `shard ${shard}: ${outcome.reason}`,
  ).toBuffer();
}

/**
 * Plain COMMIT: readers first (their result cannot change anything), then the writers in parallel. With two or more
 * writers (two_phase_commit off) a failure on one after another committed leaves the transaction partly applied:
 * logged as an error, and the client gets the failing shard's error.
 */
export async function commitPlain(
  participants: readonly CommitParticipant[],
  owner: Owner,
  logger: Logger,
  fence: VisibilityFence | null = null,
): Promise<CommitRun> {
  const runner = new Runner(owner);
  const readers = participants.filter((p) => !p.isWriter);
  const writers = participants.filter((p) => p.isWriter);
  const readerOutcomes = await Promise.all(readers.map((p) => runner.end(p, 'COMMIT', 'COMMIT')));
  logReaderProblems(readers, readerOutcomes, logger);
  // atomic_visibility: readers of the writers' shards are held off while the COMMITs make it visible shard by shard.
  const hold =
    fence !== null && writers.length >= 2
      ? await fence.enterWrite(
          writers.map((p) => p.shard),
          'a plain multi-shard COMMIT',
        )
      : null;
  const writerOutcomes = await Promise.all(writers.map((p) => runner.end(p, 'COMMIT', 'COMMIT')));
  hold?.release();
  let error: Buffer | null = null;
  writerOutcomes.forEach(
    (o, i) =>
      (error ??= errorFrame(o, writers[i].shard, 'during COMMIT; whether it committed there is unknown')),
  );
  const failedWriters = writers.filter((_, i) => writerOutcomes[i].kind !== 'ok').map((p) => p.shard);
  if (failedWriters.length > 0 && failedWriters.length < writers.length) {
    logger.error(
      { failed: failedWriters, writers: writers.map((p) => p.shard) },
      'COMMIT failed on some shards after others committed: the transaction is partly applied (two_phase_commit is off)',
    );
  }
  return { error, lost: runner.lost };
}

/**
 * Two-phase commit over the writers (readers get plain COMMIT meanwhile). Resolves once the outcome is decided and
 * phase 2 has been tried once; a committed transaction whose phase 2 could not finish is retried in the background.
 */
export async function commitTwoPhase(
  manager: TransactionManager,
  database: string,
  user: string,
  participants: readonly CommitParticipant[],
  owner: Owner,
  logger: Logger,
  prepareTimeoutMs = 0,
): Promise<CommitRun> {
  const runner = new Runner(owner);
  const readers = participants.filter((p) => !p.isWriter);
  const writers = participants.filter((p) => p.isWriter);
  const tx = manager.begin(
    database,
    user,
    writers.map((p) => p.shard),
    readers.map((p) => p.shard),
  );
  const branchOf = (p: CommitParticipant): Branch => tx.branchOn(p.shard);
  // Readers commit meanwhile: they changed nothing, so their outcome cannot change the decision.
  const readersDone = Promise.all(readers.map((p) => runner.end(p, 'COMMIT', 'COMMIT'))).then((o) =>
    logReaderProblems(readers, o, logger),
  );

  await failpoint('before_prepare');
  const { outcomes: prepared, timedOut } = await boundedPrepares(
    writers,
    writers.map((p) => runner.end(p, `PREPARE TRANSACTION '${branchOf(p).gid}'`, 'PREPARE TRANSACTION')),
    prepareTimeoutMs,
    logger,
  );
  let error: Buffer | null = null;
  writers.forEach((p, i) => {
    const o = prepared[i];
    const branch = branchOf(p);
    if (o.kind === 'ok') tx.moveBranch(branch, 'prepared');
    else if (o.kind === 'error') tx.moveBranch(branch, 'failed'); // PostgreSQL rolled that branch back itself
    // lost: unknown whether it was prepared; stays 'open' so the abort path makes sure with ROLLBACK PREPARED
    if (o.kind !== 'ok' && timedOut[i] && error === null) {
      error = new PgError(
        'ERROR',
        SqlState.QueryCanceled,
        `PREPARE TRANSACTION on shard ${p.shard} did not finish within two_phase_commit_prepare_timeout ` +
          `(${prepareTimeoutMs} ms); the transaction was rolled back`,
        `shard ${p.shard}: ${outcomeFailure(o) ?? ''}`,
      ).toBuffer();
    }
    error ??= errorFrame(o, p.shard, 'during PREPARE TRANSACTION; the transaction was rolled back');
  });

  if (error === null) {
    await failpoint('after_prepare');
    try {
      await manager.decide(tx);
    } catch (err) {
      if (err instanceof DecisionNotDurableError && err.mayBeOnDisk) {
        // The record may surface at the next start and be committed: rolling back now could split the outcome.
        manager.holdInDoubt(tx, err.message);
        await readersDone;
        const unknown = new PgError(
          'ERROR',
          SqlState.StatementCompletionUnknown,
          'the outcome of this COMMIT is unknown: the decision log failed while writing it',
          err.message,
          'The transaction stays prepared on its shards; restart shardgate (after fixing two_phase_commit_wal_dir) ' +
            'and recovery will commit or roll it back everywhere.',
        ).toBuffer();
        return { error: unknown, lost: runner.lost };
      }
      error =
        err instanceof CommitRefusedError
          ? new PgError(
              'ERROR',
              SqlState.ObjectNotInPrerequisiteState,
              'two-phase commit is unavailable on this proxy right now; the transaction was rolled back',
              err.message,
              'Another shardgate holds this instance_id on a shard (see the proxy log); give each proxy its own instance_id.',
            ).toBuffer()
          : new PgError(
              'ERROR',
              SqlState.IoError,
              'could not make the commit decision durable; the transaction was rolled back',
              (err as Error).message,
              'Check two_phase_commit_wal_dir (disk full? permissions?).',
            ).toBuffer();
    }
  }

  if (error !== null) {
    await rollBackPrepared(runner, writers, tx);
    await readersDone;
    manager.settle(tx);
    return { error, lost: runner.lost };
  }

  // Readers of its shards wait from here until every COMMIT PREPARED is acknowledged (the manager releases it when
  // the transaction is finished, after background retries if need be). A crash while waiting: recovery commits it.
  await manager.holdVisibility(tx);
  await failpoint('after_decision');
  await Promise.all(
    writers.map((p) =>
      runner.run(p, `COMMIT PREPARED '${branchOf(p).gid}'`).then((o) => {
        if (endsPreparedBranch(o)) tx.moveBranch(branchOf(p), 'committed');
        else tx.lastError = `shard ${p.shard}: ${outcomeFailure(o)}`;
      }),
    ),
  );
  await readersDone;
  manager.settle(tx);
  return { error: null, lost: runner.lost };
}

/** How long a PREPARE may ignore its cancel before its connection is closed (the outcome then is 'lost'). */
const PREPARE_CANCEL_GRACE_MS = 5_000;

/**
 * Phase 1 with a bound (`ms` > 0): a shard still preparing after `ms` gets a cancel (PostgreSQL answers 57014 and
 * rolls that branch back); one that ignores it for PREPARE_CANCEL_GRACE_MS more — a hung host — has its connection
 * closed. Either way phase 1 fails and the transaction rolls back everywhere: a hung shard cannot hold the client.
 */
async function boundedPrepares(
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
async function rollBackPrepared(
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
function logReaderProblems(
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
