// One client connection, start to end: its login (client-login.ts: startup packet, TLS, auth, startup settings
// checked by a server) hands over a logged-in session, which takes the client's frames into its request batch (type
// and size limits, stand-ins, skip to Sync after an error), hands each request to the path of its database — one
// shard: the server it holds (held-server.ts); 2+ shards: its ShardedDispatch (sharded-dispatch.ts), through the
// ShardedSession it is given —, is the reply sink of its one server (status, release at ReadyForQuery, a lost
// server), and alone owns the socket's lifetime, the timers and the client's status. Its parts, which its request
// paths hold directly instead of calling back: ClientOutput (writes to the client), RequestSend (requests to servers),
// SessionStatus (life state, transaction status, skip-to-Sync), ClientEnding (a failed request's error, FATAL / close).
import { Buffer } from 'node:buffer';
import type net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { DatabasePools } from '../backend/pool-manager.js';
import type { ServerConnection, ReplySink } from '../backend/server-connection.js';
import { checkRequestType, Frontend, TxStatus } from '../protocol/codes.js';
import { FrameReader } from '../protocol/frame-reader.js';
import { backendKeyData, READY_IDLE } from '../protocol/messages.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { startsWithListen } from './listen-check.js';
import { ClientStatements, type StatementNames } from './prepared-statements.js';
import { NO_BOUND, RequestBatch } from './request-batch.js';
import { SessionParams } from './session-params.js';
import { querySample } from './stand-ins.js';
import { SessionRouter, type DatabaseRouting } from './session-router.js';
import { UniqueIdRequests, type UniqueIdSupport } from './unique-id-request.js';
import { ShardedDispatch } from '../engine/sharded-dispatch.js';
import type { DeadlockWatch } from '../txn/deadlock-watch.js';
import type { ShardedSession } from './sharded-session.js';
import { cancelRunning, type Cancellable } from './cancel-registry.js';
import type { TransactionManager } from '../txn/manager.js';
import type { VisibilityFences } from '../txn/visibility-fence.js';
import type { AdminConsoleHandle, AdminIo, ClientActivity, ClientInfo } from '../admin/context.js';
import { adminLoginReplies } from '../admin/console.js';
import { ClientLogin, type LoginDeps, type LoginHost } from './client-login.js';
import { clientActivity, clientInfo, type ClientParts } from './client-facts.js';
import { ClientOutput } from './client-output.js';
import { HeldServer } from './held-server.js';
import { ReadChoice } from './read-choice.js';
import { RequestSend } from './request-send.js';
import { SessionStatus, type SessionState } from './session-status.js';
import { ClientEnding } from './client-ending.js';
import { SessionLog } from './session-log.js';
import { listenToSocket, watchIdle, type SocketOwner } from './session-socket.js';

export interface SessionDeps extends LoginDeps {
  statementNames: StatementNames;
  logger: Logger;
  onClose: (session: ClientSession) => void;
  /** Routing state of a database with 2+ shards (null: one shard, nothing to route). */
  routingFor: (database: string) => DatabaseRouting | null;
  /** pgdog.unique_id() for databases with one shard and replicas (absent: their calls reach PostgreSQL as written). */
  oneShardUniqueIds?: UniqueIdSupport;
  /** The transaction manager (null: two_phase_commit is off). */
  txn: () => TransactionManager | null;
  /** atomic_visibility: the fences of sharded databases (null or absent: off). */
  fences?: VisibilityFences | null;
  /** Distributed deadlock detection (sharded sessions register with it); absent in tests that need none. */
  deadlocks?: DeadlockWatch | null;
  /** The admin console for a client logged in to the admin database. */
  openAdminConsole: (io: AdminIo, log: Logger) => AdminConsoleHandle;
}

let nextSessionId = 1;

