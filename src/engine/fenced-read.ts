// Fan-out readers in the visibility fence (atomic_visibility, issue 14): a request that only reads 2+ shards holds
// those shards shared in the database's fence only while its snapshots are being taken — from just before it is sent
// until each shard's reply shows its snapshot exists — never while it runs. How that shows (PostgreSQL's postgres.c /
// pquery.c; docs/two-phase-commit.md "Atomic visibility"):
// - one plain SELECT (PORTAL_ONE_SELECT) takes its snapshot at Bind: a simple Query is sent as Parse / Bind / Flush /
//   Describe / Execute / Sync (the same replies once the proxy takes out ParseComplete and BindComplete), an extended
//   request gets a Flush right after its Bind; BindComplete then arrives before the statement runs.
// - anything else takes it when it starts executing: its first result message (output is buffered by the server, so
//   this is later than the snapshot, never earlier).
// An ErrorResponse or ReadyForQuery from a shard also ends its part. Past atomic_visibility_timeout the request is
// answered with 40001 (retryable) naming what blocked it, and what was sent is cancelled.
import { Buffer } from 'node:buffer';
import type { ServerConnection } from '../backend/server-connection.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { Backend, Frontend } from '../protocol/codes.js';
import { FLUSH, SYNC } from '../protocol/messages.js';
import { MessageWriter } from '../protocol/writer.js';
import type { FenceBlocker, FenceHold, VisibilityFence } from '../txn/visibility-fence.js';
import { cancelRunning } from '../frontend/cancel-registry.js';
import type { RequestSend } from '../frontend/request-send.js';
import { fenceOf, type ShardedSession } from '../frontend/sharded-session.js';

/** Which reply of a shard proves its snapshot was taken. */
export const SnapshotSignal = {
  /** BindComplete (a plain SELECT's portal started). */
  Bind: 0,
  /** The first result of a simple Query (RowDescription included: a simple Query sends it from PortalRun). */
  QueryResult: 1,
  /** The first result of an Execute (a RowDescription there answers a Describe, sent before the statement runs). */
  ExecuteResult: 2,
} as const;
export type SnapshotSignal = (typeof SnapshotSignal)[keyof typeof SnapshotSignal];

/** A request as sent for a fenced read. */
export interface SnapshotRequest {
  readonly types: number[];
  readonly frames: Buffer[];
  readonly signal: SnapshotSignal;
  /** A simple Query sent as Parse/Bind/…/Sync: its ParseComplete and BindComplete are the proxy's, not the client's. */
  readonly isRewrittenQuery: boolean;
}

/**
 * The request to send so that its snapshot shows as early as possible: see the file header. `isPlainSelect`: the
 * request is one SELECT that changes nothing (the router's isPlainSelect). Null: nothing in it takes a snapshot (no
 * Query, no Bind: a Parse / Describe of a statement only).
 */
export function snapshotRequest(
  types: readonly number[],
  frames: readonly Buffer[],
  isPlainSelect: boolean,
): SnapshotRequest | null {
  if (types.length === 1 && types[0] === Frontend.Query) {
    if (!isPlainSelect)
      return {
        types: [...types],
        frames: [...frames],
        signal: SnapshotSignal.QueryResult,
        isRewrittenQuery: false,
      };
    const sql = frames[0].subarray(5, frames[0].indexOf(0, 5));
    return {
      types: [
        Frontend.Parse,
        Frontend.Bind,
        Frontend.Flush,
        Frontend.Describe,
        Frontend.Execute,
        Frontend.Sync,
      ],
      frames: [
        new MessageWriter(sql.length + 16).cstring('').bytes(sql).int8(0).int16(0).frame(Frontend.Parse),
        UNNAMED_BIND,
        FLUSH,
        DESCRIBE_UNNAMED_PORTAL,
        EXECUTE_UNNAMED_ALL,
        SYNC,
      ],
      signal: SnapshotSignal.Bind,
      isRewrittenQuery: true,
    };
  }
  const bind = types.indexOf(Frontend.Bind);
  if (bind < 0) return types.includes(Frontend.Query) ? queryResult(types, frames) : null;
  if (!isPlainSelect)
    return {
      types: [...types],
      frames: [...frames],
      signal: SnapshotSignal.ExecuteResult,
      isRewrittenQuery: false,
    };
  return {
    types: [...types.slice(0, bind + 1), Frontend.Flush, ...types.slice(bind + 1)],
    frames: [...frames.slice(0, bind + 1), FLUSH, ...frames.slice(bind + 1)],
    signal: SnapshotSignal.Bind,
    isRewrittenQuery: false,
  };
}

