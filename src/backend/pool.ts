// A pool of server connections for one (user, database, shard): min/max size, FIFO waiters with a checkout
// timeout, idle retirement, and replacement of connections that die. Callback-based acquire: no Promise per checkout.
// Operations: pause/resume (PAUSE), refusing new checkouts (shutdown), new sizes and server address (reload).
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { PgError } from '../errors/pg-error.js';
import { UNTRACKED_SHARD, type LiveBytes, type ShardStats } from '../stats/shard-stats.js';
import { ServerConnection, type ServerAddress } from './server-connection.js';
import { errorFields } from '../protocol/error-fields.js';

export interface PoolOptions {
  address: ServerAddress;
  maxSize: number;
  minSize: number;
  checkoutTimeoutMs: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Parameters sent in every server StartupMessage (e.g. application_name). */
  startupParams: Record<string, string>;
  logger: Logger;
  /** The user and database names clients used (for error messages). */
  clientUser: string;
  clientDatabase: string;
  /** Counters of this (database, shard), shared with the other users' pools of it. */
  stats?: ShardStats;
  /** The server's role in its shard (default primary). */
  role?: 'primary' | 'replica';
}

/** What a configuration reload may change in a running pool. */
export type PoolSettings = Pick<
  PoolOptions,
  'address' | 'maxSize' | 'minSize' | 'checkoutTimeoutMs' | 'connectTimeoutMs' | 'idleTimeoutMs'
>;

export type AcquireCallback = (err: PgError | null, server: ServerConnection | null) => void;

/** A checkout waiting in the queue (what acquire() returns when it has to wait; failWait() takes it). */
export interface CheckoutWait {
  /** performance.now() when it started waiting. */
  readonly since: number;
}

interface Waiter extends CheckoutWait {
  cb: AcquireCallback;
  timer: NodeJS.Timeout | null;
}

export interface PoolStats {
  total: number;
  idle: number;
  active: number;
  connecting: number;
  waiting: number;
  maxWaitMs: number;
  isPaused: boolean;
}

const MAINTENANCE_INTERVAL_MS = 1000;

let nextPoolId = 1;

export class Pool implements LiveBytes {
  /** Shown by SHOW POOLS / SHOW BANS; BAN, UNBAN and HEALTHCHECK take it (as PgDog's pool id). */
  readonly id = nextPoolId++;
  readonly opts: PoolOptions;
  private readonly idle: ServerConnection[] = [];
  /**
   * Servers checked out (clients', a reset's, the idle health check's): counted here and flagged on each server
   * (`isOutOfPool`), not kept in a Set — no Set.add / Set.delete per checkout and release.
   */
  private activeSize = 0;
  /** Every open connection (idle, active, or on its way out), for byte counts and SHOW SERVERS. */
  private readonly connections = new Set<ServerConnection>();
  private connecting = 0;
  private waiters: Waiter[] = [];
  private waitHead = 0;
  private closed = false;
  /** PAUSE: checkouts wait (without timing out) and returned servers stay idle until resume(). */
  private isPaused = false;
  /** Shutting down: every checkout fails with this error. */
  private refusal: PgError | null = null;
  private readonly shardStats: ShardStats;
  private readonly maintenance: NodeJS.Timeout;
  /**
   * ParameterStatus values of the last server connected (what clients are told at login). Replaced, never changed, when
   * a new connection reports other values (a changed server setting, a reload that moved the pool to another server):
   * the login replies built from a map are shared for as long as it is the pool's (session-params.ts).
   */
  serverParams: ReadonlyMap<string, string> | null = null;
  lastConnectError: string | null = null;
  /**
   * A server connection died while a client had it (not one the proxy closed): its replica set bans a replica.
   * `fatalCode`: the SQLSTATE of the FATAL the server said before closing, if it said one.
   */
  onLostInUse: ((reason: string, fatalCode: string | null) => void) | null = null;

  constructor(opts: PoolOptions) {
    this.opts = opts;
    this.shardStats = opts.stats ?? UNTRACKED_SHARD;
    this.shardStats.pools.add(this);
    this.maintenance = setInterval(() => this.maintain(), MAINTENANCE_INTERVAL_MS);
    this.maintenance.unref();
  }

  get total(): number {
    return this.idle.length + this.activeSize + this.connecting;
  }

  get waiting(): number {
    return this.waiters.length - this.waitHead;
  }

  stats(): PoolStats {
    const head = this.waiters[this.waitHead];
    return {
      total: this.total,
      idle: this.idle.length,
      active: this.activeSize,
      connecting: this.connecting,
      waiting: this.waiting,
      maxWaitMs: head ? performance.now() - head.since : 0,
      isPaused: this.isPaused,
    };
  }

  /** Open connections (SHOW SERVERS); those already being closed are left out. */
  servers(): ServerConnection[] {
    return [...this.connections].filter((s) => !s.isClosed);
  }

