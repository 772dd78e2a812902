// Two-phase commit with the decision on a shard (stateless: the proxy keeps nothing safety depends on). The lowest
// writer is the decision shard: its branch is not prepared but carries the decision row; the other writers PREPARE
// first, then the decision row and the decision shard's plain COMMIT go in one write. That COMMIT is the commit point,
// durable in PostgreSQL's WAL; then COMMIT PREPARED on the others. With atomic_visibility the other layout runs
// instead (decision-commit-prepared.ts: every writer prepared, the decision an insert of its own; coordinator.ts
// picks). Also the steps both layouts share. Every await says what recovery (any proxy's, decision-recovery.ts) does
// if this process dies there; docs/two-phase-commit.md has the whole argument.
import type { Logger } from 'pino';
import { endsPreparedBranch, outcomeFailure, type QueryOutcome } from '../backend/server-query.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { TxStatus } from '../protocol/codes.js';
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
import { decideSql, insertDecisionSql, type Resolution } from './decision-table.js';
import { failpoint, isFailpointSet, type FailpointName } from './failpoints.js';
import { CommitRefusedError, type TransactionManager } from './manager.js';
import type { DistributedTransaction } from './transaction.js';

/** Resolving a lost decision reply: attempts, and the pause between them (a shard restarting, a lock wait). */
const RESOLVE_ATTEMPTS = 3;
const RESOLVE_PAUSE_MS = 500;

/**
 * Two-phase commit over the writers (readers get plain COMMIT meanwhile). Resolves once the outcome is known and phase
 * 2 has been tried once; a committed transaction whose phase 2 could not finish is retried in the background.
 * `isReplyAtDecision` (two_phase_commit_reply = "at_decision", with the fence running): resolves right after the
 * decision COMMIT; phase 2 runs in the background on the manager's connections (manager.continueAfterReply).
 */
