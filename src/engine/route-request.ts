// The engine's route-request phase: the request at the front of the batch (up to its Sync or Query) taken, routed
// (session-router.ts), and placed — a request for the proxy's cursor portals answered from them, a detour to learn
// something first or to run as a script (route-lookups.ts), a request in a failed transaction refused, transaction
// control and settings placed by the transaction block (answered by the proxy, or sent to the shards it says), a COMMIT
// of a block on several shards committed by the proxy (commit-run.ts), a write on several shards outside BEGIN wrapped
// in a script of one statement, a wait for atomic visibility where needed (visibility-waits.ts) — then, its servers
// held (hold-servers.ts), handed to the phase for its kind: one shard (run-single.ts), several (fanout.ts), COPY in
// (copy-in-run.ts). Which run module the request concerns is read from the request state (request-state.ts: the
// proxy's transaction and the request's run) and the session's proxy portals: a request with none of them (nearly every
// one) calls into no run module. Made once per session: the common path makes no closure and allocates nothing of its
// own.
import { mayUseReplica } from '../backend/replica-set.js';
import { Frontend, TxStatus } from '../protocol/codes.js';
import { executeLimit } from '../protocol/frontend-fields.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { BROADCAST_SPEC, PASS_THROUGH_SPEC } from '../execute/merge-spec.js';
import type { StatementPlan } from '../router/plan.js';
import type { BatchTarget } from '../frontend/batch-target.js';
import type { RouteOutcome } from '../frontend/session-router.js';
import { fenceOf } from '../frontend/sharded-session.js';
import { blockCutFence } from './block-cut.js';
import { commitAcrossShards } from './commit-run.js';
import type { CopyInRun } from './copy-in-run.js';
import type { CursorRequests } from './cursor-requests.js';
import type { DispatchHost, RequestRouting } from './dispatch-host.js';
import { sendFanout, sendSplit } from './fanout.js';
import type { InsertRun } from './insert-run.js';
import { localReplies, type LocalReply } from './local-replies.js';
import type { ProxyPortals } from './proxy-portal.js';
import { takeDetour } from './route-lookups.js';
import { runOnOneShard } from './run-single.js';
import type { ScriptRunner } from './script-run.js';
import { sendAfterWaits } from './visibility-waits.js';

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

/** Whether a fan-out request must run as a cursor: a row-limited Execute, or no Sync (Flush only) to end it. */
export function isCursorRequest(types: readonly number[], frames: readonly Buffer[]): boolean {
  let hasSync = false;
  for (let i = 0; i < types.length; i++) {
    const t = types[i];
    if (t === Frontend.Sync || t === Frontend.Query || t === Frontend.FunctionCall) hasSync = true;
    else if (t === Frontend.Execute && executeLimit(frames[i]) > 0) return true;
  }
  return !hasSync;
}

/**
 * The run modules routing hands a request to, each called only when the request state's slot holds its run or the
 * request starts one; and the session's proxy portals (a Map: `size` is read without a call into cursor-requests.ts).
 */
export interface RouteRuns {
  readonly scripts: ScriptRunner;
  readonly inserts: InsertRun;
  readonly cursors: CursorRequests;
  readonly copyIn: CopyInRun;
  readonly portals: ProxyPortals;
}

export class RequestRoute implements RequestRouting {
  private readonly host: DispatchHost;
  private readonly runs: RouteRuns;
  /** The routed request on its way to its servers (one request at a time): what `sendPending` sends. */
  private sending: BatchTarget | null = null;
  /** Send the routed request once its servers are held (made once: no closure per request). */
  private readonly sendPending = (): void => this.send(this.sending as BatchTarget);
  /** After the proxy's commit of the client's COMMIT: the script's next statement, or the next request. */
  private readonly afterOwnCommit = (sawError: boolean): void => {
    if (this.host.request.script !== null) return this.runs.scripts.onStatementDone(sawError);
    this.host.end.refreshStatus();
    this.host.end.requestDone();
  };

  constructor(host: DispatchHost, runs: RouteRuns) {
    this.host = host;
    this.runs = runs;
  }

