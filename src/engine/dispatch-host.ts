// The contract between the engine's dispatcher (ShardedDispatch) and its phase and run modules (routing, holding
// servers, one shard, scripts, the proxy's own commit, split COPY, INSERT … SELECT, lookups before routing, cursors,
// the end of a request): the request being routed at the front of the batch, its state, the shard servers and the
// transaction block, and the steps every kind shares (take the request, fail it, hold servers, start a fan-out, end
// the request), each implemented by its phase module (named below) and held by the dispatch. ShardedDispatch
// implements it; nothing here imports the dispatch or a phase, so each module depends only on this and on the modules
// below it. Also the one step they share that needs no dispatch state of its own: putting the client's request back
// in place of one the proxy ran for it.
import type { Logger } from 'pino';
import type { ReadIntent } from '../backend/replica-set.js';
import type { ReplySink } from '../backend/server-connection.js';
import type { PgError } from '../errors/pg-error.js';
import type { MergeSpec } from '../execute/merge-spec.js';
import type { TransactionBlock, RequestEffects } from '../txn/transaction-block.js';
import type { BatchTarget } from '../frontend/batch-target.js';
import type { Fanout, FanoutOwner } from './fanout.js';
import type { FencedRead } from './fenced-read.js';
import type { RequestBatch } from '../frontend/request-batch.js';
import type { RequestState } from './request-state.js';
import type { SessionRouter } from '../frontend/session-router.js';
import type { ShardServers } from './shard-servers.js';
import type { ShardedSession } from '../frontend/sharded-session.js';

/** A request's frames, as taken off the batch. */
export interface TakenRequest {
  types: number[];
  frames: Buffer[];
  readyCount: number;
}

/** What the run modules use of the route-request phase (route-request.ts `RequestRoute`). */
export interface RequestRouting {
  /** Send the routed request, its servers held, to the phase for its kind. */
  send(routed: BatchTarget): void;
}

/** What the run modules use of the hold-servers phase (hold-servers.ts `ServerHold`). */
export interface ServerHolding {
  /** Hold a server on each of `shards` (joining the transaction block unless `isJoining` is false), then `then()`. */
  acquire(
    shards: readonly number[],
    effects: RequestEffects,
    then: () => void,
    isJoining?: boolean,
    intent?: ReadIntent,
  ): void;
}

/** What the run modules use of the end-request phase (end-request.ts `RequestEnd`). */
export interface RequestEnding {
  /** The session's transaction status after a request, told to the session and returned. */
  refreshStatus(sawError?: boolean): number;
  /** A request finished: give servers back when the session allows it and run the next queued request. */
  requestDone(): void;
  /** A request that cannot run: its error (and ReadyForQuery, unless it is a script statement). */
  failRequest(err: PgError): void;
}

/** What a run module uses of the dispatch. The dispatch is also the ReplySink of its servers between requests. */
export interface DispatchHost extends ReplySink, FanoutOwner {
  readonly session: ShardedSession;
  readonly router: SessionRouter;
  readonly servers: ShardServers;
  readonly block: TransactionBlock;
  readonly batch: RequestBatch;
  readonly log: Logger;
  /** What the request in flight is doing on the proxy's side (request-state.ts). */
  readonly request: RequestState;
  /** Frames of the request being routed, at the front of the batch. */
  requestLength: number;
  /** The fan-out's section in the visibility fence (atomic_visibility), until its snapshots exist. */
  read: FencedRead | null;
  /** What was just learnt for the request being routed again (null: nothing; see route-lookups.ts). */
  learnedFor: string | null;
  /** The shard holding a single-shard request's open segment (sent without Sync), else null (run-single.ts). */
  openSegmentShard: number | null;
  /** Take the next request once the one before it is over: route it and run it (the dispatcher's loop). */
  dispatch(): void;
  /** The request being routed, taken off the batch (later pipelined requests stay queued). */
  takeRequest(): TakenRequest;
  /** The route-request phase (route-request.ts). */
  readonly route: RequestRouting;
  /** The hold-servers phase (hold-servers.ts). */
  readonly hold: ServerHolding;
  /** The end-request phase (end-request.ts). */
  readonly end: RequestEnding;
  /** The fan-out of the request being sent (its replies merged; `owner`: where the merged reply goes). */
  startFanout(
    serverCount: number,
    spec: MergeSpec,
    hasInjectedDescribe: boolean,
    owner?: FanoutOwner,
  ): Fanout;
  /** Give every shard server back to its pool (reset as the session and transaction state require). */
  releaseShardServers(): void;
}

/** The client's own request back at the head of the batch, in place of the one the proxy ran for it. */
export function putBackClientRequest(
  host: DispatchHost,
  run: { clientTypes: readonly number[]; clientFrames: readonly Buffer[] },
): void {
  host.batch.unshift(run.clientTypes, run.clientFrames);
  host.requestLength = run.clientTypes.length;
}
