// The server connections a sharded session holds, at most one per shard: checked out together for a request (the
// client's input paused meanwhile), brought in line with the session's parameters and SETs, and given back when the
// transaction ends (transaction mode) or the client leaves. Read/write split: a request that only reads, outside any
// transaction or inside a READ ONLY block (its own access mode, or the session's default_transaction_read_only as it
// was when the block started), takes each shard's server from that shard's replica set (`readIntent`); everything
// else the primaries. The servers answer the session (`home`, the dispatch) between runs; a run — a fan-out, a
// cursor's or an INSERT … SELECT's, the proxy's commit — has them lent to sinks of its own (`lend`, or the
// coordinator's queries) and gives them back in one place when it ends (`endLoan`): no caller restores the session's
// sink by hand.
import type { Logger } from 'pino';
import { endTransactionSinks, type FramedSinkOwner } from '../backend/framed-sink.js';
import type { DatabasePools } from '../backend/pool-manager.js';
import type { CheckoutWait, Pool } from '../backend/pool.js';
import { mayUseReplica, type Member, type ReadIntent } from '../backend/replica-set.js';
import type { ReplySink, ServerConnection } from '../backend/server-connection.js';
import { resetAndRelease } from '../backend/server-reset.js';
import { TxStatus } from '../protocol/codes.js';
import { query } from '../protocol/messages.js';
import { PgError } from '../errors/pg-error.js';
import { cancelRunning } from '../frontend/cancel-registry.js';
import type { BatchTarget } from '../frontend/batch-target.js';
import type { SessionRouter } from '../frontend/session-router.js';
import { isReadOnlyBlock } from '../frontend/read-intent.js';
import { ACQUIRING, OWN, type RequestState } from './request-state.js';
import { settingsSyncSql } from '../frontend/session-settings.js';
import type { ShardedSession } from '../frontend/sharded-session.js';

/** A checkout of this session queued in a pool (what the distributed deadlock check reads). */
export interface PendingCheckout {
  readonly shard: number;
  readonly pool: Pool;
  readonly wait: CheckoutWait;
}

export class ShardServers {
  /** The server held per shard (null: none). */
  readonly byShard: (ServerConnection | null)[];
  /** The pool each held server came from (a shard's primary or one of its replicas), to give it back to. */
  private readonly poolByShard: (Pool | null)[];
  /**
   * Read-your-writes: a request that may write ran on the server held on a shard (a primary's, if tracked): a hold
   * whose intent is 'write' (readIntent's verdict for the client's requests; the default of every other hold — the
   * proxy's own lookups and cuts, an INSERT … SELECT's parts).
   */
  private readonly mayHaveWritten: boolean[];
  /** The checkouts of the request queued in a pool: a primary's, or the one member's a replica set picked. */
  private readonly queued: PendingCheckout[] = [];
  /** Servers the request got while other checkouts of it wait (held, attached once all are there). */
  private gotWhileWaiting: readonly (readonly [number, ServerConnection, Pool])[] = [];
  /** The session's default access mode when the open transaction block started (null: outside a block). */
  private blockDefault: boolean | null = null;
  private readonly pools: DatabasePools;
  private readonly session: ShardedSession;
  private readonly router: SessionRouter;
  /** The request's state: `acquiring` while checkouts wait, `own` while statements of the proxy's own run. */
  private readonly request: RequestState;
  /** `[shard]` per shard, made once: a one-shard request's shard list allocates nothing. */
  private readonly oneShards: readonly (readonly number[])[];
  /** Who receives the held servers' replies between runs: the session's dispatch. */
  private readonly home: ReplySink;

  constructor(session: ShardedSession, router: SessionRouter, request: RequestState, home: ReplySink) {
    this.session = session;
    this.request = request;
    this.home = home;
    this.pools = session.pools;
    this.router = router;
    this.byShard = new Array<ServerConnection | null>(session.pools.shards.length).fill(null);
    this.poolByShard = new Array<Pool | null>(session.pools.shards.length).fill(null);
    this.mayHaveWritten = new Array<boolean>(session.pools.shards.length).fill(false);
    this.oneShards = this.byShard.map((_, shard) => Object.freeze([shard]));
  }

  /** The list of the one shard `shard` (the same frozen array each time). */
  oneShard(shard: number): readonly number[] {
    return this.oneShards[shard];
  }

