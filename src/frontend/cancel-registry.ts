// Cancel keys handed to clients (BackendKeyData) → the session that owns them, so a CancelRequest on a new
// connection can reach the server backend currently running that client's query. A session bound to one server
// backend for its whole life (session mode on one shard, a replication connection) is given that backend's pid, as
// PostgreSQL would give it (pg_backend_pid() and pg_terminate_backend(pid) then mean what the client expects); the
// secret is always the proxy's own.
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { ServerConnection } from '../backend/server-connection.js';

export interface Cancellable {
  cancelQuery(): void;
}

export class CancelRegistry {
  private readonly sessions = new Map<number, { secret: number; session: Cancellable }>();
  private nextPid = randomInt(1000, 1 << 20);

  /** A key for `session`: `backendPid` when given and free (another server's backend may have the same pid). */
  register(session: Cancellable, backendPid = 0): { pid: number; secret: number } {
    let pid = backendPid;
    if (pid <= 0 || this.sessions.has(pid)) {
      pid = this.nextPid++;
      if (this.nextPid >= 0x7fffffff) this.nextPid = 1000;
      while (this.sessions.has(pid)) pid = this.nextPid++;
    }
    const secret = randomInt(0, 0x7fffffff) | 0; // an int32 a field holds in place (not a boxed number per client)
    this.sessions.set(pid, { secret, session });
    return { pid, secret };
  }

  unregister(pid: number): void {
    this.sessions.delete(pid);
  }

  /** Cancel the query of the session with this key; false when the key matches nothing (ignored, as PostgreSQL does). */
  cancel(pid: number, secret: number): boolean {
    const entry = this.sessions.get(pid);
    if (!entry || entry.secret !== secret) return false;
    entry.session.cancelQuery();
    return true;
  }
}

/** Forward a client's cancel to `server` when it is running something (a CancelRequest of its own, to PostgreSQL). */
export function cancelRunning(server: ServerConnection, log: Logger): void {
  if (server.pendingReady <= 0) return;
  log.info({ shard: server.address.shard }, 'forwarding cancel request');
  void server.cancel();
}
