// The sharded half of a client session (databases with 2+ shards), the engine's request loop: one request at a time
// taken off the batch, routed, placed (transaction control and settings: txn/transaction-block.ts), its shard servers
// held and its participants recorded, then run on one shard (replies streamed to the client) or handed to the module
// for its kind — fanout (several shards), copy-in-run (COPY … FROM STDIN), script-run (statements one by one in
// one transaction), commit-run (the proxy's own COMMIT across shards), insert-run (INSERT … SELECT), cursor-requests
// (cursors across shards), route-lookups (what routing needs learnt first), visibility-waits (atomic visibility) —
// and ended here (status, settings kept, servers released, next request). The modules reach it through DispatchHost.
// ClientSession keeps the connection and hands requests over here.
import type { Logger } from 'pino';
import type { ReadIntent } from '../backend/replica-set.js';
import type { ServerConnection } from '../backend/server-connection.js';
import { Frontend, TxStatus } from '../protocol/codes.js';
import { query, readyForQuery, SYNC } from '../protocol/messages.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { PASS_THROUGH_SPEC, type MergeSpec } from '../execute/merge-spec.js';
import type { RequestBatch } from './request-batch.js';
import { BROADCAST_SPEC, type BatchTarget, type RouteOutcome, type SessionRouter } from './session-router.js';
import { applySettingChange } from './session-settings.js';
import type { StatementPlan } from '../router/plan.js';
import { Fanout, sendFanout, sendSplit, type FanoutOwner } from './fanout.js';
import type { FencedRead } from './fenced-read.js';
import { blockCutFence } from './block-cut.js';
import { sendAfterWaits } from './visibility-waits.js';
import { acquireWaiting } from './checkout-wait.js';
import { localReplies, type LocalReply } from './local-replies.js';
import { TransactionBlock, type RequestEffects } from '../txn/transaction-block.js';
import { SessionBlockHost } from './block-host.js';
import { RequestState } from './request-state.js';
import { ScriptRunner } from './script-run.js';
import { commitAcrossShards } from './commit-run.js';
import type { DispatchHost, TakenRequest } from './dispatch-host.js';
import { InsertRun } from './insert-run.js';
import { rankTexts } from './text-ranks.js';
import type { RankRequest } from '../execute/reply-merger.js';
import { isCursorRequest } from './proxy-portal.js';
import { CursorRequests } from './cursor-requests.js';
import { CopyInRun } from './copy-in-run.js';
import { takeDetour } from './route-lookups.js';
import { ShardServers, type PendingCheckout } from './shard-servers.js';
import { fenceOf, type ShardedSession } from './sharded-session.js';
import type { ClientOutput } from './client-output.js';

/** A transaction-control statement or setting, moved to `shards` (one: sent as is; several: reported once). */
function onShards(target: BatchTarget, shards: readonly number[]): BatchTarget {
  const flags = {
    isSessionLevel: target.isSessionLevel,
    isMultiShardWrite: false,
    isCommit: target.isCommit,
    isWrite: false,
    mayWrite: false,
    preventsPrepare: null,
    sessionStatement: target.sessionStatement,
  };
  if (shards.length === 1) return { kind: 'one', shard: shards[0], ...flags };
  return { kind: 'many', shards, spec: BROADCAST_SPEC, ...flags };
}

