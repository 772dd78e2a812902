// The proxy's own statements on a server connection (PREPARE TRANSACTION, COMMIT PREPARED, recovery queries): send
// one simple Query (or a few pipelined in one write), read the whole reply, report rows / error / lost connection. Not
// for client traffic.
import { Buffer } from 'node:buffer';
import { Backend } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { query } from '../protocol/messages.js';
import { errorFields } from '../protocol/error-fields.js';
import { readDataRow } from '../protocol/rows.js';
import { framedSink, type FramedSinkOwner } from './framed-sink.js';
import type { ServerConnection } from './server-connection.js';

export type QueryOutcome =
  | { readonly kind: 'ok'; readonly tag: string; readonly rows: (string | null)[][] }
  /** `frame`: the ErrorResponse as the server sent it (to pass on to a client). */
  | { readonly kind: 'error'; readonly code: string; readonly message: string; readonly frame: Buffer }
  | { readonly kind: 'lost'; readonly reason: string };

/** Who hears what a statement of the proxy's own reports besides its result. */
export interface QueryOwner extends Pick<FramedSinkOwner, 'onServerParameter'> {
  /** A NoticeResponse (the whole frame, a copy). */
  onNotice?(frame: Buffer): void;
}

const IGNORE_PARAMETERS: QueryOwner = { onServerParameter: () => undefined };

/** Why a statement did not succeed (the server's message, or why the connection went); null when it did. */
export function outcomeFailure(outcome: QueryOutcome): string | null {
  return outcome.kind === 'ok' ? null : outcome.kind === 'error' ? outcome.message : outcome.reason;
}

/** PostgreSQL's answer to COMMIT/ROLLBACK PREPARED of a GID that is no longer prepared: that branch is finished. */
const UNDEFINED_OBJECT = '42704';

/** COMMIT PREPARED / ROLLBACK PREPARED ended the branch: it succeeded, or the GID was already finished. */
export function endsPreparedBranch(outcome: QueryOutcome): boolean {
  return outcome.kind === 'ok' || (outcome.kind === 'error' && outcome.code === UNDEFINED_OBJECT);
}

/**
 * Run `sql` (one statement, simple protocol) on `server`, which must be idle in the protocol and attached to no one
 * else meanwhile. The server stays attached to the returned sink afterwards: the caller re-attaches or releases it.
 */
export function runQuery(
  server: ServerConnection,
  sql: string,
  owner: QueryOwner = IGNORE_PARAMETERS,
): Promise<QueryOutcome> {
  if (server.isClosed) return Promise.resolve({ kind: 'lost', reason: 'server connection already closed' });
  return new Promise((resolve) => startQueries(server, [sql], owner, (outcomes) => resolve(outcomes[0])));
}

/**
 * Run `sqls` as that many simple Queries sent in one write (pipelined: the server runs them one after the other
 * without waiting for us); one outcome per Query, in order. As PostgreSQL does, a Query after a failed one inside a
 * transaction block is refused, and a COMMIT there answers ROLLBACK. Same conditions as runQuery.
 */
export function runQueries(
  server: ServerConnection,
  sqls: readonly string[],
  owner: QueryOwner = IGNORE_PARAMETERS,
): Promise<QueryOutcome[]> {
  if (server.isClosed) {
    const lost: QueryOutcome = { kind: 'lost', reason: 'server connection already closed' };
    return Promise.resolve(sqls.map(() => lost));
  }
  return new Promise((resolve) => startQueries(server, sqls, owner, resolve));
}

function startQueries(
  server: ServerConnection,
  sqls: readonly string[],
  owner: QueryOwner,
  done: (outcomes: QueryOutcome[]) => void,
): void {
  const outcomes: QueryOutcome[] = [];
  let tag = '';
  let rows: (string | null)[][] = [];
  let error: QueryOutcome | null = null;
  let isDone = false;
  const finish = (): void => {
    isDone = true;
    done(outcomes);
  };
  server.attach(
    framedSink(
      {
        onServerParameter: (name, value) => owner.onServerParameter(name, value),
        onServerLost: (_server, reason) => {
          if (isDone) return;
          while (outcomes.length < sqls.length) outcomes.push({ kind: 'lost', reason });
          finish();
        },
      },
      (type, frame) => {
        if (type === Backend.DataRow)
          rows.push(readDataRow(frame).map((v) => (v === null ? null : v.toString('utf8'))));
        else if (type === Backend.CommandComplete) tag = frame.toString('utf8', 5, frame.length - 1);
        else if (type === Backend.NoticeResponse) owner.onNotice?.(Buffer.from(frame));
        else if (type === Backend.ErrorResponse && error === null) {
          const fields = errorFields(frame);
          error = {
            kind: 'error',
            code: fields.get('C') ?? 'XX000',
            message: fields.get('M') ?? '',
            frame,
          };
        }
      },
      () => undefined,
      () => {
        // One ReadyForQuery per Query: the current one is over.
        if (isDone) return;
        outcomes.push(error ?? { kind: 'ok', tag, rows });
        tag = '';
        rows = [];
        error = null;
        if (outcomes.length === sqls.length) finish();
      },
    ),
  );
  if (sqls.length === 1) server.send(query(sqls[0]), 1);
  else server.sendMany(sqls.map(query), sqls.length);
}

/**
 * `outcome` of a statement that prepares or commits a transaction, held to the tag it must answer with: PostgreSQL
 * answers `ROLLBACK` — not an error — to PREPARE TRANSACTION or COMMIT of a transaction that had already failed on that
 * connection, which was then rolled back, not prepared or committed. Such an answer becomes an error outcome (40000).
 */
export function expectTag(outcome: QueryOutcome, tag: string): QueryOutcome {
  if (outcome.kind !== 'ok' || outcome.tag === tag) return outcome;
  const message = `the transaction was rolled back instead of ${tag === 'COMMIT' ? 'committed' : 'prepared'} (the server answered ${outcome.tag || 'nothing'} to ${tag})`;
  return {
    kind: 'error',
    code: SqlState.TransactionRollback,
    message,
    frame: new PgError('ERROR', SqlState.TransactionRollback, message).toBuffer(),
  };
}