export async function commitWithDecisionCommit(
  manager: TransactionManager,
  database: string,
  user: string,
  participants: readonly CommitParticipant[],
  owner: Owner,
  logger: Logger,
  prepareTimeoutMs = 0,
  isReplyAtDecision = false,
): Promise<CommitRun> {
  const runner = new Runner(owner);
  const readers = participants.filter((p) => !p.isWriter);
  const writers = [...participants.filter((p) => p.isWriter)].sort((a, b) => a.shard - b.shard);
  const decider = writers[0];
  const others = writers.slice(1);
  const tx = manager.begin(
    database,
    user,
    writers.map((p) => p.shard),
    readers.map((p) => p.shard),
    decider.shard,
  );
  // Readers commit meanwhile: they changed nothing, so their outcome cannot change the decision.
  const readersDone = Promise.all(readers.map((p) => runner.end(p, 'COMMIT', 'COMMIT'))).then((o) =>
    logReaderProblems(readers, o, logger),
  );

  // Dies here: nothing is prepared; the open branches end with this process's connections (or, on a host that
  // vanished, with the servers' idle_in_transaction_session_timeout / TCP timeouts). Nothing to recover.
  await failpoint('before_prepare');
  // The row goes in the same Query as the decision COMMIT, after phase 1: one round trip less on the decision shard.
  // Only the failpoint after_decision_row (a crash with the row inserted, not committed) sends it apart, in phase 1.
  const isRowApart = isFailpointSet('after_decision_row');
  const participantShards = writers.map((p) => p.shard);
  const phaseOne = isRowApart ? writers : others;
  const send = (p: CommitParticipant): Promise<QueryOutcome> =>
    p === decider
      ? runner.run(
          p,
          insertDecisionSql(
            manager.decisionSchema,
            tx.txid,
            participantShards,
            manager.decisionIdleTimeoutMs,
          ),
        )
      : runner.end(p, `PREPARE TRANSACTION '${tx.branchOn(p.shard).gid}'`, 'PREPARE TRANSACTION');
  // Dies during this round trip: some branches prepared (row apart: the row maybe inserted, not committed). Recovery
  // (after the minimum age) inserts `false` first — waiting for an open decision branch to end if it holds the row —
  // and rolls back everywhere; an insert of ours arriving later fails on the key, so this branch could never commit.
  const { outcomes, timedOut } = await boundedPrepares(
    phaseOne,
    splitAround('mid_prepare', phaseOne, others[0], send),
    prepareTimeoutMs,
    logger,
  );
  let error = phaseOneError(tx, phaseOne, decider, outcomes, timedOut, prepareTimeoutMs);

  if (error === null) {
    // Dies here: the others are prepared; the row is not inserted (row apart: inserted, not committed — SIGKILL
    // aborts the decision branch with the connection; a vanished host's idle_in_transaction_session_timeout ends it).
    // Recovery inserts `false` and rolls back.
    await failpoint('after_decision_row');
    await failpoint('after_prepare'); // the other layout's name of this step (phase 1 over, nothing decided)
    try {
      manager.checkAccepting();
    } catch (err) {
      if (!(err instanceof CommitRefusedError)) throw err;
      error = refusedError(err);
    }
  }
  if (error !== null) return abort(tx, runner, decider, others, error, readersDone, manager);

  // The decision. Dies waiting for it: the COMMIT either happened (row `true`: recovery commits) or not (recovery
  // finds no row, inserts `false` and rolls back) — PostgreSQL's WAL on the decision shard says which.
  // atomic_visibility: from the decision COMMIT (the first moment it is visible anywhere) until every branch is
  // committed, readers of its shards wait (the manager releases the hold when it is finished, retries included).
  // Dies waiting here: nothing was decided; recovery rolls it back.
  await manager.holdVisibility(tx);
  // Dies during this round trip: as just above — the row and the COMMIT are one transaction on the decision shard.
  const committed = isRowApart
    ? await runner.end(decider, 'COMMIT', 'COMMIT')
    : await runner.decide(decider, decideSql(manager.decisionSchema, tx.txid, participantShards));
  // A cancel (the deadlock check's victim, statement_timeout) should answer a COMMIT only before its commit record is
  // written — but the decision is never assumed: the row says what happened, as for a lost reply.
  const isCancelled = committed.kind === 'error' && committed.code === SqlState.QueryCanceled;
  if (committed.kind === 'error' && !isCancelled) {
    // The row was refused (recovery's `false` was first, the role may not insert: the COMMIT did not run) or the
    // decision branch was rolled back at its COMMIT (a deferred constraint there): nothing committed anywhere.
    endFailedDecision(tx, decider);
    const frame = errorFrame(committed, decider.shard, '');
    return abort(tx, runner, decider, others, frame, readersDone, manager);
  }
  if (committed.kind === 'lost' || isCancelled) {
    const resolution = await resolveLostDecision(manager, tx, decider.shard);
    if (resolution.outcome === 'aborted') {
      endFailedDecision(tx, decider);
      const lost = isCancelled
        ? errorFrame(committed, decider.shard, '')
        : errorFrame(committed, decider.shard, 'during COMMIT; the transaction was rolled back');
      return abort(tx, runner, decider, others, lost, readersDone, manager);
    }
    if (resolution.outcome === 'unknown') {
      // Never roll back on an unknown outcome: the branches stay prepared for recovery (any proxy) to settle.
      manager.abandon(tx, resolution.reason);
      await readersDone;
      return { error: unknownOutcome(decider.shard, resolution.reason), lost: runner.lost };
    }
  }
  manager.decided(tx);

  // Dies here or during phase 2: the row says `true`; recovery commits what is still prepared.
  await failpoint('after_decision');
  if (isReplyAtDecision && manager.canReplyAtDecision) {
    // The client hears COMMIT now: its servers are idle (the decision branch committed, the others prepared) and go
    // back as usual; COMMIT PREPARED runs on other connections, and this proxy's requests to those shards wait for it.
    await readersDone;
    manager.continueAfterReply(tx);
    return { error: null, lost: runner.lost };
  }
  await commitPreparedOn(runner, tx, others);
  await readersDone;
  // Every participant confirmed: the row is deleted (batched). Unfinished: retried in the background first.
  manager.settle(tx);
  return { error: null, lost: runner.lost };
}

/**
 * The decision branch did not commit. Ended by PostgreSQL (a COMMIT that failed, a lost connection) → rolled back; left
 * failed ('E': its row's insert failed or was cancelled, the COMMIT after it skipped) → stays open, for abort's ROLLBACK.
 */
function endFailedDecision(tx: DistributedTransaction, decider: CommitParticipant): void {
  if (decider.server.isClosed || decider.server.txStatus !== TxStatus.Failed)
    tx.moveBranch(tx.branchOn(decider.shard), 'rolled_back');
}

/**
 * Phase 2 on `branches` at once (the failpoint `mid_commit_prepared` splits it after the first): each confirmed branch
 * is committed; a failure is noted for the background retry.
 */
export async function commitPreparedOn(
  runner: Runner,
  tx: DistributedTransaction,
  branches: readonly CommitParticipant[],
): Promise<void> {
  await Promise.all(
    splitAround('mid_commit_prepared', branches, branches[0], (p) =>
      runner.run(p, `COMMIT PREPARED '${tx.branchOn(p.shard).gid}'`),
    ).map((run, i) =>
      run.then((o) => {
        const branch = tx.branchOn(branches[i].shard);
        if (endsPreparedBranch(o)) tx.moveBranch(branch, 'committed');
        else tx.lastError = `shard ${branches[i].shard}: ${outcomeFailure(o)}`;
      }),
    ),
  );
}

