// A client session's status, one object the session owns and its request paths (the sharded dispatch and its run
// modules, the one-server path) hold: where the session is in its life (startup, auth, ready, closed), the transaction
// status the client was last told (ReadyForQuery), and whether the proxy is dropping the client's frames up to its next
// Sync after an error it raised mid-pipeline, as PostgreSQL does. Plain state with its rules, no I/O: each change of
// the transaction status is also noted for the distributed deadlock check (txn/watched-session.ts) when the session is
// watched, and a request that cannot run gets its replies here (the error, ReadyForQuery at each Sync) and moves the
// session to skip-to-Sync when the request had none. The session's ending (client-ending.ts) writes what this builds.
import { TxStatus } from '../protocol/codes.js';
import { readyForQuery } from '../protocol/messages.js';
import type { PgError } from '../errors/pg-error.js';
import type { WatchedSession } from '../txn/watched-session.js';
import type { RequestBatch } from './request-batch.js';

/** Where a client session is in its life: startup packet, authentication, logged in, gone. */
export type SessionState = 'startup' | 'auth' | 'ready' | 'closed';

export class SessionStatus {
  state: SessionState = 'startup';
  /** The status of the client's last ReadyForQuery (changed through `tell`). */
  private status: number = TxStatus.Idle;
  /** After an error the proxy raised mid-pipeline: the client's frames are dropped until its Sync. */
  isSkippingToSync = false;
  /** Sharded databases: the distributed deadlock check's record of this session, told each status change (null: none). */
  watched: WatchedSession | null = null;

  /** The status the client was last told. */
  get txStatus(): number {
    return this.status;
  }

  /** The client is told `status` (ReadyForQuery); the deadlock check notes a transaction starting or ending. */
  tell(status: number): void {
    this.status = status;
    this.watched?.txStatusChanged(status);
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /**
   * The replies to the first `count` frames of `batch` (all when not given), taken off it, when they cannot run: `err`
   * once per segment and ReadyForQuery at each Sync/Query, as PostgreSQL answers after an error. A segment left
   * without its Sync moves the session to skip-to-Sync (else any earlier skip is over).
   */
  failReplies(batch: RequestBatch, err: PgError, count?: number): Buffer {
    const { replies, isSkippingToSync } = batch.failReplies(err, this.status, count);
    this.isSkippingToSync = isSkippingToSync;
    return replies;
  }

  /**
   * A client frame arrived while skipping to Sync: for its Sync (`isSync`), the ReadyForQuery that ends the skip;
   * null for any other frame, which is dropped.
   */
  skipped(isSync: boolean): Buffer | null {
    if (!isSync) return null;
    this.isSkippingToSync = false;
    return readyForQuery(this.status);
  }
}
