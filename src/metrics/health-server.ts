// PgDog's load-balancer health endpoint, on `healthcheck_port`: any HTTP request is answered `up` (200) unless the
// proxy has server pools and every one of them is unusable — a replica banned, or a pool whose last connect failed
// and that holds no connection — then `down` (502), so a load balancer in front of several proxies stops sending
// clients to this one. A proxy with no pools yet (no client has logged in) is up.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { DatabasePools } from '../backend/pool-manager.js';

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/** True when there are pools and none of them can serve (PgDog's rule). */
export function isBroken(databases: readonly DatabasePools[]): boolean {
  let hasPools = false;
  for (const db of databases) {
    for (const set of db.sets) {
      for (const member of [set.primary, ...set.replicas]) {
        hasPools = true;
        const pool = member.pool;
        const canServe = pool.total > 0 || pool.lastConnectError === null;
        if (canServe && !set.isBanned(member)) return false;
      }
    }
  }
  return hasPools;
}

export async function startHealthServer(opts: {
  host: string;
  port: number;
  pools: () => readonly DatabasePools[];
  logger: Logger;
}): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const broken = isBroken(opts.pools());
    res
      .writeHead(broken ? 502 : 200, { 'content-type': 'text/plain; charset=utf-8' })
      .end(req.method === 'HEAD' ? '' : broken ? 'down' : 'up');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.logger.error({ err: err.message }, 'health endpoint listener error'));
  const port = (server.address() as AddressInfo).port;
  opts.logger.info({ host: opts.host, port }, 'health endpoint listening');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
