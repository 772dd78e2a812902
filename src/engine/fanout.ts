// The "run fan-out" phase of a sharded request: the request sent to several shards and their replies merged into the
// one reply the client expects. Sending: one reply sink per shard, a Describe of the portal added when the merge needs
// the key columns' types, the fence section of a read across shards (atomic_visibility, fenced-read.ts), reads sent
// to every shard at once and writes one shard after another; a multi-row INSERT split by shard sends each shard its
// own rows. Replies: each server's split into frames and fed to a ReplyMerger, whose output goes to the client; when
// every server has sent ReadyForQuery the owner gets one combined status. Fan-out replies are copied off the servers'
// reused read buffers. Backpressure: while the client socket holds unsent bytes (its last write returned false) no
// shard is read, until it drains; while a shard's ORDER BY merge queue is over its bound (MERGE_QUEUE_MAX_*), that
// shard is not read, until the queue drains to half. A shard is never left paused after its last ReadyForQuery.
import { Buffer } from 'node:buffer';
import { Backend, Frontend, TxStatus } from '../protocol/codes.js';
import { ReplyMerger, type RankRequest } from '../execute/reply-merger.js';
import type { MergeSpec } from '../execute/merge-spec.js';
import type { ReplySink, ServerConnection } from '../backend/server-connection.js';
import { FrameReader } from '../protocol/frame-reader.js';
import { readRowDescription } from '../protocol/rows.js';
import { PgError } from '../errors/pg-error.js';
import type { ClientStatements } from '../frontend/prepared-statements.js';
import type { RequestSend } from '../frontend/request-send.js';
import type { BatchTarget } from '../frontend/batch-target.js';
import {
  FencedRead,
  type ReadRequest,
  type ReadSession,
  type ReadTarget,
  type SnapshotWatch,
} from './fenced-read.js';

/** What the fan-out reports back to its session. */
export interface FanoutOwner {
  /** Write merged reply bytes to the client; false = the client socket is backpressured. */
  writeToClient(buf: Buffer): boolean;
  /** Call `resume` once the client socket has drained (after writeToClient returned false). */
  onClientDrain(resume: () => void): void;
  onServerParameter(name: string, value: string): void;
  onServerLost(server: ServerConnection, reason: string): void;
  /** Every server has answered the request; `status` combines their ReadyForQuery statuses. */
  onFanoutDone(status: number): void;
  /**
   * Put `values` in the database's order (its collation: ORDER BY on text that does not sort by bytes), on one of the
   * fan-out's shards, now idle: `done` gets value → position, or the error to answer with.
   */
  rankTexts(request: RankRequest, done: (ranks: Map<string, number> | PgError) => void): void;
}

/** The fan-out events a run standing in for the session passes on to it unchanged. */
export type SessionRelay = Pick<FanoutOwner, 'onServerParameter' | 'onServerLost' | 'rankTexts'>;

/**
 * A fan-out owner standing in for the session (a cursor run, an INSERT … SELECT's query or its stream): it takes the
 * merged reply and the fan-out's end itself and passes a server's ParameterStatus, a server lost and the ranks of text
 * keys on to `session` (the dispatch) unchanged — written once here, not in each run. Made once per run, never on the
 * path of a plain fan-out (whose owner is the dispatch itself).
 */
export abstract class RelayingOwner<Session extends SessionRelay = SessionRelay> implements FanoutOwner {
  protected readonly session: Session;

  constructor(session: Session) {
    this.session = session;
  }

  abstract writeToClient(buf: Buffer): boolean;
  abstract onClientDrain(resume: () => void): void;
  abstract onFanoutDone(status: number): void;

  onServerParameter(name: string, value: string): void {
    this.session.onServerParameter(name, value);
  }

  onServerLost(server: ServerConnection, reason: string): void {
    this.session.onServerLost(server, reason);
  }

  rankTexts(request: RankRequest, done: (ranks: Map<string, number> | PgError) => void): void {
    this.session.rankTexts(request, done);
  }
}

/** Where a server's reply to the Describe of the portal the proxy added stands. */
const DescribeWait = {
  /** Nothing owed (none was added, or its reply came). */
  Done: 0,
  Pending: 1,
  /** Still owed, and the server's last reply was a ParameterDescription: its next description is a statement's. */
  AfterParameterDescription: 2,
} as const;

/** Largest reply frame a fan-out's sink assembles (the server's scanner has already checked every length). */
const MAX_REPLY_FRAME_BYTES = 1 << 30;

/** Replies a server may send at any point (between a Describe's replies too). */
function isAsyncReply(type: number): boolean {
  return (
    type === Backend.NoticeResponse ||
    type === Backend.ParameterStatus ||
    type === Backend.NotificationResponse
  );
}

