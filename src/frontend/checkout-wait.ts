// A sharded request's checkout when its servers are not at hand — the slow path of ShardedDispatch.acquireShards, kept
// apart so that the common one (an idle server taken at once) makes no closure: the waits in the shards' pools
// (shard-servers.ts), then the held servers joined as the dispatch says, or the checkout's failure — the error, or,
// for a request the distributed deadlock check chose as its victim (40P01), its transaction rolled back first.
import type { ReadIntent } from '../backend/replica-set.js';
import type { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import type { RequestEffects } from '../txn/transaction-block.js';
import type { DispatchHost } from './dispatch-host.js';

/** What acquireShards was asked for. */
export interface CheckoutAsk {
  readonly shards: readonly number[];
  readonly effects: RequestEffects;
  readonly then: () => void;
  readonly isJoining: boolean;
  readonly intent: ReadIntent;
}

/** Check out `ask.shards`' servers (waiting where needed), then `onAcquired`; a failure fails the request. */
export function acquireWaiting(
  host: DispatchHost,
  script: { readonly isImplicit: boolean },
  ask: CheckoutAsk,
  onAcquired: (
    shards: readonly number[],
    effects: RequestEffects,
    then: () => void,
    isJoining: boolean,
  ) => void,
): void {
  host.servers.acquire(
    ask.shards,
    host,
    () => onAcquired(ask.shards, ask.effects, ask.then, ask.isJoining),
    (err) =>
      err.code === SqlState.DeadlockDetected && !script.isImplicit
        ? failAsDeadlockVictim(host, err)
        : host.failRequest(err),
    ask.intent,
  );
}

/**
 * The request's checkout was failed by the distributed deadlock check (the only source of a 40P01 checkout error):
 * its transaction is rolled back on every shard it reached and, in transaction mode, the servers go back to their
 * pools, where the knot's other transactions wait for them; the client gets the 40P01, and its block stays failed
 * (25P02) until its ROLLBACK or COMMIT, which the proxy answers ROLLBACK. A transaction of the proxy's own (an implicit
 * script) ends as on any failed statement instead: rolled back everywhere by the script.
 */
function failAsDeadlockVictim(host: DispatchHost, err: PgError): void {
  const end = (): void => {
    if (host.session.isTransactionMode) host.servers.release();
    host.block.rolledBackOnShards();
    host.refreshStatus(true);
    host.failRequest(err);
  };
  const held = host.servers.heldShards();
  if (held.length === 0) return end();
  host.servers.runOwn(held, 'ROLLBACK', host, () => end());
}