/** The session is its login's host itself (no object of closures per client: an idle client would keep them). */
export class ClientSession implements ReplySink, Cancellable, SocketOwner, LoginHost {
  readonly id = nextSessionId++;
  /** Life state, the client's transaction status, skip-to-Sync (session-status.ts); shared with the request paths. */
  private readonly status = new SessionStatus();
  user = '';
  database = '';
  readonly connectedAt = Date.now();
  /** host:port of the client, read from the socket the first time it is needed (see `remote`). */
  private remoteText: string | null = null;

  /** The client's socket (the TLS one once negotiated). */
  socket: net.Socket;
  /** Writes to the client and holds its input back (client-output.ts); shared with the sharded dispatch. */
  readonly output: ClientOutput;
  /** A request's error, or the connection's end (client-ending.ts); shared with the request paths. */
  readonly ending: ClientEnding;
  /** Sends requests' frames to servers: names rewritten, open segment, query_timeout (request-send.ts). */
  private readonly send: RequestSend;
  /** One shard: the server held for the client's requests, checked out and given back (held-server.ts). */
  readonly held: HeldServer;
  private readonly deps: SessionDeps;
  /** Its lines, and the logger its parts log through, made when first used (session-log.ts). */
  private readonly logs: SessionLog;
  readonly reader: FrameReader;
  /**
   * Startup packet, TLS, authentication, startup settings (client-login.ts); null once logged in (its host's closures
   * are a kilobyte an idle client would keep for nothing).
   */
  private login: ClientLogin | null;
  /** Logged in to the admin database (kept from the login). */
  private isAdmin = false;
  private isTransactionMode = true;
  /** A Terminate came after requests still to be answered: closed once they are (`terminate`). */
  private isTerminating = false;
  /** The admin database's console: it gets every frame. */
  private adminConsole: AdminConsoleHandle | null = null;

  /** Client frames not yet sent (views into received chunks). */
  private readonly batch = new RequestBatch();
  /** Sharded databases only: routing and running each request on its shards (with the servers held per shard). */
  private sharded: ShardedDispatch | null = null;
  readonly params = new SessionParams();
  /** The pid of the client's cancel key (0: none yet); its secret stays in the registry. */
  private cancelPid = 0;
  private loginTimer: NodeJS.Timeout | null = null;
  private readonly onFrame = (type: number, frame: Buffer): void => this.handleFrame(type, frame);
  private isCleanedUp = false;
  /** query_size_limit with action "warn": larger Query / Parse messages are logged. */
  private queryWarnBytes = NO_BOUND;
  /** Transaction mode: LISTEN cannot work (listen-check.ts). */
  private isListenRefused = false;

  constructor(socket: net.Socket, deps: SessionDeps) {
    this.socket = socket;
    this.output = new ClientOutput(socket);
    this.deps = deps;
    const logs = (this.logs = new SessionLog(deps.logger, this.id));
    const { status, output, batch } = this;
    const ending = new ClientEnding({ status, output, batch, logs }, this);
    this.ending = ending;
    this.send = ending.send = new RequestSend(output, ending, deps.general, this);
    this.held = new HeldServer({
      batch,
      params: this.params,
      send: this.send,
      output,
      sink: this,
      status,
      ending,
    });
    this.reader = new FrameReader(deps.general().maxMessageSizeBytes);
    this.login = new ClientLogin(this, deps);
    socket.setNoDelay(true);
    this.bindSocket(socket);
    const loginMs = deps.general().clientLoginTimeoutMs;
    if (loginMs > 0) this.loginTimer = setTimeout(() => this.onLoginTimeout(loginMs), loginMs);
    if (logs.isEnabled('debug')) logs.line('debug', { remote: this.remote }, 'client connected');
  }

  /**
   * host:port of the client. Read from the socket when a log line first needs it (then kept: a closed socket no
   * longer knows): the socket's peer-address object and these strings are ~100 B that an idle client logged at level
   * warn never needs.
   */
  get remote(): string {
    return (this.remoteText ??= `${this.socket.remoteAddress}:${this.socket.remotePort}`);
  }

