// The sharded half of a client session (databases with 2+ shards): the engine's request loop and the owner of its
// state. It holds what a request's phases share — the request state (request-state.ts), the server held per shard
// (shard-servers.ts), the transaction block (txn/transaction-block.ts), the request at the front of the batch — and
// takes one request at a time once the one before it is over: routed and placed in route-request.ts, its servers held
// in hold-servers.ts, run on one shard (run-single.ts) or handed to the module for its kind — fanout, copy-in-run,
// script-run, commit-run, insert-run, cursor-requests, route-lookups, visibility-waits — and ended in end-request.ts.
// The run modules reach the engine through DispatchHost (dispatch-host.ts), which this class is, and the phases through
// its `route`, `hold` and `end` (made once per session). It is also the reply sink of its servers while they answer the
// client directly (between runs, and a request on one shard) and the owner of the client's fan-outs: those events go
// to their phase. ClientSession keeps the connection and
// hands requests over here.
import type { Logger } from 'pino';
import type { ServerConnection } from '../backend/server-connection.js';
import { PgError } from '../errors/pg-error.js';
import type { MergeSpec } from '../execute/merge-spec.js';
import type { RankRequest } from '../execute/reply-merger.js';
import { TransactionBlock } from '../txn/transaction-block.js';
import type { ClientOutput } from '../frontend/client-output.js';
import type { RequestBatch } from '../frontend/request-batch.js';
import type { SessionRouter } from '../frontend/session-router.js';
import type { ShardedSession } from '../frontend/sharded-session.js';
import { SessionBlockHost } from './block-host.js';
import { CopyInRun } from './copy-in-run.js';
import { CursorRequests } from './cursor-requests.js';
import type { DispatchHost, TakenRequest } from './dispatch-host.js';
import { RequestEnd } from './end-request.js';
import { Fanout, type FanoutOwner } from './fanout.js';
import type { FencedRead } from './fenced-read.js';
import { ServerHold } from './hold-servers.js';
import { InsertRun } from './insert-run.js';
import { ProxyPortals } from './proxy-portal.js';
import { RequestState } from './request-state.js';
import { RequestRoute } from './route-request.js';
import { endOnReady } from './run-single.js';
import { ScriptRunner } from './script-run.js';
import { ShardServers, type PendingCheckout } from './shard-servers.js';
import { rankTexts } from './text-ranks.js';

export class ShardedDispatch implements DispatchHost {
  readonly router: SessionRouter;
  readonly session: ShardedSession;
  readonly batch: RequestBatch;
  readonly log: Logger;
  /** The client's output (client-output.ts): replies go straight there, not through the session. */
  private readonly output: ClientOutput;
  /** The server held per shard. */
  readonly servers: ShardServers;
  /**
   * What the request in flight is doing (waiting for servers, on one shard, a lookup, a fan-out, a commit, …): one
   * value, one mover (request-state.ts); busy, idle and waiting for a server are read from it.
   */
  readonly request: RequestState;
  /** The fan-out's section in the visibility fence (atomic_visibility), until its snapshots exist. */
  read: FencedRead | null = null;
  /** Frames of the request being routed (sharded sessions route one request — up to a Sync or Query — at a time). */
  requestLength = Number.MAX_SAFE_INTEGER;
  /** What was just learnt for the request being routed again (null: nothing; see route-lookups.ts). */
  learnedFor: string | null = null;
  /**
   * The shard of a single-shard request sent without Sync (pg-cursor, Flush): its portal, and after an error its
   * "skip to Sync" state, live there until a Sync reaches it, so a request naming no statement goes there too.
   */
  openSegmentShard: number | null = null;
  /** The client's transaction block: which shards it reached, what a shard joining it later runs first. */
  readonly block: TransactionBlock;
  /** A COPY … FROM STDIN split across shards: the client's copy messages go through it (copy-in-run.ts). */
  private readonly copyIn: CopyInRun;
  /**
   * Statements run one request at a time, outside a client transaction inside one of the proxy's own, as PostgreSQL
   * runs a multi-statement Query (also a single write on several shards outside BEGIN): script-run.ts.
   */
  private readonly scripts: ScriptRunner;
  /** Cursors across shards: the portals the proxy holds and the cursor run in flight (cursor-requests.ts). */
  private readonly cursors: CursorRequests;
  /** An INSERT … SELECT whose query the proxy evaluates, collected or streamed (insert-run.ts). */
  private readonly inserts: InsertRun;
  /** The route-request phase (route-request.ts). */
  readonly route: RequestRoute;
  /** The hold-servers phase (hold-servers.ts). */
  readonly hold: ServerHold;
  /** The end-request phase (end-request.ts). */
  readonly end: RequestEnd;

