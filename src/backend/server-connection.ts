// One connection to a PostgreSQL server (TCP, or its Unix-domain socket when the host is a directory): connect +
// authenticate (trust, cleartext, md5, SCRAM-SHA-256), then stream replies to whichever client session is attached, looking only at message headers (PgBouncer sbuf-style).
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import net from 'node:net';
import { Parser } from 'pg-protocol/dist/parser.js';
import { serialize } from 'pg-protocol';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { TxStatus } from '../protocol/codes.js';
import { errorFields } from '../protocol/error-fields.js';
import { startupMessage, TERMINATE } from '../protocol/messages.js';
import { md5PasswordHash } from '../auth/md5.js';
import { ScramClientSession } from '../auth/scram-client.js';
import { ResponseScanner, type ScannerOwner } from './response-scanner.js';
import { ServerStatements } from './server-statements.js';
import { UNTRACKED_SHARD, type RoleTraffic, type ShardStats } from '../stats/shard-stats.js';
import { PgError } from '../errors/pg-error.js';
import type { SqlStateCode } from '../errors/sqlstate.js';
import type { OwnStatement, PreparedBranch } from './own-statement.js';
import { openSocket, sendCancel, type ServerAddress } from './server-socket.js';

export type { ServerAddress } from './server-socket.js';

/**
 * Who receives a server's replies while it is checked out: the client session, a fan-out's per-shard sink, or a
 * query of the proxy's own (server-query.ts). Set with ServerConnection.attach / detach only.
 */
export interface ReplySink {
  /** Write reply bytes to the client; false = the client socket is backpressured. */
  writeToClient(buf: Buffer): boolean;
  /** Bytes handed to writeToClient that the socket has not passed to the kernel yet. */
  hasPendingWrites(): boolean;
  /** Resume reading the server once the client drains. */
  onClientDrain(resume: () => void): void;
  /** A ReadyForQuery reached the client. */
  onServerReady(server: ServerConnection, txStatus: number): void;
  onServerParameter(name: string, value: string): void;
  /** Handling this server's replies threw (a bug): the server is already dropped; close the client. */
  onInternalError?(err: unknown): void;
  /**
   * The server connection died while attached. If the server said why (a FATAL ErrorResponse), `server.fatalError`
   * holds it, byte for byte: it is what the client is to receive.
   */
  onServerLost(server: ServerConnection, reason: string): void;
}

/**
 * connecting → idle (logged in) → active (checked out) → idle (checked in) …; any → closed, which is final. Changed
 * by ServerConnection alone (`move`): the pool checks a server out and in through `checkOut` / `checkIn`.
 */
export type ServerState = 'connecting' | 'idle' | 'active' | 'closed';

const NEXT_STATE: Readonly<Record<ServerState, readonly ServerState[]>> = {
  connecting: ['idle', 'closed'],
  idle: ['active', 'closed'],
  active: ['idle', 'closed'],
  closed: ['closed'], // closing twice (Terminate sent, then the socket's close) is a no-op
};

/** connect() failed because the server refused the login: its own error (wrong password, no such role …). */
export class StartupRefused extends Error {
  /** The server's ErrorResponse, as a FATAL (the login ended there). */
  readonly error: PgError;

  constructor(reason: string, error: PgError) {
    super(reason);
    this.name = 'StartupRefused';
    this.error = error;
  }
}

let nextServerId = 1;

/** Size of each connection's read buffer (libuv reads up to this much per call). */
const READ_BUFFER_BYTES = 64 * 1024;