  private bindSocket(socket: net.Socket): void {
    listenToSocket(socket, this);
    const idleMs = this.deps.general().clientIdleTimeoutMs;
    if (idleMs > 0) watchIdle(socket, idleMs);
  }

  // --- input ---------------------------------------------------------------------------------------------------

  /** A chunk from the client (its socket's 'data'). */
  onData(chunk: Buffer): void {
    try {
      this.handleData(chunk);
    } catch (err) {
      this.onInternalError(err);
    }
  }

  /** A bug must cost one client its connection, never the proxy (client-ending.ts). */
  onInternalError(err: unknown): void {
    this.ending.internalError(err);
  }

  private handleData(chunk: Buffer): void {
    const state = this.status.state;
    if (state === 'closed') {
      // Input after the end (a client still sending the frame that was refused): once the error is on its way out,
      // stop reading altogether, as PostgreSQL does by exiting.
      if (this.socket.writableLength === 0) this.socket.destroy();
      return;
    }
    if (state === 'ready') {
      const err = this.reader.push(chunk, this.onFrame);
      if (err !== null) return this.ending.protocolViolation(err, this.reader.isSilent);
      this.afterChunk();
      return;
    }
    if (state === 'auth') {
      const err = this.reader.push(chunk, this.onFrame);
      if (err !== null) this.ending.protocolViolation(err);
      return;
    }
    if (state === 'startup') this.login?.onStartupData(chunk);
  }

  // --- LoginHost: what the login (client-login.ts) uses of this session ---------------------------------------------

  get state(): SessionState {
    return this.status.state;
  }

  set state(state: SessionState) {
    this.status.state = state;
  }

  get log(): Logger {
    return this.logs.log;
  }

  useSocket(secure: tls.TLSSocket): void {
    this.socket = secure;
    this.output.socket = secure;
    this.bindSocket(secure);
  }

  setIdentity(user: string, database: string): void {
    this.user = user;
    this.database = database;
    this.logs.identify(user, database);
  }

  /**
   * Authenticated: the database's pools, and what the session keeps for them — named statements across servers,
   * pgdog.unique_id(), the sharded dispatch. True when the session needs no server of its own (transaction mode, or
   * a sharded database). A replication connection runs in session mode whatever the user's pooler_mode.
   */
  usePools(pools: DatabasePools, isReplication: boolean): boolean {
    this.held.pools = this.ending.pools = pools;
    if (isReplication) {
      this.isTransactionMode = false;
      this.send.isReplication = true;
      return false;
    }
    this.isTransactionMode = pools.mode === 'transaction';
    const routing = pools.shards.length > 1 ? this.deps.routingFor(this.database) : null;
    // Named statements follow the client onto whichever server a request lands on: in transaction mode, and on
    // sharded databases in session mode too (a statement prepared on one shard is used on another).
    if (this.isTransactionMode || routing !== null) {
      this.send.statements = new ClientStatements(this.deps.statementNames, this.deps.general);
      this.send.statements.isDuplicateRefused = routing === null;
    }
    if (routing === null && pools.hasReplicas && this.deps.oneShardUniqueIds !== undefined)
      this.held.useUniqueIds(new UniqueIdRequests(this.deps.oneShardUniqueIds)); // as PgDog, whose parser is on with replicas
    // Read/write split: read intent, `SET pgdog.role`, read-your-writes (read-choice.ts); only a database with replicas
    // or shards has one (else every request goes to the one primary).
    const send = this.send;
    const reads =
      pools.hasReplicas || routing !== null
        ? new ReadChoice(this.logs, this.params, (name) => send.statements?.textOf(name) ?? null)
        : null;
    this.held.reads = reads;
    if (routing !== null && reads !== null) {
      // The watch reads the dispatch (built next, before any request) and the dispatch notes its waits on the watch.
      let sharded: ShardedDispatch | null = null;
      const watched =
        this.deps.deadlocks?.watch({
          id: this.id,
          user: this.user,
          database: this.database,
          isTransactionMode: this.isTransactionMode,
          servers: () => sharded?.heldServers() ?? [],
          queuedCheckouts: () => sharded?.queuedCheckouts() ?? [],
          serversInCheckout: () => sharded?.serversInCheckout() ?? [],
          failCheckout: (err) => sharded?.failCheckout(err) ?? false,
        }) ?? null;
      this.status.watched = this.send.watched = watched;
      const router = new SessionRouter(routing, this.params.settings);
      this.sharded = sharded = new ShardedDispatch(router, this.shardedSession(pools, watched, reads));
    }
    this.isListenRefused = this.isTransactionMode;
    return this.isTransactionMode || routing !== null;
  }

