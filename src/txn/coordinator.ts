// The commit of one client transaction that spans several shards, run on the session's own server connections:
// plain COMMIT (readers first, then the writer) when at most one shard wrote or two-phase commit is off, else the
// two-phase commit (the decision is a row committed on one participant shard) in one of its two layouts.
import type { Logger } from 'pino';
import {
  Runner,
  errorFrame,
  logReaderProblems,
  type CommitParticipant,
  type CommitRun,
  type Owner,
} from './commit-steps.js';
import type { VisibilityFence } from './visibility-fence.js';
import type { TransactionManager } from './manager.js';
import { commitWithDecisionCommit } from './decision-commit.js';
import { commitWithPreparedDecision } from './decision-commit-prepared.js';

export type { CommitParticipant, CommitRun } from './commit-steps.js';

/**
 * Two-phase commit over the writers (readers get plain COMMIT meanwhile), in one of two layouts. With
 * atomic_visibility and the reply after COMMIT PREPARED: the decision shard's branch prepared too and the decision an
 * autocommit insert (decision-commit-prepared.ts), so the fence covers one round trip. Else — also with
 * two_phase_commit_reply = "at_decision", where that layout measured slower (the next request to the decision shard
 * waits for its background COMMIT PREPARED; docs/two-phase-commit.md) — the decision shard's plain COMMIT decides
 * (decision-commit.ts). Arguments as commitWithDecisionCommit.
 */
export function commitTwoPhase(
  manager: TransactionManager,
  database: string,
  user: string,
  participants: readonly CommitParticipant[],
  owner: Owner,
  logger: Logger,
  prepareTimeoutMs = 0,
  isReplyAtDecision = false,
): Promise<CommitRun> {
  const commit =
    manager.isDecisionPrepared && !isReplyAtDecision ? commitWithPreparedDecision : commitWithDecisionCommit;
  return commit(manager, database, user, participants, owner, logger, prepareTimeoutMs, isReplyAtDecision);
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