/**
 * Run `send` for every participant at once — or, while the failpoint `name` is set, for `first` alone, then the
 * failpoint, then the rest (a crash "with some done and others not"). Outcomes in the order of `all`.
 */
export function splitAround(
  name: FailpointName,
  all: readonly CommitParticipant[],
  first: CommitParticipant | undefined,
  send: (p: CommitParticipant) => Promise<QueryOutcome>,
): Promise<QueryOutcome>[] {
  if (first === undefined || !isFailpointSet(name)) return all.map(send);
  const firstRun = send(first);
  const gate = firstRun.then(() => failpoint(name));
  return all.map((p) => (p === first ? firstRun : gate.then(() => send(p))));
}

/** Note each branch's phase-1 outcome; the client's error if any failed, else null. `decider`: its unprepared branch. */
export function phaseOneError(
  tx: DistributedTransaction,
  writers: readonly CommitParticipant[],
  decider: CommitParticipant | null,
  outcomes: readonly QueryOutcome[],
  timedOut: readonly boolean[],
  prepareTimeoutMs: number,
): Buffer | null {
  let error: Buffer | null = null;
  writers.forEach((p, i) => {
    const o = outcomes[i];
    if (p !== decider) {
      const branch = tx.branchOn(p.shard);
      if (o.kind === 'ok') tx.moveBranch(branch, 'prepared');
      else if (o.kind === 'error') tx.moveBranch(branch, 'failed'); // PostgreSQL rolled that branch back itself
      // lost: unknown whether it was prepared; stays 'open' so the abort path makes sure with ROLLBACK PREPARED
    }
    if (o.kind !== 'ok' && timedOut[i] && error === null) {
      error = new PgError(
        'ERROR',
        SqlState.QueryCanceled,
        `PREPARE TRANSACTION on shard ${p.shard} did not finish within two_phase_commit_prepare_timeout ` +
          `(${prepareTimeoutMs} ms); the transaction was rolled back`,
        `shard ${p.shard}: ${outcomeFailure(o) ?? ''}`,
      ).toBuffer();
    }
    const during = p === decider ? 'writing the commit decision' : 'PREPARE TRANSACTION';
    error ??= errorFrame(o, p.shard, `during ${during}; the transaction was rolled back`);
  });
  return error;
}

/**
 * Nothing was decided (or the decision branch rolled back): ROLLBACK the decision branch if it is still open,
 * ROLLBACK PREPARED where prepared; what cannot be reached is rolled back in the background.
 */
async function abort(
  tx: DistributedTransaction,
  runner: Runner,
  decider: CommitParticipant,
  others: readonly CommitParticipant[],
  error: Buffer | null,
  readersDone: Promise<void>,
  manager: TransactionManager,
): Promise<CommitRun> {
  const decision = tx.branchOn(decider.shard);
  const rollbacks: Promise<unknown>[] = [rollBackPrepared(runner, others, tx)];
  if (decision.state === 'open') {
    // A lost connection aborted that branch already; else end it (the connection goes back to its pool idle).
    rollbacks.push(runner.run(decider, 'ROLLBACK'));
    tx.moveBranch(decision, 'rolled_back');
  }
  await Promise.all(rollbacks);
  await readersDone;
  manager.settle(tx);
  return { error, lost: runner.lost };
}

/** The reply to the decision COMMIT was lost: learn the outcome from the row (a few tries), never guess it. */
export async function resolveLostDecision(
  manager: TransactionManager,
  tx: DistributedTransaction,
  shard: number,
): Promise<Resolution> {
  let last: Resolution = { outcome: 'unknown', reason: 'not tried' };
  for (let i = 0; i < RESOLVE_ATTEMPTS; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, RESOLVE_PAUSE_MS));
    last = await manager.resolve(tx, shard);
    if (last.outcome !== 'unknown') return last;
  }
  return last;
}

export function unknownOutcome(shard: number, reason: string): Buffer {
  return new PgError(
    'ERROR',
    SqlState.StatementCompletionUnknown,
    `the outcome of this COMMIT is unknown: the connection to shard ${shard}, which holds the commit decision, was ` +
      'lost during COMMIT and the shard cannot be reached',
    `shard ${shard}: ${reason}`,
    'The transaction stays prepared on the other shards; once the shard is back, recovery (of any shardgate) ' +
      'commits or rolls it back everywhere. Check the data before retrying.',
  ).toBuffer();
}

export function refusedError(err: CommitRefusedError): Buffer {
  return new PgError(
    'ERROR',
    SqlState.ObjectNotInPrerequisiteState,
    'two-phase commit is unavailable on this proxy right now; the transaction was rolled back',
    err.message,
    'Another shardgate holds this instance_id on a shard (see the proxy log); give each proxy its own instance_id.',
  ).toBuffer();
}