  get activeCount(): number {
    return this.activeSize;
  }

  liveBytes(): { sent: number; received: number } {
    let sent = 0;
    let received = 0;
    for (const s of this.connections) {
      sent += s.bytesSent;
      received += s.bytesReceived;
    }
    return { sent, received };
  }

  /**
   * An idle server checked out at once, or null when none is idle (or the pool is paused, closed or refusing): the
   * synchronous path of acquire(), without its callback (a single-shard request's checkout takes it first).
   */
  tryAcquire(isForOpenTransaction = false): ServerConnection | null {
    if (this.isPaused || this.closed || (this.refusal !== null && !isForOpenTransaction)) return null;
    let server = this.idle.pop();
    // One that already said FATAL (terminated while idle) is closing: its close event has not run yet.
    while (server !== undefined && server.fatalError !== null) {
      server.destroy('server sent FATAL while idle');
      server = this.idle.pop();
    }
    if (server === undefined) return null;
    this.markOut(server);
    server.checkOut();
    this.shardStats.waitTime.record(0);
    return server;
  }

  /**
   * Check out a server connection; `cb` runs exactly once (possibly synchronously). `isForOpenTransaction`: the client
   * is inside a transaction reaching another shard, which may still finish while shardgate shuts down. Returns the
   * wait when the checkout is queued (null: `cb` has run).
   */
  acquire(cb: AcquireCallback, isForOpenTransaction = false): CheckoutWait | null {
    if (this.closed || (this.refusal !== null && !isForOpenTransaction)) {
      cb(this.refusal ?? PgError.shuttingDown(), null);
      return null;
    }
    const server = this.tryAcquire(isForOpenTransaction);
    if (server !== null) {
      cb(null, server);
      return null;
    }
    const waiter: Waiter = { cb, timer: null, since: performance.now() };
    if (!this.isPaused) this.armTimeout(waiter);
    this.waiters.push(waiter);
    if (!this.isPaused && this.total < this.opts.maxSize) this.openConnection();
    return waiter;
  }

  /** Take a queued checkout out of the queue and fail it with `err` (a deadlock's victim); false when not queued. */
  failWait(wait: CheckoutWait, err: PgError): boolean {
    const i = this.waiters.indexOf(wait as Waiter, this.waitHead);
    if (i < 0) return false;
    const waiter = this.waiters[i];
    this.waiters.splice(i, 1);
    if (waiter.timer !== null) clearTimeout(waiter.timer);
    this.shardStats.waitTime.record(performance.now() - waiter.since);
    waiter.cb(err, null);
    return true;
  }

  /**
   * A queued checkout can only be served by a server given back: none idle, none being opened, no room for another,
   * and not paused (a paused pool's waiters wait for RESUME, not for anyone's server).
   */
  get isExhausted(): boolean {
    return (
      !this.closed &&
      !this.isPaused &&
      this.idle.length === 0 &&
      this.connecting === 0 &&
      this.total >= this.opts.maxSize
    );
  }

  /** The servers checked out now (clients', a reset's, the idle health check's). */
  checkedOut(): Iterable<ServerConnection> {
    return [...this.connections].filter((s) => s.isOutOfPool);
  }

  /** `server` is checked out now (counted once however often it is marked). */
  private markOut(server: ServerConnection): void {
    if (server.isOutOfPool) return;
    server.isOutOfPool = true;
    this.activeSize++;
  }

  /** `server` is no longer checked out (released, discarded or gone); it is no longer the health check's either. */
  private markBack(server: ServerConnection): void {
    server.isInHealthCheck = false;
    if (!server.isOutOfPool) return;
    server.isOutOfPool = false;
    this.activeSize--;
  }

  private armTimeout(waiter: Waiter): void {
    if (this.opts.checkoutTimeoutMs > 0) {
      waiter.timer = setTimeout(() => this.timeoutWaiter(waiter), this.opts.checkoutTimeoutMs);
    }
  }

  /** Hand `server` (already marked active) to a waiter, counting how long it waited. */
  private serve(waiter: Waiter, server: ServerConnection): void {
    this.shardStats.waitTime.record(performance.now() - waiter.since);
    waiter.cb(null, server);
  }

  /**
   * An idle server checked out without waiting (the idle health check), or null when none is idle (or the pool is
   * paused, closed or refusing): give it back with release() or discard().
   */
  takeIdle(): ServerConnection | null {
    if (this.isPaused || this.closed || this.refusal !== null) return null;
    const server = this.idle.shift(); // the least recently used: the one most likely to have gone stale
    if (server === undefined) return null;
    this.markOut(server);
    server.isInHealthCheck = true;
    server.checkOut();
    return server;
  }

