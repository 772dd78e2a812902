// SHOW SERVERS: one row per open server connection (primaries' and replicas'), with its pool, its role and the
// client holding it (if any).
import type { AdminContext } from './context.js';
import { poolMembers } from './pool-members.js';
import { cols, type Cell, type ResultSet } from './result-set.js';

const COLUMNS = cols({
  id: 'int8',
  pool_id: 'int8',
  database: 'text',
  user: 'text',
  shard: 'int8',
  role: 'text',
  host: 'text',
  port: 'int8',
  state: 'text',
  tx_state: 'text',
  connect_time: 'text',
  last_used: 'text',
  backend_pid: 'int8',
  client_id: 'int8',
  bytes_sent: 'int8',
  bytes_received: 'int8',
});

const TX_STATES: Record<number, string> = { 0x49: 'idle', 0x54: 'in transaction', 0x45: 'failed' };

export function showServers(ctx: AdminContext): ResultSet {
  const clientOf = new Map<number, number>();
  for (const c of ctx.clients()) for (const id of c.serverIds) clientOf.set(id, c.id);
  const rows: Cell[][] = [];
  for (const { pools, shard, member } of poolMembers(ctx)) {
    for (const s of member.pool.servers()) {
      rows.push([
        s.id,
        member.pool.id,
        pools.database,
        pools.user.name,
        shard,
        member.role,
        s.address.host,
        s.address.port,
        s.state,
        TX_STATES[s.txStatus] ?? 'unknown',
        new Date(s.createdAt).toISOString(),
        new Date(s.lastUsedAt).toISOString(),
        s.backendPid,
        clientOf.get(s.id) ?? null,
        s.bytesSent,
        s.bytesReceived,
      ]);
    }
  }
  return { columns: COLUMNS, rows };
}
