// What the distributed deadlock check knows of one sharded client session: since when its request has been in
// flight or waiting for a pool's server, counters of its transactions and requests (so a wait seen twice is known to
// be the same wait), when its transaction started (the youngest in a knot is cancelled), the last request's frames
// (for the log line), the servers it holds per shard and the checkouts it has queued, and the steps of its commit in
// flight on those servers (ServerConnection.ownStatement, set by commit-steps.ts' Runner: a commit waits too). The
// session keeps it current with a few field writes per request; the check reads it.
import { performance } from 'node:perf_hooks';
import type { Pool } from '../backend/pool.js';
import type { OwnStatement } from '../backend/own-statement.js';
import type { ServerConnection } from '../backend/server-connection.js';
import type { PgError } from '../errors/pg-error.js';
import { Frontend, TxStatus } from '../protocol/codes.js';

/** A checkout the session has queued: a server of `shard` from `pool`. */
export interface QueuedCheckout {
  readonly shard: number;
  readonly pool: Pool;
}

/** How a watched session is told apart and reached (given by the session when it is registered). */
export interface WatchedSessionSource {
  readonly id: number;
  readonly user: string;
  readonly database: string;
  /** Transaction mode: its servers go back to their pools when its transaction ends (session mode: when it leaves). */
  readonly isTransactionMode: boolean;
  /** The server held per shard (null: none). */
  servers(): readonly (ServerConnection | null)[];
  /** The checkouts its request has queued in pools (a primary's, or the member's a replica set picked). */
  queuedCheckouts(): readonly QueuedCheckout[];
  /** Servers its request got already while other checkouts of it are queued (held: given back if the request fails). */
  serversInCheckout(): readonly ServerConnection[];
  /**
   * It is a deadlock's victim while waiting for a checkout: fail the request with `err`, roll its transaction back on
   * every shard and give its servers back. False when no checkout of it was queued any more.
   */
  failCheckout(err: PgError): boolean;
}

/** Longest statement text kept for the log line. */
const STATEMENT_LOG_CHARS = 200;

export class WatchedSession {
  readonly id: number;
  readonly user: string;
  readonly database: string;
  readonly isTransactionMode: boolean;
  readonly servers: () => readonly (ServerConnection | null)[];
  readonly queuedCheckouts: () => readonly QueuedCheckout[];
  readonly serversInCheckout: () => readonly ServerConnection[];
  readonly failCheckout: (err: PgError) => boolean;
  /** performance.now() when the request in flight was sent; 0: none in flight. */
  inFlightSinceMs = 0;
  /** performance.now() when its request started waiting for a pool's server; 0: not waiting. */
  checkoutSinceMs = 0;
  /** Requests sent and checkout waits begun so far (one per request, however many shards it went to). */
  statementSeq = 0;
  /** Transactions begun so far, as the client was told (ReadyForQuery leaving idle). */
  transactionSeq = 0;
  /** performance.now() when the client's transaction began (its status left idle); 0 outside one. */
  transactionStartMs = 0;
  private lastTypes: readonly number[] = [];
  private lastFrames: readonly Buffer[] = [];
  /** Arms the check's timer (the watch's; called when a request starts). */
  private readonly onRequest: (session: WatchedSession) => void;

  constructor(source: WatchedSessionSource, onRequest: (session: WatchedSession) => void) {
    this.id = source.id;
    this.user = source.user;
    this.database = source.database;
    this.isTransactionMode = source.isTransactionMode;
    this.servers = () => source.servers();
    this.queuedCheckouts = () => source.queuedCheckouts();
    this.serversInCheckout = () => source.serversInCheckout();
    this.failCheckout = (err) => source.failCheckout(err);
    this.onRequest = onRequest;
  }

  /** Its request waits for a server in some pool: a new wait (counted), which arms the check's timer too. */
  checkoutStarted(): void {
    this.checkoutSinceMs = performance.now();
    this.statementSeq++;
    this.onRequest(this);
  }

  /** The checkout wait is over (served or failed). */
  checkoutEnded(): void {
    this.checkoutSinceMs = 0;
  }

  /** A request went to servers (called for each part of it sent: only the first counts). */
  requestStarted(): void {
    if (this.inFlightSinceMs !== 0) return;
    this.inFlightSinceMs = performance.now();
    this.statementSeq++;
    this.onRequest(this);
  }

  /**
   * Its commit across shards starts: the steps it runs (commit-steps.ts) are waits too, and must find the check's
   * timer running even when no request is in flight (not a request: counted per step instead).
   */
  commitStarted(): void {
    this.onRequest(this);
  }

