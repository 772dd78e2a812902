// One client connection, start to end: startup (TLS, auth), then buffering each request until a flush point,
// checking out a server connection for it (per transaction or per session), rewriting named statements in
// transaction mode, streaming the replies back, and returning the server at ReadyForQuery.
import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { AdminConfig, GeneralConfig, UserConfig } from '../config/types.js';
import type { PoolManager, DatabasePools } from '../backend/pool-manager.js';
import type { Pool } from '../backend/pool.js';
import type { ServerClient, ServerConnection } from '../backend/server-connection.js';
import { Backend, Frontend, TxStatus } from '../protocol/codes.js';
import { FrameReader } from '../protocol/frame-reader.js';
import {
  backendKeyData,
  parameterStatus,
  query,
  readyForQuery,
  SSL_NO,
  SSL_YES,
  READY_IDLE,
} from '../protocol/messages.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { readStartupPacket } from './startup.js';
import { ClientAuth } from './client-auth.js';
import { ClientStatements, type StatementNames } from './prepared-statements.js';
import { RequestBatch } from './request-batch.js';
import { SessionParams } from './session-params.js';
import { resetAndRelease } from '../backend/server-reset.js';
import {
  applySettingChange,
  MixedShardsError,
  SessionRouter,
  settingsSyncSql,
  type BatchTarget,
  type DatabaseRouting,
} from './session-router.js';
import { endTransactionSinks, Fanout } from './fanout.js';
import type { CancelRegistry, Cancellable } from './cancel-registry.js';
import { commitReplies } from './commit-replies.js';
import { CopyInSplit, isCopyMessage } from './copy-in.js';
import { CopyRowRouter } from '../execute/copy-rows.js';
import { PASS_THROUGH_SPEC } from '../execute/merge-spec.js';
import { lookUpTableColumns } from './table-columns.js';
import { TableColumnsNeeded } from '../router/route.js';
import { shardForParameter } from '../sharding/shard-of.js';
import { commitPlain, commitTwoPhase, type CommitParticipant, type CommitRun } from '../txn/coordinator.js';
import type { TransactionManager } from '../txn/manager.js';
import type { AdminConsoleHandle, AdminIo, ClientActivity, ClientInfo } from '../admin/context.js';
import { adminLoginReplies } from '../admin/console.js';

export interface SessionDeps {
  pools: PoolManager;
  cancels: CancelRegistry;
  statementNames: StatementNames;
  logger: Logger;
  general: () => GeneralConfig;
  admin: () => AdminConfig;
  tlsContext: () => tls.SecureContext | null;
  onClose: (session: ClientSession) => void;
  /** Routing state of a database with 2+ shards (null: one shard, nothing to route). */
  routingFor: (database: string) => DatabaseRouting | null;
  /** The transaction manager (null: two_phase_commit is off). */
  txn: () => TransactionManager | null;
  /** The admin console for a client logged in to the admin database. */
  openAdminConsole: (io: AdminIo, log: Logger) => AdminConsoleHandle;
}

export type SessionState = 'startup' | 'auth' | 'ready' | 'closed';

let nextSessionId = 1;

export class ClientSession implements ServerClient, Cancellable {
  readonly id = nextSessionId++;
  state: SessionState = 'startup';
  user = '';
  database = '';
  readonly connectedAt = Date.now();
  readonly remote: string;

  private socket: net.Socket;
  private readonly deps: SessionDeps;
  private readonly log: Logger;
  private startupBuf: Buffer | null = null;
  private reader: FrameReader;
  private auth: ClientAuth | null = null;
  private userConfig: UserConfig | null = null;
  private pools: DatabasePools | null = null;
  private isTransactionMode = true;
  /** Logging in to the admin database; then its console gets every frame. */
  private isAdminLogin = false;
  private adminConsole: AdminConsoleHandle | null = null;

  private server: ServerConnection | null = null;
  private serverPool: Pool | null = null;
  private isWaitingForServer = false;
  /** Client frames not yet sent (views into received chunks). */
  private readonly batch = new RequestBatch();
  /** After an error the proxy raised mid-pipeline: drop frames until Sync, as PostgreSQL does. */
  private isSkippingToSync = false;
  /**
   * Extended-protocol messages went to the server after the last Sync: their replies (and the Sync that closes
   * them) are still to come, so the server must stay with this client even at an idle ReadyForQuery.
   */
  private hasOpenSegment = false;
  /** Sharded databases only: routing, the server held per shard, the fan-out in progress. */
  private router: SessionRouter | null = null;
  private shardServers: (ServerConnection | null)[] = [];
  private fanout: Fanout | null = null;
  /** Shards of a multi-shard write the proxy wrapped in its own transaction (outside a client transaction). */
  private autoTxShards: readonly number[] | null = null;
  /** The shard a single-shard request in flight went to (COPY data and pipelined frames follow it). */
  private activeShard: number | null = null;
  /** Shards the current transaction may have changed data on (writers decide how COMMIT runs). */
  private readonly txWriters = new Set<number>();
  /** A cross-shard COMMIT is running on this session's servers (they are not the session's to use meanwhile). */
  private isCommitting = false;
  /** A COPY … FROM STDIN split across shards: the client's copy messages go through it. */
  private copyIn: CopyInSplit | null = null;
  /**
   * A multi-statement simple Query whose statements need different shards, run one statement at a time (its first
   * `remaining` requests in the batch); outside a transaction inside one of the proxy's own, as PostgreSQL does.
   */
  private script: { remaining: number; isImplicit: boolean; hasFailed: boolean } | null = null;
  /** Frames of the request being routed (sharded sessions route one request — up to a Sync or Query — at a time). */
  private requestLength = Number.MAX_SAFE_INTEGER;
  /** An INSERT or COPY without a column list waits for the table's columns (to find the sharding key's position). */
  private isLookingUpColumns = false;
  private statements: ClientStatements | null = null;
  private readonly params = new SessionParams();
  private txStatus: number = TxStatus.Idle;
  private cancelKey: { pid: number; secret: number } | null = null;
  private queryTimer: NodeJS.Timeout | null = null;
  private loginTimer: NodeJS.Timeout | null = null;
  private readonly onFrame = (type: number, frame: Buffer): void => this.handleFrame(type, frame);

  constructor(socket: net.Socket, deps: SessionDeps) {
    this.socket = socket;
    this.deps = deps;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.log = deps.logger.child({ client: this.id });
    this.reader = new FrameReader(deps.general().maxMessageSizeBytes);
    socket.setNoDelay(true);
    this.bindSocket(socket);
    const loginMs = deps.general().clientLoginTimeoutMs;
    if (loginMs > 0) this.loginTimer = setTimeout(() => this.onLoginTimeout(loginMs), loginMs);
    this.log.debug({ remote: this.remote }, 'client connected');
  }