export class ServerConnection implements ScannerOwner {
  readonly id = nextServerId++;
  readonly address: ServerAddress;
  private current: ServerState = 'connecting';
  readonly params = new Map<string, string>();
  backendPid = 0;
  backendSecret = 0;
  /** Server-side prepared statement names this connection has (transaction-mode statement sharing). */
  readonly prepared = new ServerStatements();
  /** Session settings made with SET on this connection (name → the statement), kept in step by sharded sessions. */
  readonly settings = new Map<string, string>();
  /** Statement names prepared by the batch in flight; forgotten again if that batch reports an error. */
  readonly unconfirmed: string[] = [];
  private batchFailed = false;
  readonly createdAt = Date.now();
  /**
   * performance.now() when it last became ready (logged in, or a ReadyForQuery): idle_timeout counts from it. The clock
   * read that times the request (countReady) is this one too: no second clock read per request.
   */
  lastUsedMs = performance.now();
  /** When this connection last proved it answers (connected, or passed a health check): health-check.ts. */
  healthyAt = Date.now();
  txStatus: number = TxStatus.Idle;
  /** Who receives this server's replies now (attach / detach); null: no one — unsolicited messages are dropped. */
  private sink: ReplySink | null = null;
  /**
   * Called once when the socket closes (pool bookkeeping). `wasInUse`: a client was attached (a request may have been
   * in flight), so the server went away under it; a connection the proxy ended itself (terminate) has none.
   */
  onClose: ((server: ServerConnection, reason: string, wasInUse: boolean) => void) | null = null;
  /** Where queries, transactions and errors are counted (set by the pool). */
  stats: ShardStats = UNTRACKED_SHARD;
  /** Where this server's role counts its queries and transactions (set by the pool: `stats.byRole[role]`). */
  roleTraffic: RoleTraffic = UNTRACKED_SHARD.byRole.primary;
  /** performance.now() when the request in flight / the transaction in progress started; 0 = none. */
  private busySinceMs = 0;
  private xactSinceMs = 0;

  /** The commit step its holder runs on it now (commit-steps.ts' Runner sets and clears it); null: none. */
  ownStatement: OwnStatement | null = null;
  /**
   * The branch its holder's commit prepared on it (`commitId`: that commit): while that commit still has a step in
   * flight, a wait for this prepared transaction is a wait for the holder's transaction. Null: none.
   */
  preparedBranch: PreparedBranch | null = null;

  /** Its pool's bookkeeping (written by pool.ts alone): checked out now; taken by the pool's idle health check. */
  isOutOfPool = false;
  isInHealthCheck = false;

  /** The server asked for a password at login (false: it trusted the connection). */
  hasRequestedPassword = false;

  /** The FATAL ErrorResponse the server sent before closing (pg_terminate_backend, shutdown, timeouts), if any. */
  fatalError: Buffer | null = null;

  private socket: net.Socket | null = null;
  /** Writes held back while a cancel of the proxy's own is on its way (cancelHoldingWrites); null: none. */
  private heldWrites: Buffer[] | null = null;
  readonly scanner = new ResponseScanner(this);
  private closeReason = '';

  constructor(address: ServerAddress) {
    this.address = address;
  }

  get state(): ServerState {
    return this.current;
  }

  /** The one place the state changes; throws on a move that cannot happen (a bug, never a runtime condition). */
  private move(next: ServerState): void {
    if (!NEXT_STATE[this.current].includes(next))
      throw new Error(`server ${this.id}: illegal state change ${this.current} → ${next}`);
    this.current = next;
  }

  /** Checked out of its pool (or opened for one client alone, replication): idle → active. */
  checkOut(): void {
    this.move('active');
  }

  /** Back in its pool, idle: no one receives its replies any more. */
  checkIn(): void {
    if (this.current !== 'active')
      throw new Error(
        `server ${this.id}: illegal state change ${this.current} → idle (only a checked-out server is checked in)`,
      );
    this.sink = null;
    this.move('idle');
  }

  /**
   * From now on `sink` receives this server's replies (a checked-out server's owner decides who). Returns the sink it
   * replaces (null: none), for a run that gives the server back to it when done.
   */
  attach(sink: ReplySink): ReplySink | null {
    const previous = this.sink;
    this.sink = sink;
    return previous;
  }

  /** Give the server back to `previous` (what `attach` returned): null detaches it. */
  restore(previous: ReplySink | null): void {
    this.sink = previous;
  }

  /** No one receives this server's replies any more (released, left to close, or handed back). */
  detach(): void {
    this.sink = null;
  }

  /** Someone receives this server's replies. */
  get isAttached(): boolean {
    return this.sink !== null;
  }