export class Fanout {
  private readonly merger: ReplyMerger;
  private readonly owner: FanoutOwner;
  private waiting: number;
  private status: number = TxStatus.Idle;
  private out: Buffer[] = [];

  /**
   * Per server, where its reply to a Describe the proxy added stands (DescribeWait): its row types feed the merge, the
   * client never sees it.
   */
  private readonly describeWaits: Uint8Array;

  /** Backpressure: the resume of each shard whose server stopped reading (null: it reads). */
  private readonly resumes: ((() => void) | null)[];
  private pausedCount = 0;
  /** The client socket's last write was only buffered: no shard is read until it drains. */
  private isClientBlocked = false;
  private readonly onClientDrained = (): void => {
    this.isClientBlocked = false;
    this.resumeReadable();
  };
  private readonly afterChunk = (): void => {
    this.flush();
    if (this.pausedCount > 0) this.resumeReadable();
  };

  /**
   * `hasInjectedDescribe`: the request carries a Describe of the portal added by the proxy (withPortalDescribe),
   * because sorting or aggregating needs the result's types and formats and the client described no portal.
   */
  constructor(serverCount: number, spec: MergeSpec, owner: FanoutOwner, hasInjectedDescribe = false) {
    this.owner = owner;
    this.waiting = serverCount;
    this.describeWaits = new Uint8Array(serverCount).fill(
      hasInjectedDescribe ? DescribeWait.Pending : DescribeWait.Done,
    );
    this.resumes = new Array<(() => void) | null>(serverCount).fill(null);
    // The spec as routing made it (a plan's kept spec is shared and frozen): the column types go to the merger.
    this.merger = new ReplyMerger(serverCount, spec, (frame) => this.out.push(frame));
  }

  /**
   * The ReplySink for the `index`-th server of this fan-out: its replies cut into whole frames for the merge (chunks
   * copied: the server reads into a buffer it reuses, and partial frames wait here for the next chunk, so the server's
   * read buffer is never pinned; lengths were already checked by its scanner), read on while `canRead` allows.
   */
  sinkFor(index: number): ReplySink {
    const reader = new FrameReader(MAX_REPLY_FRAME_BYTES);
    const onFrame = (type: number, frame: Buffer): void => {
      if (this.snapshot !== null && this.snapshot.see(index, type)) return; // the proxy's own Parse/Bind replies
      if (type === Backend.ReadyForQuery) return;
      if (type === Backend.ErrorResponse) {
        this.sawError = true;
        this.onServerError?.(index);
      }
      if (this.describeWaits[index] !== DescribeWait.Done && this.isInjectedDescription(index, type, frame))
        return;
      this.merger.push(index, frame);
    };
    return {
      writeToClient: (buf) => {
        reader.push(Buffer.from(buf), onFrame);
        this.afterChunk();
        return this.canRead(index);
      },
      hasPendingWrites: () => false,
      onClientDrain: (resume) => this.onPause(index, resume),
      onServerParameter: (name, value) => this.owner.onServerParameter(name, value),
      onServerLost: (server, reason) => this.owner.onServerLost(server, reason),
      onServerReady: (server, status) => {
        if (server.pendingReady !== 0) return;
        this.resumeShard(index); // its reply is complete: the server must not go back paused
        this.onServerDone?.(index);
        if (status === TxStatus.Failed) this.status = TxStatus.Failed;
        else if (status === TxStatus.InTransaction && this.status !== TxStatus.Failed) this.status = status;
        if (--this.waiting === 0) this.finish();
      },
    };
  }

  /**
   * Whether `frame`, from a server still owing the reply to the injected Describe of the portal, is that reply (then
   * kept from the client, its row types given to the merge). The client's own Describes in the request are of
   * statements only (withPortalDescribe): each is answered by ParameterDescription then RowDescription / NoData, so the
   * first RowDescription / NoData that does not follow a ParameterDescription answers the portal's.
   */
  private isInjectedDescription(index: number, type: number, frame: Buffer): boolean {
    if (type === Backend.RowDescription || type === Backend.NoData) {
      if (this.describeWaits[index] === DescribeWait.AfterParameterDescription) {
        this.describeWaits[index] = DescribeWait.Pending; // the client's Describe of a statement
        return false;
      }
      this.describeWaits[index] = DescribeWait.Done;
      // Read lazily by the merger at the first row, which comes after this.
      if (type === Backend.RowDescription) this.merger.noteColumnTypes(readRowDescription(frame));
      return true;
    }
    if (type === Backend.ParameterDescription)
      this.describeWaits[index] = DescribeWait.AfterParameterDescription;
    else if (!isAsyncReply(type)) this.describeWaits[index] = DescribeWait.Pending;
    return false;
  }

