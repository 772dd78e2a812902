// The client's replies to a COMMIT the proxy carried out itself (across shards): what PostgreSQL would have sent for
// the same request — simple Query or Parse/Bind/Describe/Execute/Sync — with `COMMIT` or the commit's error.
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

/**
 * Replies to a request whose one statement is COMMIT. `error` (an ErrorResponse frame) replaces the COMMIT tag;
 * after it, the rest up to Sync is skipped as PostgreSQL does. Either way the transaction is over: status idle.
 */
export function commitReplies(
  types: readonly number[],
  frames: readonly Buffer[],
  error: Buffer | null,
  withReady = true,
): Buffer {
  const out: Buffer[] = [];
  let isSkipping = false;
  for (let i = 0; i < types.length; i++) {
    switch (types[i]) {
      case Frontend.Query:
        out.push(error ?? COMMIT_TAG);
        if (withReady) out.push(readyForQuery(TxStatus.Idle)); // a script statement: the script sends it at its end
        break;
      case Frontend.Sync:
        out.push(readyForQuery(TxStatus.Idle));
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
          out.push(error ?? COMMIT_TAG);
          isSkipping = error !== null;
        }
    }
  }
  return Buffer.concat(out);
}
