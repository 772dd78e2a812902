// A client's login, from its first byte to the point where it may be told it is logged in: the startup packet (SSL /
// GSSENC negotiation, cancel requests), who it is and where it goes (user, database, replication), authentication
// (ClientAuth; passthrough_auth has the servers check the password), the startup settings checked by a server
// (startup-check.ts), and the server a session-mode or replication client keeps from the start. The ClientSession
// provides the socket and what a logged-in session needs (LoginHost) and sends the login replies.
import { Buffer } from 'node:buffer';
import tls from 'node:tls';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { AdminConfig, GeneralConfig, UserConfig } from '../config/types.js';
import type { DatabasePools, PoolManager } from '../backend/pool-manager.js';
import type { Pool } from '../backend/pool.js';
import { ServerConnection, StartupRefused } from '../backend/server-connection.js';
import { checkServerPassword } from '../backend/password-check.js';
import { passthroughVerdict } from '../auth/passthrough.js';
import { Frontend, StartupCode } from '../protocol/codes.js';
import type { FrameReader } from '../protocol/frame-reader.js';
import { AUTH_OK, SSL_NO, SSL_YES } from '../protocol/messages.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState, type SqlStateCode } from '../errors/sqlstate.js';
import { readStartupPacket, replicationMode, unsupportedProtocol, type ReplicationMode } from './startup.js';
import { readStartupSettings, type StartupSetting } from './startup-options.js';
import { checkStartupSettings } from './startup-check.js';
import { ClientAuth } from './client-auth.js';
import type { CancelRegistry } from './cancel-registry.js';
import type { SessionParams } from './session-params.js';
import type { SessionState } from './session-status.js';
import type { ClientOutput } from './client-output.js';
import type { ClientEnding } from './client-ending.js';
import type { HeldServer } from './held-server.js';

/** What the login uses of the proxy (a part of the session's dependencies). */
export interface LoginDeps {
  pools: PoolManager;
  cancels: CancelRegistry;
  general: () => GeneralConfig;
  admin: () => AdminConfig;
  tlsContext: () => tls.SecureContext | null;
}

/** What the login uses of its ClientSession. */
export interface LoginHost {
  state: SessionState;
  readonly log: Logger;
  readonly remote: string;
  readonly params: SessionParams;
  /** The client's frames (password messages during authentication). */
  readonly reader: FrameReader;
  readonly socket: net.Socket;
  /** The TLS socket negotiated in place of the plain one: the session reads and writes it from now on. */
  useSocket(socket: tls.TLSSocket): void;
  setIdentity(user: string, database: string): void;
  /** Bytes received after the startup packet in the same chunk. */
  onData(chunk: Buffer): void;
  /** Writes to the client; its input paused while the login waits for a server. */
  readonly output: ClientOutput;
  /** A failed login's FATAL, or the connection closed. */
  readonly ending: ClientEnding;
  /** The server a session-mode (one shard) or replication client keeps to the end (`pool` null: never pooled). */
  readonly held: HeldServer;
  /** Authenticated on the admin database: the console opens, the client is logged in. */
  openAdminConsole(): void;
  /**
   * Authenticated: the session takes its database's pools (routing, statements …). Returns whether the session
   * needs no server of its own (transaction mode, or a sharded database).
   */
  usePools(pools: DatabasePools, isReplication: boolean): boolean;
  /**
   * Logged in: ParameterStatus (the server's values), BackendKeyData and ReadyForQuery go to the client. `isFrozen`:
   * `serverParams` is a pool's, which never changes (its frames may be shared).
   */
  sendLoginReplies(serverParams: ReadonlyMap<string, string>, isFrozen: boolean): void;
}

