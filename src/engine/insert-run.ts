// INSERT … SELECT whose rows the proxy evaluates, driven for the sharded dispatch: the query stands in for the client's
// request and is routed like any SELECT; its rows are then collected (insert-source.ts) and written into the INSERT,
// or — when they need no merge — streamed batch by batch (insert-stream.ts), inside the client's transaction or one of
// the proxy's own (a script of one statement, script-run.ts). A refusal on the way answers the client's own request.
import { TxStatus } from '../protocol/codes.js';
import { readyForQuery } from '../protocol/messages.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { PASS_THROUGH_SPEC } from '../execute/merge-spec.js';
import { splitInsertSelect } from '../router/insert-select.js';
import { NO_EFFECTS } from '../txn/transaction-block.js';
import type { BatchTarget } from '../frontend/batch-target.js';
import { putBackClientRequest, type DispatchHost } from './dispatch-host.js';
import { InsertSourceRun, sourceRequest, type InsertSourceOwner } from './insert-source.js';
import { InsertStreamRun, isStreamableSource, type InsertStreamOwner } from './insert-stream.js';
import { withStatementText, type RewrittenRequest } from '../frontend/request-rewrite.js';
import type { ScriptRunner } from './script-run.js';
import type { SessionRouter } from '../frontend/session-router.js';

const SOURCE_ROWS = 'the rows of an INSERT … SELECT';

/**
 * The INSERT … SELECT in flight, if any: its query the proxy evaluates (`insertSource`: its rows are collected,
 * onInsertSourceDone) or its rows streamed batch by batch (`insertStream`, insert-stream.ts: every step's replies go to
 * it) — held in the request state's run slot (request-state.ts `moveRun`).
 */
export class InsertRun implements InsertSourceOwner, InsertStreamOwner {
  private readonly host: DispatchHost;
  private readonly scripts: ScriptRunner;

  constructor(host: DispatchHost, scripts: ScriptRunner) {
    this.host = host;
    this.scripts = scripts;
  }

  /**
   * An INSERT … SELECT whose rows the proxy must evaluate (insert-source.ts): its query replaces the client's request
   * at the head of the batch and is routed like any SELECT; its rows come back to onInsertSourceDone.
   */
  evaluate(text: string, types: readonly number[], frames: readonly Buffer[]): void {
    const host = this.host;
    if (host.learnedFor === SOURCE_ROWS) {
      host.learnedFor = null;
      return host.end.failRequest(
        PgError.internal(`${SOURCE_ROWS} were written into it, and routing still needs them`),
      );
    }
    const parts = splitInsertSelect(text);
    const statement = host.router.requestStatement(types, frames);
    if (parts === null || statement === null) {
      return host.end.failRequest(
        PgError.featureNotSupported(
          'this INSERT … SELECT cannot be routed: its rows come from a query, and its WITH clause writes',
          'Run the WITH clause’s statement first, then INSERT … SELECT from its result.',
        ),
      );
    }
    const request = sourceRequest(statement, parts, frames);
    const client = host.batch.takeFirst(host.requestLength);
    host.batch.unshift(request.types, request.frames);
    host.requestLength = request.types.length;
    // The run is the owner of the query's fan-out (its rows collected, not sent).
    const run = new InsertSourceRun(this, host, client, statement, parts);
    run.onOverflow = () => host.servers.cancel(host.log); // its rows are dropped: stop the shards early
    host.request.moveRun({ kind: 'insertSource', run });
    host.dispatch(); // routes the query
  }

  /** The query of an INSERT … SELECT has run: the INSERT, with its rows written in, is routed next. */
  onInsertSourceDone(run: InsertSourceRun): void {
    const host = this.host;
    host.servers.endLoan('fanout');
    host.request.endRun('insertSource');
    const outcome = run.outcome();
    if (outcome.kind === 'error') {
      host.end.refreshStatus(true);
      if (outcome.error.code === SqlState.ProgramLimitExceeded)
        host.log.warn({ code: outcome.error.code }, outcome.error.message);
      putBackClientRequest(host, run);
      return host.end.failRequest(outcome.error);
    }
    host.end.refreshStatus();
    const { statement } = run;
    const rebuilt = withStatementText(
      run.clientTypes,
      run.clientFrames,
      statement,
      outcome.sql,
      run.insertParamTypes(),
    );
    if (rebuilt.clientParse !== null) host.session.statements?.remember(rebuilt.clientParse);
    host.batch.unshift(rebuilt.types, rebuilt.frames);
    host.learnedFor = SOURCE_ROWS;
    host.end.requestDone(); // routes the INSERT
  }

