// LISTEN refused in transaction mode (frontend/listen-check.ts recognises it): the error, and the stand-in statement
// that takes the LISTEN's place — one identifier, which no server accepts (its syntax error names it, and the reply
// scanner swaps that error for the refusal) and the sharded router answers with the refusal.
import { Buffer } from 'node:buffer';
import { PgError } from './pg-error.js';
import { SqlState } from './sqlstate.js';

export const LISTEN_STAND_IN = 'shardgate_listen_needs_session_mode';
export const LISTEN_STAND_IN_MARKER = Buffer.from(LISTEN_STAND_IN);

export function listenNeedsSessionMode(): PgError {
  return new PgError(
    'ERROR',
    SqlState.FeatureNotSupported,
    'LISTEN is not supported in transaction mode',
    'In transaction mode the server connection goes back to the pool when the transaction ends: notifications would reach whichever client uses it next, or nobody.',
    'Use pooler_mode = "session" for the user that listens (users.toml), as with PgBouncer.',
  );
}