  /**
   * What the routed request `target` (frames `types`/`frames`) needs of its shards: a replica may serve it only when
   * it only reads (read-intent.ts, the same decision as on one shard, and the router found no write), in transaction
   * mode, outside any block of the proxy's own (`isInProxyTransaction`: a script, a multi-shard write) and with no
   * extended-protocol segment left open; and either outside any transaction block, or inside the client's block when
   * that is READ ONLY (`block.characteristics()`: its BEGIN and SET TRANSACTIONs; a SET TRANSACTION READ ONLY of this
   * request counts) — then its SETs and savepoints may go to replicas too, and each shard joining the block takes a
   * replica (shards it reached keep their server). Session mode keeps the primaries, as on one shard. On a primary the
   * intent also says whether the request may change data there (read-your-writes): 'write' when the router found it
   * may (`isWrite`, `mayWrite`, `isMultiShardWrite`), else 'read-primary' (a SET, SHOW, transaction control, a read).
   */
  readIntent(
    target: BatchTarget,
    types: readonly number[],
    frames: readonly Buffer[],
    isInProxyTransaction: boolean,
    block: { characteristics(): readonly string[] },
  ): ReadIntent {
    this.noteBlockDefault();
    if (target.isWrite || target.mayWrite || target.isMultiShardWrite) {
      // It also follows SET pgdog.role / pgdog.min_lsn; the status is current (one request at a time).
      if (this.pools.hasReplicas) this.session.reads.intentOf(types, frames, this.session.status.txStatus);
      return 'write';
    }
    if (!this.pools.hasReplicas) return 'read-primary';
    const session = this.session;
    const intent = session.reads.intentOf(types, frames, session.status.txStatus); // as above
    const isEligible =
      session.isTransactionMode &&
      !isInProxyTransaction &&
      !session.send.hasOpenSegment &&
      (target.kind === 'one' || target.kind === 'many');
    if (!isEligible) return 'read-primary';
    const status = session.status.txStatus;
    if (status === TxStatus.Idle) return mayUseReplica(intent) ? intent : 'read-primary';
    if (status !== TxStatus.InTransaction) return 'read-primary';
    const statement = target.sessionStatement;
    const characteristics = block.characteristics();
    const isReadOnly = isReadOnlyBlock(
      statement?.kind === 'set' ? [...characteristics, statement.text] : characteristics,
      this.isBlockDefaultReadOnly(),
    );
    if (!isReadOnly) return 'read-primary';
    if (mayUseReplica(intent)) return intent;
    // A SET / SAVEPOINT inside a READ ONLY block runs wherever the block's reads run.
    return statement !== null ? 'read' : 'read-primary';
  }

  /**
   * Whether the open block's transactions are READ ONLY unless it says otherwise: the session's
   * default_transaction_read_only as it was at the block's first routed request (a SET of it inside the block holds
   * for later transactions only, as in PostgreSQL).
   */
  isBlockDefaultReadOnly(): boolean {
    this.noteBlockDefault();
    return this.blockDefault ?? this.session.params.isDefaultReadOnly;
  }

  private noteBlockDefault(): void {
    if (this.session.status.txStatus === TxStatus.Idle) this.blockDefault = null;
    else this.blockDefault ??= this.session.params.isDefaultReadOnly;
  }

  /** The server held on `shard` (the caller knows there is one). */
  at(shard: number): ServerConnection {
    return this.byShard[shard] as ServerConnection;
  }

  /**
   * Check out a server for each of `shards` not held yet and attach it (replies to `client`), then `then()`; the
   * request is `acquiring` meanwhile (request-state.ts). A checkout failure goes to `fail`. (A transaction block
   * reaching a new shard: the caller brings it in.)
   */
  acquire(
    shards: readonly number[],
    client: ReplySink,
    then: () => void,
    fail: (err: PgError) => void,
    intent: ReadIntent = 'write',
  ): void {
    if (shards.length === 1 && this.tryAcquireOne(shards[0], client, intent)) return then();
    let missing = 0;
    for (const s of shards) if (this.byShard[s] == null) missing++;
    if (intent === 'write') this.noteWrite(shards);
    if (missing === 0) return then();
    this.acquireMissing(shards, client, then, fail, intent);
  }

  /**
   * Read-your-writes: a request that may change data (intent 'write') is about to run on `shards` (held already, or
   * checked out now): each tracked shard counts as written on. Marked before the checkout: a write checkout that fails
   * is forgotten at release.
   */
  private noteWrite(shards: readonly number[]): void {
    for (const shard of shards) if (this.pools.sets[shard].tracksLsn) this.mayHaveWritten[shard] = true;
  }

