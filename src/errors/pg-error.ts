// PgError: the one error type shardgate raises toward clients; it serializes itself to an ErrorResponse frame.
import { SqlState, type SqlStateCode } from './sqlstate.js';
import { errorResponse } from '../protocol/messages.js';

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE';

export class PgError extends Error {
  readonly severity: Severity;
  readonly code: SqlStateCode;
  readonly detail: string | undefined;
  readonly hint: string | undefined;
  /** 1-based character position in the query text (ErrorResponse field P), when the error points into it. */
  readonly position: number | undefined;
  /** A server's own ErrorResponse, passed on as it came (toBuffer returns these bytes). */
  private wire: Buffer | null = null;

  constructor(
    severity: Severity,
    code: SqlStateCode,
    message: string,
    detail?: string,
    hint?: string,
    position?: number,
  ) {
    super(message);
    this.name = 'PgError';
    this.severity = severity;
    this.code = code;
    this.detail = detail;
    this.hint = hint;
    this.position = position;
  }

  /** The ErrorResponse frame for this error. */
  toBuffer(): Buffer {
    if (this.wire !== null) return this.wire;
    return errorResponse({
      severity: this.severity,
      code: this.code,
      message: this.message,
      detail: this.detail,
      hint: this.hint,
      position: this.position,
    });
  }

  /** A broken message stream (framing, an unexpected message): FATAL, the connection ends. */
  static protocolViolation(message: string): PgError {
    return new PgError('FATAL', SqlState.ProtocolViolation, message);
  }
  /**
   * One well-framed message whose fields do not parse (a string without its NUL, a count past the end): ERROR 08P01,
   * as PostgreSQL's pq_getmsg* functions raise it; the session goes on after the next Sync.
   */
  static malformedMessage(message = 'insufficient data left in message'): PgError {
    return new PgError('ERROR', SqlState.ProtocolViolation, message);
  }
  static authFailed(user: string, method: string): PgError {
    return new PgError(
      'FATAL',
      SqlState.InvalidPassword,
      `password authentication failed for user "${user}"`,
      `auth method: ${method}`,
    );
  }
  static unknownUser(user: string, database: string): PgError {
    return new PgError(
      'FATAL',
      SqlState.InvalidAuthorizationSpecification,
      `no such user: "${user}" is not configured for database "${database}"`,
      undefined,
      'Add the user to users.toml.',
    );
  }
  static unknownDatabase(database: string): PgError {
    return new PgError(
      'FATAL',
      SqlState.InvalidCatalogName,
      `database "${database}" does not exist`,
      undefined,
      'The database must be declared with [[databases]] in pgdog.toml.',
    );
  }
  static featureNotSupported(why: string, hint?: string): PgError {
    return new PgError('ERROR', SqlState.FeatureNotSupported, why, undefined, hint);
  }
  static poolTimeout(database: string, user: string, shard: number, timeoutMs: number): PgError {
    return new PgError(
      'ERROR',
      SqlState.ConnectionFailure,
      `timed out after ${timeoutMs} ms waiting for a server connection (database "${database}", user "${user}", shard ${shard})`,
      undefined,
      'All server connections are busy: raise pool_size / default_pool_size or checkout_timeout.',
    );
  }
  static serverUnavailable(shard: number, reason: string): PgError {
    return new PgError('ERROR', SqlState.ConnectionFailure, `could not connect to shard ${shard}: ${reason}`);
  }
  /**
   * A server connection died under a client: the server's own FATAL when it sent one (57P01 terminating connection
   * due to administrator command, 57P02/57P03 shutdown, 25P03/57P05 timeouts …), byte for byte, else the proxy's
   * 08006 naming the shard.
   */
  static serverConnectionLost(shard: number, reason: string, serverFatal: Buffer | null = null): PgError {
    if (serverFatal !== null) return PgError.fromServer(serverFatal);
    return new PgError(
      'FATAL',
      SqlState.ConnectionFailure,
      `server connection to shard ${shard} was lost: ${reason}`,
      undefined,
      'The transaction, if any, was rolled back by the server. Reconnect and retry.',
    );
  }
  /** A server's ErrorResponse frame as a PgError whose toBuffer() gives back exactly those bytes. */
  static fromServer(frame: Buffer): PgError {
    const fields = new Map<number, string>();
    let p = 5;
    while (p < frame.length && frame[p] !== 0) {
      const end = frame.indexOf(0, p + 1);
      if (end < 0) break;
      fields.set(frame[p], frame.toString('utf8', p + 1, end));
      p = end + 1;
    }
    const severity = (fields.get(0x56) ?? fields.get(0x53) ?? 'ERROR') as Severity; // 'V', else 'S'
    // 'C': a server's SQLSTATE may be one the proxy's table does not list; it is only read, never re-encoded.
    const code = (fields.get(0x43) ?? SqlState.InternalError) as SqlStateCode;
    const err = new PgError(severity, code, fields.get(0x4d) ?? '', fields.get(0x44), fields.get(0x48));
    err.wire = frame;
    return err;
  }

  static shuttingDown(): PgError {
    return new PgError('FATAL', SqlState.AdminShutdown, 'shardgate is shutting down');
  }
  /** To clients that connect while shardgate shuts down (as PostgreSQL: "the database system is shutting down"). */
  static notAcceptingClients(): PgError {
    return new PgError(
      'FATAL',
      SqlState.CannotConnectNow,
      'shardgate is shutting down and does not accept new connections',
    );
  }
  /** A statement the PostgreSQL parser rejects (42601), with PostgreSQL's own message and cursor position. */
  static syntaxError(message: string, position?: number): PgError {
    return new PgError('ERROR', SqlState.SyntaxError, message, undefined, undefined, position);
  }
  static internal(message: string): PgError {
    return new PgError('ERROR', SqlState.InternalError, message);
  }
}