  /** Open the socket, run startup + auth, and resolve when the server is ready for queries. */
  connect(connectTimeoutMs: number, startupParams: Record<string, string>): Promise<void> {
    return new Promise((resolve, reject) => {
      // Reads land in a per-connection buffer handed to `onRead` (no Buffer object, no stream machinery per read).
      const onread = {
        buffer: () => this.nextReadBuffer(),
        callback: (n: number, buf: Uint8Array) => this.onRead(n, buf),
      };
      const socket = openSocket(this.address, onread);
      this.socket = socket;
      socket.setNoDelay(true);
      let settled = false;
      const fail = (reason: string, refusal?: PgError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.move('closed');
        socket.destroy();
        reject(refusal === undefined ? new Error(reason) : new StartupRefused(reason, refusal));
      };
      const timer =
        connectTimeoutMs > 0
          ? setTimeout(() => fail(`connect timeout after ${connectTimeoutMs} ms`), connectTimeoutMs)
          : undefined;
      socket.once('error', (err) => fail(err.message));
      socket.once('close', () => fail('server closed the connection during startup'));
      socket.once('connect', () => {
        socket.write(
          startupMessage({
            user: this.address.user,
            database: this.address.database,
            ...startupParams,
          }),
        );
      });
      const parser = new Parser();
      let scram: ScramClientSession | null = null;
      this.onBytes = (chunk: Buffer): void => {
        try {
          parser.parse(chunk, (msg) => {
            if (settled) return;
            scram = this.handleStartupMessage(msg, socket, scram, fail);
            if (msg.name === 'readyForQuery') {
              settled = true;
              clearTimeout(timer);
              socket.removeAllListeners('error');
              socket.removeAllListeners('close');
              this.enterStreaming(socket);
              resolve();
            }
          });
        } catch (err) {
          fail(`bad startup reply: ${(err as Error).message}`);
        }
      };
    });
  }

  /** Where received bytes go: the startup parser (copies), then the reply scanner (views). */
  private onBytes: (chunk: Buffer) => void = () => undefined;
  private readBuffer: Buffer | null = null;
  /** A write still pending on the client socket references bytes of `readBuffer`: the next read needs a new one. */
  private isReadBufferPinned = false;

  private nextReadBuffer(): Buffer {
    if (this.readBuffer === null || this.isReadBufferPinned) {
      this.readBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
      this.isReadBufferPinned = false;
    }
    return this.readBuffer;
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    const view = Buffer.from(buf.buffer, buf.byteOffset, n);
    try {
      this.onBytes(this.state === 'connecting' ? Buffer.from(view) : view);
    } catch (err) {
      // A bug while handling replies: this connection's state is unknown. Drop it and its client, keep the proxy.
      const client = this.sink;
      this.sink = null;
      this.destroy(`internal error: ${(err as Error).message}`);
      if (client?.onInternalError) client.onInternalError(err);
      else client?.onServerLost(this, `internal error: ${(err as Error).message}`);
    }
    return true;
  }

  private handleStartupMessage(
    msg: BackendMessage,
    socket: net.Socket,
    scram: ScramClientSession | null,
    fail: (reason: string, refusal?: PgError) => void,
  ): ScramClientSession | null {
    const password = this.address.password;
    if (msg.name.startsWith('authentication') && msg.name !== 'authenticationOk')
      this.hasRequestedPassword = true;
    switch (msg.name) {
      case 'authenticationCleartextPassword':
        if (password === null) fail('server asked for a password and none is configured');
        else socket.write(serialize.password(password));
        return scram;
      case 'authenticationMD5Password': {
        if (password === null) {
          fail('server asked for a password and none is configured');
          return scram;
        }
        const salt = (msg as unknown as { salt: Buffer }).salt;
        socket.write(serialize.password(md5PasswordHash(this.address.user, password, salt)));
        return scram;
      }
      case 'authenticationSASL': {
        const mechanisms = (msg as unknown as { mechanisms: string[] }).mechanisms;
        if (!mechanisms.includes('SCRAM-SHA-256')) {
          fail(`server offers no supported SASL mechanism (${mechanisms.join(', ')})`);
          return scram;
        }
        if (password === null) {
          fail('server asked for a password and none is configured');
          return scram;
        }
        const session = new ScramClientSession(password);
        socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', session.clientFirst()));
        return session;
      }
      case 'authenticationSASLContinue': {
        const data = (msg as unknown as { data: string }).data;
        if (!scram) fail('unexpected SASLContinue');
        else socket.write(serialize.sendSCRAMClientFinalMessage(scram.handleServerFirst(data)));
        return scram;
      }
      case 'authenticationSASLFinal':
        scram?.verifyServerFinal((msg as unknown as { data: string }).data);
        return scram;
      case 'authenticationOk':
        return scram;
      case 'parameterStatus': {
        const m = msg as unknown as { parameterName: string; parameterValue: string };
        this.params.set(m.parameterName, m.parameterValue);
        return scram;
      }
      case 'backendKeyData': {
        const m = msg as unknown as { processID: number; secretKey: number };
        this.backendPid = m.processID;
        this.backendSecret = m.secretKey;
        return scram;
      }
      case 'error': {
        const m = msg as unknown as { message: string; code: string; detail?: string; hint?: string };
        // The server's SQLSTATE may be one the proxy's table does not list: it is passed on, never re-encoded.
        const refusal = new PgError('FATAL', m.code as SqlStateCode, m.message, m.detail, m.hint);
        fail(`${m.message} (SQLSTATE ${m.code})`, refusal);
        return scram;
      }
      default:
        return scram; // notices, NegotiateProtocolVersion: nothing to do
    }
  }

