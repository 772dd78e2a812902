// Read-your-writes through this proxy with two_phase_commit_reply = "at_decision": a request to a shard where a
// transaction answered COMMIT at its decision is not committed yet (txn/phase-two-gate.ts) waits before it is sent,
// at most atomic_visibility_timeout, then gets 40001 naming the shard and the transaction. Every request but
// transaction control and settings waits: single-shard reads and statements inside transaction blocks too.
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import type { PhaseTwoBlocker, PhaseTwoGate } from '../txn/phase-two-gate.js';

/** `onClear` once none of `shards` has an unfinished phase 2 (at once if none has), else `onTimeout(40001)`. */
export function waitForPhaseTwo(
  gate: PhaseTwoGate,
  shards: readonly number[],
  timeoutMs: number,
  onClear: () => void,
  onTimeout: (err: PgError) => void,
): void {
  gate.wait(shards, timeoutMs, onClear, (blocker) => onTimeout(phaseTwoTimeoutError(blocker, timeoutMs)));
}

/** The 40001 of a request whose shard still had an unfinished phase 2 at the bound. */
export function phaseTwoTimeoutError(blocker: PhaseTwoBlocker, timeoutMs: number): PgError {
  return new PgError(
    'ERROR',
    SqlState.SerializationFailure,
    `shard ${blocker.shard} has a committed cross-shard transaction whose phase 2 did not finish there within ` +
      `atomic_visibility_timeout (${timeoutMs} ms)`,
    `shard ${blocker.shard}: COMMIT PREPARED of transaction ${blocker.txids.join(', ')} is not finished ` +
      '(two_phase_commit_reply = "at_decision" answered its COMMIT at the decision)',
    'Retry the statement. SHOW TRANSACTIONS lists transactions whose commit is not finished on every shard.',
  );
}
