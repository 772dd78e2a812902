// What one client is doing and what SHOW CLIENTS shows of it: its activity (login, waiting for a server, active,
// idle), which the admin console, the metrics and a graceful shutdown read, and its row of facts (who, where from,
// transaction state, servers held, bytes each way). Read from the session's parts, never written.
import type net from 'node:net';
import { TxStatus } from '../protocol/codes.js';
import type { AdminConsoleHandle, ClientActivity, ClientInfo } from '../admin/context.js';
import type { HeldServer } from './held-server.js';
import type { RequestBatch } from './request-batch.js';
import type { RequestSend } from './request-send.js';
import type { SessionParams } from './session-params.js';
import type { ShardedDispatch } from '../engine/sharded-dispatch.js';
import type { SessionState } from './session-status.js';

/** The session's parts the facts are read from (taken when asked: admin and metrics only, never per message). */
export interface ClientParts {
  readonly id: number;
  readonly user: string;
  readonly database: string;
  readonly connectedAt: number;
  readonly state: SessionState;
  /** The status of the client's last ReadyForQuery. */
  readonly txStatus: number;
  readonly adminConsole: AdminConsoleHandle | null;
  readonly isAdmin: boolean;
  readonly held: HeldServer;
  readonly sharded: ShardedDispatch | null;
  readonly send: RequestSend;
  readonly batch: RequestBatch;
  readonly socket: net.Socket;
  readonly params: SessionParams;
}

/** What this client is doing: the admin console and metrics read it, and shutdown waits for 'active' ones. */
export function clientActivity(c: ClientParts): ClientActivity {
  if (c.state === 'startup' || c.state === 'auth') return 'login';
  if (c.adminConsole !== null) return c.adminConsole.isBusy ? 'active' : 'idle';
  if (c.held.isWaiting || c.sharded?.isWaitingForServer === true) return 'waiting';
  if (c.txStatus !== TxStatus.Idle || c.send.hasOpenSegment || !c.batch.isEmpty) return 'active';
  // Session mode keeps a server between transactions: only a statement still running makes the client active.
  const server = c.held.server;
  if (server !== null && server.pendingReady > 0) return 'active';
  if (c.sharded?.isActive === true) return 'active';
  return 'idle';
}

/** One SHOW CLIENTS row's worth. */
export function clientInfo(c: ClientParts): ClientInfo {
  const serverIds: number[] = [];
  if (c.held.server !== null) serverIds.push(c.held.server.id);
  c.sharded?.addServerIds(serverIds);
  const tx = c.txStatus;
  return {
    id: c.id,
    user: c.user,
    database: c.database,
    remoteAddress: c.socket.remoteAddress ?? '',
    remotePort: c.socket.remotePort ?? 0,
    activity: clientActivity(c),
    txState: tx === TxStatus.Idle ? 'idle' : tx === TxStatus.InTransaction ? 'in transaction' : 'failed',
    connectedAt: c.connectedAt,
    applicationName: c.params.wantedValue('application_name') ?? null,
    serverIds,
    bytesReceived: c.socket.bytesRead,
    bytesSent: c.socket.bytesWritten,
    isAdmin: c.isAdmin,
  };
}
