// The contract between a ClientSession and its ShardedDispatch: what the dispatcher (and the shard servers and run
// modules it holds) may use of the session. Plain data and objects the session owns, which the dispatcher holds and
// calls directly — no callbacks into the session:
// - `batch`: the client's frames not yet sent (request-batch.ts);
// - `output`: what goes to the client and holding its input back (client-output.ts);
// - `send`: sending a request's frames to a server, query_timeout (request-send.ts);
// - `status`: the session's life state, the transaction status the client was told, skip-to-Sync (session-status.ts);
// - `ending`: a request that cannot run answered with its error, or the connection ended with a FATAL (client-ending.ts);
// - `reads`: the read/write split, read intent, `SET pgdog.role`, read-your-writes (read-choice.ts);
// - `watched`: what the distributed deadlock check notes of the session's waits (txn/watched-session.ts);
// - `proxy`: the proxy-wide config and services, current when read (the session's deps, held as they are).
// The session builds one at login (ClientSession.shardedSession).
import type { Logger } from 'pino';
import type { GeneralConfig } from '../config/types.js';
import type { DatabasePools } from '../backend/pool-manager.js';
import type { TransactionManager } from '../txn/manager.js';
import type { VisibilityFence, VisibilityFences } from '../txn/visibility-fence.js';
import type { PhaseTwoCount } from '../txn/phase-two-gate.js';
import type { WatchedSession } from '../txn/watched-session.js';
import type { ClientEnding } from './client-ending.js';
import type { ClientOutput } from './client-output.js';
import type { ReadChoice } from './read-choice.js';
import type { RequestSend } from './request-send.js';
import type { ClientStatements } from './prepared-statements.js';
import type { RequestBatch } from './request-batch.js';
import type { SessionParams } from './session-params.js';
import type { SessionStatus } from './session-status.js';

export type { SessionState } from './session-status.js';

/** The proxy-wide parts a sharded session reads, each current when read (a SIGHUP reload replaces the config). */
export interface ProxyParts {
  readonly general: () => GeneralConfig;
  /** The transaction manager (null: two_phase_commit is off). */
  readonly txn: () => TransactionManager | null;
  /** atomic_visibility: the fences of sharded databases (null or absent: off). */
  readonly fences?: VisibilityFences | null;
}

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
  /** The proxy-wide config and services (the session's deps, held as they are). */
  readonly proxy: ProxyParts;
  /** atomic_visibility: branches answered at their decision and not committed yet, proxy-wide (null: off). */
  readonly phaseTwoCount: PhaseTwoCount | null;
  /**
   * The session's status, held directly (session-status.ts): `state` (closed once the client has gone), `txStatus`
   * (what the client was last told) changed through `tell`, `isSkippingToSync` set after an error sent for a request
   * without Sync (the session then drops the client's frames up to its Sync and answers it ReadyForQuery).
   */
  readonly status: SessionStatus;
  /**
   * Endings on the proxy's word, held directly (client-ending.ts): `failBatch` answers the first frames of the batch
   * with an error; `fatal`, `protocolViolation`, `internalError` end the connection.
   */
  readonly ending: ClientEnding;
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
  /**
   * Read/write split, held directly (read-choice.ts): `intentOf` what a request needs of a shard (a `SET pgdog.role`
   * in it becomes the session's override), `writes` the WAL positions its reads must see, `onReplicaBanned`.
   */
  readonly reads: ReadChoice;
  /**
   * The distributed deadlock check's record of this session (null: no watch), held directly: a checkout wait begins
   * and ends, a commit across shards starts (txn/watched-session.ts).
   */
  readonly watched: WatchedSession | null;
}

/** atomic_visibility: the fence of the session's database, as the proxy holds it now (null: off). */
export function fenceOf(
  session: Pick<ShardedSession, 'proxy' | 'database' | 'pools'>,
): VisibilityFence | null {
  return session.proxy.fences?.of(session.database, session.pools.shards.length) ?? null;
}
