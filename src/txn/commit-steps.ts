// The statements a commit runs on a session's own server connections, shared by plain commit (coordinator.ts) and
// two-phase commit (decision-commit.ts): who takes part (CommitParticipant), running a statement and noting lost
// connections (Runner), the client's error for a failed step, phase 1 with its timeout, rolling back prepared
// branches, and the log line for a reader whose COMMIT failed.
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

export class Runner {
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
