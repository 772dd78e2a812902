// Replica health checks (PgDog's semantics): when a check is due — before checkout at most every
// healthcheck_interval per server connection, and on idle pools every idle_healthcheck_interval after
// idle_healthcheck_delay — and how one runs: `;` on a server connection (an idle one of the pool, or a fresh one
// opened for the check), bounded by healthcheck_timeout. The decisions are pure (clock passed in); ReplicaSet bans.
import type { GeneralConfig } from '../config/types.js';
import { runQuery } from './server-query.js';
import { ServerConnection, type ServerAddress } from './server-connection.js';

export type HealthSettings = Pick<
  GeneralConfig,
  'healthcheckIntervalMs' | 'healthcheckTimeoutMs' | 'idleHealthcheckIntervalMs' | 'idleHealthcheckDelayMs'
>;

/** PgDog's check query: an empty statement, answered without touching any table. */
export const HEALTHCHECK_QUERY = ';';

/** A checkout check is due when the server last proved healthy `intervalMs` or more ago (0: before every checkout). */
export function isCheckoutCheckDue(healthyAtMs: number, nowMs: number, intervalMs: number): boolean {
  return nowMs - healthyAtMs >= intervalMs;
}

/**
 * Milliseconds until the next idle check of a set started at `startedAtMs` whose last idle check ended at
 * `lastRunAtMs` (null: none yet): the first after idle_healthcheck_delay, then every idle_healthcheck_interval;
 * null when idle checks are off (interval 0, as PgDog).
 */
export function nextIdleCheckInMs(
  startedAtMs: number,
  lastRunAtMs: number | null,
  nowMs: number,
  settings: Pick<HealthSettings, 'idleHealthcheckIntervalMs' | 'idleHealthcheckDelayMs'>,
): number | null {
  if (settings.idleHealthcheckIntervalMs === 0) return null;
  const dueAt =
    lastRunAtMs === null
      ? startedAtMs + settings.idleHealthcheckDelayMs
      : lastRunAtMs + settings.idleHealthcheckIntervalMs;
  return Math.max(0, dueAt - nowMs);
}

/**
 * Run the check on `server` (idle in the protocol, attached to no one): null when it answered within `timeoutMs`,
 * else why not. A server that times out is destroyed (its reply may still come and would confuse the next user).
 */
export async function checkServer(server: ServerConnection, timeoutMs: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<string>((resolve) => {
    timer = setTimeout(() => {
      server.destroy('health check timed out');
      resolve(`health check timed out after ${timeoutMs} ms`);
    }, timeoutMs);
  });
  try {
    const outcome = await Promise.race([runQuery(server, HEALTHCHECK_QUERY), timedOut]);
    if (typeof outcome === 'string') return outcome;
    if (outcome.kind === 'ok') return null;
    return outcome.kind === 'error'
      ? `health check failed: ${outcome.message}`
      : `health check lost the server: ${outcome.reason}`;
  } finally {
    clearTimeout(timer);
  }
}

/** A check on a connection opened for it (a pool with no idle server): connect and `;`, both within `timeoutMs`. */
export async function checkAddress(
  address: ServerAddress,
  startupParams: Record<string, string>,
  timeoutMs: number,
): Promise<string | null> {
  const server = new ServerConnection(address);
  try {
    await server.connect(timeoutMs, startupParams);
  } catch (err) {
    server.destroy('health check connect failed');
    return `health check could not connect: ${(err as Error).message}`;
  }
  const failure = await checkServer(server, timeoutMs);
  if (!server.isClosed) server.terminate('health check done');
  return failure;
}