/** One client's login. */
export class ClientLogin {
  private readonly host: LoginHost;
  private readonly deps: LoginDeps;
  private startupBuf: Buffer | null = null;
  /** An SSLRequest / GSSENCRequest was answered already (each is answered once, as PostgreSQL does). */
  private isSslNegotiated = false;
  private isGssNegotiated = false;
  private auth: ClientAuth | null = null;
  private user = '';
  private database = '';
  private userConfig: UserConfig | null = null;
  /** Startup parameters that are settings (startup-options.ts), and the error of one PostgreSQL would refuse. */
  private startupSettings: readonly StartupSetting[] = [];
  private startupError: PgError | null = null;
  /** A replication connection (replication=database|true): passed through to the server of a one-shard database. */
  replication: ReplicationMode = 'none';
  private replicationParams: Map<string, string> | null = null;
  /** Logging in to the admin database. */
  isAdmin = false;

  constructor(host: LoginHost, deps: LoginDeps) {
    this.host = host;
    this.deps = deps;
  }

  /** Bytes of the startup phase: SSLRequest / GSSENCRequest / CancelRequest / StartupMessage. */
  onStartupData(chunk: Buffer): void {
    const host = this.host;
    let buf = this.startupBuf ? Buffer.concat([this.startupBuf, chunk]) : chunk;
    this.startupBuf = null;
    while (host.state === 'startup' && buf.length > 0) {
      const r = readStartupPacket(buf);
      if (!r.ok) {
        if (r.incomplete)
          this.startupBuf = buf; // at most one packet: its length was checked
        else this.refuseStartup(r.error, r.code, r.isSilent);
        return;
      }
      const { packet } = r;
      buf = r.rest;
      if (packet.kind === 'ssl' || packet.kind === 'gssenc') {
        // As PostgreSQL: one SSLRequest and one GSSENCRequest at most (the second is read as a protocol version).
        const isSsl = packet.kind === 'ssl';
        if (isSsl ? this.isSslNegotiated : this.isGssNegotiated) {
          const code = isSsl ? StartupCode.SSLRequest : StartupCode.GSSENCRequest;
          return this.refuseStartup(unsupportedProtocol(code), SqlState.FeatureNotSupported, false);
        }
        // Bytes sent before the answer were not encrypted (maybe injected): refused before answering (PgBouncer).
        if (buf.length > 0)
          return host.ending.protocolViolation('received unencrypted data after SSL request');
        const isTls = isSsl && this.negotiateTls();
        if (!isSsl) host.socket.write(SSL_NO);
        // PostgreSQL: after a refused SSLRequest a GSSENCRequest may follow, and the other way round.
        this.isSslNegotiated = isSsl || isTls;
        this.isGssNegotiated = !isSsl || isTls;
        return;
      }
      if (packet.kind === 'cancel') {
        this.deps.cancels.cancel(packet.pid, packet.secret);
        host.state = 'closed';
        host.socket.end();
        return;
      }
      this.startLogin(packet.params);
      if (buf.length > 0) host.onData(buf);
      return;
    }
  }

  /** A frame during authentication: only password / SASL messages. */
  onAuthFrame(type: number, frame: Buffer): void {
    if (type !== Frontend.Password || this.auth === null)
      return this.host.ending.protocolViolation(
        `expected a password message, got "${String.fromCharCode(type)}"`,
      );
    this.applyAuthOutcome(this.auth.handle(frame));
  }

  /** A startup packet PostgreSQL would refuse: with a FATAL, or (impossible length) by closing without a word. */
  private refuseStartup(reason: string, code: SqlStateCode, isSilent: boolean): void {
    this.host.log.warn({ remote: this.host.remote, reason }, 'invalid startup packet; closing client');
    if (isSilent) this.host.ending.close(reason);
    else this.host.ending.fatal(new PgError('FATAL', code, reason));
  }

  /** Answer an SSLRequest: 'S' and a TLS handshake when a certificate is configured (and none ran yet), else 'N'. */
  private negotiateTls(): boolean {
    const ctx = this.deps.tlsContext();
    const raw = this.host.socket;
    if (ctx === null || raw instanceof tls.TLSSocket) {
      raw.write(SSL_NO);
      return false;
    }
    raw.write(SSL_YES);
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    raw.removeAllListeners('error');
    this.host.useSocket(new tls.TLSSocket(raw, { isServer: true, secureContext: ctx }));
    return true;
  }