  /** acquire()'s waiting path, kept apart so the common one allocates no closure context. */
  private acquireMissing(
    shards: readonly number[],
    client: ReplySink,
    then: () => void,
    fail: (err: PgError) => void,
    intent: ReadIntent,
  ): void {
    const pools = this.pools;
    const missing = shards.filter((s) => this.byShard[s] == null);
    this.request.move(ACQUIRING);
    let pending = missing.length;
    let failure: PgError | null = null;
    const got: [number, ServerConnection, Pool][] = [];
    let isPaused = false;
    const isForOpenTransaction = this.session.status.txStatus !== TxStatus.Idle;
    for (const shard of missing) {
      const onServer = (err: PgError | null, server: ServerConnection | null, pool: Pool | null): void => {
        if (server !== null && pool !== null) got.push([shard, server, pool]);
        else failure ??= err ?? PgError.internal('no server');
        const at = this.queued.findIndex((q) => q.shard === shard);
        if (at >= 0) this.queued.splice(at, 1);
        if (--pending > 0) return;
        this.request.end('acquiring');
        this.gotWhileWaiting = [];
        if (isPaused) {
          this.session.watched?.checkoutEnded();
          this.session.output.resumeInput();
        }
        if (this.session.status.state !== 'ready' || failure !== null) {
          for (const [, srv, pool] of got) pool.release(srv);
          if (failure !== null && this.session.status.state === 'ready') fail(failure);
          return;
        }
        for (const [s, srv, pool] of got) this.attach(s, srv, pool, client);
        then();
      };
      const set = pools.sets[shard];
      const isReplicaRead = mayUseReplica(intent) && set.hasReplicas;
      const need = isReplicaRead ? this.session.reads.needs(shard, set) : null;
      if (isReplicaRead && need !== 'primary') {
        const onBan = (m: Member, reason: string): void => this.session.reads.onReplicaBanned(m.pool, reason);
        set.acquire(intent, onServer, onBan, need, (queued) => {
          const at = this.queued.findIndex((q) => q.shard === shard);
          if (at >= 0) this.queued.splice(at, 1);
          if (queued !== null) this.queued.push({ shard, ...queued });
        });
      } else {
        const pool = pools.shards[shard];
        const wait = pool.acquire((err, server) => onServer(err, server, pool), isForOpenTransaction);
        if (wait !== null) this.queued.push({ shard, pool, wait });
      }
    }
    if (pending > 0) {
      isPaused = true;
      this.gotWhileWaiting = got;
      this.session.output.pauseInput();
      this.session.watched?.checkoutStarted();
    }
  }

  /**
   * The single-shard request's fast path: true when `shard` has its server now — held already, or an idle one of its
   * primary's pool taken and attached at once (no callback, no arrays: this runs for nearly every request). False
   * leaves everything to acquire()'s general path (a replica set to choose from, no idle server, a refusing pool).
   */
  tryAcquireOne(shard: number, client: ReplySink, intent: ReadIntent): boolean {
    if (this.byShard[shard] != null) {
      if (intent === 'write') this.noteWrite(this.oneShards[shard]);
      return true;
    }
    const set = this.pools.sets[shard];
    if ((mayUseReplica(intent) && set.hasReplicas) || this.session.status.state !== 'ready') return false;
    const pool = this.pools.shards[shard];
    const server = pool.tryAcquire(this.session.status.txStatus !== TxStatus.Idle);
    if (server === null) return false;
    if (intent === 'write') this.noteWrite(this.oneShards[shard]);
    this.attach(shard, server, pool, client);
    return true;
  }

  /** Servers the request in checkout got already, while it waits for the others. */
  serversInCheckout(): ServerConnection[] {
    return this.gotWhileWaiting.map(([, server]) => server);
  }

  /** The request's checkouts queued in pools now (a primary's, or the member's its replica set picked). */
  queuedCheckouts(): readonly PendingCheckout[] {
    return this.queued;
  }

  /**
   * Fail every queued checkout of the request with `err` (a distributed deadlock's victim): the request then fails as
   * on any checkout error, servers it already got going back. False when none was queued.
   */
  failQueuedCheckouts(err: PgError): boolean {
    let isFailed = false;
    for (const q of [...this.queued]) if (q.pool.failWait(q.wait, err)) isFailed = true;
    return isFailed;
  }

  /** The shards a server is held on, in shard order. */
  heldShards(): number[] {
    const out: number[] = [];
    this.byShard.forEach((server, shard) => {
      if (server !== null) out.push(shard);
    });
    return out;
  }

  private attach(shard: number, server: ServerConnection, pool: Pool, client: ReplySink): void {
    this.byShard[shard] = server;
    this.poolByShard[shard] = pool;
    server.attach(client);
    this.syncSettings(server, this.session.params.syncSql(server.params));
  }

  /**
   * Bring a held server's SETs in line with the session's (session mode: a SET committed in a transaction block that
   * this shard took no part in). `extra`: statements to run first (tracked parameters on attach).
   */
  syncSettings(server: ServerConnection, extra = ''): void {
    const router = this.router;
    const sets = extra + settingsSyncSql(router.settings, server.settings);
    if (sets === '') return;
    server.settings.clear();
    for (const [name, text] of router.settings) server.settings.set(name, text);
    server.scanner.swallowNextUntilReady();
    server.send(query(sets), 1);
  }