  /** What the sharded dispatcher may use of this session. */
  private shardedSession(
    pools: DatabasePools,
    watched: ShardedSession['watched'],
    reads: ReadChoice,
  ): ShardedSession {
    return {
      user: this.user,
      database: this.database,
      log: this.logs.log,
      pools,
      isTransactionMode: this.isTransactionMode,
      batch: this.batch,
      params: this.params,
      statements: this.send.statements,
      send: this.send,
      proxy: this.deps,
      phaseTwoCount: this.deps.fences?.phaseTwoCount ?? null,
      status: this.status,
      ending: this.ending,
      output: this.output,
      reads,
      watched,
    };
  }

  sendLoginReplies(serverParams: ReadonlyMap<string, string>, isFrozen: boolean): void {
    const status = this.params.loginFrames(serverParams, isFrozen);
    // A server held for the whole session (session mode on one shard, replication): its backend's pid, if free.
    const key = this.deps.cancels.register(this, this.held.server?.backendPid ?? 0);
    this.cancelPid = key.pid;
    this.output.write(Buffer.concat([status, backendKeyData(key.pid, key.secret), READY_IDLE]));
    this.enterReady();
    if (this.loginTimer !== null) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    if (this.logs.isEnabled('info'))
      this.logs.line('info', { remote: this.remote, mode: this.held.pools?.mode }, 'client logged in');
  }

  /**
   * Logged in: requests up to max_message_size, of the types PostgreSQL accepts; Query / Parse messages over
   * query_size_limit logged ("warn") or refused unread ("block").
   */
  private enterReady(): void {
    this.status.state = 'ready';
    this.isAdmin = this.login?.isAdmin ?? false;
    this.login = null;
    const general = this.deps.general();
    const reader = this.reader;
    reader.maxFrameBytes = general.maxMessageSizeBytes;
    reader.typeCheck = checkRequestType;
    reader.hasPgLengthLimits = true;
    const limit = general.querySizeLimitBytes;
    if (limit === null || this.adminConsole !== null) return;
    if (general.querySizeLimitAction === 'warn') {
      this.queryWarnBytes = limit;
      return;
    }
    reader.skipQueriesOverBytes = limit;
    // A stand-in takes its place in the request, so the client gets ERROR 54000 where its answer belongs.
    reader.onOversized = (type, totalBytes, start) =>
      this.handleFrame(
        type,
        this.send.refusals().forOversized(this.logs.log, type, totalBytes, start, limit),
      );
  }