function queryResult(types: readonly number[], frames: readonly Buffer[]): SnapshotRequest {
  return {
    types: [...types],
    frames: [...frames],
    signal: SnapshotSignal.QueryResult,
    isRewrittenQuery: false,
  };
}

const UNNAMED_BIND = new MessageWriter(16)
  .cstring('')
  .cstring('')
  .int16(0)
  .int16(0)
  .int16(0)
  .frame(Frontend.Bind);
const DESCRIBE_UNNAMED_PORTAL = new MessageWriter(8).int8(0x50 /* P */).cstring('').frame(Frontend.Describe);
const EXECUTE_UNNAMED_ALL = new MessageWriter(16).cstring('').int32(0).frame(Frontend.Execute);

/** Whether reply `type` ends a shard's part of the section, given the request's signal. */
function isSnapshotShown(type: number, signal: SnapshotSignal): boolean {
  switch (type) {
    case Backend.ErrorResponse:
    case Backend.ReadyForQuery:
      return true;
    case Backend.BindComplete:
      return signal === SnapshotSignal.Bind;
    case Backend.RowDescription:
      return signal === SnapshotSignal.QueryResult;
    case Backend.DataRow:
    case Backend.CommandComplete:
    case Backend.CopyOutResponse:
    case Backend.CopyBothResponse:
    case Backend.EmptyQueryResponse:
    case Backend.PortalSuspended:
      return signal !== SnapshotSignal.Bind;
    default:
      return false; // notices, ParameterStatus, ParseComplete, ParameterDescription, NoData …: before the snapshot
  }
}

/**
 * Watches a fan-out's replies (Fanout.snapshot) for the frame that shows each shard's snapshot; `onTaken` once every
 * shard showed it. Pure.
 */
export class SnapshotWatch {
  private pending: number;
  private readonly isShown: Uint8Array;
  private isArmed = true;

  constructor(
    shardCount: number,
    private readonly signal: SnapshotSignal,
    private readonly isRewrittenQuery: boolean,
    private readonly onTaken: () => void,
  ) {
    this.pending = shardCount;
    this.isShown = new Uint8Array(shardCount);
  }

  /** A reply frame of the fan-out's `index`-th shard; true: the proxy's own (ParseComplete/BindComplete), drop it. */
  see(index: number, type: number): boolean {
    if (this.isShown[index] === 0 && isSnapshotShown(type, this.signal)) {
      this.isShown[index] = 1;
      if (--this.pending === 0 && this.isArmed) {
        this.isArmed = false;
        this.onTaken();
      }
    }
    return this.isRewrittenQuery && (type === Backend.ParseComplete || type === Backend.BindComplete);
  }

  /** No more onTaken (the section ended otherwise). */
  disarm(): void {
    this.isArmed = false;
  }
}

/** The 40001 a reader gets when its section exceeded the bound. */
export function fenceTimeoutError(blocker: FenceBlocker, timeoutMs: number): PgError {
  const detail = blocker.isSnapshotSlow
    ? `the shards did not all show their snapshot within ${timeoutMs} ms (a shard busy or waiting for a lock)`
    : blocker.holders.length > 0
      ? `shard ${blocker.shard} is held by cross-shard transaction ${blocker.holders.join(', ')} while it becomes ` +
        'visible (its phase 2 is not finished there)'
      : `shard ${blocker.shard} is held by other readers`;
  return new PgError(
    'ERROR',
    SqlState.SerializationFailure,
    `could not take a consistent snapshot across shards within atomic_visibility_timeout (${timeoutMs} ms)`,
    detail,
    'Retry the statement. SHOW TRANSACTIONS lists transactions whose commit is not finished on every shard.',
  );
}

/** What a fenced read needs of its fan-out (fanout.ts). */
export interface FencedFanout {
  snapshot: SnapshotWatch | null;
  sawError: boolean;
  abort(err: PgError): void;
}

/** The routed request, as far as fencing goes (session-router.ts BatchTarget). */
export interface ReadTarget {
  readonly shards: readonly number[];
  readonly isWrite: boolean;
  readonly mayWrite: boolean;
  readonly isSessionLevel: boolean;
  readonly isPlainSelect?: boolean;
  readonly spec: { readonly isReplicated?: boolean };
}