  private enterStreaming(socket: net.Socket): void {
    this.move('idle');
    this.onBytes = (chunk: Buffer) => this.scanner.scan(chunk);
    socket.on('error', (err) => {
      this.closeReason ||= err.message;
    });
    socket.on('close', () => this.handleClose());
  }

  private handleClose(): void {
    if (this.state === 'closed' && !this.onClose) return;
    const reason = this.closeReason || 'server closed the connection';
    this.move('closed');
    const client = this.sink;
    this.sink = null;
    if (client) client.onServerLost(this, reason);
    const onClose = this.onClose;
    this.onClose = null;
    onClose?.(this, reason, client !== null);
  }

  // --- ScannerOwner: called by the response scanner -------------------------------------------------------

  forward(buf: Buffer): void {
    const client = this.sink;
    if (!client) return; // no one to receive (unsolicited message while idle): dropped
    const isFlowing = client.writeToClient(buf);
    // A write the kernel did not take at once keeps pointing into our read buffer: stop reusing it.
    if (client.hasPendingWrites()) this.isReadBufferPinned = true;
    if (!isFlowing) {
      const socket = this.socket;
      if (!socket) return;
      socket.pause();
      client.onClientDrain(() => socket.resume());
    }
  }

  errorSeen(buf: Buffer, start: number): void {
    this.batchFailed = true;
    this.stats.errors.recordFrame(buf, start);
  }

  swallowReply(type: number, inWrite: number, isNewWindow: boolean): void {
    this.scanner.swallowReply(type, inWrite, isNewWindow);
  }

  fatalSeen(frame: Buffer): void {
    this.fatalError = Buffer.from(frame);
    this.closeReason ||= `server sent FATAL: ${errorFields(this.fatalError).get('M') ?? '(no message)'}`;
  }

  readyForQuery(status: number): void {
    if (this.pendingReady === 0) {
      if (this.unconfirmed.length > 0) {
        if (this.batchFailed) for (const name of this.unconfirmed) this.prepared.delete(name);
        else for (const name of this.unconfirmed) this.prepared.confirm(name);
        this.unconfirmed.length = 0;
      }
      this.batchFailed = false;
    }
    this.txStatus = status;
    this.lastUsedMs = this.countReady(status);
    this.sink?.onServerReady(this, status);
  }

  parameterStatus(name: string, value: string): void {
    this.params.set(name, value);
    this.sink?.onServerParameter(name, value);
  }

  protocolError(reason: string): void {
    this.destroy(`protocol error from server: ${reason}`);
  }

  // --- used by pools and sessions ----------------------------------------------------------------------------

  /** Send bytes to the server (one write per batch). `readyCount` = ReadyForQuery replies they will produce. */
  send(buf: Buffer, readyCount: number): void {
    this.scanner.readyExpected += readyCount;
    if (this.busySinceMs === 0) this.markBusy();
    if (this.heldWrites !== null) this.heldWrites.push(buf);
    else this.socket?.write(buf);
  }

  /** `send`, and what this tick sends here after it leaves in the same write (a joining shard's BEGIN, its request). */
  sendAhead(buf: Buffer, readyCount: number): void {
    const socket = this.socket;
    if (socket !== null && this.heldWrites === null && socket.writableCorked === 0) {
      socket.cork();
      process.nextTick(uncork, socket); // Node's own pattern: uncorked once this tick's writes are in
    }
    this.send(buf, readyCount);
  }

  /** Send a batch given as several buffers in one syscall where possible. */
  sendMany(bufs: Buffer[], readyCount: number): void {
    this.scanner.readyExpected += readyCount;
    if (this.busySinceMs === 0) this.markBusy();
    const socket = this.socket;
    if (!socket) return;
    if (this.heldWrites !== null) {
      this.heldWrites.push(...bufs);
      return;
    }
    if (bufs.length === 1) {
      socket.write(bufs[0]);
      return;
    }
    socket.cork();
    for (const b of bufs) socket.write(b);
    socket.uncork();
  }