  constructor(router: SessionRouter, session: ShardedSession) {
    this.router = router;
    this.session = session;
    this.batch = session.batch;
    this.log = session.log;
    this.output = session.output;
    this.request = new RequestState(session.pools.shards.length);
    this.servers = new ShardServers(session, router, this.request, this);
    // The client's cursor portals (its transaction's): read by routing, answered and kept by cursor-requests.ts.
    const portals = new ProxyPortals();
    this.scripts = new ScriptRunner(this);
    const cursors = (this.cursors = new CursorRequests(this, portals, this.scripts));
    const reads = session.reads;
    this.block = new TransactionBlock(
      new SessionBlockHost(this.servers, router, (isCommitted) => {
        portals.clear();
        reads.blockEnded(isCommitted); // SET pgdog.role / pgdog.min_lsn in the block kept or undone
      }),
    );
    this.copyIn = new CopyInRun(this);
    this.inserts = new InsertRun(this, this.scripts);
    const runs = { scripts: this.scripts, inserts: this.inserts, cursors, copyIn: this.copyIn, portals };
    this.end = new RequestEnd(this, runs);
    this.hold = new ServerHold(this);
    this.route = new RequestRoute(this, runs);
  }

  /**
   * The loop: called whenever the client's frames or a request's end may let the next request go. Copy data goes to
   * the COPY in flight; a request waits until it is whole (a flush point) and the one before it is over; then it is
   * routed and started (route-request.ts).
   */
  dispatch(): void {
    const request = this.request;
    const copy = request.copyIn;
    if (copy !== null && !this.copyIn.feed(copy)) return;
    const kind = request.kind;
    if (kind === 'acquiring' || kind === 'lookup' || kind === 'waiting' || kind === 'fanout') return;
    const batch = this.batch;
    const single = request.singleShard;
    if (single !== null && batch.isCopyOnly()) {
      const { types, frames, readyCount } = batch.take();
      this.session.send.send(this.servers.at(single), types, frames, readyCount); // COPY data for the request in flight
      return;
    }
    if (!batch.isFlushPoint) {
      if (batch.bytes > this.session.proxy.general().maxMessageSizeBytes) {
        this.session.ending.protocolViolation(
          `request of ${batch.bytes} bytes without Sync exceeds max_message_size`,
        );
      }
      return;
    }
    // A request is still being answered: the next one waits, so replies from different shards stay in order.
    if (!request.isIdle) return; // resumed at the request's end (end-request.ts)
    this.route.next();
  }

  /** The request being routed, taken off the batch (later pipelined requests stay queued). */
  takeRequest(): TakenRequest {
    return this.batch.takeFirst(this.requestLength);
  }

  /**
   * The fan-out of the request being sent. The last statement of a script the proxy commits itself, sent as a simple
   * Query, has its command tags held until the commit: PostgreSQL reports that tag only once its implicit transaction
   * committed (extended protocol: the tag comes at Execute, the commit at Sync).
   */
  startFanout(
    serverCount: number,
    spec: MergeSpec,
    hasInjectedDescribe: boolean,
    owner: FanoutOwner = this.fanoutOwner(),
  ): Fanout {
    const fanout = new Fanout(serverCount, spec, owner, hasInjectedDescribe);
    const request = this.request;
    // A streamed INSERT … SELECT counts its batches' tags itself (onInsertStreamDone holds its one tag instead).
    if (request.script !== null && request.run.kind !== 'insertStream' && this.scripts.isHoldingTags)
      fanout.heldTags = [];
    request.move({ kind: 'fanout', fanout });
    return fanout;
  }

  /** ORDER BY on collated text across shards: a shard of the fan-out (idle now) orders the key values (text-ranks.ts). */
  rankTexts(request: RankRequest, done: (ranks: Map<string, number> | PgError) => void): void {
    const server = this.servers.byShard.find((s) => s !== null && s.pendingReady === 0);
    if (server == null) return done(PgError.internal('no idle shard server to order text keys on'));
    rankTexts(server, request, this, done);
  }

