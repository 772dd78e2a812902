// LISTEN on a database with one shard in transaction mode: the server goes back to the pool when the transaction
// ends, so notifications would reach whichever client uses that connection next, or nobody. Such a statement is
// refused (0A000) instead. The single-shard path never parses SQL: a Query or Parse is recognised by the keyword at the
// start of its text (after whitespace and comments), a few bytes read per statement. The refused statement is replaced
// by a stand-in the server rejects, whose error the reply scanner swaps for this one (as query_size_limit does), so
// the refusal keeps its place among pipelined requests and fails the transaction as PostgreSQL's own error would.
import { Frontend } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const VT = 0x0b;
const FF = 0x0c;
const CR = 0x0d;
const DASH = 0x2d;
const SLASH = 0x2f;
const STAR = 0x2a;
const KEYWORD = Buffer.from('listen');

/** The stand-in statement: one identifier, which no server accepts; its syntax error names it. */
export const LISTEN_STAND_IN = 'shardgate_listen_needs_session_mode';
export const LISTEN_STAND_IN_MARKER = Buffer.from(LISTEN_STAND_IN);

/** Where the statement text of a Query (after the header) or Parse (after the header and name) starts; -1: none. */
function textStart(type: number, frame: Buffer): number {
  if (type === Frontend.Query) return 5;
  const nameEnd = frame.indexOf(0, 5);
  return nameEnd < 0 ? -1 : nameEnd + 1;
}

/** Past whitespace, line comments and (nested) block comments from `p`. */
function skipBlank(frame: Buffer, p: number): number {
  const end = frame.length;
  while (p < end) {
    const c = frame[p];
    if (c === SPACE || c === TAB || c === LF || c === CR || c === FF || c === VT) p++;
    else if (c === DASH && frame[p + 1] === DASH) {
      const eol = frame.indexOf(LF, p + 2);
      p = eol < 0 ? end : eol + 1;
    } else if (c === SLASH && frame[p + 1] === STAR) {
      let depth = 1;
      p += 2;
      while (p < end && depth > 0) {
        if (frame[p] === SLASH && frame[p + 1] === STAR) {
          depth++;
          p += 2;
        } else if (frame[p] === STAR && frame[p + 1] === SLASH) {
          depth--;
          p += 2;
        } else p++;
      }
    } else return p;
  }
  return p;
}

function isIdentifierByte(c: number | undefined): boolean {
  if (c === undefined) return false;
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x5f ||
    c === 0x24 ||
    c >= 0x80
  );
}

/** A Query or Parse whose statement starts with LISTEN. */
export function startsWithListen(type: number, frame: Buffer): boolean {
  const start = textStart(type, frame);
  if (start < 0) return false;
  const p = skipBlank(frame, start);
  if (p + KEYWORD.length >= frame.length) return false;
  for (let i = 0; i < KEYWORD.length; i++) if ((frame[p + i] | 0x20) !== KEYWORD[i]) return false;
  return !isIdentifierByte(frame[p + KEYWORD.length]);
}

export function listenNeedsSessionMode(): PgError {
  return new PgError(
    'ERROR',
    SqlState.FeatureNotSupported,
    'LISTEN is not supported in transaction mode',
    'In transaction mode the server connection goes back to the pool when the transaction ends: notifications would reach whichever client uses it next, or nobody.',
    'Use pooler_mode = "session" for the user that listens (users.toml), as with PgBouncer.',
  );
}