  /**
   * A statement of the proxy's own (BEGIN, ROLLBACK; or a Sync frame) on each of `shards`: nothing reaches the
   * client; `onDone` gets the errors (shard named) once every server has answered and is back with whoever received
   * its replies before. The request is `own` meanwhile (request-state.ts).
   */
  runOwn(
    shards: readonly number[],
    sql: string | Buffer,
    owner: FramedSinkOwner,
    onDone: (errors: Buffer[]) => void,
  ): void {
    const previous: (ReplySink | null)[] = [];
    const sinks = endTransactionSinks(shards, owner, (errors) => {
      // Each server goes back to whoever received its replies before.
      shards.forEach((shard, i) => {
        const server = this.byShard[shard];
        if (server != null && !server.isClosed) server.restore(previous[i]);
      });
      this.request.end('own');
      onDone(errors);
    });
    const message = typeof sql === 'string' ? query(sql) : sql;
    this.request.move(OWN);
    shards.forEach((shard, i) => {
      const server = this.at(shard);
      previous[i] = server.attach(sinks[i]);
      server.hasOpenSegment = false; // a Query or Sync ends any extended-protocol segment
      server.send(message, 1);
    });
  }

  /** Shards whose held server has extended-protocol messages without their Sync yet. */
  openSegmentShards(): number[] {
    const out: number[] = [];
    this.byShard.forEach((server, shard) => {
      if (server !== null && server.hasOpenSegment) out.push(shard);
    });
    return out;
  }

  /** The server held on `shard`, its replies lent to `sink` (a run's: a fan-out's, …) until the run ends (endLoan). */
  lend(shard: number, sink: ReplySink): ServerConnection {
    const server = this.at(shard);
    server.attach(sink);
    return server;
  }

  /**
   * The request's fan-out or commit has ended: its state back to idle, and every held server — lent to the run's
   * sinks meanwhile (a commit keeps its servers on its own sinks between its steps, so a server lost then is the
   * commit's to handle) — answers the session again.
   */
  endLoan(kind: 'fanout' | 'committing'): void {
    this.request.end(kind);
    this.takeBack();
  }

  /** A lookup of the proxy's own on a held server has ended: the servers answer the session again. */
  takeBack(): void {
    const home = this.home;
    for (const server of this.byShard) if (server !== null) server.attach(home);
  }

  /** E if any shard's transaction failed, else T if any is in one, else I. */
  combinedStatus(): number {
    let status: number = TxStatus.Idle;
    for (const server of this.byShard) {
      if (server === null) continue;
      if (server.txStatus === TxStatus.Failed) return TxStatus.Failed;
      if (server.txStatus === TxStatus.InTransaction) status = TxStatus.InTransaction;
    }
    return status;
  }

  /** Forget `server` (its connection died); false when it is not one of these. */
  drop(server: ServerConnection): boolean {
    const shard = this.byShard.indexOf(server);
    if (shard < 0) return false;
    this.byShard[shard] = null;
    this.poolByShard[shard] = null;
    this.mayHaveWritten[shard] = false;
    return true;
  }

  /**
   * Give every server back to its pool, idle (the transaction is over); a primary's server that may have written
   * first tells its WAL position (read-your-writes).
   */
  release(): void {
    // A plain loop clearing only the held entries: this runs after every request (Array#fill and forEach showed
    // in the profile of the single-shard path).
    for (let shard = 0; shard < this.byShard.length; shard++) {
      const server = this.byShard[shard];
      const mayHaveWritten = this.mayHaveWritten[shard]; // also set by a write checkout that failed
      this.mayHaveWritten[shard] = false;
      if (server === null) continue;
      server.detach();
      const pool = this.poolOf(shard);
      if (mayHaveWritten && pool === this.pools.sets[shard].primary.pool) {
        this.session.reads.writes.afterWrite(shard, server, () => pool.release(server));
      } else pool.release(server);
      this.byShard[shard] = null;
      this.poolByShard[shard] = null;
    }
  }

  /** The pool the server held on `shard` came from. */
  private poolOf(shard: number): Pool {
    return this.poolByShard[shard] ?? this.pools.shards[shard];
  }

  /** Give every server back to its pool (reset as the session and transaction state require). */
  resetAndRelease(hasOpenSegment: boolean): void {
    this.byShard.forEach((s, shard) => {
      if (s === null) return;
      resetAndRelease(s, this.poolOf(shard), {
        isSessionMode: !this.session.isTransactionMode,
        txStatus: s.txStatus,
        hasOpenSegment,
      });
    });
    this.byShard.fill(null);
    this.poolByShard.fill(null);
    this.mayHaveWritten.fill(false);
  }

  /** Cancel what runs on the held servers. */
  cancel(log: Logger): void {
    for (const server of this.byShard) if (server !== null) cancelRunning(server, log);
  }

  /** The ids of the servers held, added to `out`. */
  addIds(out: number[]): void {
    for (const s of this.byShard) if (s !== null) out.push(s.id);
  }
}