  /** Route the request at the front of the batch and start it (the dispatch saw it whole and nothing else running). */
  next(): void {
    const { host, runs } = this;
    const { router, batch, session, request } = host;
    const { cursors, scripts, inserts } = runs;
    // One request at a time: pipelined requests may each need other shards, and their replies must stay in order.
    const n = batch.firstRequestLength();
    host.requestLength = n;
    let { types, frames } = batch.peek(n);
    if (runs.portals.size !== 0 && cursors.answerFromPortals(types, frames)) return;
    let outcome: RouteOutcome;
    request.dropRun('cursorRun'); // a cursor run left over: the new request has none yet
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
          ({ types, frames } = cursors.asCursor(types, frames, outcome.mayWrite));
          outcome = router.route(types, frames); // the same statement, executed to the end on each shard
        }
      }
    } catch (err) {
      return host.end.failRequest(err instanceof PgError ? err : PgError.internal((err as Error).message));
    }
    // Something to learn first, or statements on different shards: route-lookups.ts.
    if (outcome.kind === 'learn' || outcome.kind === 'mixed')
      return takeDetour(host, scripts, inserts, outcome, n, types, frames);
    let target: BatchTarget = outcome;
    host.learnedFor = null;
    if (target.kind === 'one' && host.openSegmentShard !== null && !namesStatement(types)) {
      // Execute / Describe / Close of the open portal, Flush, Sync: to the shard holding the segment (not any shard).
      target = { ...target, shard: host.openSegmentShard };
    }
    if (
      session.status.txStatus === TxStatus.Failed &&
      (!target.isSessionLevel || !host.block.canRunWhileFailed(target.sessionStatement))
    ) {
      return host.end.failRequest(
        new PgError(
          'ERROR',
          SqlState.InFailedSqlTransaction,
          'current transaction is aborted, commands ignored until end of transaction block',
        ),
      );
    }
    if (request.run.kind === 'insertSource' && inserts.streamIfPossible(target)) return;
    if (target.sessionStatement !== null) {
      const placed = this.placeSessionStatement(target, target.sessionStatement, types, frames);
      if (placed === null) return; // answered by the proxy
      target = placed;
    }
    if (
      target.isCommit &&
      session.status.txStatus === TxStatus.InTransaction &&
      host.block.reachedCount >= 2
    ) {
      const isChained = target.sessionStatement?.transaction?.chain === true;
      return commitAcrossShards(host, isChained, request.script !== null, this.afterOwnCommit);
    }
    const shards = target.kind === 'one' ? host.servers.oneShard(target.shard) : target.shards;
    if (
      target.isMultiShardWrite &&
      shards.length >= 2 &&
      request.script === null &&
      session.status.txStatus === TxStatus.Idle
    ) {
      // A write on several shards outside a transaction runs inside one of the proxy's own, so a failure on any shard
      // changes nothing anywhere (PostgreSQL's single-statement atomicity): a script of one statement.
      scripts.open(1, true, true, types.includes(Frontend.Query));
    }
    const isOwnRun = request.isOwnRun; // its writes follow on these servers
    const intent = host.servers.readIntent(target, types, frames, isOwnRun, host.block);
    // atomic_visibility: a REPEATABLE READ / SERIALIZABLE block's first statement takes one cut first (block-cut.ts).
    const cutFence =
      target.sessionStatement === null && !isOwnRun && !mayUseReplica(intent)
        ? blockCutFence(fenceOf(session), host.block, router.settings)
        : null;
    const phaseTwo = session.phaseTwoCount;
    this.sending = target;
    // Nearly every request: straight to its servers, no closure made (waits are rare: visibility-waits.ts).
    if (cutFence === null && (phaseTwo === null || phaseTwo.pending === 0 || target.isSessionLevel))
      return host.hold.acquire(shards, target, this.sendPending, true, intent);
    sendAfterWaits(host, shards, target, intent, cutFence, this.sendPending);
  }

  /** Send the routed request, its servers held, to the phase for its kind: COPY in, one shard, a split, a fan-out. */
  send(routed: BatchTarget): void {
    const { host, runs } = this;
    if (routed.kind === 'copyIn') return runs.copyIn.start(routed);
    const isOwnRun = host.request.isOwnRun;
    // A script statement's replies go through a fan-out (even on one shard): its ReadyForQuery is the proxy's to send;
    // so do those of an INSERT's query the proxy evaluates (collected, not sent).
    const target: BatchTarget =
      isOwnRun && routed.kind === 'one'
        ? { ...routed, kind: 'many', shards: [routed.shard], spec: PASS_THROUGH_SPEC }
        : routed;
    const taken = host.takeRequest();
    if (target.kind === 'one') return runOnOneShard(host, target.shard, taken);
    host.openSegmentShard = null; // a fan-out request ends with Sync (cursors run to the end: asCursor)
    if (target.kind === 'split') return sendSplit(host, target, taken.readyCount, isOwnRun);
    sendFanout(host, target, taken, isOwnRun);
  }

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
    const host = this.host;
    const placement = host.block.place(statement, host.session.status.txStatus, () =>
      host.router.pickReadShard(),
    );
    switch (placement.kind) {
      case 'shards':
        return placement.shards === 'all' ? target : onShards(target, placement.shards);
      case 'answer':
        host.takeRequest();
        this.replyLocally(types, frames, placement.reply);
        return null;
      case 'rollback':
        host.takeRequest();
        host.servers.runOwn(placement.shards, placement.sql, host, (errors) => {
          for (const error of errors)
            host.log.warn({ error: error.toString('utf8', 5) }, 'ROLLBACK failed on a shard');
          this.replyLocally(types, frames, placement.reply);
        });
        return null;
    }
  }

  /** The replies to a request already taken off the batch, which the proxy answered itself. */
  private replyLocally(types: readonly number[], frames: readonly Buffer[], reply: LocalReply): void {
    const { host, runs } = this;
    const session = host.session;
    for (let i = 0; i < types.length; i++)
      if (types[i] === Frontend.Parse) session.statements?.remember(frames[i]);
    const inScript = host.request.script !== null;
    session.output.write(localReplies(types, frames, { ...reply, withReady: !inScript }));
    if (inScript) return runs.scripts.onStatementDone(reply.error != null);
    host.end.refreshStatus();
    host.end.requestDone();
  }
}