  /** Promise form for non-hot-path callers (login, admin). */
  acquireAsync(): Promise<ServerConnection> {
    return new Promise((resolve, reject) => this.acquire((err, s) => (err || !s ? reject(err) : resolve(s))));
  }

  /** Return a server that finished its work. Broken or mid-transaction servers are closed instead. */
  release(server: ServerConnection): void {
    server.detach();
    this.markBack(server);
    if (this.closed || server.isClosed) {
      if (!server.isClosed) server.terminate('pool closed');
      return;
    }
    if (!server.isIdleInProtocol) {
      this.opts.logger.warn(
        {
          shard: this.opts.address.shard,
          server: server.id,
          pendingReady: server.pendingReady,
          tx: String.fromCharCode(server.txStatus),
        },
        'server returned in a non-idle state; closing it',
      );
      server.destroy('returned in a non-idle state');
      this.fillWaiters();
      return;
    }
    if (server.address !== this.opts.address || this.total >= this.opts.maxSize) {
      // A reload changed the server address or lowered the pool size: this connection goes.
      server.terminate(
        server.address !== this.opts.address ? 'server settings changed' : 'pool size lowered',
      );
      this.fillWaiters();
      return;
    }
    if (server.state === 'active') server.checkIn(); // a new connection comes here idle
    const waiter = this.isPaused ? undefined : this.nextWaiter();
    if (waiter) {
      this.markOut(server);
      server.checkOut();
      this.serve(waiter, server);
      return;
    }
    this.idle.push(server);
  }

  /** PAUSE is in effect. */
  get paused(): boolean {
    return this.isPaused;
  }

  /** PAUSE: stop handing out connections; checkouts wait until resume(). */
  pause(): void {
    this.isPaused = true;
  }

  /** RESUME: waiting checkouts get connections again (their checkout_timeout starts now). */
  resume(): void {
    if (!this.isPaused) return;
    this.isPaused = false;
    let waiter: Waiter | undefined;
    while (this.idle.length > 0 && (waiter = this.nextWaiter()) !== undefined) {
      const server = this.idle.pop() as ServerConnection;
      this.markOut(server);
      server.checkOut();
      this.serve(waiter, server);
    }
    for (let i = this.waitHead; i < this.waiters.length; i++) {
      if (this.waiters[i].timer === null) this.armTimeout(this.waiters[i]);
    }
    this.fillWaiters();
  }

  /** Shutdown: every waiting and later checkout fails with `err`; connections in use finish their work. */
  refuseCheckouts(err: PgError): void {
    this.refusal = err;
    let w: Waiter | undefined;
    while ((w = this.nextWaiter())) w.cb(err, null);
  }

  /**
   * Reload: new sizes and timeouts apply at once; a changed server address (host, port, database, user, password)
   * applies to new connections, and the old ones are closed as they come back (idle ones now).
   */
  reconfigure(next: PoolSettings): void {
    const { opts } = this;
    if (!sameAddress(opts.address, next.address)) {
      opts.address = next.address;
      this.lastConnectError = null; // the new place may well answer
      for (const s of this.idle.splice(0)) s.terminate('server settings changed');
    }
    opts.maxSize = next.maxSize;
    opts.minSize = next.minSize;
    opts.checkoutTimeoutMs = next.checkoutTimeoutMs;
    opts.connectTimeoutMs = next.connectTimeoutMs;
    opts.idleTimeoutMs = next.idleTimeoutMs;
    while (this.idle.length > 0 && this.total > opts.maxSize) {
      (this.idle.shift() as ServerConnection).terminate('pool size lowered');
    }
    this.fillWaiters();
  }