  /** A request refused while an INSERT's query stood in for it: the client's own request is the one refused. */
  restoreClientRequest(): void {
    const host = this.host;
    const stream = host.request.insertStream;
    if (stream !== null) {
      // The request in front is one of the stream's steps, or a batch's INSERT.
      host.request.endRun('insertStream');
      host.batch.takeFirst(host.requestLength);
      return putBackClientRequest(host, stream);
    }
    const run = host.request.insertSource;
    if (run === null) return;
    host.request.endRun('insertSource');
    host.batch.takeFirst(host.requestLength);
    putBackClientRequest(host, run);
  }

  /**
   * The query of an INSERT … SELECT the proxy evaluates has been routed: when its rows need no merge across shards it
   * is streamed instead of collected (insert-stream.ts) — inside the client's transaction, or one of the proxy's own
   * opened here (two-phase with two_phase_commit_auto, as for any single write on several shards). False: collect.
   */
  streamIfPossible(target: BatchTarget): boolean {
    const host = this.host;
    const held = host.request.insertSource as InsertSourceRun;
    if (!isStreamableSource(target)) return false;
    const shards = target.kind === 'one' ? [target.shard] : (target as { shards: readonly number[] }).shards;
    host.batch.takeFirst(host.requestLength); // the query as a SELECT: the stream declares it as a cursor instead
    const batchRows = host.session.proxy.general().insertSelectBatchRows;
    const client = { types: held.clientTypes, frames: held.clientFrames };
    const stream = new InsertStreamRun(this, host, client, held.statement, held.parts, batchRows);
    host.request.moveRun({ kind: 'insertStream', run: stream }); // in place of the source
    // The client's statement exists from here on, whatever its execution does (as after PostgreSQL's Parse).
    const { parseIndex } = held.statement;
    if (parseIndex >= 0) host.session.statements?.remember(held.clientFrames[parseIndex]);
    if (host.request.script === null && host.session.status.txStatus === TxStatus.Idle) {
      this.scripts.open(1, true, true, held.statement.isQuery);
      host.end.refreshStatus(); // in the block now: servers are kept between the steps
    }
    stream.start(shards);
    return true;
  }

  // --- InsertStreamOwner / InsertSourceOwner ------------------------------------------------------------------

  /** A step of the streamed INSERT … SELECT (its cursor's DECLARE / FETCH / CLOSE) on `shards`, not routed. */
  runInsertStreamStep(shards: readonly number[], types: number[], frames: Buffer[]): void {
    const host = this.host;
    if (host.session.status.state === 'closed') return;
    host.batch.unshift(types, frames);
    host.requestLength = types.length;
    host.hold.acquire(shards, NO_EFFECTS, () => {
      const request = host.takeRequest();
      const fanout = host.startFanout(shards.length, PASS_THROUGH_SPEC, false);
      shards.forEach((shard, i) => {
        const server = host.servers.lend(shard, fanout.sinkFor(i));
        host.session.send.send(server, request.types, request.frames, request.readyCount);
      });
    });
  }

  /** The session's routing (a streamed INSERT … SELECT splits its batches by shard with it). */
  get routing(): SessionRouter {
    return this.host.router;
  }

  /** A batch of the streamed INSERT … SELECT split by shard already: run as the split INSERT it is. */
  runInsertStreamSplit(
    target: Extract<BatchTarget, { kind: 'split' }>,
    request: { types: number[]; frames: Buffer[] },
  ): void {
    const host = this.host;
    if (host.session.status.state === 'closed') return;
    host.batch.unshift(request.types, request.frames); // stands for the batch until sent (or refused)
    host.requestLength = request.types.length;
    host.hold.acquire(target.shards, target, () => host.route.send(target));
  }

  /** A batch of the streamed INSERT … SELECT: its INSERT is routed as the next request (split by shard). */
  routeInsertStreamBatch(request: RewrittenRequest): void {
    const host = this.host;
    if (host.session.status.state === 'closed') return;
    host.batch.unshift(request.types, request.frames);
    host.dispatch();
  }

  onInsertStreamStepDone(): void {
    this.host.servers.endLoan('fanout');
  }

  /** The streamed INSERT … SELECT has ended: its tag (held until the commit of the proxy's transaction), then on. */
  onInsertStreamDone(sawError: boolean, tag: Buffer | null): void {
    const host = this.host;
    host.request.dropRun('insertStream');
    if (host.session.status.state === 'closed') return;
    const scripts = this.scripts;
    if (host.request.script !== null) {
      if (tag !== null) {
        if (scripts.isHoldingTags) scripts.holdTags([tag]);
        else host.session.output.write(tag);
      }
      return scripts.onStatementDone(sawError);
    }
    if (tag !== null) host.session.output.write(tag);
    host.session.output.write(readyForQuery(host.end.refreshStatus(sawError)));
    host.end.requestDone();
  }
}