  /** Every server has answered: end the merged reply (after the database's order of text keys, when it needs it). */
  private finish(): void {
    const merger = this.merger;
    if (!merger.needsRanks) {
      this.flush();
      this.owner.onFanoutDone(this.status);
      return;
    }
    this.owner.rankTexts(merger.rankRequest(), (ranks) => {
      if (ranks instanceof PgError) merger.abort(ranks);
      else merger.setRanks(ranks);
      this.flush();
      this.owner.onFanoutDone(this.status);
    });
  }

  /** Fail the request with the proxy's own error (sent once; the shards' later errors are not). */
  abort(err: PgError): void {
    this.merger.abort(err);
    this.afterChunk(); // the merge queues were dropped: shards paused for them read again
  }

  /** atomic_visibility: watches for the replies showing each shard's snapshot (fenced-read.ts); null: not fenced. */
  snapshot: SnapshotWatch | null = null;

  /** Some server sent an ErrorResponse for this request. */
  sawError = false;

  /** Called when a server sends an ErrorResponse (COPY uses it to stop the other shards at once). */
  onServerError: ((index: number) => void) | null = null;

  /**
   * Called when a server has answered the request (used to start the next shard of a sequential write). Set means the
   * shards run one after another: the merge may then wait for a shard that starts only once this one is done, so no
   * shard is paused for its merge queue (an ORDER BY write holds its rows until the last shard runs).
   */
  onServerDone: ((index: number) => void) | null = null;

  /**
   * Set (to []) for a write the proxy wraps in a transaction of its own: its command tags wait here for the commit,
   * because PostgreSQL reports a simple Query's tag only once its implicit transaction has committed.
   */
  heldTags: Buffer[] | null = null;

  private flush(): void {
    if (this.out.length === 0) return;
    let frames = this.out;
    this.out = [];
    const held = this.heldTags;
    if (held !== null) {
      frames = frames.filter((f) => f[0] !== Backend.CommandComplete || (held.push(f), false));
      if (frames.length === 0) return;
    }
    const isFlowing = this.owner.writeToClient(frames.length === 1 ? frames[0] : Buffer.concat(frames));
    if (!isFlowing && !this.isClientBlocked) {
      this.isClientBlocked = true;
      this.owner.onClientDrain(this.onClientDrained);
    }
  }

  // --- backpressure ------------------------------------------------------------------------------------------

  /**
   * Whether shard `index` may be read on after a chunk: not while the client is backpressured, nor while its merge
   * queue is full. Deadlock-free: the merge only waits for a shard whose queue is empty, which is never paused for
   * its queue, and the client drains on its own.
   */
  private canRead(index: number): boolean {
    return !this.isClientBlocked && (this.onServerDone !== null || !this.merger.isQueueFull(index));
  }

  private onPause(index: number, resume: () => void): void {
    if (this.resumes[index] === null) this.pausedCount++;
    this.resumes[index] = resume;
  }

  /** Resume every paused shard that may read again (client drained, its queue down to half). */
  private resumeReadable(): void {
    if (this.isClientBlocked) return;
    const resumes = this.resumes;
    for (let i = 0; i < resumes.length; i++) {
      if (resumes[i] !== null && (this.onServerDone !== null || this.merger.isQueueDrained(i))) {
        this.resumeShard(i);
      }
    }
  }

  private resumeShard(index: number): void {
    const resume = this.resumes[index];
    if (resume === null) return;
    this.resumes[index] = null;
    this.pausedCount--;
    resume();
  }
}

/**
 * The request with a Describe of the portal added right before its Execute, when it has an Execute and the client
 * described no portal: merging sorted or aggregated rows needs their types and formats. A Describe of the statement
 * does not do: its RowDescription reports format 0 (text) for every column, formats being chosen only at Bind (a
 * client asking for binary results would have its rows merged as text). Null when nothing needs adding (simple Query,
 * no Execute, or the client described a portal itself — the merger then reads the types from that description).
 * Fanout tells the added Describe's reply from the client's Describes of statements by the ParameterDescription
 * these start with.
 */
export function withPortalDescribe(
  types: number[],
  frames: Buffer[],
): { types: number[]; frames: Buffer[] } | null {
  const exec = types.indexOf(Frontend.Execute);
  if (exec < 0) return null;
  for (let i = 0; i < types.length; i++) {
    if (types[i] === Frontend.Describe && frames[i][5] === 0x50 /* P */) return null;
  }
  const portalEnd = frames[exec].indexOf(0, 5);
  const portal = frames[exec].subarray(5, portalEnd + 1); // name + NUL
  const describe = Buffer.alloc(6 + portal.length);
  describe[0] = Frontend.Describe;
  describe.writeInt32BE(describe.length - 1, 1);
  describe[5] = 0x50; // 'P'
  portal.copy(describe, 6);
  return {
    types: [...types.slice(0, exec), Frontend.Describe, ...types.slice(exec)],
    frames: [...frames.slice(0, exec), describe, ...frames.slice(exec)],
  };
}

