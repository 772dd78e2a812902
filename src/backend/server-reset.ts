// Returning a server whose client left: a running query or an unfinished extended-protocol request means its state is
// unknown (closed); an open transaction is rolled back, and in session mode DISCARD ALL clears what the client set.
import { Buffer } from 'node:buffer';
import { TxStatus } from '../protocol/codes.js';
import { query } from '../protocol/messages.js';
import type { Pool } from './pool.js';
import type { ServerConnection } from './server-connection.js';

export function resetAndRelease(
  server: ServerConnection,
  pool: Pool,
  opts: { isSessionMode: boolean; txStatus: number; hasOpenSegment: boolean },
): void {
  if (opts.hasOpenSegment || server.hasOpenSegment) {
    pool.discard(server, 'client left with an unfinished extended-protocol request');
    return;
  }
  if (server.pendingReady > 0 || !server.scanner.isAtMessageBoundary) {
    pool.discard(server, 'client left during a query');
    return;
  }
  const statements: string[] = [];
  if (opts.txStatus !== TxStatus.Idle) statements.push('ROLLBACK');
  if (opts.isSessionMode) statements.push('DISCARD ALL');
  if (statements.length === 0) {
    pool.release(server);
    return;
  }
  server.attach({
    writeToClient: () => true,
    hasPendingWrites: () => false,
    onClientDrain: (resume) => resume(),
    onServerParameter: () => undefined,
    onServerLost: () => undefined,
    onServerReady: (s) => {
      if (s.pendingReady === 0) {
        if (opts.isSessionMode) {
          s.prepared.clear();
          s.settings.clear();
        }
        pool.release(s);
      }
    },
  });
  // DISCARD ALL cannot run inside the implicit transaction of a multi-statement Query: one Query each.
  server.send(Buffer.concat(statements.map((sql) => query(sql))), statements.length);
}