  /** The request in flight finished (every shard answered). */
  requestEnded(): void {
    this.inFlightSinceMs = 0;
  }

  /** The frames sent (kept by reference: only read for a deadlock's log line). */
  noteFrames(types: readonly number[], frames: readonly Buffer[]): void {
    this.lastTypes = types;
    this.lastFrames = frames;
  }

  /** The transaction status the client is told. */
  txStatusChanged(status: number): void {
    if (status === TxStatus.Idle) {
      this.transactionStartMs = 0;
    } else if (this.transactionStartMs === 0) {
      this.transactionStartMs = performance.now();
      this.transactionSeq++;
    }
  }

  /**
   * When its transaction started: the client's block, else (a statement in a transaction of the proxy's own) the
   * request, or its checkout wait, or its commit.
   */
  get startedAtMs(): number {
    if (this.transactionStartMs !== 0) return this.transactionStartMs;
    if (this.inFlightSinceMs !== 0) return this.inFlightSinceMs;
    return this.checkoutSinceMs !== 0 ? this.checkoutSinceMs : this.commitStepSinceMs();
  }

  /** The steps of its commit in flight on its servers (commit-steps.ts), by shard. */
  commitSteps(): Map<number, OwnStatement> {
    const steps = new Map<number, OwnStatement>();
    this.servers().forEach((server, shard) => {
      if (server?.ownStatement != null) steps.set(shard, server.ownStatement);
    });
    return steps;
  }

  /**
   * The branches its commit prepared (GID → shard), while that commit has a step in flight: their locks, held by
   * prepared transactions, are its transaction's. A branch of a commit that has returned is left out (it waits for
   * nothing, and the session may be in another transaction).
   */
  preparedBranches(): Map<string, number> {
    const branches = new Map<string, number>();
    const running = new Set([...this.commitSteps().values()].map((step) => step.commitId));
    if (running.size === 0) return branches;
    this.servers().forEach((server, shard) => {
      const branch = server?.preparedBranch;
      if (branch != null && running.has(branch.commitId)) branches.set(branch.gid, shard);
    });
    return branches;
  }

  /** When the oldest step of its commit in flight was sent; 0: none in flight. */
  commitStepSinceMs(): number {
    let oldest = 0;
    for (const step of this.commitSteps().values())
      if (oldest === 0 || step.sinceMs < oldest) oldest = step.sinceMs;
    return oldest;
  }

  /** The oldest commit step in flight (a change means the wait seen is not the one seen before); 0: none. */
  commitStepSeq(): number {
    let first = 0;
    for (const step of this.commitSteps().values()) if (first === 0 || step.seq < first) first = step.seq;
    return first;
  }

  /** Since when it waits on servers: its request in flight, else the oldest step of its commit; 0: neither. */
  waitingSinceMs(): number {
    return this.inFlightSinceMs !== 0 ? this.inFlightSinceMs : this.commitStepSinceMs();
  }

  /**
   * Whether it may be a deadlock's victim: not while its commit is past the point where cancelling a step rolls it
   * back everywhere (steps in flight, none of them cancellable: COMMIT PREPARED, a plain commit's 2+ writer COMMITs).
   */
  canBeVictim(): boolean {
    const steps = [...this.commitSteps().values()];
    return steps.length === 0 || steps.some((step) => step.isCancellable());
  }

  /** Shards it holds a server on (those its request in checkout got already included). */
  heldShardCount(): number {
    let n = this.checkoutSinceMs !== 0 ? this.serversInCheckout().length : 0;
    for (const s of this.servers()) if (s !== null) n++;
    return n;
  }

  /** The text of the last statement sent (Query or Parse), cut for a log line; '' when it named a prepared one. */
  statementText(): string {
    for (let i = this.lastTypes.length - 1; i >= 0; i--) {
      const type = this.lastTypes[i];
      if (type !== Frontend.Query && type !== Frontend.Parse) continue;
      const frame = this.lastFrames[i];
      let from = 5;
      if (type === Frontend.Parse) from = frame.indexOf(0, 5) + 1; // after the statement name
      const end = frame.indexOf(0, from);
      const text = frame.toString('utf8', from, end < 0 ? frame.length : end);
      return text.length > STATEMENT_LOG_CHARS ? `${text.slice(0, STATEMENT_LOG_CHARS)}…` : text;
    }
    return '';
  }
}
