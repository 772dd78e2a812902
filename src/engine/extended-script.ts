// An extended-protocol request whose statements need different shards (a JDBC executeBatch, a pgx / Npgsql batch:
// several Parse/Bind/Execute before one Sync): cut into one request per statement, each ended by a Sync of the proxy's,
// to run one after another as a script (sharded-dispatch.ts) with the client's one ReadyForQuery at the end.
import { Buffer } from 'node:buffer';
import { Frontend } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { bindStatement, executeLimit } from '../protocol/frontend-fields.js';

const SYNC = Buffer.from([Frontend.Sync, 0, 0, 0, 4]);

export interface StatementRequest {
  readonly types: number[];
  readonly frames: Buffer[];
}

/**
 * One request per Execute (with the Parse / Bind / Describe before it and any Close / Describe after the last one),
 * each ended by a Sync. Throws 0A000 for what cannot be cut this way: a row-limited Execute, no Sync at the end, or
 * a Bind of the unnamed statement parsed by an earlier statement of the request (it would run on other shards).
 */
export function splitStatements(types: readonly number[], frames: readonly Buffer[]): StatementRequest[] {
  const hint = 'Send each statement with its own Sync, or keep a batch to one shard.';
  const last = types.length - 1;
  if (types[last] !== Frontend.Sync || types.indexOf(Frontend.Sync) !== last) {
    throw PgError.featureNotSupported(
      'statements for different shards before one Sync must end with that Sync (no Flush-only batches)',
      hint,
    );
  }
  const out: StatementRequest[] = [];
  let current: StatementRequest = { types: [], frames: [] };
  let hasParsedUnnamed = false;
  for (let i = 0; i < last; i++) {
    const t = types[i];
    const frame = frames[i];
    if (t === Frontend.Parse && frame[5] === 0) {
      hasParsedUnnamed = true;
    } else if (t === Frontend.Bind && bindStatement(frame) === '') {
      const isParsedHere = current.types.some(
        (type, k) => type === Frontend.Parse && current.frames[k][5] === 0,
      );
      if (!isParsedHere && hasParsedUnnamed && out.length > 0) {
        throw PgError.featureNotSupported(
          'a batch binding the unnamed statement again for another shard needs its Parse repeated',
          hint,
        );
      }
    } else if (t === Frontend.Execute && executeLimit(frame) > 0) {
      throw PgError.featureNotSupported(
        'a row-limited Execute inside a batch of statements for different shards is not supported',
        hint,
      );
    }
    current.types.push(t);
    current.frames.push(frame);
    if (t === Frontend.Execute) {
      out.push(current);
      current = { types: [], frames: [] };
    }
  }
  if (current.types.length > 0) {
    // Close / Describe after the last Execute: with it (a batch without any Execute never gets here: one shard).
    const tail = out[out.length - 1] ?? { types: [], frames: [] };
    tail.types.push(...current.types);
    tail.frames.push(...current.frames);
    if (out.length === 0) out.push(tail);
  }
  for (const request of out) {
    request.types.push(Frontend.Sync);
    request.frames.push(SYNC);
  }
  return out;
}
