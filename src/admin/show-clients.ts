// SHOW CLIENTS: one row per client connection (admin console clients included).
import type { AdminContext } from './context.js';
import { cols, type ResultSet } from './result-set.js';

const COLUMNS = cols({
  id: 'int8',
  user: 'text',
  database: 'text',
  addr: 'text',
  port: 'int8',
  state: 'text',
  tx_state: 'text',
  connect_time: 'text',
  application_name: 'text',
  servers: 'text',
  bytes_received: 'int8',
  bytes_sent: 'int8',
});

export function showClients(ctx: AdminContext): ResultSet {
  const rows = ctx
    .clients()
    .map((c) => [
      c.id,
      c.user,
      c.database,
      c.remoteAddress,
      c.remotePort,
      c.activity,
      c.txState,
      new Date(c.connectedAt).toISOString(),
      c.applicationName,
      c.serverIds.join(','),
      c.bytesReceived,
      c.bytesSent,
    ]);
  return { columns: COLUMNS, rows };
}
