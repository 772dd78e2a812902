// Cursors across shards for the sharded dispatch: a fan-out request executed with a row limit, or without Sync, runs
// to the end on every shard (its merged reply collected by a CursorRun, proxy-portal.ts) and the proxy keeps the rows
// as a portal of its own; later Execute / Describe / Close of that portal are answered from it, never routed. The
// dispatch calls in here only for such a request: when the session holds portals (`ProxyPortals`, which it owns and
// routing reads), when routing makes a fan-out a cursor, and for a cursor run in the request state's run slot.
import { Buffer } from 'node:buffer';
import { Backend, Frontend, TxStatus } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { putBackClientRequest, type DispatchHost } from './dispatch-host.js';
import { CursorRun, cursorShardRequest, ProxyPortals, type CursorRunOwner } from './proxy-portal.js';
import type { ScriptRunner } from './script-run.js';

/**
 * The session's cursor portals, and the cursor run in flight: a cursor's fan-out whose merged reply is collected, not
 * sent (onCursorRunDone) — held in the request state's run slot (request-state.ts `moveRun`).
 */
export class CursorRequests implements CursorRunOwner {
  private readonly host: DispatchHost;
  /** Cursors across shards the client has open: the merged rows the proxy holds for later Executes, by portal. */
  private readonly portals: ProxyPortals;
  /** A script's statement answered from the portals ends into its script. */
  private readonly scripts: ScriptRunner;

  constructor(host: DispatchHost, portals: ProxyPortals, scripts: ScriptRunner) {
    this.host = host;
    this.portals = portals;
    this.scripts = scripts;
  }

  /**
   * A request only for the proxy's portals (Execute / Describe / Close, Flush, Sync): answered from them (true).
   * Else a portal the request binds again is forgotten, and the request is routed. A statement of a script (an
   * extended batch's Execute of a portal, cut out by extended-script.ts and ended by the proxy's Sync) gets no
   * ReadyForQuery for that Sync and ends into its script, which answers once at its end, as PostgreSQL answers the
   * batch's one Sync.
   */
  answerFromPortals(types: readonly number[], frames: readonly Buffer[]): boolean {
    const host = this.host;
    const status = host.session.status.txStatus;
    const inScript = host.request.script !== null;
    // Failed transaction: routed, and refused there as in a failed transaction.
    const replies =
      status === TxStatus.Failed ? null : this.portals.answer(types, frames, inScript ? null : status);
    if (replies === null) {
      this.portals.forgetRebound(types, frames);
      return false;
    }
    host.takeRequest();
    host.session.output.write(Buffer.concat(replies));
    if (inScript) this.scripts.onStatementDone(replies.some((r) => r[0] === Backend.ErrorResponse));
    else host.end.requestDone();
    return true;
  }

  /**
   * A fan-out request executed with a row limit, or without Sync: the shards run it to the end (proxy-portal.ts) and
   * the proxy keeps the merged rows as a portal. Returns the request the shards run (it replaces the client's in the
   * batch); throws 0A000 when it cannot run that way.
   */
  asCursor(
    types: readonly number[],
    frames: readonly Buffer[],
    mayWrite: boolean,
  ): { types: number[]; frames: Buffer[] } {
    const host = this.host;
    const hint =
      'Add the sharding key so the statement runs on one shard, or fetch all rows at once with Sync.';
    if (mayWrite) {
      throw PgError.featureNotSupported(
        'a row-limited Execute (cursor) of a statement that writes on several shards is not supported',
        hint,
      );
    }
    const shard = cursorShardRequest(types, frames);
    if (shard === null) {
      throw PgError.featureNotSupported(
        'a request on several shards without Sync must hold exactly one Execute (a cursor)',
        hint,
      );
    }
    const original = host.batch.takeFirst(host.requestLength);
    host.batch.unshift(shard.types, shard.frames);
    host.requestLength = shard.types.length;
    // The run is the owner of the fan-out that follows (its merged reply collected, not sent).
    const run = new CursorRun(this, host, original.types, original.frames);
    run.onOverflow = () => host.servers.cancel(host.log); // its rows are dropped: stop the shards early
    host.request.moveRun({ kind: 'cursorRun', run });
    return shard;
  }

  /**
   * A cursor request refused after it was rewritten for the shards: the client's own frames are the ones answered
   * (no Sync of the proxy's: a client that sent only Flush gets no ReadyForQuery, and its frames up to Sync are
   * skipped).
   */
  restoreClientRequest(): void {
    const run = this.host.request.cursorRun;
    if (run === null) return;
    this.host.request.endRun('cursorRun');
    this.host.batch.takeFirst(this.host.requestLength);
    putBackClientRequest(this.host, run);
  }

  /** A cursor's fan-out has finished: the client gets its first rows (and the portal is kept for the rest). */
  onCursorRunDone(run: CursorRun, status: number): void {
    const host = this.host;
    host.servers.endLoan('fanout');
    host.request.endRun('cursorRun');
    const { replies, portal, failed } = run.replies();
    host.end.refreshStatus(failed || status === TxStatus.Failed);
    if (portal !== null) this.portals.set(portal.name, portal.portal);
    if (run.clientTypes[run.clientTypes.length - 1] === Frontend.Sync)
      replies.push(this.portals.syncReply(host.session.status.txStatus));
    else if (failed) host.session.status.isSkippingToSync = true;
    if (run.overflow !== null) host.log.warn({ code: run.overflow.code }, run.overflow.message);
    host.session.output.write(Buffer.concat(replies));
    host.end.requestDone();
  }
}