  /** Drop a server that is broken (it closes itself); a waiter may get a fresh one. */
  discard(server: ServerConnection, reason: string): void {
    server.detach();
    this.markBack(server);
    const i = this.idle.indexOf(server);
    if (i >= 0) this.idle.splice(i, 1);
    server.destroy(reason);
    this.fillWaiters();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.maintenance);
    for (const s of this.idle.splice(0)) s.terminate('pool closed');
    let w: Waiter | undefined;
    while ((w = this.nextWaiter())) w.cb(PgError.shuttingDown(), null);
  }

  private nextWaiter(): Waiter | undefined {
    while (this.waitHead < this.waiters.length) {
      const w = this.waiters[this.waitHead];
      this.waiters[this.waitHead++] = undefined as unknown as Waiter; // free the slot for GC
      if (this.waitHead > 1024 && this.waitHead * 2 > this.waiters.length) {
        this.waiters = this.waiters.slice(this.waitHead);
        this.waitHead = 0;
      }
      if (w.timer) clearTimeout(w.timer);
      return w;
    }
    if (this.waitHead > 0) {
      this.waiters.length = 0;
      this.waitHead = 0;
    }
    return undefined;
  }

  private timeoutWaiter(waiter: Waiter): void {
    const i = this.waiters.indexOf(waiter, this.waitHead);
    if (i < 0) return;
    this.waiters.splice(i, 1);
    this.shardStats.waitTime.record(performance.now() - waiter.since);
    const { address } = this.opts;
    const err = this.lastConnectError
      ? PgError.serverUnavailable(address.shard, this.lastConnectError)
      : PgError.poolTimeout(
          this.opts.clientDatabase,
          this.opts.clientUser,
          address.shard,
          this.opts.checkoutTimeoutMs,
        );
    this.opts.logger.warn(
      { shard: address.shard, user: this.opts.clientUser, database: this.opts.clientDatabase },
      err.message,
    );
    waiter.cb(err, null);
  }

  private fillWaiters(): void {
    if (this.isPaused || this.closed) return;
    const missing = Math.min(this.waiting, this.opts.maxSize - this.total);
    for (let i = 0; i < missing; i++) this.openConnection();
  }

  private openConnection(): void {
    this.connecting++;
    const { address, logger } = this.opts;
    const server = new ServerConnection(address);
    server.stats = this.shardStats;
    server.roleTraffic = this.shardStats.byRole[this.opts.role ?? 'primary'];
    server
      .connect(this.opts.connectTimeoutMs, this.opts.startupParams)
      .then(() => {
        this.connecting--;
        this.lastConnectError = null;
        if (this.serverParams === null || !sameValues(this.serverParams, server.params))
          this.serverParams = new Map(server.params);
        server.onClose = (s, reason, wasInUse) => this.onServerClosed(s, reason, wasInUse);
        this.connections.add(server);
        this.shardStats.connects++;
        logger.debug(
          { shard: address.shard, server: server.id, host: address.host, port: address.port },
          'server connection opened',
        );
        if (this.closed) {
          server.terminate('pool closed');
          return;
        }
        this.release(server);
      })
      .catch((err: Error) => {
        this.connecting--;
        this.lastConnectError = err.message;
        logger.error(
          {
            shard: address.shard,
            host: address.host,
            port: address.port,
            user: address.user,
            database: address.database,
          },
          `server connection failed: ${err.message}`,
        );
        // Nothing is connected to this shard: waiting would only end in a timeout, so fail waiters now.
        if (this.idle.length + this.activeSize + this.connecting === 0) {
          let w: Waiter | undefined;
          while ((w = this.nextWaiter())) w.cb(PgError.serverUnavailable(address.shard, err.message), null);
        }
      });
  }

  private onServerClosed(server: ServerConnection, reason: string, wasInUse: boolean): void {
    if (this.connections.delete(server)) {
      this.shardStats.closedBytesSent += server.bytesSent;
      this.shardStats.closedBytesReceived += server.bytesReceived;
    }
    // Lost under the idle health check: the check reports it (and bans the replica with its own reason).
    if (server.isInHealthCheck) wasInUse = false;
    this.markBack(server);
    const i = this.idle.indexOf(server);
    if (i >= 0) this.idle.splice(i, 1);
    this.opts.logger.debug(
      { shard: this.opts.address.shard, server: server.id, reason },
      'server connection closed',
    );
    if (wasInUse && !this.closed && this.onLostInUse !== null) {
      const fatal = server.fatalError;
      this.onLostInUse(reason, fatal === null ? null : (errorFields(fatal).get('C') ?? null));
    }
    if (!this.closed) this.fillWaiters();
  }

  /** Retire idle connections past idle_timeout (down to min size) and top up to min size. */
  private maintain(): void {
    if (this.closed) return;
    const now = performance.now(); // monotonic, as lastUsedMs: a wall-clock step changes no idle time
    const { idleTimeoutMs } = this.opts;
    // A user's pool_size may be below min_pool_size: never keep more than the pool may hold.
    const minSize = Math.min(this.opts.minSize, this.opts.maxSize);
    if (idleTimeoutMs > 0) {
      // idle is a stack: the oldest-used are at the bottom.
      while (this.idle.length > 0 && this.total > minSize && now - this.idle[0].lastUsedMs > idleTimeoutMs) {
        const s = this.idle.shift() as ServerConnection;
        s.terminate('idle timeout');
      }
    }
    if (this.lastConnectError === null && this.refusal === null) {
      for (let n = this.total; n < minSize; n++) this.openConnection();
    }
  }
}

function sameAddress(a: ServerAddress, b: ServerAddress): boolean {
  return (
    a.host === b.host &&
    a.port === b.port &&
    a.database === b.database &&
    a.user === b.user &&
    a.password === b.password &&
    a.shard === b.shard
  );
}

/** Two maps of ParameterStatus values are the same, entry for entry and in the same order (the order clients see). */
function sameValues(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  const other = b.entries();
  for (const [name, value] of a) {
    const next = other.next();
    if (next.done === true || next.value[0] !== name || next.value[1] !== value) return false;
  }
  return true;
}