  private startLogin(params: Map<string, string>): void {
    const host = this.host;
    const user = params.get('user');
    if (!user)
      return host.ending.fatal(
        new PgError(
          'FATAL',
          SqlState.InvalidAuthorizationSpecification,
          'no PostgreSQL user name specified in startup packet',
        ),
      );
    const database = params.get('database') || user;
    this.user = user;
    this.database = database;
    host.setIdentity(user, database);
    // As PostgreSQL's ProcessStartupPacket: a replication value it cannot read ends the login before authentication.
    const replication = replicationMode(params.get('replication'));
    if (replication instanceof PgError) return this.failed(replication, 'invalid replication parameter');
    const isAdmin = database === this.deps.admin().name;
    if (replication !== 'none') {
      const refusal = this.replicationRefusal(database, isAdmin);
      if (refusal !== null) return this.failed(refusal, 'replication connection refused');
      this.replication = replication;
      this.replicationParams = params;
    }
    const startup = readStartupSettings(params);
    this.startupSettings = startup.settings;
    this.startupError = startup.error;
    if (isAdmin) return this.startAdminLogin(user);
    const { pools } = this.deps;
    if (!pools.hasDatabase(database))
      return this.failed(PgError.unknownDatabase(database), 'unknown database');
    const userConfig = pools.findUser(user, database);
    if (!userConfig) return this.failed(PgError.unknownUser(user, database), 'unknown user');
    this.userConfig = userConfig;
    if (replication === 'none') host.params.fromStartup(startup.settings);
    const method = pools.isPassthrough(userConfig) ? 'cleartext' : this.deps.general().authType;
    this.auth = new ClientAuth(method, user, userConfig.password);
    this.startAuth(this.auth);
  }

  /**
   * Why a replication connection cannot be had (null: it can): it is passed through to the one server of a database
   * with one shard (as PgBouncer ≥ 1.23 does); a sharded database has one WAL per shard.
   */
  private replicationRefusal(database: string, isAdmin: boolean): PgError | null {
    const hint = "Connect to the shard's PostgreSQL server directly for replication.";
    if (isAdmin) {
      return new PgError(
        'FATAL',
        SqlState.FeatureNotSupported,
        'the admin console does not take replication connections',
      );
    }
    const shards = this.deps.pools.shardsOf(database).length;
    if (shards <= 1) return null; // 0: unknown database, refused as such below
    return new PgError(
      'FATAL',
      SqlState.FeatureNotSupported,
      `replication connections to database "${database}" are not supported: it is sharded over ${shards} shards, each with its own WAL`,
      undefined,
      hint,
    );
  }

  /** The admin database: only the admin user, always with a password (md5 when configured, else SCRAM). */
  private startAdminLogin(user: string): void {
    const admin = this.deps.admin();
    this.isAdmin = true;
    this.host.params.fromStartup(this.startupSettings);
    const method = this.deps.general().authType === 'md5' ? 'md5' : 'scram';
    // Another user name gets the same "password authentication failed" as a wrong password (nothing revealed).
    this.auth = new ClientAuth(method, user, user === admin.user ? admin.password : null);
    this.startAuth(this.auth);
  }

  /**
   * Authentication: only password / SASL messages, no larger than PostgreSQL reads them, refused at their header
   * (an unauthenticated client never makes the proxy buffer more than that).
   */
  private startAuth(auth: ClientAuth): void {
    this.host.state = 'auth';
    const reader = this.host.reader;
    reader.maxFrameBytes = auth.maxFrameBytes;
    const expected = auth.responseName;
    reader.typeCheck = (type) =>
      type === Frontend.Password ? null : `expected ${expected} response, got message type ${type}`;
    this.applyAuthOutcome(auth.start());
  }