  private handleFrame(type: number, frame: Buffer): void {
    const status = this.status;
    if (status.state === 'auth') return this.login?.onAuthFrame(type, frame);
    if (status.state !== 'ready') return;
    if (this.adminConsole !== null) return this.adminConsole.onFrame(type, frame);
    if (frame.length > this.queryWarnBytes && (type === Frontend.Query || type === Frontend.Parse)) {
      this.logs.log.warn(
        { sizeBytes: frame.length, limitBytes: this.queryWarnBytes, sample: querySample(type, frame) },
        'query over query_size_limit',
      );
    }
    if (this.isTerminating) return; // PostgreSQL reads nothing after a Terminate
    if (status.isSkippingToSync) {
      const ready = status.skipped(type === Frontend.Sync);
      if (ready !== null) {
        this.output.write(ready);
        this.sharded?.syncOpenSegments(); // the Sync a shard mid-segment would have had
      }
      return;
    }
    if (
      this.isListenRefused &&
      (type === Frontend.Query || type === Frontend.Parse) &&
      startsWithListen(type, frame)
    ) {
      return this.handleFrame(type, this.send.refusals().forListen(this.logs.log, type));
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
        return this.terminate();
      default:
        return this.ending.protocolViolation(checkRequestType(type) ?? `unexpected message type ${type}`);
    }
  }

  /** After a chunk's frames are queued: send them if a server is attached, else check one out at a flush point. */
  private afterChunk(): void {
    if (!this.status.isReady || this.batch.isEmpty) return;
    if (this.sharded !== null) {
      this.sharded.dispatch();
      this.output.limitBacklog(this.batch);
      return;
    }
    const server = this.held.server;
    if (server !== null) {
      this.held.sendBatch(server);
      return;
    }
    if (this.batch.isFlushPoint) {
      this.held.checkout();
      this.output.limitBacklog(this.batch);
      return;
    }
    if (this.batch.bytes > this.deps.general().maxMessageSizeBytes) {
      this.ending.protocolViolation(
        `request of ${this.batch.bytes} bytes without Sync exceeds max_message_size`,
      );
    }
  }

  // --- ReplySink: called by the attached server connection ---------------------------------------------------

  writeToClient(buf: Buffer): boolean {
    return this.output.write(buf);
  }

  hasPendingWrites(): boolean {
    return this.output.hasPendingWrites();
  }

  onClientDrain(resume: () => void): void {
    this.output.onDrain(resume);
  }

  /** Terminate: as PostgreSQL, whole requests in the same write still run and are answered (one shard), then the close. */
  private terminate(): void {
    const server = this.held.server;
    const isIdle = server === null || server.pendingReady === 0; // (a request running may be a COPY, or skipped)
    if (this.sharded === null && isIdle && !this.send.hasOpenSegment && this.batch.isWholeRequests) {
      this.isTerminating = true;
      return;
    }
    this.ending.close('client terminated');
  }

  onServerReady(server: ServerConnection, status: number): void {
    this.status.tell(status);
    if (server.pendingReady !== 0) return;
    if (this.isTerminating && this.batch.isEmpty) {
      setImmediate(() => this.ending.close('client terminated'));
    }
    this.send.stopQueryTimer();
    if (
      this.isTransactionMode &&
      status === TxStatus.Idle &&
      !this.send.hasOpenSegment &&
      this.held.server === server
    ) {
      this.held.release();
    }
  }

  onServerParameter(name: string, value: string): void {
    this.params.noteStatus(name, value);
  }

  onServerLost(server: ServerConnection, reason: string): void {
    if (!this.held.forget(server)) return;
    this.logs.log.warn({ shard: server.address.shard, reason }, 'server connection lost while in use');
    this.ending.fatal(PgError.serverConnectionLost(server.address.shard, reason, server.fatalError));
  }

  cancelQuery(): void {
    const server = this.held.server;
    if (server !== null) cancelRunning(server, this.logs.log);
    else this.sharded?.cancelQuery();
  }

  /** query_timeout passed for the request in flight (request-send.ts): cancel it. */
  onQueryTimeout(timeoutMs: number): void {
    this.logs.log.warn({ timeoutMs }, 'query_timeout reached; cancelling the query');
    this.cancelQuery();
  }