/** What sending a fan-out uses of the request's dispatcher (sharded-dispatch.ts; dispatch-host.ts' DispatchHost has it). */
export interface FanoutHost {
  readonly session: ReadSession & {
    readonly send: RequestSend;
    readonly statements: ClientStatements | null;
  };
  /** A shard's held server, lent to the fan-out's sink for that shard (shard-servers.ts takes it back at the end). */
  readonly servers: {
    at(shard: number): ServerConnection;
    lend(shard: number, sink: ReplySink): ServerConnection;
  };
  /** The fan-out's section in the visibility fence (atomic_visibility), until its snapshots exist. */
  read: FencedRead | null;
  /** The fan-out of the request being sent (its replies merged to the dispatcher's choice of owner). */
  startFanout(serverCount: number, spec: MergeSpec, hasInjectedDescribe: boolean): Fanout;
}

/**
 * The request `taken` to every shard of `target`, replies merged by its spec. `isOwnRun`: a statement of the proxy's
 * own run (script, INSERT … SELECT): never fenced (docs/two-phase-commit.md).
 */
export function sendFanout(
  host: FanoutHost,
  target: Extract<BatchTarget, { kind: 'many' }>,
  { types, frames, readyCount }: { types: number[]; frames: Buffer[]; readyCount: number },
  isOwnRun: boolean,
): void {
  const { session } = host;
  const spec = target.spec;
  const needsTypes = spec.orderBy.length > 0 || spec.aggregates !== null;
  const sent = needsTypes ? withPortalDescribe(types, frames) : null;
  const fanout = host.startFanout(target.shards.length, spec, sent !== null);
  const read = fencedRead(host, isOwnRun, target, sent ?? { types, frames }, fanout, readyCount);
  const sends = target.shards.map((shard, i) => {
    const server = host.servers.lend(shard, fanout.sinkFor(i));
    return () => {
      if (read !== null) read.send(server, sent ?? { types, frames });
      else if (sent !== null) session.send.send(server, sent.types, sent.frames, readyCount);
      else session.send.send(server, types, frames, readyCount);
    };
  });
  runFanout(host, fanout, sends, target.isWrite, read);
}

/** A multi-row INSERT split by shard: each shard gets its own rows; RETURNING rows come back in VALUES order. */
export function sendSplit(
  host: FanoutHost,
  target: Extract<BatchTarget, { kind: 'split' }>,
  readyCount: number,
  isOwnRun: boolean,
): void {
  const { session } = host;
  if (target.clientParse !== null) session.statements?.remember(target.clientParse);
  const spec = target.spec;
  const needsTypes = spec.orderBy.length > 0 || spec.aggregates !== null;
  const described = needsTypes ? target.parts.map((p) => withPortalDescribe(p.types, p.frames)) : [];
  const fanout = host.startFanout(target.shards.length, spec, described[0] != null);
  const read = fencedRead(host, isOwnRun, target, described[0] ?? target.parts[0], fanout, readyCount);
  const sends = target.shards.map((shard, i) => {
    const server = host.servers.lend(shard, fanout.sinkFor(i));
    const part = target.parts[i];
    return () => {
      // Sent as built: the statement is the per-shard unnamed one, so no name rewriting applies.
      if (part.isParseInjected) server.scanner.swallowNext(Backend.ParseComplete);
      if (read !== null) return read.send(server, described[i] ?? part, true);
      server.send(Buffer.concat(described[i]?.frames ?? part.frames), readyCount);
      if (readyCount > 0) session.send.startQueryTimer();
    };
  });
  runFanout(host, fanout, sends, target.isWrite, read);
  session.send.hasOpenSegment = false;
}

/**
 * Reads go to every shard at once. Writes go one shard after another, in shard order: two transactions writing the
 * same rows on several shards then always lock them in the same order, so they wait instead of deadlocking across
 * shards (which no single PostgreSQL could detect).
 */
function runFanout(
  host: FanoutHost,
  fanout: Fanout,
  sends: (() => void)[],
  isWrite: boolean,
  read: FencedRead | null,
): void {
  if (!isWrite) {
    host.read = read; // atomic_visibility: sent once in the fence, out of it when the snapshots exist
    if (read !== null) return read.start(sends);
    for (const send of sends) send();
    return;
  }
  fanout.onServerDone = (index) => sends[index + 1]?.();
  sends[0]();
}

/** atomic_visibility: the fence section of a fan-out that reads 2+ shards (fenced-read.ts); null: none needed. */
function fencedRead(
  host: FanoutHost,
  isOwnRun: boolean,
  target: ReadTarget,
  request: ReadRequest,
  fanout: Fanout,
  readyCount: number,
): FencedRead | null {
  return isOwnRun ? null : FencedRead.create(host.session, host.servers, target, request, fanout, readyCount);
}
