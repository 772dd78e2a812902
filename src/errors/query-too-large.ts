// `query_size_limit` with `query_size_limit_action = "block"`: a Query or Parse over the limit is never buffered (its
// bytes are skipped as they arrive). In its place the request carries a stand-in statement whose text names the
// sizes, so the refusal keeps its place among the client's pipelined requests whichever path runs them: the sharded
// router refuses it when it parses it, and a server answers it with a syntax error that the reply scanner replaces.
// Either way the client gets ERROR 54000 (PgDog's message and detail) and its session goes on.
import { Buffer } from 'node:buffer';
import { PgError } from './pg-error.js';
import { SqlState } from './sqlstate.js';
import { LISTEN_STAND_IN, listenNeedsSessionMode } from './listen-refused.js';

const PREFIX = 'shardgate_query_too_large_';
const STAND_IN = /^shardgate_query_too_large_(\d+)_(\d+)$/;

/** What a server's syntax error about a stand-in mentions (to recognise it among other errors). */
export const STAND_IN_MARKER = Buffer.from(PREFIX);

/** The error for a message of `sizeBytes` (header included) over `limitBytes`. */
export function queryTooLarge(sizeBytes: number, limitBytes: number): PgError {
  return new PgError(
    'ERROR',
    SqlState.ProgramLimitExceeded,
    'query size exceeds query_size_limit',
    `message is ${sizeBytes} bytes, query_size_limit is ${limitBytes} bytes`,
    'Send a shorter statement (bind long values as parameters), or raise query_size_limit.',
  );
}

/** The stand-in statement text: a single identifier, which no server accepts as a statement. */
export function standInText(sizeBytes: number, limitBytes: number): string {
  return `${PREFIX}${sizeBytes}_${limitBytes}`;
}

/** The refusal a stand-in text stands for (this one's, or LISTEN's in transaction mode); null for any other text. */
export function refusalOf(sql: string): PgError | null {
  if (sql === LISTEN_STAND_IN) return listenNeedsSessionMode();
  if (!sql.startsWith(PREFIX)) return null;
  const m = STAND_IN.exec(sql);
  return m === null ? null : queryTooLarge(Number(m[1]), Number(m[2]));
}