  private onLoginTimeout(timeoutMs: number): void {
    this.loginTimer = null;
    const state = this.status.state;
    if (state !== 'startup' && state !== 'auth') return;
    this.logs.line(
      'warn',
      { remote: this.remote, timeoutMs },
      'login not completed within client_login_timeout; closing',
    );
    this.ending.fatal(
      new PgError('FATAL', SqlState.QueryCanceled, 'canceling authentication due to timeout'),
    );
  }

  /**
   * Idle means no request under way and no transaction open (a server attached, shards in use, or a request waiting
   * for a server or for another transaction's phase 2 spare the client).
   */
  onIdleTimeout(): void {
    if (!this.status.isReady || this.held.server !== null || this.held.isWaiting) return;
    const sharded = this.sharded;
    if (sharded !== null && (!sharded.isIdle || this.status.txStatus !== TxStatus.Idle)) return;
    this.ending.fatal(
      new PgError('FATAL', SqlState.IdleSessionTimeout, 'terminating connection due to client_idle_timeout'),
    );
  }

  // --- admin console ----------------------------------------------------------------------------------------------

  openAdminConsole(): void {
    this.adminConsole = this.deps.openAdminConsole(
      { write: (buf) => this.output.write(buf), close: () => this.ending.close('client terminated') },
      this.logs.log,
    );
    const key = this.deps.cancels.register(this);
    this.cancelPid = key.pid;
    this.output.write(adminLoginReplies(key.pid, key.secret));
    this.enterReady();
    if (this.loginTimer !== null) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    this.logs.line('info', { remote: this.remote }, 'admin logged in');
  }

  /** What this client is doing (client-facts.ts): the admin console and metrics read it, shutdown waits for it. */
  get activity(): ClientActivity {
    return clientActivity(this.parts());
  }

  /** One SHOW CLIENTS row's worth (client-facts.ts). */
  describe(): ClientInfo {
    return clientInfo(this.parts());
  }

  private parts(): ClientParts {
    const { id, user, database, connectedAt, adminConsole, held, sharded, send } = this;
    const { batch, socket, params, status } = this;
    return {
      id,
      user,
      database,
      connectedAt,
      state: status.state,
      txStatus: status.txStatus,
      adminConsole,
      held,
      sharded,
      send,
      batch,
      socket,
      params,
      isAdmin: this.login?.isAdmin ?? this.isAdmin,
    };
  }

  // --- ending ---------------------------------------------------------------------------------------------------

  /** Send a FATAL error and close this client only (client-ending.ts). */
  fatal(err: PgError): void {
    this.ending.fatal(err);
  }

  /** The client's socket failed (its 'error'; 'close' follows). */
  onSocketError(err: Error): void {
    this.logs.line('debug', { err: err.message }, 'client socket error');
  }

  /** The client's socket closed. */
  onSocketClose(): void {
    this.status.state = 'closed';
    this.cleanup();
  }

  /** The connection ended (its socket closed, or the proxy ended it: client-ending.ts): everything it held goes. */
  cleanup(): void {
    if (this.isCleanedUp) return;
    this.isCleanedUp = true;
    if (this.cancelPid !== 0) this.deps.cancels.unregister(this.cancelPid);
    if (this.status.watched !== null) this.deps.deadlocks?.unwatch(this.status.watched);
    this.send.stopQueryTimer();
    if (this.loginTimer) clearTimeout(this.loginTimer);
    this.held.end({
      isSessionMode: !this.isTransactionMode,
      txStatus: this.status.txStatus,
      hasOpenSegment: this.send.hasOpenSegment,
    });
    this.sharded?.onSessionClosed();
    this.send.statements?.clear(); // the shared cache may drop what only this client used
    // Connections that never logged in (health checks, port scans) are not worth an info line each.
    const level = this.user === '' ? 'debug' : 'info';
    if (this.logs.isEnabled(level)) {
      const fields = { remote: this.remote, durationMs: Date.now() - this.connectedAt };
      this.logs.line(level, fields, 'client disconnected');
    }
    this.deps.onClose(this);
  }
}
