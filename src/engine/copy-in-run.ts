// COPY … FROM STDIN on a sharded table, run by the sharded dispatch: the key column's position found (from the COPY's
// column list, or the table's columns looked up once on a shard), the COPY sent to its shards, and the client's copy
// messages fed to the split (copy-in.ts cuts the data into rows and routes each by its key) until the client ends it.
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { Frontend } from '../protocol/codes.js';
import type { ServerConnection } from '../backend/server-connection.js';
import type { BatchTarget } from '../frontend/batch-target.js';
import { isCopyMessage, splitCopyIn, type CopyInSplit } from './copy-in.js';
import type { DispatchHost } from './dispatch-host.js';
import { lookUpTableColumns } from './table-columns.js';

type CopyInTarget = Extract<BatchTarget, { kind: 'copyIn' }>;

/**
 * The split COPY in flight, if any: the client's copy messages go through it. The split itself is the request state's
 * run slot (request-state.ts `moveRun`), not a field of this class.
 */
export class CopyInRun {
  private readonly host: DispatchHost;

  constructor(host: DispatchHost) {
    this.host = host;
  }

  /**
   * Hand the client's leading copy messages to `copy`, the split COPY in the request state's run slot (the dispatch
   * calls this only while it holds one); false when nothing else is left to dispatch. After the COPY has ended
   * (error), messages up to the client's CopyDone / CopyFail are dropped.
   */
  feed(copy: CopyInSplit): boolean {
    const { batch, request } = this.host;
    let n = 0;
    try {
      for (; n < batch.length; n++) {
        const type = batch.typeAt(n);
        if (isCopyMessage(type)) copy.feed(type, batch.frameAt(n));
        else if (copy.isClientDone || copy.isFailed || request.fanout === null) break;
        else if (type !== Frontend.Sync && type !== Frontend.Flush) return this.desynchronized(type);
        // PostgreSQL ignores Sync and Flush during COPY FROM STDIN (CopyGetData), as this does.
      }
    } catch (err) {
      n++;
      request.fanout?.abort(err instanceof PgError ? err : PgError.internal(String(err)));
    }
    copy.flush();
    const isMovingOn = n < batch.length; // a message after the copy data: the client is done with it
    batch.dropFirst(n);
    if (request.fanout === null && (copy.isClientDone || isMovingOn)) request.dropRun('copyIn');
    return !batch.isEmpty;
  }

  /**
   * Another message than copy data, Sync or Flush while the client sends COPY data: PostgreSQL fails the COPY with
   * ERROR 08P01 and, having lost track of the client's messages, ends the connection (FATAL 08P01); so does this. The
   * shards, still in COPY, are not given back to the pools as they are (the session's cleanup resets them).
   */
  private desynchronized(type: number): boolean {
    const session = this.host.session;
    const hex = type.toString(16).toUpperCase().padStart(2, '0');
    const error = new PgError(
      'ERROR',
      SqlState.ProtocolViolation,
      `unexpected message type 0x${hex} during COPY from stdin`,
    );
    session.output.write(error.toBuffer());
    session.ending.fatal(
      PgError.protocolViolation('terminating connection because protocol synchronization was lost'),
    );
    return false;
  }

  /**
   * The fan-out of `copy` (the split COPY in the run slot) has answered: done once the client has ended its data (else
   * dropped until it does).
   */
  onFanoutDone(copy: CopyInSplit): void {
    if (copy.isClientDone) this.host.request.endRun('copyIn');
  }

  /** COPY … FROM STDIN with its rows split by shard (or copied to every shard for a table that is). */
  start(target: CopyInTarget): void {
    const key = target.copy.keyColumn;
    if (key === null || target.copy.keyColumnIndex !== null) {
      return this.run(target, key === null ? null : target.copy.keyColumnIndex);
    }
    if (target.copy.columns !== null || target.table === null) {
      return this.host.end.failRequest(
        PgError.featureNotSupported(
          `the COPY column list does not include the sharding key column "${key.column}"`,
          'List the sharding key column in the COPY.',
        ),
      );
    }
    // No column list: the key's position comes from the table's definition (learned once per table).
    const table = target.table;
    const known = this.host.router.knownTableColumns(table);
    if (known !== undefined) return this.runKeyedBy(target, known, key.column);
    this.withTableColumns(this.host.servers.at(target.shards[0]), table, (columns) =>
      this.runKeyedBy(target, columns, key.column),
    );
  }

  private runKeyedBy(target: CopyInTarget, columns: readonly string[], keyColumn: string): void {
    const index = columns.indexOf(keyColumn);
    if (index < 0) {
      return this.host.end.failRequest(
        PgError.featureNotSupported(`table ${target.table ?? ''} has no sharding key column "${keyColumn}"`),
      );
    }
    this.run(target, index);
  }

  /**
   * Look `table`'s columns up on `server` (the request waits meanwhile), then `then(columns)`. A lookup error (no such
   * table) answers the request with that error, as the statement itself would have been answered.
   */
  private withTableColumns(server: ServerConnection, table: string, then: (columns: string[]) => void): void {
    const host = this.host;
    host.request.move({ kind: 'lookup', what: `the columns of ${table}` });
    void lookUpTableColumns(server, table, host).then((found) => {
      host.request.end('lookup');
      if (host.session.status.state !== 'ready') return;
      host.servers.takeBack();
      if (found.kind === 'lost')
        return host.session.ending.fatal(
          PgError.serverConnectionLost(server.address.shard, found.reason, server.fatalError),
        );
      if (found.kind === 'error') return host.end.failRequest(found.error);
      host.router.learnTableColumns(table, found.columns, found.generated);
      then(found.columns);
    });
  }

  private run(target: CopyInTarget, keyIndex: number | null): void {
    const host = this.host;
    const { types, frames, readyCount } = host.takeRequest();
    const servers = target.shards.map((shard) => host.servers.at(shard));
    const { copy, spec } = splitCopyIn(target.copy, keyIndex, servers, host.session.output);
    const fanout = host.startFanout(servers.length, spec, false, host);
    fanout.onServerError = (index) => copy.onServerError(index);
    host.request.moveRun({ kind: 'copyIn', copy });
    target.shards.forEach((shard, i) => {
      host.session.send.send(host.servers.lend(shard, fanout.sinkFor(i)), types, frames, readyCount);
    });
  }
}
