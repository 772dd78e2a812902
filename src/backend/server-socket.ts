// Sockets to a PostgreSQL server: its Unix-domain socket when the host is a directory (no TLS there, as libpq: sslmode
// does not apply to Unix sockets), else TCP; and a CancelRequest sent over a fresh one.
import net from 'node:net';
import { serverEndpoint } from '../config/server-host.js';
import { cancelRequest } from '../protocol/messages.js';

/** Where one pool's server connections go, and as whom. */
export interface ServerAddress {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string | null;
  shard: number;
}

export function openSocket(address: ServerAddress, onread?: net.OnReadOpts): net.Socket {
  const endpoint = serverEndpoint(address.host, address.port);
  return endpoint.kind === 'unix'
    ? net.connect({ path: endpoint.path, onread })
    : net.connect({ host: endpoint.host, port: endpoint.port, onread });
}

/** Send a CancelRequest for backend `pid` over a fresh connection; resolves once that connection is over. */
export function sendCancel(address: ServerAddress, pid: number, secret: number): Promise<void> {
  return new Promise((resolve) => {
    const s = openSocket(address);
    s.setTimeout(5000, () => s.destroy());
    s.once('connect', () => s.end(cancelRequest(pid, secret)));
    s.once('error', () => resolve());
    s.once('close', () => resolve());
  });
}
