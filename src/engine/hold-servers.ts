// A sharded request's servers held, the engine's hold-servers phase: one server checked out per shard (an idle one
// taken at once, or the waits in the shards' pools, shard-servers.ts), its settings synced (session mode), and the
// request's participants recorded in the transaction block — a shard the open block has not reached yet joins it
// first, its opening statements sent ahead of the request with their replies swallowed. A checkout that fails fails
// the request; a request the distributed deadlock check chose as its victim (40P01) has its transaction rolled back
// first. Made once per session (the run modules reach it as DispatchHost's `hold`); the common path (one shard, an idle
// server) makes no closure and allocates nothing.
import type { ReadIntent } from '../backend/replica-set.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { query } from '../protocol/messages.js';
import type { RequestEffects } from '../txn/transaction-block.js';
import type { DispatchHost, ServerHolding } from './dispatch-host.js';

/** What `acquire` was asked for, kept by the waiting path. */
interface CheckoutAsk {
  readonly shards: readonly number[];
  readonly effects: RequestEffects;
  readonly then: () => void;
  readonly isJoining: boolean;
  readonly intent: ReadIntent;
}

export class ServerHold implements ServerHolding {
  private readonly host: DispatchHost;

  constructor(host: DispatchHost) {
    this.host = host;
  }

  /**
   * Hold a server on each of `shards`, then `then()`; a checkout failure fails the request. Every request to shards
   * passes here, and here only are its participants recorded (TransactionBlock.participate): inside a transaction
   * block a shard it has not reached yet joins it first — the block's opening statements run there (swallowed) before
   * the request, so the shard is in the transaction with the client's isolation level, SET LOCALs and savepoints — and
   * the request's `effects` make the shards writers for the commit. `isJoining` false: a lookup of the proxy's own, no
   * participant.
   */
  acquire(
    shards: readonly number[],
    effects: RequestEffects,
    then: () => void,
    isJoining = true,
    intent: ReadIntent = 'write',
  ): void {
    const host = this.host;
    if (isJoining && !host.block.canReach(shards)) {
      return host.end.failRequest(
        PgError.featureNotSupported(
          'this transaction has too many savepoints and SET LOCALs to bring another shard into it',
          'Release savepoints that are no longer needed, or reach every shard early in the transaction.',
        ),
      );
    }
    if (shards.length === 1 && host.servers.tryAcquireOne(shards[0], host, intent))
      return this.onAcquired(shards, effects, then, isJoining);
    acquireWaiting(host, this, { shards, effects, then, isJoining, intent });
  }

  /** The request's servers are held: settings synced (session mode), new participants joined, then `then()`. */
  onAcquired(shards: readonly number[], effects: RequestEffects, then: () => void, isJoining: boolean): void {
    const host = this.host;
    if (!host.session.isTransactionMode) {
      for (const shard of shards) host.servers.syncSettings(host.servers.at(shard));
    }
    if (isJoining) host.block.participate(shards, effects, this.sendSwallowedOn);
    then();
  }

  /** A statement the transaction block runs first on a shard joining it, its reply swallowed. */
  private readonly sendSwallowedOn = (shard: number, sql: string): void => {
    const server = this.host.servers.at(shard);
    server.scanner.swallowNextUntilReady();
    server.sendAhead(query(sql), 1); // in one write with the request that follows it
  };
}

/**
 * Check out `ask.shards`' servers, waiting where needed (apart from `acquire` so that its common path makes no
 * closure), then `hold.onAcquired`; a failure fails the request.
 */
function acquireWaiting(host: DispatchHost, hold: ServerHold, ask: CheckoutAsk): void {
  host.servers.acquire(
    ask.shards,
    host,
    () => hold.onAcquired(ask.shards, ask.effects, ask.then, ask.isJoining),
    (err) =>
      err.code === SqlState.DeadlockDetected && host.request.script?.isImplicit !== true
        ? failAsDeadlockVictim(host, err)
        : host.end.failRequest(err),
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
    host.end.refreshStatus(true);
    host.end.failRequest(err);
  };
  const held = host.servers.heldShards();
  if (held.length === 0) return end();
  host.servers.runOwn(held, 'ROLLBACK', host, () => end());
}
