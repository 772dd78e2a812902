// What one login allocates and keeps in a shardgate process, counted rather than sampled from RSS: a proxy of its own
// with a young generation large enough that no GC runs during the measured logins (--min/max-semi-space-size, for this
// measurement only), warmed up with logins that leave, then `logins` md5/SCRAM logins that stay; V8's used heap before
// (after a full GC) and after them (as is: everything allocated, since nothing was collected; then after a full GC:
// what the logged-in clients keep). A minor GC in between would undercount, so it is reported.
import type { PgServer } from '../../src/testing/pg-cluster.js';
import { heapReportSetup, readHeapReport } from './heap-reader.js';
import { openIdleConnections } from './pg-wire-client.js';
import { sleep, stopChild } from './procs.js';
import { benchLogin, makeTempDir, startShardgate, type BenchAuth, type Runner } from './targets.js';

export interface LoginAllocation {
  logins: number;
  /** V8 heap bytes allocated per login (all of it: the login's garbage and what the session keeps). */
  allocatedBytesPerLogin: number;
  /** V8 heap bytes a logged-in idle client keeps (after a full GC). */
  keptBytesPerClient: number;
  /** Minor GCs during the measured logins (0 for an exact count). */
  minorGcs: number;
}

const SEMI_SPACE_MB = 64;

export async function measureLoginAllocation(
  server: PgServer,
  auth: BenchAuth,
  runner: Runner,
  logins: number,
): Promise<LoginAllocation> {
  const setup = heapReportSetup(makeTempDir('bench-login-alloc-'));
  const proxy = await startShardgate({
    runner,
    server,
    auth,
    poolSize: 5,
    fdLimit: logins + 1_000,
    maxClients: logins + 100,
    nodeArgs: [
      ...setup.nodeArgs,
      `--min-semi-space-size=${SEMI_SPACE_MB}`,
      `--max-semi-space-size=${SEMI_SPACE_MB}`,
    ],
    env: setup.env,
  });
  const ep = proxy.endpoint;
  const pid = ep.pid as number;
  const loginOpts = { ...benchLogin(ep), timeoutMs: 60_000 };
  try {
    for (let i = 0; i < 3; i++) {
      const warm = await openIdleConnections(loginOpts, 300, 20);
      for (const c of warm.conns) c.destroy();
      await sleep(500);
    }
    await sleep(1_000);
    const before = await readHeapReport(pid, setup.file);
    const { conns } = await openIdleConnections(loginOpts, logins, 20);
    await sleep(500);
    const after = await readHeapReport(pid, setup.file);
    for (const c of conns) c.destroy();
    if (before?.afterGc == null || after?.afterGc == null || conns.length === 0)
      throw new Error('no heap report from the login-allocation proxy');
    return {
      logins: conns.length,
      allocatedBytesPerLogin: (after.asIs.usedHeap - before.afterGc.usedHeap) / conns.length,
      keptBytesPerClient: (after.afterGc.usedHeap - before.afterGc.usedHeap) / conns.length,
      minorGcs: after.gcCounts.minor - before.gcCounts.minor,
    };
  } finally {
    await stopChild(proxy.child, 5_000, 'SIGTERM');
  }
}