  private applyAuthOutcome(outcome: ReturnType<ClientAuth['start']>): void {
    if (outcome.kind === 'continue') {
      this.host.socket.write(outcome.reply);
      return;
    }
    if (outcome.kind === 'fail') return this.failed(outcome.error, outcome.reason);
    if (outcome.kind === 'password') return this.checkPassthrough(outcome.password);
    for (const b of outcome.reply) this.host.socket.write(b);
    this.finish();
  }

  /**
   * passthrough_auth: the password of a user without one in users.toml is the one its servers accept. The first
   * login (and, with "…_allow_change", a different password) has every shard's server check it — a login as the
   * client, closed at once —; an accepted password is remembered and used by the user's pools.
   */
  private checkPassthrough(password: string): void {
    const host = this.host;
    const userConfig = this.userConfig as UserConfig;
    const { pools } = this.deps;
    const general = this.deps.general();
    const isTls = host.socket instanceof tls.TLSSocket;
    this.auth = null; // nothing more is read from the client until the verdict
    const verdict = passthroughVerdict(
      general.passthroughAuth,
      isTls,
      pools.passthroughPassword(userConfig),
      password,
    );
    if (verdict === 'accept') return this.passthroughAccepted();
    if (verdict === 'needs-tls') {
      return this.failed(
        new PgError(
          'FATAL',
          SqlState.InvalidAuthorizationSpecification,
          'passthrough authentication needs a TLS connection: the password is sent in clear text',
          undefined,
          'Connect with TLS (sslmode=require), or set passthrough_auth = "enabled_plain" in pgdog.toml.',
        ),
        'passthrough without TLS',
      );
    }
    const user = this.user;
    if (verdict === 'refuse-change')
      return this.failed(PgError.authFailed(user, 'passthrough'), 'not the remembered password');
    const address = (db: { host: string; port: number; databaseName: string; shard: number }) => ({
      host: db.host,
      port: db.port,
      database: db.databaseName,
      user: userConfig.name,
      password,
      shard: db.shard,
    });
    const checks = pools
      .shardsOf(this.database)
      .map((db) => checkServerPassword(address(db), general.connectTimeoutMs));
    host.output.pauseInput();
    void Promise.all(checks).then((results) => {
      host.output.resumeInput();
      if (host.state !== 'auth') return;
      for (const r of results) {
        if (r.kind === 'refused') {
          // A wrong password gets the proxy's usual answer; any other refusal (no such role, pg_hba) the server's.
          const err =
            r.error.code === SqlState.InvalidPassword ? PgError.authFailed(user, 'passthrough') : r.error;
          return this.failed(err, `the server refused the passthrough login: ${r.error.message}`);
        }
        if (r.kind === 'unreachable') {
          const e = PgError.serverUnavailable(0, r.reason);
          return this.failed(
            new PgError('FATAL', e.code, e.message),
            'passthrough check: server unreachable',
          );
        }
      }
      if (results.some((r) => r.kind === 'accepted' && !r.wasAsked)) {
        host.log.warn('passthrough_auth: the server accepted the login without asking for a password');
      }
      pools.rememberPassthroughPassword(userConfig, password);
      host.log.info('passthrough_auth: password accepted by the server, remembered');
      this.passthroughAccepted();
    });
  }

  private passthroughAccepted(): void {
    this.host.socket.write(AUTH_OK);
    this.finish();
  }

  private failed(err: PgError, reason: string): void {
    this.host.log.warn({ remote: this.host.remote, code: err.code, reason }, `login failed: ${err.message}`);
    this.host.ending.fatal(err);
  }