  private markBusy(): void {
    const now = performance.now();
    this.busySinceMs = now;
    if (this.xactSinceMs === 0) this.xactSinceMs = now;
  }

  /** A ReadyForQuery ends a request (and, back to idle, a transaction): count it and its duration. Returns the time. */
  private countReady(status: number): number {
    const now = performance.now();
    if (this.busySinceMs === 0) return now;
    const stats = this.stats;
    const isMore = this.pendingReady > 0; // pipelined: the next request starts now
    stats.queries++;
    this.roleTraffic.queries++;
    stats.queryTime.record(now - this.busySinceMs);
    this.busySinceMs = isMore ? now : 0;
    if (status === TxStatus.Idle) {
      stats.transactions++;
      this.roleTraffic.transactions++;
      stats.transactionTime.record(now - this.xactSinceMs);
      this.xactSinceMs = isMore ? now : 0;
    }
    return now;
  }

  /** When it last became ready, as Unix milliseconds (SHOW SERVERS). */
  get lastUsedAt(): number {
    return performance.timeOrigin + this.lastUsedMs;
  }

  /** Bytes sent that the socket has not passed to the kernel yet (a server slow to read, e.g. during COPY). */
  get unsentBytes(): number {
    return this.socket?.writableLength ?? 0;
  }

  /**
   * Call `then` once the socket has passed every byte sent to the kernel (at once if its last write did not fill its
   * buffer). Never called if the socket closes first.
   */
  onSendDrain(then: () => void): void {
    const socket = this.socket;
    if (socket === null || !socket.writableNeedDrain) then();
    else socket.once('drain', then);
  }

  /** Bytes written to / read from this connection's socket so far (kept after it closes). */
  get bytesSent(): number {
    return this.socket?.bytesWritten ?? 0;
  }

  get bytesReceived(): number {
    return this.socket?.bytesRead ?? 0;
  }

  /** ReadyForQuery replies still owed for what was sent (one per Query / Sync / FunctionCall). */
  get pendingReady(): number {
    return this.scanner.readyExpected - this.scanner.readySeen;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Close politely (Terminate) — used for idle connections the pool retires. */
  terminate(reason: string): void {
    if (this.state === 'closed') return;
    this.closeReason = reason;
    this.socket?.end(TERMINATE);
    this.move('closed');
    // 'close' will fire from the socket; detach the client now so nothing more is forwarded.
    this.sink = null;
  }

  /** Tear down at once (protocol error, broken state). */
  destroy(reason: string): void {
    if (this.state === 'closed' && !this.socket) return;
    this.closeReason ||= reason;
    this.move('closed');
    this.socket?.destroy();
  }

  /**
   * Cancel the running statement (as `cancel`) and hold back whatever is sent to this server until the CancelRequest
   * has been taken (its connection closed): a statement that ended on its own meanwhile is followed by the next one
   * only then, so the cancel cannot reach that one instead (PostgreSQL ignores a cancel of an idle backend).
   */
  cancelHoldingWrites(): Promise<void> {
    this.heldWrites ??= [];
    return this.cancel().then(() => {
      const held = this.heldWrites;
      this.heldWrites = null;
      const socket = this.socket;
      if (held === null || held.length === 0 || socket === null || this.state === 'closed') return;
      socket.cork();
      for (const b of held) socket.write(b);
      socket.uncork();
    });
  }

  /** Send a CancelRequest for this server's backend over a fresh connection. */
  cancel(): Promise<void> {
    return sendCancel(this.address, this.backendPid, this.backendSecret);
  }

  /**
   * Extended-protocol messages were sent after the last Sync (set by the session that sends client frames): the server
   * still holds their portal — or, after an error, skips everything until a Sync — so it must not be handed to anyone
   * else until that Sync comes.
   */
  hasOpenSegment = false;

  /** True when the last ReadyForQuery said idle, nothing is outstanding and no extended-protocol segment is open. */
  get isIdleInProtocol(): boolean {
    return (
      this.pendingReady === 0 &&
      this.txStatus === TxStatus.Idle &&
      !this.hasOpenSegment &&
      this.scanner.isAtMessageBoundary &&
      this.fatalError === null
    );
  }
}

function uncork(socket: net.Socket): void {
  socket.uncork();
}
