// Replies to a one-statement request the proxy answered itself instead of a server — a COMMIT it carried out across
// shards, a BEGIN it keeps until a shard joins, a COMMIT / ROLLBACK of a block no shard joined: what PostgreSQL would
// have sent for the same request, simple Query or Parse/Bind/Describe/Execute/Sync.
import { Buffer } from 'node:buffer';
import { Frontend, TxStatus } from '../protocol/codes.js';
import {
  BIND_COMPLETE,
  CLOSE_COMPLETE,
  commandComplete,
  NO_DATA,
  NO_PARAMETERS,
  PARSE_COMPLETE,
  readyForQuery,
} from '../protocol/messages.js';

const COMMIT_TAG = commandComplete('COMMIT');

export interface LocalReply {
  /** The statement's CommandComplete (replaced by `error` when that is set). */
  readonly tag: Buffer;
  /** An ErrorResponse frame: the statement failed; the rest up to Sync is skipped, as PostgreSQL does. */
  readonly error?: Buffer | null;
  /** A NoticeResponse frame sent before the tag (e.g. "there is already a transaction in progress"). */
  readonly notice?: Buffer | null;
  /** Transaction status of the ReadyForQuery replies. */
  readonly status: number;
  /** False for a statement of a script: the script sends the one ReadyForQuery at its end. */
  readonly withReady?: boolean;
}

/** The replies to `types` / `frames`, whose one statement is answered by `reply`. */
export function localReplies(types: readonly number[], frames: readonly Buffer[], reply: LocalReply): Buffer {
  const out: Buffer[] = [];
  const result = (): void => {
    if (reply.notice != null) out.push(reply.notice);
    out.push(reply.error ?? reply.tag);
  };
  let isSkipping = false;
  for (let i = 0; i < types.length; i++) {
    switch (types[i]) {
      case Frontend.Query:
        result();
        if (reply.withReady !== false) out.push(readyForQuery(reply.status));
        break;
      case Frontend.Sync:
        out.push(readyForQuery(reply.status));
        isSkipping = false;
        break;
      default:
        if (isSkipping) break;
        if (types[i] === Frontend.Parse) out.push(PARSE_COMPLETE);
        else if (types[i] === Frontend.Bind) out.push(BIND_COMPLETE);
        else if (types[i] === Frontend.Close) out.push(CLOSE_COMPLETE);
        else if (types[i] === Frontend.Describe) {
          if (frames[i][5] === 0x53) out.push(NO_PARAMETERS); // 'S': statement
          out.push(NO_DATA);
        } else if (types[i] === Frontend.Execute) {
          result();
          isSkipping = reply.error != null;
        }
    }
  }
  return Buffer.concat(out);
}

/**
 * Replies to a request whose one statement is COMMIT, carried out by the proxy. `error` (an ErrorResponse frame)
 * replaces the COMMIT tag. The transaction is over: status idle — in a transaction after a COMMIT AND CHAIN that
 * succeeded (a failed one does not chain, as in PostgreSQL).
 */
export function commitReplies(
  types: readonly number[],
  frames: readonly Buffer[],
  error: Buffer | null,
  withReady = true,
  isChained = false,
): Buffer {
  const status = isChained && error === null ? TxStatus.InTransaction : TxStatus.Idle;
  return localReplies(types, frames, { tag: COMMIT_TAG, error, status, withReady });
}