/** A request's frames. */
export interface ReadRequest {
  readonly types: readonly number[];
  readonly frames: readonly Buffer[];
}

/** What a fenced read needs of its session (sharded-session.ts): the fence through `proxy`, sending, the log. */
export interface ReadSession extends Pick<ShardedSession, 'log' | 'proxy' | 'database' | 'pools'> {
  readonly send: Pick<RequestSend, 'send' | 'startQueryTimer'>;
}

/** One fan-out read's section in the fence: started before its request is sent, ended when its snapshots exist. */
export class FencedRead {
  private hold: FenceHold | null = null;
  /** The request's replies are all in, or the session closed. */
  private isOver = false;
  private readonly isPlainSelect: boolean;

  private constructor(
    private readonly fence: VisibilityFence,
    private readonly session: ReadSession,
    private readonly servers: readonly ServerConnection[],
    private readonly target: ReadTarget,
    private readonly fanout: FencedFanout,
    private readonly readyCount: number,
    private readonly first: SnapshotRequest,
  ) {
    this.isPlainSelect = target.isPlainSelect === true;
  }

  /**
   * The section for fan-out `fanout` of `target` (`request` as the first shard gets it), or null when it needs
   * none: no fence (atomic_visibility off), fewer than 2 shards, a request that may write (its commit is fenced
   * instead), transaction control, replicated rows, or nothing in it that takes a snapshot.
   */
  static create(
    session: ReadSession,
    servers: { at(shard: number): ServerConnection },
    target: ReadTarget,
    request: ReadRequest,
    fanout: FencedFanout,
    readyCount: number,
  ): FencedRead | null {
    const fence = fenceOf(session);
    if (fence === null || target.shards.length < 2 || target.isWrite || target.mayWrite) return null;
    if (target.isSessionLevel || target.spec.isReplicated === true) return null;
    const first = snapshotRequest(request.types, request.frames, target.isPlainSelect === true);
    if (first === null) return null;
    const held = target.shards.map((shard) => servers.at(shard));
    return new FencedRead(fence, session, held, target, fanout, readyCount, first);
  }

  /**
   * Send `request` (this shard's) to `server` in its fenced form; `isBuilt`: frames the proxy built (sent as they
   * are), else the client's (through the session's RequestSend, which rewrites statement names).
   */
  send(server: ServerConnection, request: ReadRequest, isBuilt = false): void {
    const r = snapshotRequest(request.types, request.frames, this.isPlainSelect) ?? this.first;
    if (!r.isRewrittenQuery && !isBuilt)
      return this.session.send.send(server, r.types, r.frames, this.readyCount);
    server.send(Buffer.concat(r.frames), this.readyCount);
    if (this.readyCount > 0) this.session.send.startQueryTimer();
  }

  /**
   * Enter the fence, then run `sends`; released once every shard showed its snapshot. Past the bound: the fan-out
   * is answered with 40001 — servers not sent anything yet get a Sync each (as many as the request has), so the
   * fan-out ends as usual; servers already running it get a cancel.
   */
  start(sends: readonly (() => void)[]): void {
    const { servers, readyCount, session } = this;
    const timeoutMs = session.proxy.general().atomicVisibilityTimeoutMs;
    let isSent = false;
    const watch = new SnapshotWatch(servers.length, this.first.signal, this.first.isRewrittenQuery, () =>
      this.hold?.release(),
    );
    this.fanout.snapshot = watch;
    this.hold = this.fence.enterRead(
      this.target.shards,
      timeoutMs,
      () => {
        isSent = true;
        for (const send of sends) send();
      },
      (blocker) => {
        watch.disarm();
        if (this.isOver) return;
        const err = fenceTimeoutError(blocker, timeoutMs);
        session.log.warn({ code: err.code, detail: err.detail }, err.message);
        this.fanout.sawError = true; // as a failed statement: inside a block, the transaction is failed
        this.fanout.abort(err);
        if (isSent) {
          for (const server of servers) cancelRunning(server, session.log);
          return;
        }
        const syncs = readyCount === 1 ? SYNC : Buffer.concat(Array.from({ length: readyCount }, () => SYNC));
        for (const server of servers) server.send(syncs, readyCount);
      },
    );
  }

  /** The request ended (its replies are all in, or the session closed): out of the fence if still in. */
  release(): void {
    this.isOver = true;
    this.hold?.release();
  }
}