  /** The client's fan-out has answered (FanoutOwner): the end of its request (end-request.ts). */
  onFanoutDone(): void {
    this.end.fanoutDone();
  }

  /** The client's Sync the proxy answered itself, sent on to shards mid-segment (end-request.ts; ClientSession). */
  syncOpenSegments(): void {
    this.end.syncOpenSegments();
  }

  /**
   * Where a fan-out's merged reply goes, read from the request state's run slot: the run in it — a cursor run that
   * keeps it as a portal, an INSERT … SELECT's query that collects its rows, or its stream — else the client.
   */
  private fanoutOwner(): FanoutOwner {
    const run = this.request.run;
    switch (run.kind) {
      case 'cursorRun':
      case 'insertSource':
      case 'insertStream':
        return run.run;
      default:
        return this; // none; a split COPY gives its own owner (copy-in-run.ts)
    }
  }

  // --- ReplySink: called by the shard servers while they answer this session directly -----------------------

  /** A ReadyForQuery from a server answering the session directly: a request on one shard may be over (run-single.ts). */
  onServerReady(server: ServerConnection): void {
    endOnReady(this, server);
  }

  writeToClient(buf: Buffer): boolean {
    return this.output.write(buf);
  }

  hasPendingWrites(): boolean {
    return this.output.hasPendingWrites();
  }

  onClientDrain(resume: () => void): void {
    this.output.onDrain(resume);
  }

  onServerParameter(name: string, value: string): void {
    this.session.params.noteStatus(name, value);
  }

  onInternalError(err: unknown): void {
    this.session.ending.internalError(err);
  }

  onServerLost(server: ServerConnection, reason: string): void {
    if (!this.servers.drop(server)) return;
    this.log.warn({ shard: server.address.shard, reason }, 'server connection lost while in use');
    this.session.ending.fatal(PgError.serverConnectionLost(server.address.shard, reason, server.fatalError));
  }

  // --- for the session: cancel, activity, SHOW CLIENTS, close ---------------------------------------------------

  /** Cancel what runs on this session's shard servers. */
  cancelQuery(): void {
    this.servers.cancel(this.log);
  }

  /** Servers are being checked out for the request at the front of the batch. */
  get isWaitingForServer(): boolean {
    return this.request.isAcquiring;
  }

  /** A request is running (fan-out, commit, or a statement on some shard). */
  get isActive(): boolean {
    return this.request.isActive;
  }

  /**
   * Nothing of the client's is under way: no request in any state (waiting for a server, for another transaction's
   * phase 2, for a lookup, running), no run (COPY in, cursor, INSERT … SELECT) and no transaction of the proxy's own.
   * client_idle_timeout closes only such a client.
   */
  get isIdle(): boolean {
    const r = this.request;
    return r.isIdle && r.run.kind === 'none' && r.transaction.kind === 'none';
  }

  /** The server held per shard (read by the distributed deadlock check). */
  heldServers(): readonly (ServerConnection | null)[] {
    return this.servers.byShard;
  }

  /** The request's checkouts queued in primaries' pools (read by the distributed deadlock check). */
  queuedCheckouts(): readonly PendingCheckout[] {
    return this.servers.queuedCheckouts();
  }

  /** Servers the request in checkout got already, while others are queued (read by the distributed deadlock check). */
  serversInCheckout(): readonly ServerConnection[] {
    return this.servers.serversInCheckout();
  }

  /** Fail the request's queued checkouts with `err` (it is a deadlock's victim); false when none is queued. */
  failCheckout(err: PgError): boolean {
    return this.servers.failQueuedCheckouts(err);
  }

  /** The ids of the servers held, added to `out`. */
  addServerIds(out: number[]): void {
    this.servers.addIds(out);
  }

  /** The client has gone: give the shard servers back (unless a commit still runs on them: afterCommit does then). */
  onSessionClosed(): void {
    this.read?.release();
    if (!this.request.isCommitting) this.releaseShardServers(); // else afterCommit releases them
  }

  /** Give every shard server back to its pool (reset as the session and transaction state require). */
  releaseShardServers(): void {
    this.servers.resetAndRelease(this.session.send.hasOpenSegment || this.request.fanout !== null);
  }
}
