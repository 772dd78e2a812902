// The contract between a ClientSession and its ShardedDispatch: what the dispatcher (and the shard servers it holds)
// may use of the session — the queued request frames, the client's output and the request sender (objects it holds
// and calls directly: client-output.ts, request-send.ts), the transaction status the client was told, and the
// session's own fail / close paths. The session builds one at login (ClientSession.shardedSession).
import type { Logger } from 'pino';
import type { GeneralConfig } from '../config/types.js';
import type { DatabasePools } from '../backend/pool-manager.js';
import type { Pool } from '../backend/pool.js';
import type { ReadIntent } from '../backend/replica-set.js';
import type { ReadYourWrites } from './read-your-writes.js';
import type { PgError } from '../errors/pg-error.js';
import type { TransactionManager } from '../txn/manager.js';
import type { VisibilityFence } from '../txn/visibility-fence.js';
import type { PhaseTwoCount } from '../txn/phase-two-gate.js';
import type { ClientOutput } from './client-output.js';
import type { RequestSend } from './request-send.js';
import type { ClientStatements } from './prepared-statements.js';
import type { RequestBatch } from './request-batch.js';
import type { SessionParams } from './session-params.js';

/** Where a client session is in its life: startup packet, authentication, logged in, gone. */
export type SessionState = 'startup' | 'auth' | 'ready' | 'closed';

/** What the dispatcher uses of its ClientSession (built once, at login). */
export interface ShardedSession {
  readonly user: string;
  readonly database: string;
  readonly log: Logger;
  readonly pools: DatabasePools;
  readonly isTransactionMode: boolean;
  /** The client's frames not yet sent: the dispatcher takes one request at a time off its front. */
  readonly batch: RequestBatch;
  readonly params: SessionParams;
  /** Transaction mode: the client's prepared statement names (null in session mode). */
  readonly statements: ClientStatements | null;
  readonly general: () => GeneralConfig;
  readonly txn: () => TransactionManager | null;
  /** atomic_visibility: this database's fence (null: off). */
  readonly fence: () => VisibilityFence | null;
  /** atomic_visibility: branches answered at their decision and not committed yet, proxy-wide (null: off). */
  readonly phaseTwoCount: PhaseTwoCount | null;
  state(): SessionState;
  /** The status the client was last told (ReadyForQuery). */
  txStatus(): number;
  setTxStatus(status: number): void;
  /**
   * The client's output, held directly: replies written, drain backpressure, input paused while a request waits for
   * servers or a shard lags in COPY (client-output.ts).
   */
  readonly output: ClientOutput;
  /**
   * Sending a request's frames to a server, held directly (request-send.ts): `send` rewrites statement names, writes
   * and starts query_timeout; `startQueryTimer` for a request rebuilt for its shards and sent as built; `hasOpenSegment`
   * (extended-protocol messages sent without their Sync yet); `requestEnded` when a request is over.
   */
  readonly send: RequestSend;
  /** The request waits for a server in some pool (told to the distributed deadlock check), and no longer does. */
  checkoutWaitStarted(): void;
  checkoutWaitEnded(): void;
  /** A commit across shards starts: its steps are waits the distributed deadlock check follows (arms its timer). */
  commitStarted(): void;
  /** Answer the first `count` frames of the batch with `err` (one error per Sync/Query). */
  failBatch(err: PgError, count: number): void;
  /** An error was sent for a request without Sync: drop the client's frames up to its Sync (then ReadyForQuery). */
  skipToSync(): void;
  protocolViolation(reason: string): void;
  /**
   * Read/write split: what the request `types`/`frames` needs of a shard (read-intent.ts, as on one shard); a
   * `SET pgdog.role` in it becomes the session's override.
   */
  readIntent(types: readonly number[], frames: readonly Buffer[]): ReadIntent;
  /** Read-your-writes: the WAL positions the session's reads must see, per shard. */
  readonly writes: ReadYourWrites;
  /** A replica was banned while checking out for this session (logged). */
  onReplicaBanned(pool: Pool, reason: string): void;
  fatal(err: PgError): void;
  onInternalError(err: unknown): void;
}
