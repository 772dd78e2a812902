// Two-phase commit with the decision on a shard, in the layout atomic_visibility runs: every writer — the decision
// shard's too — runs PREPARE TRANSACTION (round trip 1, in parallel); then the decision row is inserted `true` in an
// autocommit transaction of its own on the decision shard (round trip 2: the commit point, durable in that shard's
// WAL, and no data becomes visible anywhere); then COMMIT PREPARED on every writer in parallel (round trip 3). Only
// round trip 3 makes data visible, so the writer's fence hold covers one round trip, not two (the decision COMMIT and
// then COMMIT PREPARED of decision-commit.ts). Every await says what recovery (any proxy's, decision-recovery.ts) does
// if this process dies there; docs/two-phase-commit.md has the argument.
import type { Logger } from 'pino';
import type { QueryOutcome } from '../backend/server-query.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import {
  boundedPrepares,
  errorFrame,
  logReaderProblems,
  rollBackPrepared,
  Runner,
  type CommitParticipant,
  type CommitRun,
  type Owner,
} from './commit-steps.js';
import {
  commitPreparedOn,
  phaseOneError,
  refusedError,
  resolveLostDecision,
  splitAround,
  unknownOutcome,
} from './decision-commit.js';
import { insertDecisionAutocommitSql } from './decision-table.js';
import { failpoint } from './failpoints.js';
import { CommitRefusedError, type TransactionManager } from './manager.js';
import type { DistributedTransaction } from './transaction.js';

/** PostgreSQL's unique_violation: recovery's `false` row holds the key. */
const UNIQUE_VIOLATION = '23505';

/**
 * As commitWithDecisionCommit (decision-commit.ts), in this layout; the client hears COMMIT after round trip 3 (the
 * at_decision reply keeps the other layout: coordinator.ts).
 */
export async function commitWithPreparedDecision(
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
  const writers = [...participants.filter((p) => p.isWriter)].sort((a, b) => a.shard - b.shard);
  const decider = writers[0];
  const tx = manager.begin(
    database,
    user,
    writers.map((p) => p.shard),
    readers.map((p) => p.shard),
    decider.shard,
    true,
  );
  // Readers commit meanwhile: they changed nothing, so their outcome cannot change the decision.
  const readersDone = Promise.all(readers.map((p) => runner.end(p, 'COMMIT', 'COMMIT'))).then((o) =>
    logReaderProblems(readers, o, logger),
  );

  // Dies here: nothing is prepared; the open branches end with this process's connections (or, on a host that
  // vanished, with the servers' idle_in_transaction_session_timeout / TCP timeouts). Nothing to recover.
  await failpoint('before_prepare');
  const prepare = (p: CommitParticipant): Promise<QueryOutcome> =>
    runner.end(p, `PREPARE TRANSACTION '${tx.branchOn(p.shard).gid}'`, 'PREPARE TRANSACTION');
  // Round trip 1. Dies during it: some branches prepared (the decision shard's among them, maybe), no row. Recovery
  // (after the minimum age) inserts `false` and rolls back every prepared branch, the decision shard's by the same rule.
  const { outcomes, timedOut } = await boundedPrepares(
    writers,
    splitAround('mid_prepare', writers, decider, prepare),
    prepareTimeoutMs,
    logger,
  );
  let error = phaseOneError(tx, writers, null, outcomes, timedOut, prepareTimeoutMs);

  if (error === null) {
    // Dies here: every branch prepared, no row. Recovery inserts `false` once they are older than the minimum age and
    // rolls back everywhere; our insert, if it ever arrived, would fail on the key. (`after_decision_row` is the name
    // of this step in the other layout — phase 1 over, nothing decided — and is honoured here for its tests.)
    await failpoint('after_prepare');
    await failpoint('after_decision_row');
    try {
      manager.checkAccepting();
    } catch (err) {
      if (!(err instanceof CommitRefusedError)) throw err;
      error = refusedError(err);
    }
  }
  if (error !== null) return abort(tx, runner, writers, error, readersDone, manager);

  // Round trip 2, the decision: an autocommit insert on the decision shard's connection (idle since its PREPARE). Dies
  // waiting for it: it either committed (row `true`: recovery commits) or not (recovery inserts `false`, rolls back).
  const insert = insertDecisionAutocommitSql(
    manager.decisionSchema,
    tx.txid,
    writers.map((p) => p.shard),
  );
  const decision = await runner.run(decider, insert);
  if (decision.kind === 'error') {
    // Not committed (an autocommit statement that fails commits nothing): recovery's `false` was first (the key), or
    // the row could not be written. Nothing is visible anywhere: roll back everywhere.
    const frame = new PgError(
      'ERROR',
      SqlState.TransactionRollback,
      `could not write the commit decision on shard ${decider.shard}; the transaction was rolled back`,
      `shard ${decider.shard}: ${decision.code} ${decision.message}`,
      decision.code === UNIQUE_VIOLATION
        ? 'Recovery had settled it as rolled back first: its PREPAREs were older than two_phase_commit_orphan_timeout.'
        : undefined,
    ).toBuffer();
    return abort(tx, runner, writers, frame, readersDone, manager);
  }
  if (decision.kind === 'lost') {
    const resolution = await resolveLostDecision(manager, tx, decider.shard);
    if (resolution.outcome === 'aborted') {
      const lost = errorFrame(
        decision,
        decider.shard,
        'writing the commit decision; the transaction was rolled back',
      );
      return abort(tx, runner, writers, lost, readersDone, manager);
    }
    if (resolution.outcome === 'unknown') {
      // Never roll back on an unknown outcome: the branches stay prepared for recovery (any proxy) to settle. No data is
      // visible anywhere yet, so no fence hold goes with it.
      manager.abandon(tx, resolution.reason);
      await readersDone;
      return { error: unknownOutcome(decider.shard, resolution.reason), lost: runner.lost };
    }
  }
  manager.decided(tx);

  // atomic_visibility: from just before the first COMMIT PREPARED until every branch is committed, readers of its
  // shards wait (the manager releases the hold when it is finished, background retries included). Resolves once
  // readers in the middle of taking their snapshots are out. Dies waiting: decided, nothing visible (below).
  await manager.holdVisibility(tx);
  // Dies here: the row says `true`, every branch is prepared and nothing is visible; recovery commits them all (at any
  // age: a committed `true` is finished at once), holding its own fence while it does.
  await failpoint('after_decision');
  // Round trip 3, the only one that makes data visible. Dies during it: the row says `true`; recovery commits the rest.
  await commitPreparedOn(runner, tx, writers); // writers[0] is the decider: first when split by the failpoint
  await readersDone;
  // Every participant confirmed: the row is deleted (batched). Unfinished: retried in the background first.
  manager.settle(tx);
  return { error: null, lost: runner.lost };
}

/** Nothing was decided: ROLLBACK PREPARED where prepared; a branch whose PREPARE reply was lost goes to the background. */
async function abort(
  tx: DistributedTransaction,
  runner: Runner,
  writers: readonly CommitParticipant[],
  error: Buffer | null,
  readersDone: Promise<void>,
  manager: TransactionManager,
): Promise<CommitRun> {
  await rollBackPrepared(runner, writers, tx);
  await readersDone;
  manager.settle(tx);
  return { error, lost: runner.lost };
}