/** The request parses, binds or queries a statement (else it only uses what earlier requests left: portals, Sync). */
function namesStatement(types: readonly number[]): boolean {
  for (const t of types) {
    if (t === Frontend.Parse || t === Frontend.Bind || t === Frontend.Query || t === Frontend.FunctionCall)
      return true;
  }
  return false;
}

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
  /**
   * The shard of a single-shard request sent without Sync (pg-cursor, Flush): its portal, and after an error its
   * "skip to Sync" state, live there until a Sync reaches it, so a request naming no statement goes there too.
   */
  private openSegmentShard: number | null = null;
  /** A COPY … FROM STDIN split across shards: the client's copy messages go through it (copy-in-run.ts). */
  private readonly copyIn: CopyInRun;
  /**
   * Statements run one request at a time, outside a client transaction inside one of the proxy's own, as PostgreSQL
   * runs a multi-statement Query (also a single write on several shards outside BEGIN): script-run.ts.
   */
  private readonly scripts: ScriptRunner;
  /** Frames of the request being routed (sharded sessions route one request — up to a Sync or Query — at a time). */
  requestLength = Number.MAX_SAFE_INTEGER;
  /** What was just learnt for the request being routed again (null: nothing; see route-lookups.ts). */
  learnedFor: string | null = null;
  /** Cursors across shards: the portals the proxy holds and the cursor run in flight (cursor-requests.ts). */
  private readonly cursors: CursorRequests;
  /** The client's transaction block: which shards it reached, what a shard joining it later runs first. */
  readonly block: TransactionBlock;
  /** An INSERT … SELECT whose query the proxy evaluates, collected or streamed (insert-run.ts). */
  private readonly inserts: InsertRun;

  /** The routed request on its way to its servers (one request at a time): what `sendPending` sends. */
  private sending: BatchTarget | null = null;
  /** Send the routed request once its servers are held (made once: no closure per request). */
  private readonly sendPending = (): void => this.sendSharded(this.sending as BatchTarget);
  /** A statement the transaction block runs first on a shard joining it, its reply swallowed (made once). */
  private readonly sendSwallowedOn = (shard: number, sql: string): void =>
    this.sendSwallowed(this.servers.at(shard), sql);
  /** After the proxy's commit of the client's COMMIT: the script's next statement, or the next request. */
  private readonly afterOwnCommit = (sawError: boolean): void => {
    if (this.scripts.isRunning) return this.scripts.onStatementDone(sawError);
    this.refreshStatus();
    this.onShardRequestDone();
  };

  constructor(router: SessionRouter, session: ShardedSession) {
    this.router = router;
    this.session = session;
    this.batch = session.batch;
    this.log = session.log;
    this.output = session.output;
    this.request = new RequestState(session.pools.shards.length);
    this.servers = new ShardServers(session, router, this.request, this);
    this.cursors = new CursorRequests(this);
    this.block = new TransactionBlock(
      new SessionBlockHost(this.servers, router, () => this.cursors.clearPortals()),
    );
    this.scripts = new ScriptRunner(this);
    this.copyIn = new CopyInRun(this);
    this.inserts = new InsertRun(this, this.scripts);
  }

  /** Route the queued request and run it on its shard(s): the sharded counterpart of checkout + sendBatch. */
  dispatch(): void {
    const router = this.router;
    if (this.copyIn.isActive && !this.copyIn.feed()) return;
    const request = this.request;
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
    if (!request.isIdle) return; // resumed from onShardRequestDone
    // One request at a time: pipelined requests may each need other shards, and their replies must stay in order.
    const n = batch.firstRequestLength();
    this.requestLength = n;
    let { types, frames } = batch.peek(n);
    if (this.cursors.hasPortals && this.cursors.answerFromPortals(types, frames)) return;
    let outcome: RouteOutcome;
    this.cursors.forgetRun();
    try {
      const withIds = router.withUniqueIds(types, frames);
      if (withIds !== null) {
        // pgdog.unique_id() calls replaced by ids: the rewritten request (as many frames) takes the original's place.
        batch.takeFirst(n);
        batch.unshift(withIds.types, withIds.frames);
        ({ types, frames } = withIds);
      }
      outcome = router.route(types, frames);
      if ((outcome.kind === 'many' || outcome.kind === 'split') && isCursorRequest(types, frames)) {
        if (outcome.isSessionLevel) {
          // A fan-out ends with every shard's ReadyForQuery, which only Sync brings.
          if (!types.includes(Frontend.Sync)) {
            throw PgError.featureNotSupported(
              'a transaction-control or SET statement on several shards must be followed by Sync, not only Flush',
            );
          }
        } else {
          ({ types, frames } = this.cursors.asCursor(types, frames, outcome.mayWrite));
          outcome = router.route(types, frames); // the same statement, executed to the end on each shard
        }
      }
    } catch (err) {
      return this.failRequest(err instanceof PgError ? err : PgError.internal((err as Error).message));
    }
    // Something to learn first, or statements on different shards: route-lookups.ts.
    if (outcome.kind === 'learn' || outcome.kind === 'mixed')
      return takeDetour(this, this.scripts, this.inserts, outcome, n, types, frames);
    let target: BatchTarget = outcome;
    this.learnedFor = null;
    if (target.kind === 'one' && this.openSegmentShard !== null && !namesStatement(types)) {
      // Execute / Describe / Close of the open portal, Flush, Sync: to the shard holding the segment (not any shard).
      target = { ...target, shard: this.openSegmentShard };
    }
    if (
      this.session.status.txStatus === TxStatus.Failed &&
      (!target.isSessionLevel || !this.block.canRunWhileFailed(target.sessionStatement))
    ) {
      return this.failRequest(
        new PgError(
          'ERROR',
          SqlState.InFailedSqlTransaction,
          'current transaction is aborted, commands ignored until end of transaction block',
        ),
      );
    }
    if (this.inserts.isEvaluating && this.inserts.streamIfPossible(target)) return;
    if (target.sessionStatement !== null) {
      const placed = this.placeSessionStatement(target, target.sessionStatement, types, frames);
      if (placed === null) return; // answered by the proxy
      target = placed;
    }
    if (
      target.isCommit &&
      this.session.status.txStatus === TxStatus.InTransaction &&
      this.block.reachedCount >= 2
    ) {
      const isChained = target.sessionStatement?.transaction?.chain === true;
      return commitAcrossShards(this, isChained, this.scripts.isRunning, this.afterOwnCommit);
    }
    const shards = target.kind === 'one' ? this.servers.oneShard(target.shard) : target.shards;
    if (
      target.isMultiShardWrite &&
      shards.length >= 2 &&
      !this.scripts.isRunning &&
      this.session.status.txStatus === TxStatus.Idle
    ) {
      // A write on several shards outside a transaction runs inside one of the proxy's own, so a failure on any shard
      // changes nothing anywhere (PostgreSQL's single-statement atomicity): a script of one statement.
      this.scripts.open(1, true, true, types.includes(Frontend.Query));
    }
    const isOwnRun = this.scripts.isRunning || this.inserts.isRunning; // its writes follow on these servers
    const intent = this.servers.readIntent(target, types, frames, isOwnRun, this.block);
    // atomic_visibility: a REPEATABLE READ / SERIALIZABLE block's first statement takes one cut first (block-cut.ts).
    const cutFence =
      target.sessionStatement === null && !isOwnRun && intent === 'write'
        ? blockCutFence(fenceOf(this.session), this.block, this.router.settings)
        : null;
    const phaseTwo = this.session.phaseTwoCount;
    this.sending = target;
    // Nearly every request: straight to its servers, no closure made (waits are rare: visibility-waits.ts).
    if (cutFence === null && (phaseTwo === null || phaseTwo.pending === 0 || target.isSessionLevel))
      return this.acquireShards(shards, target, this.sendPending, true, intent);
    sendAfterWaits(this, shards, target, intent, cutFence, this.sendPending);
  }

  /**
   * Hold a server on each of `shards`, then `then()`; a checkout failure fails the request. Every request to shards
   * passes here, and here only are its participants recorded (TransactionBlock.participate): inside a transaction
   * block a shard it has not reached yet joins it first — the block's opening statements run there (swallowed) before
   * the request, so the shard is in the transaction with the client's isolation level, SET LOCALs and savepoints — and
   * the request's `effects` make the shards writers for the commit. `isJoining` false: a lookup of the proxy's own, no
   * participant.
   */
  acquireShards(
    shards: readonly number[],
    effects: RequestEffects,
    then: () => void,
    isJoining = true,
    intent: ReadIntent = 'write',
  ): void {
    if (isJoining && !this.block.canReach(shards)) {
      return this.failRequest(
        PgError.featureNotSupported(
          'this transaction has too many savepoints and SET LOCALs to bring another shard into it',
          'Release savepoints that are no longer needed, or reach every shard early in the transaction.',
        ),
      );
    }
    if (shards.length === 1 && this.servers.tryAcquireOne(shards[0], this, intent))
      return this.onAcquired(shards, effects, then, isJoining);
    acquireWaiting(this, this.scripts, { shards, effects, then, isJoining, intent }, this.onAcquired);
  }

  /** The request's servers are held: settings synced (session mode), new participants joined, then `then()`. */
  private readonly onAcquired = (
    shards: readonly number[],
    effects: RequestEffects,
    then: () => void,
    isJoining: boolean,
  ): void => {
    if (!this.session.isTransactionMode) {
      for (const shard of shards) this.servers.syncSettings(this.servers.at(shard));
    }
    if (isJoining) this.block.participate(shards, effects, this.sendSwallowedOn);
    then();
  };

  /**
   * Where a transaction-control statement or session setting runs (txn/transaction-block.ts decides): on shards, answered
   * by the proxy, or (COMMIT of a failed transaction on several shards) rolled back everywhere. Returns the target to
   * run, or null when the proxy answered the request itself.
   */
  private placeSessionStatement(
    target: BatchTarget,
    statement: StatementPlan,
    types: readonly number[],
    frames: readonly Buffer[],
  ): BatchTarget | null {
    const placement = this.block.place(statement, this.session.status.txStatus, () =>
      this.router.pickReadShard(),
    );
    switch (placement.kind) {
      case 'shards':
        return placement.shards === 'all' ? target : onShards(target, placement.shards);
      case 'answer':
        this.takeRequest();
        this.replyLocally(types, frames, placement.reply);
        return null;
      case 'rollback':
        this.takeRequest();
        this.servers.runOwn(placement.shards, placement.sql, this, (errors) => {
          for (const error of errors)
            this.log.warn({ error: error.toString('utf8', 5) }, 'ROLLBACK failed on a shard');
          this.replyLocally(types, frames, placement.reply);
        });
        return null;
    }
  }

  /** The replies to a request already taken off the batch, which the proxy answered itself. */
  private replyLocally(types: readonly number[], frames: readonly Buffer[], reply: LocalReply): void {
    for (let i = 0; i < types.length; i++)
      if (types[i] === Frontend.Parse) this.session.statements?.remember(frames[i]);
    this.output.write(localReplies(types, frames, { ...reply, withReady: !this.scripts.isRunning }));
    if (this.scripts.isRunning) return this.scripts.onStatementDone(reply.error != null);
    this.refreshStatus();
    this.onShardRequestDone();
  }

  /** The session's transaction status after a request (txn/transaction-block.ts), told to the session and returned. */
  refreshStatus(sawError = false): number {
    const status = this.block.refresh(sawError);
    this.session.status.tell(status);
    return status;
  }

  sendSharded(routed: BatchTarget): void {
    if (routed.kind === 'copyIn') return this.copyIn.start(routed);
    // A script statement's replies go through a fan-out (even on one shard): its ReadyForQuery is the proxy's to send;
    // so do those of an INSERT's query the proxy evaluates (collected, not sent).
    const target: BatchTarget =
      (this.scripts.isRunning || this.inserts.isRunning) && routed.kind === 'one'
        ? { ...routed, kind: 'many', shards: [routed.shard], spec: PASS_THROUGH_SPEC }
        : routed;
    const { types, frames, readyCount } = this.takeRequest();
    if (target.kind === 'one') {
      const server = this.servers.at(target.shard);
      server.attach(this);
      this.session.send.send(server, types, frames, readyCount);
      // In flight until its ReadyForQuery (onServerReady). Sent without Sync it owes none, and the next request may go
      // (a statement of the proxy's own still running there, BEGIN or SET, ends without telling: its reply is
      // swallowed).
      if (readyCount > 0 && server.pendingReady > 0) this.request.move(this.request.single(target.shard));
      this.openSegmentShard = this.session.send.hasOpenSegment ? target.shard : null;
      return;
    }
    this.openSegmentShard = null; // a fan-out request ends with Sync (cursors run to the end: asCursor)
    const isOwnRun = this.scripts.isRunning || this.inserts.isRunning;
    if (target.kind === 'split') return sendSplit(this, target, readyCount, isOwnRun);
    sendFanout(this, target, { types, frames, readyCount }, isOwnRun);
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
    // A streamed INSERT … SELECT counts its batches' tags itself (onInsertStreamDone holds its one tag instead).
    if (this.scripts.isHoldingTags && !this.inserts.isStreaming) fanout.heldTags = [];
    this.request.move({ kind: 'fanout', fanout });
    return fanout;
  }

  /** A statement of the proxy's own whose replies never reach the client. */
  private sendSwallowed(server: ServerConnection, sql: string): void {
    server.scanner.swallowNextUntilReady();
    server.sendAhead(query(sql), 1); // in one write with the request that follows it
  }

  /** SET / RESET of the request just answered: kept for the session and its servers when it succeeded outside a transaction. */
  private keepSettings(isKept: boolean): void {
    const router = this.router;
    if (!isKept) return router.dropPendingSettings();
    const changes = router.confirmSettings();
    if (changes.length === 0) return;
    for (const server of this.servers.byShard) {
      if (server !== null) for (const c of changes) applySettingChange(server.settings, c);
    }
  }

  /** The request being routed, taken off the batch (later pipelined requests stay queued). */
  takeRequest(): TakenRequest {
    return this.batch.takeFirst(this.requestLength);
  }

  /** A request that cannot run: its error (and ReadyForQuery, unless it is a script statement). */
  failRequest(err: PgError): void {
    if (!this.scripts.isRunning) return this.failBatch(err);
    this.inserts.restoreClientRequest();
    this.scripts.failStatement(err);
  }

  /** ORDER BY on collated text across shards: a shard of the fan-out (idle now) orders the key values (text-ranks.ts). */
  rankTexts(request: RankRequest, done: (ranks: Map<string, number> | PgError) => void): void {
    const server = this.servers.byShard.find((s) => s !== null && s.pendingReady === 0);
    if (server == null) return done(PgError.internal('no idle shard server to order text keys on'));
    rankTexts(server, request, this, done);
  }

  /** Where a fan-out's merged reply goes: the client, or a cursor run that keeps it as a portal. */
  private fanoutOwner(): FanoutOwner {
    const insert = this.inserts.fanoutOwner();
    if (insert !== null) return insert;
    return this.cursors.fanoutOwner() ?? this;
  }

  onFanoutDone(): void {
    const fanout = this.request.fanout;
    this.servers.endLoan('fanout'); // its servers answer the session again
    this.read?.release();
    const sawError = fanout?.sawError ?? false;
    this.copyIn.onFanoutDone(); // else: the client's copy data is dropped until its end
    if (this.scripts.isRunning) {
      if (fanout?.heldTags != null) this.scripts.holdTags(fanout.heldTags);
      return this.scripts.onStatementDone(sawError);
    }
    const wasInBlock = this.block.isOpen;
    const now = this.refreshStatus(sawError);
    if (!wasInBlock) this.keepSettings(!sawError && now === TxStatus.Idle);
    this.output.write(readyForQuery(now));
    this.onShardRequestDone();
  }

  /** A request finished: give servers back (transaction mode, all idle) and run the next queued request. */
  onShardRequestDone(): void {
    if (!this.request.isIdle) return;
    this.session.send.requestEnded();
    if (
      this.session.isTransactionMode &&
      this.session.status.txStatus === TxStatus.Idle &&
      !this.session.send.hasOpenSegment
    ) {
      this.servers.release();
    }
    if (!this.batch.isEmpty) this.dispatch();
  }

  /**
   * A request that cannot run: the error for it (only the request being routed), then on to the requests the client
   * pipelined after it.
   */
  private failBatch(err: PgError): void {
    this.inserts.restoreClientRequest();
    this.cursors.restoreClientRequest();
    const endsWithSync =
      this.requestLength > 0 && this.batch.typeAt(this.requestLength - 1) === Frontend.Sync;
    this.session.ending.failBatch(err, this.requestLength);
    if (endsWithSync) this.syncOpenSegments();
    this.onShardRequestDone();
  }

  /**
   * The proxy answered the client's Sync itself (a request it refused, or frames it skipped after an error): a shard
   * server still holding an extended-protocol segment — a portal, or after an error PostgreSQL's "skip until Sync" —
   * gets that Sync too, as it would have without the proxy in between. Otherwise the shard would drop the next
   * request's messages and answer only its Sync, which a statement of the proxy's own in front would swallow: a hang.
   */
  syncOpenSegments(): void {
    const open = this.servers.openSegmentShards();
    if (open.length === 0) return;
    this.openSegmentShard = null;
    this.servers.runOwn(open, SYNC, this, () => this.onShardRequestDone());
  }

  // --- ReplySink: called by the shard servers while they answer this session directly -----------------------

  writeToClient(buf: Buffer): boolean {
    return this.output.write(buf);
  }

  hasPendingWrites(): boolean {
    return this.output.hasPendingWrites();
  }

  onClientDrain(resume: () => void): void {
    this.output.onDrain(resume);
  }

  onServerReady(server: ServerConnection): void {
    if (server.pendingReady !== 0) return;
    const single = this.request.singleShard;
    if (single !== null && this.servers.byShard[single] === server) this.request.end('single');
    this.refreshStatus();
    this.onShardRequestDone();
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
