// The end of a sharded request, the engine's end-request phase: the transaction status the client is told (from the
// transaction block, txn/transaction-block.ts `refresh`), the request's SET / RESET kept for the session and its
// servers or dropped, a fan-out's one ReadyForQuery, the servers given back (transaction mode, all idle) and the next
// queued request started — or, for a request that cannot run, its error, the rest of a script skipped and the Sync a
// shard in the middle of a segment is owed. A statement of a script ends into the script (script-run.ts), which comes
// back here when the script is over. Which run module a request ends into is read from the request state's two slots
// (request-state.ts): a request with neither (nearly every one) calls into none of them. Made once per session; the run
// modules reach it as DispatchHost's `end`, and nothing here allocates per request.
import { Frontend, TxStatus } from '../protocol/codes.js';
import { readyForQuery, SYNC } from '../protocol/messages.js';
import type { PgError } from '../errors/pg-error.js';
import { applySettingChange } from '../frontend/session-settings.js';
import type { CopyInRun } from './copy-in-run.js';
import type { CursorRequests } from './cursor-requests.js';
import type { DispatchHost, RequestEnding } from './dispatch-host.js';
import type { InsertRun } from './insert-run.js';
import type { ScriptRunner } from './script-run.js';

/** The run modules a request can end into (each called only when the request state's slot holds its run). */
export interface EndingRuns {
  readonly scripts: ScriptRunner;
  readonly inserts: InsertRun;
  readonly cursors: CursorRequests;
  readonly copyIn: CopyInRun;
}

export class RequestEnd implements RequestEnding {
  private readonly host: DispatchHost;
  private readonly runs: EndingRuns;

  constructor(host: DispatchHost, runs: EndingRuns) {
    this.host = host;
    this.runs = runs;
  }

  /** The session's transaction status after a request (txn/transaction-block.ts), told to the session and returned. */
  refreshStatus(sawError = false): number {
    const host = this.host;
    const status = host.block.refresh(sawError);
    host.session.status.tell(status);
    return status;
  }

  /** A request finished: give servers back (transaction mode, all idle) and run the next queued request. */
  requestDone(): void {
    const host = this.host;
    if (!host.request.isIdle) return;
    const session = host.session;
    session.send.requestEnded();
    if (
      session.isTransactionMode &&
      session.status.txStatus === TxStatus.Idle &&
      !session.send.hasOpenSegment
    ) {
      host.servers.release();
    }
    if (!host.batch.isEmpty) host.dispatch();
  }

  /**
   * Every shard of the client's fan-out has answered: its servers answer the session again; a script statement ends
   * into its script, else the status is told, the request's settings kept (outside a block, when it succeeded) and
   * the one ReadyForQuery written.
   */
  fanoutDone(): void {
    const { host, runs } = this;
    const request = host.request;
    const fanout = request.fanout;
    host.servers.endLoan('fanout');
    host.read?.release();
    const sawError = fanout?.sawError ?? false;
    const copy = request.copyIn;
    if (copy !== null) runs.copyIn.onFanoutDone(copy); // else: the client's copy data is dropped until its end
    if (request.script !== null) {
      if (fanout?.heldTags != null) runs.scripts.holdTags(fanout.heldTags);
      return runs.scripts.onStatementDone(sawError);
    }
    const wasInBlock = host.block.isOpen;
    const now = this.refreshStatus(sawError);
    if (!wasInBlock) this.keepSettings(!sawError && now === TxStatus.Idle);
    host.session.output.write(readyForQuery(now));
    this.requestDone();
  }

  /** A request that cannot run: its error (and ReadyForQuery, unless it is a script statement). */
  failRequest(err: PgError): void {
    const { host, runs } = this;
    if (host.request.script === null) return this.failBatch(err);
    this.restoreClientRequest();
    runs.scripts.failStatement(err);
  }

  /**
   * The proxy answered the client's Sync itself (a request it refused, or frames it skipped after an error): a shard
   * server still holding an extended-protocol segment — a portal, or after an error PostgreSQL's "skip until Sync" —
   * gets that Sync too, as it would have without the proxy in between. Otherwise the shard would drop the next
   * request's messages and answer only its Sync, which a statement of the proxy's own in front would swallow: a hang.
   */
  syncOpenSegments(): void {
    const host = this.host;
    const open = host.servers.openSegmentShards();
    if (open.length === 0) return;
    host.openSegmentShard = null;
    host.servers.runOwn(open, SYNC, host, () => this.requestDone());
  }

  /** SET / RESET of the request just answered: kept for the session and its servers when it succeeded outside a transaction. */
  private keepSettings(isKept: boolean): void {
    const { router, servers } = this.host;
    if (!isKept) return router.dropPendingSettings();
    const changes = router.confirmSettings();
    if (changes.length === 0) return;
    for (const server of servers.byShard) {
      if (server !== null) for (const c of changes) applySettingChange(server.settings, c);
    }
  }

  /**
   * A request that cannot run: the error for it (only the request being routed), then on to the requests the client
   * pipelined after it.
   */
  private failBatch(err: PgError): void {
    const host = this.host;
    this.restoreClientRequest();
    const length = host.requestLength;
    const endsWithSync = length > 0 && host.batch.typeAt(length - 1) === Frontend.Sync;
    host.session.ending.failBatch(err, length);
    if (endsWithSync) this.syncOpenSegments();
    this.requestDone();
  }

  /**
   * A request refused while the proxy ran one of its own in its place (an INSERT … SELECT's query or stream step, a
   * cursor rewritten for the shards): the client's own request is put back to be the one answered.
   */
  private restoreClientRequest(): void {
    switch (this.host.request.run.kind) {
      case 'insertSource':
      case 'insertStream':
        return this.runs.inserts.restoreClientRequest();
      case 'cursorRun':
        return this.runs.cursors.restoreClientRequest();
    }
  }
}
