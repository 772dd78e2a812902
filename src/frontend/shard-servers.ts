// The server connections a sharded session holds, at most one per shard: checked out together for a request (the
// client's input paused meanwhile), brought in line with the session's parameters and SETs, and given back when the
// transaction ends (transaction mode) or the client leaves.
import type { Logger } from 'pino';
import type { FramedSinkOwner } from '../backend/framed-sink.js';
import type { DatabasePools } from '../backend/pool-manager.js';
import type { ServerClient, ServerConnection } from '../backend/server-connection.js';
import { resetAndRelease } from '../backend/server-reset.js';
import { TxStatus } from '../protocol/codes.js';
import { query } from '../protocol/messages.js';
import { PgError } from '../errors/pg-error.js';
import { cancelRunning } from './cancel-registry.js';
import { endTransactionSinks } from './fanout.js';
import type { SessionRouter } from './session-router.js';
import { settingsSyncSql } from './session-settings.js';
import type { ShardedSession } from './sharded-session.js';

export class ShardServers {
  /** The server held per shard (null: none). */
  readonly byShard: (ServerConnection | null)[];
  /** Servers are being checked out for a request. */
  isWaiting = false;
  private readonly pools: DatabasePools;
  private readonly session: ShardedSession;
  private readonly router: SessionRouter;

  constructor(session: ShardedSession, router: SessionRouter) {
    this.session = session;
    this.pools = session.pools;
    this.router = router;
    this.byShard = new Array<ServerConnection | null>(session.pools.shards.length).fill(null);
  }

  /** The server held on `shard` (the caller knows there is one). */
  at(shard: number): ServerConnection {
    return this.byShard[shard] as ServerConnection;
  }

  /**
   * Check out a server for each of `shards` not held yet and attach it (replies to `client`), then `then()`. A
   * checkout failure goes to `fail`. (A transaction block reaching a new shard: the caller brings it in.)
   */
  acquire(
    shards: readonly number[],
    client: ServerClient,
    then: () => void,
    fail: (err: PgError) => void,
  ): void {
    const pools = this.pools;
    const missing = shards.filter((s) => this.byShard[s] == null);
    if (missing.length === 0) return then();
    this.isWaiting = true;
    let pending = missing.length;
    let failure: PgError | null = null;
    const got: [number, ServerConnection][] = [];
    let isPaused = false;
    const isForOpenTransaction = this.session.txStatus() !== TxStatus.Idle;
    for (const shard of missing) {
      pools.shards[shard].acquire((err, server) => {
        if (server !== null) got.push([shard, server]);
        else failure ??= err ?? PgError.internal('no server');
        if (--pending > 0) return;
        this.isWaiting = false;
        if (isPaused) this.session.resumeInput();
        if (this.session.state() !== 'ready' || failure !== null) {
          for (const [s, srv] of got) pools.shards[s].release(srv);
          if (failure !== null && this.session.state() === 'ready') fail(failure);
          return;
        }
        for (const [s, srv] of got) this.attach(s, srv, client);
        then();
      }, isForOpenTransaction);
    }
    if (this.isWaiting) {
      isPaused = true;
      this.session.pauseInput();
    }
  }

  private attach(shard: number, server: ServerConnection, client: ServerClient): void {
    this.byShard[shard] = server;
    server.client = client;
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
   * client; `onDone` gets the errors (shard named) once every server has answered.
   */
  runOwn(
    shards: readonly number[],
    sql: string | Buffer,
    owner: FramedSinkOwner,
    onDone: (errors: Buffer[]) => void,
  ): void {
    const sinks = endTransactionSinks(shards, owner, onDone);
    const message = typeof sql === 'string' ? query(sql) : sql;
    shards.forEach((shard, i) => {
      const server = this.at(shard);
      server.client = sinks[i];
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

  /** Every held server's replies go to `client` again. */
  pointAt(client: ServerClient): void {
    for (const server of this.byShard) if (server !== null) server.client = client;
  }

  /** Some held server still owes a ReadyForQuery. */
  isAnyRunning(): boolean {
    for (const server of this.byShard) if (server !== null && server.pendingReady > 0) return true;
    return false;
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
    return true;
  }

  /** Give every server back to its pool, idle (the transaction is over). */
  release(): void {
    const pools = this.pools;
    this.byShard.forEach((server, shard) => {
      if (server === null) return;
      server.client = null;
      pools.shards[shard].release(server);
    });
    this.byShard.fill(null);
  }

  /** Give every server back to its pool (reset as the session and transaction state require). */
  resetAndRelease(hasOpenSegment: boolean): void {
    const pools = this.pools;
    this.byShard.forEach((s, shard) => {
      if (s === null) return;
      resetAndRelease(s, pools.shards[shard], {
        isSessionMode: !this.session.isTransactionMode,
        txStatus: s.txStatus,
        hasOpenSegment,
      });
    });
    this.byShard.fill(null);
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
