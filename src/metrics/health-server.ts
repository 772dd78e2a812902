// PgDog's load-balancer health endpoint, on `healthcheck_port`: any HTTP request is answered `up` (200) unless some
// database has server pools and every one of them is unusable — a replica banned, or a pool whose last connect failed
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

/** What the health rule reads of a database's pools (DatabasePools fits). */
export interface HealthView {
  readonly sets: readonly {
    readonly primary: HealthMember;
    readonly replicas: readonly HealthMember[];
    isBanned(member: HealthMember): boolean;
  }[];
}
interface HealthMember {
  readonly pool: { readonly total: number; readonly lastConnectError: unknown };
}

/**
 * True when some database has pools and none of them can serve: no server of that database can be reached (issue
 * 17's rule; PgDog's is stricter — down only when every pool of every database is unusable — which keeps a proxy in
 * the load balancer while one of its databases answers nothing but errors).
 */
export function isBroken(databases: readonly HealthView[]): boolean {
  for (const db of databases) {
    let hasPools = false;
    let canServe = false;
    for (const set of db.sets) {
      for (const member of [set.primary, ...set.replicas]) {
        hasPools = true;
        const pool = member.pool;
        if ((pool.total > 0 || pool.lastConnectError === null) && !set.isBanned(member)) canServe = true;
      }
    }
    if (hasPools && !canServe) return true;
  }
  return false;
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
