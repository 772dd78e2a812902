// How things end on the proxy's word for one client, the one place that does it, owned by its ClientSession and held
// by its request paths (the sharded dispatch and its run modules, the one-server path, the request sender): a request
// that cannot run gets its error (and ReadyForQuery at each Sync; session-status.ts builds them), counted and logged;
// the connection ends with a FATAL ErrorResponse as the socket's last bytes (a protocol violation, an internal error,
// a lost server, a timeout) or plainly (Terminate). The status moves to closed once, then the session's cleanup runs
// (given at construction: servers back, timers stopped, registrations dropped) — the socket's lifetime stays the
// session's: this only ends it.
import type { DatabasePools } from '../backend/pool-manager.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import type { ClientOutput } from './client-output.js';
import type { RequestBatch } from './request-batch.js';
import type { RequestSend } from './request-send.js';
import type { SessionLog } from './session-log.js';
import type { SessionStatus } from './session-status.js';

/** What the ending uses of its session (fixed at the session's start). */
export interface EndingParts {
  readonly status: SessionStatus;
  readonly output: ClientOutput;
  readonly batch: RequestBatch;
  readonly logs: SessionLog;
}

/** The session itself: where the client comes from, and its cleanup (run once when the connection ends). */
export interface EndingOwner {
  readonly remote: string;
  cleanup(): void;
}

export class ClientEnding {
  /** The database's pools, whose stats count the proxy's errors (set at login). */
  pools: DatabasePools | null = null;
  /** Sending requests: its open segment is over once a request fails (set once both exist). */
  send: RequestSend | null = null;
  // The parts are kept as fields, and the session as the owner, rather than an object and a closure of their own
  // (thousands of idle clients each hold one ending).
  private readonly status: SessionStatus;
  private readonly output: ClientOutput;
  private readonly batch: RequestBatch;
  private readonly logs: SessionLog;
  private readonly owner: EndingOwner;

  constructor(parts: EndingParts, owner: EndingOwner) {
    this.status = parts.status;
    this.output = parts.output;
    this.batch = parts.batch;
    this.logs = parts.logs;
    this.owner = owner;
  }

  /**
   * Answer a request that cannot run (no server, refused before it reached one): one error per pending Sync/Query,
   * like PostgreSQL after an error. `count`: only the first frames of the batch (a sharded session's request being
   * routed); all when not given.
   */
  failBatch(err: PgError, count?: number): void {
    const { status, output, batch } = this;
    this.pools?.stats.proxyErrors.record(err.code);
    this.logs.log.warn({ code: err.code }, err.message);
    const replies = status.failReplies(batch, err, count);
    if (this.send !== null) this.send.hasOpenSegment = false;
    output.write(replies);
  }

  /**
   * The client broke the protocol: logged, then FATAL 08P01 and the end — or, where PostgreSQL closes without a
   * reply (`isSilent`: a length it finds impossible), the end without one.
   */
  protocolViolation(reason: string, isSilent = false): void {
    this.logs.log.warn({ remote: this.owner.remote, reason }, 'protocol violation; closing client');
    if (isSilent) this.close(reason);
    else this.fatal(PgError.protocolViolation(reason));
  }

  /** A bug must cost one client its connection, never the proxy: log it with its stack and close this client. */
  internalError(err: unknown): void {
    this.logs.log.error({ err }, 'internal error; closing this client');
    this.fatal(
      new PgError('FATAL', SqlState.InternalError, `internal error in shardgate: ${(err as Error).message}`),
    );
  }

  /** Send a FATAL error and close this client only. */
  fatal(err: PgError): void {
    const { status, output } = this;
    if (status.isClosed) return;
    status.state = 'closed';
    output.socket.end(err.toBuffer());
    this.owner.cleanup();
  }

  /** Close without an error (Terminate, the admin console's end). */
  close(reason: string): void {
    const { status, output } = this;
    if (status.isClosed) return;
    this.logs.line('debug', { reason }, 'client closing');
    status.state = 'closed';
    output.socket.end();
    this.owner.cleanup();
  }
}
