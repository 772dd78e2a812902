// PgDog's load-balancer health endpoint, on `healthcheck_port`: any HTTP request is answered `up` (200) unless the
// proxy has server pools and every one of them is unusable — a replica banned, or a pool whose last connect failed
// and that holds no connection — then `down` (503 Service Unavailable), so a load balancer in front of several
// proxies, or a Kubernetes readiness probe, stops sending clients to this one. A proxy with no pools yet (no client
// has logged in) is up. PgDog answers 502 there (pgdog/src/healthcheck.rs); issue 17 asks for 503, the status load
// balancers and Kubernetes read as "not ready" (docs/operations.md).
import type { Logger } from 'pino';
import type { DatabasePools } from '../backend/pool-manager.js';
import { startHttpEndpoint, type HttpEndpoint } from './http-endpoint.js';

export type HealthServer = HttpEndpoint;

const HTTP_OK = 200;
/** `down`: 503 Service Unavailable (PgDog: 502). */
const HTTP_UNAVAILABLE = 503;

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
  const endpoint = await startHttpEndpoint(opts, 'health endpoint', (req, res) => {
    const broken = isBroken(opts.pools());
    res
      .writeHead(broken ? HTTP_UNAVAILABLE : HTTP_OK, { 'content-type': 'text/plain; charset=utf-8' })
      .end(req.method === 'HEAD' ? '' : broken ? 'down' : 'up');
  });
  opts.logger.info({ host: opts.host, port: endpoint.port }, 'health endpoint listening');
  return endpoint;
}
