// The proxy's own commit of a transaction on several shards (the "end transaction" phase of a sharded request): the
// client's COMMIT of a block that reached 2+ shards, and the end of a transaction the proxy opened itself (a script).
// Participants come from the transaction block only; two-phase or plain is decided here, run by txn/coordinator.ts.
import { Frontend } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { commitPlain, commitTwoPhase, type CommitParticipant, type CommitRun } from '../txn/coordinator.js';
import type { Participants } from '../txn/transaction-block.js';
import { commitReplies } from './local-replies.js';
import { isReadOnlyBlock } from '../frontend/read-intent.js';
import type { DispatchHost } from './dispatch-host.js';
import { fenceOf } from '../frontend/sharded-session.js';

/** After the commit answered the client: `sawError` — it failed. The dispatch moves on (next statement or request). */
export type AfterCommit = (sawError: boolean) => void;

/**
 * The client's COMMIT of a transaction on several shards: run by the proxy (coordinator), answered as PostgreSQL.
 * AND CHAIN: once committed, the next block opens with the same characteristics (each shard joins it lazily).
 * `isScriptStatement`: the COMMIT is a statement of a script (its ReadyForQuery is the script's).
 */
export function commitAcrossShards(
  host: DispatchHost,
  isChained: boolean,
  isScriptStatement: boolean,
  after: AfterCommit,
): void {
  const { types, frames } = host.takeRequest();
  for (let i = 0; i < types.length; i++)
    if (types[i] === Frontend.Parse) host.session.statements?.remember(frames[i]);
  const participants = host.block.participants();
  // A READ ONLY block wrote nothing (PostgreSQL refuses), and its shards may be replicas, which cannot PREPARE.
  const isReadOnly =
    participants.writers.size >= 2 &&
    isReadOnlyBlock(host.block.characteristics(), host.servers.isBlockDefaultReadOnly());
  runCommit(
    host,
    participants,
    participants.writers.size >= 2 && !isReadOnly,
    (error) => host.session.output.write(commitReplies(types, frames, error, !isScriptStatement, isChained)),
    after,
    isChained,
  );
}

/**
 * Commit the transaction the block holds (its participants, from TransactionBlock only): two-phase over the writers
 * when asked for and the transaction manager runs, else plain COMMIT (readers first). `reply` writes the client's
 * answer (error = the commit failed); `isChained`: COMMIT AND CHAIN, the next block opens once it committed.
 */
export function runCommit(
  host: DispatchHost,
  { shards, writers, preventsPrepare }: Participants,
  wantsTwoPhase: boolean,
  reply: (error: Buffer | null) => void,
  after: AfterCommit,
  isChained = false,
): void {
  const { session, log } = host;
  const participants: CommitParticipant[] = shards.map((shard) => ({
    shard,
    server: host.servers.at(shard),
    isWriter: writers.has(shard),
  }));
  const txn = session.proxy.txn();
  host.request.move({ kind: 'committing' });
  session.watched?.commitStarted();
  const isTwoPhase = wantsTwoPhase && txn !== null && preventsPrepare === null;
  if (wantsTwoPhase && txn !== null && preventsPrepare !== null) {
    // PostgreSQL would refuse PREPARE TRANSACTION on those shards: plain COMMIT is the only way to commit.
    log.warn(
      { shards: [...writers], reason: preventsPrepare },
      `a transaction that wrote on several shards is committed without two-phase commit because ${preventsPrepare}: its commit is not atomic`,
    );
  }
  const run: Promise<CommitRun> = isTwoPhase
    ? commitTwoPhase(
        txn,
        session.database,
        session.user,
        participants,
        host,
        log,
        session.proxy.general().twoPhaseCommitPrepareTimeoutMs,
        session.proxy.general().twoPhaseCommitReply === 'at_decision',
      )
    : commitPlain(participants, host, log, fenceOf(session));
  run.then(
    (result) => afterCommit(host, result, reply, isChained, after),
    (err: unknown) => {
      host.servers.endLoan('committing');
      log.error({ err: (err as Error).message }, 'commit across shards failed unexpectedly');
      session.ending.fatal(PgError.internal(`commit failed: ${(err as Error).message}`));
    },
  );
}

function afterCommit(
  host: DispatchHost,
  result: CommitRun,
  reply: (error: Buffer | null) => void,
  isChained: boolean,
  after: AfterCommit,
): void {
  for (const shard of result.lost) host.servers.byShard[shard] = null; // closed; its pool has dropped it
  // The commit's queries left each server with their own sink (a server lost between two steps is the commit's to
  // handle, not a reason to end the session): the session receives their replies again from here on.
  host.servers.endLoan('committing');
  if (host.session.status.state === 'closed') {
    host.releaseShardServers(); // the client left while its commit ran
    return;
  }
  reply(result.error);
  host.block.markEnding(result.error === null, isChained && result.error === null);
  after(result.error !== null);
}