  /** Authenticated: the admin console, a replication server, or the startup settings checked, then logged in. */
  private finish(): void {
    const host = this.host;
    this.auth = null;
    if (this.isAdmin) return host.openAdminConsole();
    const userConfig = this.userConfig as UserConfig;
    const pools = this.deps.pools.get(userConfig);
    if (this.replication !== 'none') {
      host.usePools(pools, true);
      return this.openReplication(pools);
    }
    const needsNoServer = host.usePools(pools, false);
    // The startup settings are checked by a server (startup-check.ts), as PostgreSQL checks them after
    // authentication; the first client of a pool also learns the server parameters this way (and gets a clear error).
    const first = pools.shards[0];
    let isWaiting = true;
    let isPaused = false;
    checkStartupSettings(pools, this.startupSettings, (result) => {
      isWaiting = false;
      if (isPaused) host.output.resumeInput();
      if (host.state !== 'auth') return;
      if (result instanceof PgError || first.serverParams === null) {
        const e = result instanceof PgError ? result : PgError.serverUnavailable(0, 'no parameters');
        return host.ending.fatal(new PgError('FATAL', e.code, e.message, e.detail, e.hint));
      }
      if (result.kind === 'refused')
        return this.failed(PgError.fromServer(result.error), 'startup parameter refused by the server');
      if (this.startupError !== null) return this.failed(this.startupError, 'invalid options');
      host.params.noteReported(result.reported);
      for (const notice of result.notices) host.socket.write(notice);
      const serverParams = first.serverParams;
      if (needsNoServer) return host.sendLoginReplies(serverParams, true);
      this.takeSessionServer(first, () => host.sendLoginReplies(serverParams, true));
    });
    if (isWaiting) {
      isPaused = true;
      host.output.pauseInput();
    }
  }

  /**
   * Session mode on one shard: the server this client keeps to the end is taken at login, brought in step with its
   * settings, and its backend's pid is the client's BackendKeyData pid — as PostgreSQL's would be, so that
   * pg_backend_pid() matches it and pg_terminate_backend(pid) ends this session (postgres.js `listen` reconnects that
   * way). A login that cannot get a server fails with the checkout's error, as FATAL.
   */
  private takeSessionServer(pool: Pool, then: () => void): void {
    const host = this.host;
    let isWaiting = true;
    let isPaused = false;
    pool.acquire((err, server) => {
      isWaiting = false;
      if (isPaused) host.output.resumeInput();
      if (host.state !== 'auth') {
        if (server !== null) pool.release(server);
        return;
      }
      if (err !== null || server === null) {
        const e = err ?? PgError.internal('no server');
        return this.failed(
          new PgError('FATAL', e.code, e.message, e.detail, e.hint),
          'no server for the session',
        );
      }
      host.held.hold(server, pool);
      then();
    });
    if (isWaiting) {
      isPaused = true;
      host.output.pauseInput();
    }
  }

  /**
   * A replication connection: a server connection of its own, opened with the client's startup parameters (the
   * server judges them, and its ParameterStatus are the client's), never pooled; session mode whatever the user's
   * pooler_mode. The client then talks to that server through the session path (Query, COPY BOTH streaming).
   */
  private openReplication(pools: DatabasePools): void {
    const host = this.host;
    const pool = pools.shards[0];
    const startupParams: Record<string, string> = {};
    for (const [k, v] of this.replicationParams ?? [])
      if (k !== 'user' && k !== 'database') startupParams[k] = v;
    const server = new ServerConnection(pool.opts.address);
    host.output.pauseInput();
    server.connect(this.deps.general().connectTimeoutMs, startupParams).then(
      () => {
        host.output.resumeInput();
        if (host.state !== 'auth') return server.terminate('replication client left');
        server.checkOut();
        host.held.hold(server, null);
        host.log.info({ replication: this.replication }, 'replication connection opened');
        host.sendLoginReplies(server.params, false);
      },
      (err: Error) => {
        host.output.resumeInput();
        if (host.state !== 'auth') return;
        if (err instanceof StartupRefused)
          return this.failed(err.error, 'the server refused the replication connection');
        const e = PgError.serverUnavailable(0, err.message);
        this.failed(new PgError('FATAL', e.code, e.message), 'replication server unreachable');
      },
    );
  }
}