  private bindSocket(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'client socket error'));
    socket.on('close', () => this.onSocketClose());
    const idleMs = this.deps.general().clientIdleTimeoutMs;
    if (idleMs > 0) {
      socket.setTimeout(idleMs, () => this.onIdleTimeout());
    }
  }

  // --- input ---------------------------------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    try {
      this.handleData(chunk);
    } catch (err) {
      this.onInternalError(err);
    }
  }

  /** A bug must cost one client its connection, never the proxy: log it with its stack and close this client. */
  onInternalError(err: unknown): void {
    this.log.error({ err }, 'internal error; closing this client');
    this.fatal(
      new PgError('FATAL', SqlState.InternalError, `internal error in shardgate: ${(err as Error).message}`),
    );
  }

  private handleData(chunk: Buffer): void {
    if (this.state === 'ready') {
      const err = this.reader.push(chunk, this.onFrame);
      if (err !== null) return this.protocolViolation(err);
      this.afterChunk();
      return;
    }
    if (this.state === 'auth') {
      const err = this.reader.push(chunk, this.onFrame);
      if (err !== null) this.protocolViolation(err);
      return;
    }
    if (this.state === 'startup') this.onStartupData(chunk);
  }

  private onStartupData(chunk: Buffer): void {
    let buf = this.startupBuf ? Buffer.concat([this.startupBuf, chunk]) : chunk;
    this.startupBuf = null;
    while (this.state === 'startup' && buf.length > 0) {
      const r = readStartupPacket(buf);
      if (!r.ok) {
        if (r.incomplete) this.startupBuf = buf;
        else this.protocolViolation(r.error);
        return;
      }
      const { packet } = r;
      buf = r.rest;
      if (packet.kind === 'ssl' || packet.kind === 'gssenc') {
        if (buf.length > 0) return this.protocolViolation('received unencrypted data after SSL request');
        if (packet.kind === 'ssl') this.negotiateTls();
        else this.socket.write(SSL_NO);
        return;
      }
      if (packet.kind === 'cancel') {
        this.deps.cancels.cancel(packet.pid, packet.secret);
        this.state = 'closed';
        this.socket.end();
        return;
      }
      this.startLogin(packet.params);
      if (buf.length > 0) this.onData(buf);
      return;
    }
  }

  private negotiateTls(): void {
    const ctx = this.deps.tlsContext();
    if (ctx === null || this.socket instanceof tls.TLSSocket) {
      this.socket.write(SSL_NO);
      return;
    }
    this.socket.write(SSL_YES);
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: ctx });
    this.socket = secure;
    this.bindSocket(secure);
  }

  private startLogin(params: Map<string, string>): void {
    const user = params.get('user');
    if (!user)
      return this.fatal(
        new PgError(
          'FATAL',
          SqlState.InvalidAuthorizationSpecification,
          'no PostgreSQL user name specified in startup packet',
        ),
      );
    this.user = user;
    this.database = params.get('database') || user;
    this.log.setBindings({ user: this.user, database: this.database });
    if (params.has('replication') && params.get('replication') !== 'false') {
      return this.fatal(
        PgError.featureNotSupported('replication connections are not supported by shardgate'),
      );
    }
    if (this.database === this.deps.admin().name) return this.startAdminLogin(user, params);
    const { pools } = this.deps;
    if (pools.shardsOf(this.database).length === 0)
      return this.loginFailed(PgError.unknownDatabase(this.database), 'unknown database');
    const userConfig = pools.findUser(user, this.database);
    if (!userConfig) return this.loginFailed(PgError.unknownUser(user, this.database), 'unknown user');
    this.userConfig = userConfig;
    this.params.fromStartup(params);
    this.auth = new ClientAuth(this.deps.general().authType, user, userConfig.password);
    this.state = 'auth';
    this.applyAuthOutcome(this.auth.start());
  }

  private applyAuthOutcome(outcome: ReturnType<ClientAuth['start']>): void {
    if (outcome.kind === 'continue') {
      this.socket.write(outcome.reply);
      return;
    }
    if (outcome.kind === 'fail') return this.loginFailed(outcome.error, outcome.reason);
    for (const b of outcome.reply) this.socket.write(b);
    this.finishLogin();
  }

  private loginFailed(err: PgError, reason: string): void {
    this.log.warn({ remote: this.remote, code: err.code, reason }, `login failed: ${err.message}`);
    this.fatal(err);
  }

  private finishLogin(): void {
    if (this.isAdminLogin) return this.openAdminConsole();
    const userConfig = this.userConfig as UserConfig;
    this.auth = null;
    const pools = this.deps.pools.get(userConfig);
    this.pools = pools;
    this.isTransactionMode = pools.mode === 'transaction';
    if (this.isTransactionMode) this.statements = new ClientStatements(this.deps.statementNames);
    const routing = pools.shards.length > 1 ? this.deps.routingFor(this.database) : null;
    if (routing !== null) {
      this.router = new SessionRouter(routing);
      this.shardServers = new Array<ServerConnection | null>(pools.shards.length).fill(null);
    }
    const first = pools.shards[0];
    if (first.serverParams !== null) return this.sendLoginReplies(first.serverParams);
    // First client of this pool: connect once so the client gets real server parameters (and a clear error).
    this.socket.pause();
    first.acquire((err, server) => {
      this.socket.resume();
      if (server) first.release(server);
      if (this.state !== 'auth') return;
      if (err || first.serverParams === null) {
        const e = err ?? PgError.serverUnavailable(0, 'no parameters');
        return this.fatal(new PgError('FATAL', e.code, e.message, e.detail, e.hint));
      }
      this.sendLoginReplies(first.serverParams);
    });
  }

  private sendLoginReplies(serverParams: Map<string, string>): void {
    const out: Buffer[] = this.params.loginStatus(serverParams).map(([k, v]) => parameterStatus(k, v));
    this.cancelKey = this.deps.cancels.register(this);
    out.push(backendKeyData(this.cancelKey.pid, this.cancelKey.secret), READY_IDLE);
    this.socket.write(Buffer.concat(out));
    this.state = 'ready';
    if (this.loginTimer !== null) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    this.log.info({ remote: this.remote, mode: this.pools?.mode }, 'client logged in');
  }

  private handleFrame(type: number, frame: Buffer): void {
    if (this.state === 'auth') {
      if (type !== Frontend.Password || this.auth === null)
        return this.protocolViolation(`expected a password message, got "${String.fromCharCode(type)}"`);
      this.applyAuthOutcome(this.auth.handle(frame));
      return;
    }
    if (this.state !== 'ready') return;
    if (this.adminConsole !== null) return this.adminConsole.onFrame(type, frame);
    if (this.isSkippingToSync) {
      if (type === Frontend.Sync) {
        this.isSkippingToSync = false;
        this.socket.write(readyForQuery(this.txStatus));
      }
      return;
    }
    switch (type) {
      case Frontend.Query:
      case Frontend.Sync:
      case Frontend.FunctionCall:
      case Frontend.Flush:
      case Frontend.Parse:
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Execute:
      case Frontend.Close:
      case Frontend.CopyData:
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        this.batch.push(type, frame);
        return;
      case Frontend.Terminate:
        this.close('client terminated');
        return;
      default:
        return this.protocolViolation(
          `invalid frontend message type "${String.fromCharCode(type)}" (0x${type.toString(16)})`,
        );
    }
  }

  /** After a chunk's frames are queued: send them if a server is attached, else check one out at a flush point. */
  private afterChunk(): void {
    if (this.state !== 'ready' || this.batch.isEmpty) return;
    if (this.router !== null) {
      this.dispatchSharded(this.router);
      return;
    }
    if (this.server !== null) {
      this.sendBatch(this.server);
      return;
    }
    if (this.batch.isFlushPoint) {
      this.checkout();
      return;
    }
    if (this.batch.bytes > this.deps.general().maxMessageSizeBytes) {
      this.protocolViolation(`request of ${this.batch.bytes} bytes without Sync exceeds max_message_size`);
    }
  }

  private checkout(): void {
    if (this.isWaitingForServer || this.pools === null) return;
    const pool = this.pools.shards[0];
    this.isWaitingForServer = true;
    let isPaused = false;
    pool.acquire((err, server) => {
      this.isWaitingForServer = false;
      if (this.state !== 'ready') {
        if (server) pool.release(server);
        return;
      }
      if (isPaused) this.socket.resume();
      if (err || server === null) return this.failBatch(err ?? PgError.internal('no server'));
      this.attach(server, pool);
      this.sendBatch(server);
    });
    // Backpressure: read no more requests until this one has a server. An idle server is handed over
    // synchronously, so the common case never pauses (pause/resume cost a syscall each).
    if (this.isWaitingForServer) {
      isPaused = true;
      this.socket.pause();
    }
  }

  private attach(server: ServerConnection, pool: Pool): void {
    this.server = server;
    this.serverPool = pool;
    server.client = this;
    const sets = this.params.syncSql(server.params);
    if (sets !== '') {
      server.scanner.swallowNextUntilReady();
      server.send(query(sets), 1);
    }
  }

  private sendBatch(server: ServerConnection): void {
    const { types, frames, readyCount } = this.batch.take();
    this.sendFrames(server, types, frames, readyCount);
  }

  /** Rewrite (transaction mode) and send a request's frames to one server in one write. */
  private sendFrames(server: ServerConnection, types: number[], frames: Buffer[], ready: number): void {
    let isOpen = this.hasOpenSegment;
    let out = frames;
    const statements = this.statements;
    const scanner = server.scanner;
    try {
      if (statements !== null) out = [];
      for (let i = 0; i < types.length; i++) {
        const type = types[i];
        if (statements !== null) {
          if (type === Frontend.Query) this.noteQuery(frames[i], server, statements);
          statements.rewrite(type, frames[i], server, out);
        }
        if (type === Frontend.Query || type === Frontend.Sync || type === Frontend.FunctionCall) {
          // Counted as we go: a swallow rule registered by a later frame is pinned after this ReadyForQuery.
          scanner.readyExpected++;
          isOpen = false;
        } else if (
          type !== Frontend.CopyData &&
          type !== Frontend.CopyDone &&
          type !== Frontend.CopyFail &&
          type !== Frontend.Flush
        ) {
          isOpen = true; // extended-protocol messages not yet closed by a Sync
        }
      }
    } catch (err) {
      return this.protocolViolation((err as Error).message);
    }
    this.hasOpenSegment = isOpen;
    server.send(out.length === 1 ? out[0] : Buffer.concat(out), 0);
    const timeoutMs = this.deps.general().queryTimeoutMs;
    if (timeoutMs > 0 && ready > 0 && this.queryTimer === null) {
      this.queryTimer = setTimeout(() => this.onQueryTimeout(timeoutMs), timeoutMs);
    }
  }

  /** DISCARD ALL / DEALLOCATE ALL drop every prepared statement on the server (and the client's view of them). */
  private noteQuery(frame: Buffer, server: ServerConnection, statements: ClientStatements): void {
    const c = frame[5] | 0x20;
    if (c !== 0x64) return; // not 'd'
    const text = frame.toString('utf8', 5, Math.min(frame.length, 64)).toLowerCase();
    if (/^(discard\s+all|deallocate\s+(prepare\s+)?all)\b/.test(text)) {
      server.prepared.clear();
      statements.clear();
    }
  }

  /** Answer a batch that cannot run (no server): one error per pending Sync/Query, like PostgreSQL after an error. */
  private failBatch(err: PgError): void {
    this.pools?.stats.proxyErrors.record(err.code);
    this.log.warn({ code: err.code }, err.message);
    const { replies, isSkippingToSync } = this.batch.failReplies(err, this.txStatus, this.requestLength);
    this.isSkippingToSync = isSkippingToSync;
    this.hasOpenSegment = false;
    this.socket.write(replies);
  }

  // --- sharded databases ------------------------------------------------------------------------------------------

  private isCopyOnly(types: readonly number[]): boolean {
    for (const t of types) {
      if (t !== Frontend.CopyData && t !== Frontend.CopyDone && t !== Frontend.CopyFail) return false;
    }
    return true;
  }

  /** A request is still being answered: the next one waits, so replies from different shards stay in order. */
  private isShardRequestInFlight(): boolean {
    if (this.fanout !== null || this.isCommitting || this.isLookingUpColumns) return true;
    for (const server of this.shardServers) if (server !== null && server.pendingReady > 0) return true;
    return false;
  }

  /** Route the queued request and run it on its shard(s): the sharded counterpart of checkout + sendBatch. */
  private dispatchSharded(router: SessionRouter): void {
    if (this.copyIn !== null && !this.feedCopy(this.copyIn)) return;
    if (this.isWaitingForServer || this.isLookingUpColumns || this.fanout !== null) return;
    const batch = this.batch;
    const active = this.activeShard === null ? null : this.shardServers[this.activeShard];
    if (active != null && active.pendingReady > 0 && this.isCopyOnly(batch.types)) {
      this.sendBatch(active); // COPY data for the request in flight
      return;
    }
    if (!batch.isFlushPoint) {
      if (batch.bytes > this.deps.general().maxMessageSizeBytes) {
        this.protocolViolation(`request of ${batch.bytes} bytes without Sync exceeds max_message_size`);
      }
      return;
    }
    if (this.isShardRequestInFlight()) return; // resumed from onShardRequestDone
    // One request at a time: pipelined requests may each need other shards, and their replies must stay in order.
    const n = batch.firstRequestLength();
    this.requestLength = n;
    const types = n === batch.types.length ? batch.types : batch.types.slice(0, n);
    const frames = n === batch.frames.length ? batch.frames : batch.frames.slice(0, n);
    let target: BatchTarget;
    try {
      target = router.route(types, frames);
    } catch (err) {
      if (err instanceof TableColumnsNeeded) return this.learnColumnsThenRoute(router, err.table);
      if (err instanceof MixedShardsError && n === 1 && types[0] === Frontend.Query && this.script === null) {
        if (this.startScript(router, frames[0])) return;
      }
      return this.failRequest(err instanceof PgError ? err : PgError.internal((err as Error).message));
    }
    if (this.txStatus === TxStatus.Failed && !target.isSessionLevel) {
      return this.failRequest(
        new PgError(
          'ERROR',
          SqlState.InFailedSqlTransaction,
          'current transaction is aborted, commands ignored until end of transaction block',
        ),
      );
    }
    if (this.txStatus === TxStatus.Failed && target.isCommit && n === 1) {
      // PostgreSQL ends a failed transaction's COMMIT with ROLLBACK; every shard must do the same.
      batch.frames[0] = query('ROLLBACK');
    }
    if (target.isCommit && this.txStatus === TxStatus.InTransaction && this.attachedShardCount() >= 2) {
      return this.commitAcrossShards();
    }
    const shards = target.kind === 'one' ? [target.shard] : target.shards;
    this.acquireShards(shards, () => this.sendSharded(target));
  }

  private acquireShards(shards: readonly number[], then: () => void): void {
    const pools = this.pools as DatabasePools;
    const missing = shards.filter((s) => this.shardServers[s] == null);
    if (missing.length === 0) return then();
    if (this.txStatus !== TxStatus.Idle) {
      return this.failBatch(
        PgError.featureNotSupported(
          'this transaction cannot reach a shard it did not start on',
          'Start the transaction with BEGIN so every shard takes part.',
        ),
      );
    }
    this.isWaitingForServer = true;
    let pending = missing.length;
    let failure: PgError | null = null;
    const got: [number, ServerConnection][] = [];
    let isPaused = false;
    for (const shard of missing) {
      pools.shards[shard].acquire((err, server) => {
        if (server !== null) got.push([shard, server]);
        else failure ??= err ?? PgError.internal('no server');
        if (--pending > 0) return;
        this.isWaitingForServer = false;
        if (isPaused) this.socket.resume();
        if (this.state !== 'ready' || failure !== null) {
          for (const [s, srv] of got) pools.shards[s].release(srv);
          if (failure !== null && this.state === 'ready') this.failBatch(failure);
          return;
        }
        for (const [s, srv] of got) this.attachShard(s, srv);
        then();
      });
    }
    if (this.isWaitingForServer) {
      isPaused = true;
      this.socket.pause();
    }
  }

  private attachShard(shard: number, server: ServerConnection): void {
    this.shardServers[shard] = server;
    server.client = this;
    // Tracked parameters (ParameterStatus) and the session's own SETs, as this server connection lacks them.
    const router = this.router as SessionRouter;
    const sets = this.params.syncSql(server.params) + settingsSyncSql(router.settings, server.settings);
    if (sets !== '') {
      server.settings.clear();
      for (const [name, text] of router.settings) server.settings.set(name, text);
      server.scanner.swallowNextUntilReady();
      server.send(query(sets), 1);
    }
  }

  private sendSharded(routed: BatchTarget): void {
    if (routed.kind === 'copyIn') return this.startCopyIn(routed);
    // A script statement's replies go through a fan-out (even on one shard): its ReadyForQuery is the proxy's to send.
    const target: BatchTarget =
      this.script !== null && routed.kind === 'one'
        ? { ...routed, kind: 'many', shards: [routed.shard], spec: PASS_THROUGH_SPEC }
        : routed;
    const { types, frames, readyCount } = this.takeRequest();
    if (target.mayWrite) {
      if (target.kind === 'one') this.txWriters.add(target.shard);
      else for (const shard of target.shards) this.txWriters.add(shard);
    }
    if (target.kind === 'one') {
      const server = this.shardServers[target.shard] as ServerConnection;
      server.client = this;
      this.activeShard = target.shard;
      this.sendFrames(server, types, frames, readyCount);
      return;
    }
    if (target.kind === 'split') return this.sendSplit(target, types, readyCount);
    const spec = target.spec;
    const needsTypes = spec.orderBy.length > 0 || spec.aggregates !== null;
    const sent = needsTypes ? withPortalDescribe(types, frames) : null;
    const fanout = new Fanout(target.shards.length, spec, this, sent !== null);
    this.fanout = fanout;
    const isAutoTx = this.beginAutoTx(target, fanout, types);
    const sends = target.shards.map((shard, i) => {
      const server = this.shardServers[shard] as ServerConnection;
      server.client = fanout.sinkFor(i);
      if (isAutoTx) this.sendSwallowed(server, 'BEGIN');
      return () => {
        if (sent !== null) this.sendFrames(server, sent.types, sent.frames, readyCount);
        else this.sendFrames(server, types, frames, readyCount);
      };
    });
    this.runFanout(fanout, sends, target.isWrite);
  }

  /**
   * Hand the client's leading copy messages to the split COPY; false when nothing else is left to dispatch. After the
   * COPY has ended (error), messages up to the client's CopyDone / CopyFail are dropped.
   */
  private feedCopy(copy: CopyInSplit): boolean {
    const batch = this.batch;
    let n = 0;
    try {
      for (; n < batch.types.length && isCopyMessage(batch.types[n]); n++) {
        copy.feed(batch.types[n], batch.frames[n]);
      }
    } catch (err) {
      n++;
      this.fanout?.abort(err instanceof PgError ? err : PgError.internal(String(err)));
    }
    copy.flush();
    const isMovingOn = n < batch.types.length; // a message after the copy data: the client is done with it
    batch.dropFirst(n);
    if (this.fanout === null && (copy.isClientDone || isMovingOn)) this.copyIn = null;
    return !batch.isEmpty;
  }

  /** COPY … FROM STDIN with its rows split by shard (or copied to every shard for a table that is). */
  private startCopyIn(target: Extract<BatchTarget, { kind: 'copyIn' }>): void {
    const key = target.copy.keyColumn;
    if (key === null || target.copy.keyColumnIndex !== null) {
      return this.runCopyIn(target, key === null ? null : target.copy.keyColumnIndex);
    }
    if (target.copy.columns !== null || target.table === null) {
      return this.failBatch(
        PgError.featureNotSupported(
          `the COPY column list does not include the sharding key column "${key.column}"`,
          'List the sharding key column in the COPY.',
        ),
      );
    }
    // No column list: the key's position comes from the table's definition (learned once per table).
    const table = target.table;
    const known = this.router?.knownTableColumns(table);
    if (known !== undefined) return this.runCopyKeyedBy(target, known, key.column);
    this.withTableColumns(this.shardServers[target.shards[0]] as ServerConnection, table, (columns) =>
      this.runCopyKeyedBy(target, columns, key.column),
    );
  }

  private runCopyKeyedBy(
    target: Extract<BatchTarget, { kind: 'copyIn' }>,
    columns: readonly string[],
    keyColumn: string,
  ): void {
    const index = columns.indexOf(keyColumn);
    if (index < 0) {
      return this.failBatch(
        PgError.featureNotSupported(`table ${target.table ?? ''} has no sharding key column "${keyColumn}"`),
      );
    }
    this.runCopyIn(target, index);
  }

  /** An INSERT without a column list into a sharded table: learn the table's columns on a shard, then route again. */
  private learnColumnsThenRoute(router: SessionRouter, table: string): void {
    const shard = this.shardServers.findIndex((s) => s !== null);
    this.acquireShards([shard >= 0 ? shard : 0], () => {
      const server = this.shardServers[shard >= 0 ? shard : 0] as ServerConnection;
      this.withTableColumns(server, table, (columns) => {
        router.learnTableColumns(table, columns);
        this.onShardRequestDone(); // routes the waiting request again, now with the key's position known
      });
    });
  }

  /**
   * Look `table`'s columns up on `server` (the request waits meanwhile), then `then(columns)`. A lookup error (no such
   * table) answers the request with that error, as the statement itself would have been answered.
   */
  private withTableColumns(server: ServerConnection, table: string, then: (columns: string[]) => void): void {
    this.isLookingUpColumns = true;
    void lookUpTableColumns(server, table, this).then((found) => {
      this.isLookingUpColumns = false;
      if (this.state !== 'ready') return;
      server.client = this;
      if (found.kind === 'lost')
        return this.fatal(PgError.serverConnectionLost(server.address.shard, found.reason));
      if (found.kind === 'error') {
        this.failBatch(found.error);
        return this.onShardRequestDone();
      }
      if (this.router !== null) this.router.learnTableColumns(table, found.columns);
      then(found.columns);
    });
  }

  private runCopyIn(target: Extract<BatchTarget, { kind: 'copyIn' }>, keyIndex: number | null): void {
    const { types, frames, readyCount } = this.takeRequest();
    const key = target.copy.keyColumn;
    const shardCount = target.shards.length;
    const rows = new CopyRowRouter(target.copy, keyIndex, shardCount, (value, isBinary) =>
      shardForParameter(key as NonNullable<typeof key>, shardCount, value, isBinary ? 1 : 0),
    );
    const servers = target.shards.map((shard) => this.shardServers[shard] as ServerConnection);
    const copy = new CopyInSplit(servers, rows);
    // A table copied to every shard gets every row on each: one logical COPY, its count reported once.
    const spec = key === null ? { ...PASS_THROUGH_SPEC, isReplicated: true } : PASS_THROUGH_SPEC;
    const fanout = new Fanout(shardCount, spec, this);
    fanout.onServerError = (index) => copy.onServerError(index);
    this.fanout = fanout;
    this.copyIn = copy;
    const isAutoTx = this.beginAutoTx(target, fanout, types);
    servers.forEach((server, i) => {
      server.client = fanout.sinkFor(i);
      if (isAutoTx) this.sendSwallowed(server, 'BEGIN');
      this.sendFrames(server, types, frames, readyCount);
    });
  }

  /**
   * Reads go to every shard at once. Writes go one shard after another, in shard order: two transactions writing the
   * same rows on several shards then always lock them in the same order, so they wait instead of deadlocking across
   * shards (which no single PostgreSQL could detect).
   */
  private runFanout(fanout: Fanout, sends: (() => void)[], isWrite: boolean): void {
    if (!isWrite) {
      for (const send of sends) send();
      return;
    }
    fanout.onServerDone = (index) => sends[index + 1]?.();
    sends[0]();
  }

  /** A multi-row INSERT split by shard: each shard gets its own rows; RETURNING rows come back in VALUES order. */
  private sendSplit(
    target: Extract<BatchTarget, { kind: 'split' }>,
    types: number[],
    readyCount: number,
  ): void {
    if (target.clientParse !== null) this.statements?.remember(target.clientParse);
    const spec = target.spec;
    const needsTypes = spec.orderBy.length > 0 || spec.aggregates !== null;
    const described = needsTypes ? target.parts.map((p) => withPortalDescribe(p.types, p.frames)) : [];
    const fanout = new Fanout(target.shards.length, spec, this, described[0] != null);
    this.fanout = fanout;
    const isAutoTx = this.beginAutoTx(target, fanout, types);
    const sends = target.shards.map((shard, i) => {
      const server = this.shardServers[shard] as ServerConnection;
      const part = target.parts[i];
      server.client = fanout.sinkFor(i);
      if (isAutoTx) this.sendSwallowed(server, 'BEGIN');
      return () => {
        // Sent as built: the statement is the per-shard unnamed one, so no name rewriting applies.
        if (part.isParseInjected) server.scanner.swallowNext(Backend.ParseComplete);
        server.send(Buffer.concat(described[i]?.frames ?? part.frames), readyCount);
      };
    });
    this.runFanout(fanout, sends, target.isWrite);
    this.hasOpenSegment = false;
  }

  /**
   * A write on several shards outside a transaction runs inside one on each shard, so a failure on any shard
   * changes nothing anywhere (PostgreSQL's single-statement atomicity). A simple Query's command tag waits for the
   * commit, as in PostgreSQL (extended protocol: the tag comes at Execute, the commit at Sync).
   */
  private beginAutoTx(target: BatchTarget, fanout: Fanout, types: readonly number[]): boolean {
    if (target.kind === 'one' || !target.isMultiShardWrite || this.txStatus !== TxStatus.Idle) return false;
    this.autoTxShards = target.shards;
    if (types.includes(Frontend.Query)) fanout.heldTags = [];
    return true;
  }

  /** A statement of the proxy's own whose replies never reach the client. */
  private sendSwallowed(server: ServerConnection, sql: string): void {
    server.scanner.swallowNextUntilReady();
    server.send(query(sql), 1);
  }

  /**
   * End the proxy's own transaction around a multi-shard write: ROLLBACK everywhere if any shard failed, else commit
   * as for a client's COMMIT (two-phase when two_phase_commit and two_phase_commit_auto are on); then answer.
   */
  private finishAutoTx(shards: readonly number[], status: number, heldTags: readonly Buffer[]): void {
    this.autoTxShards = null;
    if (status !== TxStatus.Failed) {
      const general = this.deps.general();
      const isTwoPhase = general.twoPhaseCommitAuto && shards.length >= 2;
      this.runCommit(shards, new Set(shards), isTwoPhase, (error) => {
        if (error === null) for (const tag of heldTags) this.socket.write(tag);
        else this.socket.write(error);
        if (this.script === null) this.socket.write(readyForQuery(this.combinedShardStatus()));
      });
      return;
    }
    const sinks = endTransactionSinks(shards, this, () => {
      for (const server of this.shardServers) if (server !== null) server.client = this;
      this.txStatus = this.combinedShardStatus();
      if (this.script !== null) return this.onScriptStatementDone(this.txStatus, true);
      this.socket.write(readyForQuery(this.txStatus));
      this.onShardRequestDone();
    });
    shards.forEach((shard, i) => {
      const server = this.shardServers[shard] as ServerConnection;
      server.client = sinks[i];
      server.send(query('ROLLBACK'), 1);
    });
  }

  /** SET / RESET of the request just answered: kept for the session and its servers when it succeeded outside a transaction. */
  private keepSettings(isKept: boolean): void {
    const router = this.router;
    if (router === null) return;
    if (!isKept) return router.dropPendingSettings();
    const changes = router.confirmSettings();
    if (changes.length === 0) return;
    for (const server of this.shardServers) {
      if (server !== null) for (const c of changes) applySettingChange(server.settings, c);
    }
  }

  /** The request being routed, taken off the batch (later pipelined requests stay queued). */
  private takeRequest(): { types: number[]; frames: Buffer[]; readyCount: number } {
    return this.batch.takeFirst(this.requestLength);
  }

  /** A request that cannot run: its error (and ReadyForQuery, unless it is a script statement). */
  private failRequest(err: PgError): void {
    const script = this.script;
    if (script === null) return this.failBatch(err);
    this.log.warn({ code: err.code }, err.message);
    this.takeRequest();
    this.socket.write(err.toBuffer());
    script.remaining--;
    script.hasFailed = true;
    this.finishScript(script);
  }

  /**
   * Run a multi-statement simple Query whose statements need different shards statement by statement, with one
   * ReadyForQuery at the end. Outside a transaction the statements run in one of the proxy's own (BEGIN on every
   * shard first; COMMIT — two-phase with two_phase_commit_auto — or ROLLBACK after), as PostgreSQL runs such a Query
   * as one implicit transaction. False when the Query holds transaction control or COPY (then it is refused).
   */
  private startScript(router: SessionRouter, frame: Buffer): boolean {
    if (this.txStatus === TxStatus.Failed) return false;
    const statements = router.scriptStatements(frame.toString('utf8', 5, frame.length - 1));
    if (!statements.isRunnable) return false;
    // With BEGIN / COMMIT inside, each statement runs as if sent alone (the client's transaction control decides).
    const isImplicit = this.txStatus === TxStatus.Idle && !statements.hasTransactionControl;
    const shards = Array.from({ length: router.shardCount }, (_, i) => i);
    this.acquireShards(shards, () => {
      this.takeRequest();
      this.batch.unshift(
        statements.texts.map(() => Frontend.Query),
        statements.texts.map((text) => query(text)),
      );
      this.script = { remaining: statements.texts.length, isImplicit, hasFailed: false };
      if (!isImplicit) return this.dispatchSharded(router);
      const sinks = endTransactionSinks(shards, this, (errors) => {
        for (const server of this.shardServers) if (server !== null) server.client = this;
        this.txStatus = this.combinedShardStatus();
        if (errors.length > 0) {
          this.socket.write(errors[0]);
          const script = this.script as NonNullable<typeof this.script>;
          script.hasFailed = true;
          return this.finishScript(script);
        }
        this.onShardRequestDone();
      });
      shards.forEach((shard, i) => {
        const server = this.shardServers[shard] as ServerConnection;
        server.client = sinks[i];
        server.send(query('BEGIN'), 1);
      });
    });
    return true;
  }

  private onScriptStatementDone(status: number, sawError: boolean): void {
    const script = this.script as NonNullable<typeof this.script>;
    script.remaining--;
    for (const server of this.shardServers) if (server !== null) server.client = this;
    this.txStatus = status === TxStatus.Idle ? this.combinedShardStatus() : status;
    if (sawError || status === TxStatus.Failed) script.hasFailed = true;
    if (!script.hasFailed && script.remaining > 0) return this.onShardRequestDone(); // runs the next statement
    this.finishScript(script);
  }

  /** After the last statement (or the first failure): skip the rest, end the implicit transaction, ReadyForQuery. */
  private finishScript(script: NonNullable<typeof this.script>): void {
    this.script = null;
    if (script.remaining > 0) this.batch.takeFirst(script.remaining);
    if (!script.isImplicit) {
      this.txStatus = this.combinedShardStatus();
      this.socket.write(readyForQuery(this.txStatus));
      return this.onShardRequestDone();
    }
    const shards: number[] = [];
    this.shardServers.forEach((server, shard) => server !== null && shards.push(shard));
    if (script.hasFailed) return this.finishAutoTx(shards, TxStatus.Failed, []);
    const writers = shards.filter((s) => this.txWriters.has(s));
    const isTwoPhase = this.deps.general().twoPhaseCommitAuto && writers.length >= 2;
    this.runCommit(shards, new Set(writers), isTwoPhase, (error) => {
      if (error !== null) this.socket.write(error);
      this.socket.write(readyForQuery(this.combinedShardStatus()));
    });
  }

  private attachedShardCount(): number {
    let n = 0;
    for (const server of this.shardServers) if (server !== null) n++;
    return n;
  }

  /** The client's COMMIT of a transaction on several shards: run by the proxy (coordinator), answered as PostgreSQL. */
  private commitAcrossShards(): void {
    const { types, frames } = this.takeRequest();
    for (let i = 0; i < types.length; i++)
      if (types[i] === Frontend.Parse) this.statements?.remember(frames[i]);
    const shards: number[] = [];
    this.shardServers.forEach((server, shard) => server !== null && shards.push(shard));
    const writers = shards.filter((s) => this.txWriters.has(s));
    this.runCommit(shards, new Set(writers), writers.length >= 2, (error) =>
      this.socket.write(commitReplies(types, frames, error, this.script === null)),
    );
  }

  /**
   * Commit the transaction open on `shards`: two-phase over the writers when asked for and the transaction manager
   * runs, else plain COMMIT (readers first). `reply` writes the client's answer (error = the commit failed).
   */
  private runCommit(
    shards: readonly number[],
    writers: ReadonlySet<number>,
    wantsTwoPhase: boolean,
    reply: (error: Buffer | null) => void,
  ): void {
    const participants: CommitParticipant[] = shards.map((shard) => ({
      shard,
      server: this.shardServers[shard] as ServerConnection,
      isWriter: writers.has(shard),
    }));
    const txn = this.deps.txn();
    this.isCommitting = true;
    const run: Promise<CommitRun> =
      wantsTwoPhase && txn !== null
        ? commitTwoPhase(txn, this.database, this.user, participants, this, this.log)
        : commitPlain(participants, this, this.log);
    run.then(
      (result) => this.afterCommit(result, reply),
      (err: unknown) => {
        this.isCommitting = false;
        this.log.error({ err: (err as Error).message }, 'commit across shards failed unexpectedly');
        this.fatal(PgError.internal(`commit failed: ${(err as Error).message}`));
      },
    );
  }

  private afterCommit(result: CommitRun, reply: (error: Buffer | null) => void): void {
    this.isCommitting = false;
    for (const shard of result.lost) this.shardServers[shard] = null; // closed; its pool has dropped it
    this.txWriters.clear();
    if (this.state === 'closed') {
      this.releaseShardServers(); // the client left while its commit ran
      return;
    }
    for (const server of this.shardServers) if (server !== null) server.client = this;
    reply(result.error);
    this.txStatus = this.combinedShardStatus();
    if (this.script !== null) return this.onScriptStatementDone(this.txStatus, result.error !== null);
    this.onShardRequestDone();
  }

  onFanoutDone(status: number): void {
    const heldTags = this.fanout?.heldTags ?? [];
    const sawError = this.fanout?.sawError ?? false;
    this.fanout = null;
    if (this.copyIn?.isClientDone === true) this.copyIn = null; // else: drop the client's copy data until its end
    if (this.autoTxShards !== null) return this.finishAutoTx(this.autoTxShards, status, heldTags);
    if (this.script !== null) return this.onScriptStatementDone(status, sawError);
    this.keepSettings(!sawError && status === TxStatus.Idle);
    for (const server of this.shardServers) if (server !== null) server.client = this;
    this.txStatus = status === TxStatus.Idle ? this.combinedShardStatus() : status;
    this.socket.write(readyForQuery(this.txStatus));
    this.onShardRequestDone();
  }

  /** E if any shard's transaction failed, else T if any is in one, else I. */
  private combinedShardStatus(): number {
    let status: number = TxStatus.Idle;
    for (const server of this.shardServers) {
      if (server === null) continue;
      if (server.txStatus === TxStatus.Failed) return TxStatus.Failed;
      if (server.txStatus === TxStatus.InTransaction) status = TxStatus.InTransaction;
    }
    return status;
  }

  /** A request finished: give servers back (transaction mode, all idle) and run the next queued request. */
  private onShardRequestDone(): void {
    if (this.isShardRequestInFlight()) return;
    this.activeShard = null;
    if (this.txStatus === TxStatus.Idle) this.txWriters.clear();
    if (this.queryTimer !== null) {
      clearTimeout(this.queryTimer);
      this.queryTimer = null;
    }
    if (this.isTransactionMode && this.txStatus === TxStatus.Idle && !this.hasOpenSegment) {
      const pools = this.pools as DatabasePools;
      this.shardServers.forEach((server, shard) => {
        if (server === null) return;
        server.client = null;
        pools.shards[shard].release(server);
      });
      this.shardServers.fill(null);
    }
    if (this.router !== null && !this.batch.isEmpty) this.dispatchSharded(this.router);
  }

  // --- ServerClient: called by the attached server connection ---------------------------------------------------

  writeToClient(buf: Buffer): boolean {
    return this.socket.write(buf);
  }

  hasPendingWrites(): boolean {
    return this.socket.writableLength > 0;
  }

  onClientDrain(resume: () => void): void {
    this.socket.once('drain', resume);
  }

  onServerReady(server: ServerConnection, status: number): void {
    if (this.router !== null) {
      if (server.pendingReady !== 0) return;
      this.txStatus = this.combinedShardStatus();
      this.onShardRequestDone();
      return;
    }
    this.txStatus = status;
    if (server.pendingReady !== 0) return;
    if (this.queryTimer !== null) {
      clearTimeout(this.queryTimer);
      this.queryTimer = null;
    }
    if (
      this.isTransactionMode &&
      status === TxStatus.Idle &&
      !this.hasOpenSegment &&
      this.server === server
    ) {
      this.releaseServer();
    }
  }

  onServerParameter(name: string, value: string): void {
    this.params.noteStatus(name, value);
  }

  onServerLost(server: ServerConnection, reason: string): void {
    const shard = this.shardServers.indexOf(server);
    if (shard >= 0) this.shardServers[shard] = null;
    else if (this.server === server) {
      this.server = null;
      this.serverPool = null;
    } else return;
    this.log.warn({ shard: server.address.shard, reason }, 'server connection lost while in use');
    this.fatal(PgError.serverConnectionLost(server.address.shard, reason));
  }

  cancelQuery(): void {
    for (const server of this.server !== null ? [this.server] : this.shardServers) {
      if (server !== null && server.pendingReady > 0) {
        this.log.info({ shard: server.address.shard }, 'forwarding cancel request');
        void server.cancel();
      }
    }
  }

  private onQueryTimeout(timeoutMs: number): void {
    this.queryTimer = null;
    this.log.warn({ timeoutMs }, 'query_timeout reached; cancelling the query');
    this.cancelQuery();
  }

  private onLoginTimeout(timeoutMs: number): void {
    this.loginTimer = null;
    if (this.state !== 'startup' && this.state !== 'auth') return;
    this.log.warn(
      { remote: this.remote, timeoutMs },
      'login not completed within client_login_timeout; closing',
    );
    this.fatal(new PgError('FATAL', SqlState.QueryCanceled, 'canceling authentication due to timeout'));
  }

  private onIdleTimeout(): void {
    if (this.state !== 'ready' || this.server !== null || this.isWaitingForServer) return;
    this.fatal(
      new PgError('FATAL', SqlState.IdleSessionTimeout, 'terminating connection due to client_idle_timeout'),
    );
  }

  private releaseServer(): void {
    const server = this.server;
    const pool = this.serverPool;
    this.server = null;
    this.serverPool = null;
    if (server === null || pool === null) return;
    server.client = null;
    pool.release(server);
  }

  // --- admin console ----------------------------------------------------------------------------------------------

  /** The admin database: only the admin user, always with a password (md5 when configured, else SCRAM). */
  private startAdminLogin(user: string, params: Map<string, string>): void {
    const admin = this.deps.admin();
    this.isAdminLogin = true;
    this.params.fromStartup(params);
    const method = this.deps.general().authType === 'md5' ? 'md5' : 'scram';
    // Another user name gets the same "password authentication failed" as a wrong password (nothing revealed).
    this.auth = new ClientAuth(method, user, user === admin.user ? admin.password : null);
    this.state = 'auth';
    this.applyAuthOutcome(this.auth.start());
  }

  private openAdminConsole(): void {
    this.auth = null;
    this.adminConsole = this.deps.openAdminConsole(
      { write: (buf) => this.socket.write(buf), close: () => this.close('client terminated') },
      this.log,
    );
    this.cancelKey = this.deps.cancels.register(this);
    this.socket.write(adminLoginReplies(this.cancelKey.pid, this.cancelKey.secret));
    this.state = 'ready';
    if (this.loginTimer !== null) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    this.log.info({ remote: this.remote }, 'admin logged in');
  }

  /** What this client is doing: the admin console and metrics read it, and shutdown waits for 'active' ones. */
  get activity(): ClientActivity {
    if (this.state === 'startup' || this.state === 'auth') return 'login';
    if (this.adminConsole !== null) return this.adminConsole.isBusy ? 'active' : 'idle';
    if (this.isWaitingForServer) return 'waiting';
    if (this.txStatus !== TxStatus.Idle || this.isCommitting || this.fanout !== null) return 'active';
    if (this.hasOpenSegment || !this.batch.isEmpty) return 'active';
    // Session mode keeps a server between transactions: only a statement still running makes the client active.
    if (this.server !== null && this.server.pendingReady > 0) return 'active';
    for (const s of this.shardServers) if (s !== null && s.pendingReady > 0) return 'active';
    return 'idle';
  }

  /** One SHOW CLIENTS row's worth. */
  describe(): ClientInfo {
    const serverIds: number[] = [];
    if (this.server !== null) serverIds.push(this.server.id);
    for (const s of this.shardServers) if (s !== null) serverIds.push(s.id);
    const tx = this.txStatus;
    return {
      id: this.id,
      user: this.user,
      database: this.database,
      remoteAddress: this.socket.remoteAddress ?? '',
      remotePort: this.socket.remotePort ?? 0,
      activity: this.activity,
      txState: tx === TxStatus.Idle ? 'idle' : tx === TxStatus.InTransaction ? 'in transaction' : 'failed',
      connectedAt: this.connectedAt,
      applicationName: this.params.wanted.get('application_name') ?? null,
      serverIds,
      bytesReceived: this.socket.bytesRead,
      bytesSent: this.socket.bytesWritten,
      isAdmin: this.isAdminLogin,
    };
  }

  // --- ending ---------------------------------------------------------------------------------------------------

  private protocolViolation(reason: string): void {
    this.log.warn({ remote: this.remote, reason }, 'protocol violation; closing client');
    this.fatal(PgError.protocolViolation(reason));
  }

  /** Send a FATAL error and close this client only. */
  fatal(err: PgError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.socket.end(err.toBuffer());
    this.cleanup();
  }

  close(reason: string): void {
    if (this.state === 'closed') return;
    this.log.debug({ reason }, 'client closing');
    this.state = 'closed';
    this.socket.end();
    this.cleanup();
  }

  private onSocketClose(): void {
    if (this.state !== 'closed') this.state = 'closed';
    this.cleanup();
  }

  private isCleanedUp = false;

  /** Give every shard server back to its pool (reset as the session and transaction state require). */
  private releaseShardServers(): void {
    const pools = this.pools;
    this.shardServers.forEach((s, shard) => {
      if (s === null || pools === null) return;
      resetAndRelease(s, pools.shards[shard], {
        isSessionMode: !this.isTransactionMode,
        txStatus: s.txStatus,
        hasOpenSegment: this.hasOpenSegment || this.fanout !== null,
      });
    });
    this.shardServers.fill(null);
  }

  private cleanup(): void {
    if (this.isCleanedUp) return;
    this.isCleanedUp = true;
    if (this.cancelKey) this.deps.cancels.unregister(this.cancelKey.pid);
    if (this.queryTimer) clearTimeout(this.queryTimer);
    if (this.loginTimer) clearTimeout(this.loginTimer);
    const server = this.server;
    const pool = this.serverPool;
    this.server = null;
    this.serverPool = null;
    if (server !== null && pool !== null) {
      resetAndRelease(server, pool, {
        isSessionMode: !this.isTransactionMode,
        txStatus: this.txStatus,
        hasOpenSegment: this.hasOpenSegment,
      });
    }
    if (!this.isCommitting) this.releaseShardServers(); // else afterCommit releases them
    // Connections that never logged in (health checks, port scans) are not worth an info line each.
    const level = this.user === '' ? 'debug' : 'info';
    this.log[level](
      { remote: this.remote, durationMs: Date.now() - this.connectedAt },
      'client disconnected',
    );
    this.deps.onClose(this);
  }
}

/**
 * The request with a Describe of the portal added before its Execute, when it has an Execute and no Describe of its
 * own: merging sorted or aggregated rows needs their types. Null when nothing needs adding (simple Query, or the
 * client described the portal itself).
 */
function withPortalDescribe(types: number[], frames: Buffer[]): { types: number[]; frames: Buffer[] } | null {
  const exec = types.indexOf(Frontend.Execute);
  if (exec < 0 || types.includes(Frontend.Describe)) return null;
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
