// Scripts: statements the sharded dispatch runs one request at a time, with one ReadyForQuery at the end — a
// multi-statement simple Query or an extended batch whose statements need different shards, or one write on several
// shards outside BEGIN — outside a client transaction inside one of the proxy's own (committed in commit-run.ts, or
// rolled back at the first failure), as PostgreSQL runs a multi-statement Query as one implicit transaction.
import { Frontend, TxStatus } from '../protocol/codes.js';
import { query, readyForQuery } from '../protocol/messages.js';
import type { PgError } from '../errors/pg-error.js';
import { splitStatements } from './extended-script.js';
import { runCommit } from './commit-run.js';
import type { DispatchHost } from './dispatch-host.js';
import type { ScriptRun } from './request-state.js';

/**
 * The dispatch's script, if one runs: started, fed each statement's end, and finished here. The script itself is the
 * request state's transaction slot (request-state.ts `moveTransaction`), not a field of this class: the dispatch reads
 * that slot and calls in here only when it holds a script (or to open one).
 */
export class ScriptRunner {
  private readonly host: DispatchHost;
  /** After the proxy's own commit of a script: on to the next request (the script is over by then). */
  private readonly afterCommit = (): void => {
    this.host.end.refreshStatus();
    this.host.end.requestDone();
  };

  constructor(host: DispatchHost) {
    this.host = host;
  }

  /**
   * The statement now running is the last of an implicit script sent as a simple Query: its command tags are held
   * until the commit (PostgreSQL reports that tag only once its implicit transaction committed; extended protocol:
   * the tag comes at Execute, the commit at Sync).
   */
  get isHoldingTags(): boolean {
    const script = this.host.request.script;
    return script !== null && script.isImplicit && script.isQuery && script.remaining === 1;
  }

  /** Tags of the last statement, written once the commit succeeded. */
  holdTags(tags: readonly Buffer[]): void {
    this.host.request.script?.heldTags.push(...tags);
  }

  /**
   * Run a multi-statement simple Query whose statements need different shards statement by statement, with one
   * ReadyForQuery at the end. Outside a transaction the statements run in one of the proxy's own (BEGIN on every
   * shard first; COMMIT — two-phase with two_phase_commit_auto — or ROLLBACK after), as PostgreSQL runs such a Query
   * as one implicit transaction. False when the Query holds transaction control or COPY (then it is refused).
   */
  startQuery(frame: Buffer): boolean {
    const host = this.host;
    if (host.session.status.txStatus === TxStatus.Failed) return false;
    const statements = host.router.scriptStatements(frame.toString('utf8', 5, frame.length - 1));
    if (!statements.isRunnable) return false;
    // With BEGIN / COMMIT inside, each statement runs as if sent alone (the client's transaction control decides).
    const isImplicit = host.session.status.txStatus === TxStatus.Idle && !statements.hasTransactionControl;
    host.takeRequest();
    host.batch.unshift(
      statements.texts.map(() => Frontend.Query),
      statements.texts.map((text) => query(text)),
    );
    this.open(statements.texts.length, isImplicit, false, true);
    host.dispatch();
    return true;
  }

  /**
   * Run an extended-protocol request whose statements need different shards (a batch: several Parse/Bind/Execute
   * before one Sync) statement by statement, as a script: one implicit transaction outside a block (committed, or
   * rolled back at the first error, which skips the rest as PostgreSQL skips to Sync), one ReadyForQuery at the end.
   */
  startExtended(types: readonly number[], frames: readonly Buffer[]): void {
    const host = this.host;
    const statements = splitStatements(types, frames);
    const isImplicit =
      host.session.status.txStatus === TxStatus.Idle && !host.router.hasTransactionControl(types, frames);
    host.takeRequest();
    for (let i = statements.length - 1; i >= 0; i--)
      host.batch.unshift(statements[i].types, statements[i].frames);
    this.open(statements.length, isImplicit, false, false);
    host.dispatch();
  }

  /**
   * Run the first `remaining` requests of the batch as a script; `isImplicit`: inside a transaction of the proxy's
   * own — a block each shard joins when a statement first needs it, ended in finish.
   */
  open(remaining: number, isImplicit: boolean, isSingleWrite: boolean, isQuery: boolean): void {
    const script: ScriptRun = {
      remaining,
      isImplicit,
      isSingleWrite,
      isQuery,
      hasFailed: false,
      heldTags: [],
    };
    this.host.request.moveTransaction({ kind: 'script', script });
    if (isImplicit) this.host.block.openImplicit();
  }

  /** A statement of the script has been answered (`sawError`: with an error): the next one, or the end. */
  onStatementDone(sawError: boolean): void {
    const script = this.host.request.script as ScriptRun;
    script.remaining--;
    const status = this.host.end.refreshStatus(sawError);
    if (sawError || status === TxStatus.Failed) script.hasFailed = true;
    if (!script.hasFailed && script.remaining > 0) return this.host.end.requestDone(); // runs the next statement
    this.finish(script);
  }

  /** A statement of the script that cannot run: its error, and the script ends (the rest skipped). */
  failStatement(err: PgError): void {
    const host = this.host;
    const script = this.host.request.script as ScriptRun;
    host.log.warn({ code: err.code }, err.message);
    host.takeRequest();
    host.session.output.write(err.toBuffer());
    script.remaining--;
    script.hasFailed = true;
    this.finish(script);
  }

  /** After the last statement (or the first failure): skip the rest, end the implicit transaction, ReadyForQuery. */
  private finish(script: ScriptRun): void {
    const host = this.host;
    host.request.endScript();
    // The statements not run: each is one request (a Query, or an extended statement ended by the proxy's Sync).
    for (let i = 0; i < script.remaining; i++) host.batch.takeFirst(host.batch.firstRequestLength());
    if (!script.isImplicit) {
      host.session.output.write(readyForQuery(host.end.refreshStatus()));
      return host.end.requestDone();
    }
    const participants = host.block.participants();
    if (participants.shards.length === 0) {
      // No statement reached a shard (the first one was refused): nothing to end but the block itself.
      host.block.finish(false, 'none');
      host.session.output.write(readyForQuery(host.end.refreshStatus()));
      return host.end.requestDone();
    }
    if (script.hasFailed) return this.rollBack(participants.shards);
    // A script is a transaction block (two-phase whenever two_phase_commit is on); a single write the proxy wrapped
    // uses it only with two_phase_commit_auto.
    const wantsTwoPhase =
      participants.writers.size >= 2 &&
      (!script.isSingleWrite || host.session.proxy.general().twoPhaseCommitAuto);
    runCommit(
      host,
      participants,
      wantsTwoPhase,
      (error) => {
        if (error === null) for (const tag of script.heldTags) host.session.output.write(tag);
        else host.session.output.write(error);
        host.session.output.write(readyForQuery(host.servers.combinedStatus()));
      },
      this.afterCommit,
    );
  }

  /** End the proxy's own transaction after a statement of it failed: ROLLBACK on every shard it reached, then answer. */
  private rollBack(shards: readonly number[]): void {
    const host = this.host;
    host.block.markEnding(false);
    host.servers.runOwn(shards, 'ROLLBACK', host, () => {
      host.session.output.write(readyForQuery(host.end.refreshStatus()));
      host.end.requestDone();
    });
  }
}
