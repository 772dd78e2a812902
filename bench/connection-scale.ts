// Many idle clients: memory per client connection and throughput of the active ones, PgBouncer vs shardgate.
//
//   npx tsx bench/connection-scale.ts [--idle 5000] [--active 50] [--active-seconds 5] [--rounds 3]
//
// Starts one PostgreSQL server, PgBouncer and shardgate (transaction pooling, pool 20 each). For each proxy in turn,
// after a warm-up: `--rounds` interleaved rounds, each a run of `--active` pgbench clients doing `SELECT 1` without
// idle clients, then `--idle` clients logging in (minimal wire-protocol client: startup + md5/SCRAM, then silence), a
// run of the active clients while they stay connected, and the idle clients leaving. Throughput: the median of each
// side and the ratio of the medians (with / without). Memory, in the first round: the proxy's RSS (/proc/<pid>/status
// VmRSS, read once it settles: two reads a second apart within SETTLE_KB) before and after the logins, and for
// shardgate its V8 heap (bench/lib/heap-report.mjs, preloaded: used heap, old and new space, and the live heap after a
// full GC) → bytes per idle client. Prints tables, writes bench/results/connection-scale-<ts>.json and the
// connection-scale section of docs/benchmarks.md.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from './lib/args.js';
import { runPgbench } from './lib/pgbench.js';
import { openIdleConnections, type IdleConnection } from './lib/pg-wire-client.js';
import { heapReportSetup, readHeapReport, type HeapReport } from './lib/heap-reader.js';
import { measureLoginAllocation, type LoginAllocation } from './lib/login-alloc.js';
import {
  log,
  readFdLimit,
  readRssKb,
  runCapture,
  runMain,
  sleep,
  spawnTracked,
  waitExit,
} from './lib/procs.js';
import {
  fileTimestamp,
  fmtFixed,
  fmtInt,
  fmtRatio,
  markdownTable,
  median,
  textTable,
  writeDocSection,
} from './lib/report.js';
import {
  benchLogin,
  REPO_ROOT,
  ensurePgBouncer,
  exitNote,
  logProblems,
  machineInfo,
  makeTempDir,
  startBenchPostgres,
  startPgBouncer,
  startShardgate,
  type BenchAuth,
  type Endpoint,
  type Runner,
} from './lib/targets.js';

const SCRIPT = 'bench/connection-scale.ts';

const opts = parseArgs(SCRIPT, {
  idle: { default: 5000, help: 'idle client connections per proxy' },
  active: { default: 50, help: 'active pgbench clients running SELECT 1' },
  'active-seconds': {
    default: 5,
    help: 'seconds of each active run (without, then with the idle clients connected)',
  },
  rounds: { default: 3, help: 'interleaved rounds of runs without / with the idle clients (medians)' },
  'alloc-logins': {
    default: 1000,
    min: 0,
    help: 'logins whose V8 heap allocation is counted in a shardgate of their own, no GC in between (0: skip)',
  },
  concurrency: { default: 100, help: 'idle-client logins in flight at once' },
  'pool-size': { default: 20, help: 'server connections per pool, both proxies' },
  auth: {
    default: 'md5',
    choices: ['md5', 'scram'],
    help: 'password auth (scram costs ~ms of CPU per login)',
  },
  runner: {
    default: 'dist',
    choices: ['dist', 'tsx'],
    help: 'shardgate from dist/ (rebuilt if stale) or via tsx',
  },
  docs: { default: 'yes', choices: ['yes', 'no'], help: 'update docs/benchmarks.md' },
});

/** Proxies get this open-files limit (capped at the hard limit). */
const PROXY_FD_LIMIT = 20_000;
/** Wait after logins and departures before a measured run or an RSS reading. */
const SETTLE_MS = 2_000;
/** RSS has settled when two readings a second apart differ by at most this much (or after RSS_SETTLE_MAX_MS). */
const SETTLE_KB = 256;
const RSS_SETTLE_MAX_MS = 15_000;

/**
 * This process holds one socket per idle client (the proxy holds the other end, in its own process), plus a
 * few dozen other descriptors. If the soft limit is too low but the hard limit allows, re-run ourselves under
 * `ulimit -n`; otherwise explain.
 */
async function ensureOwnFdLimit(): Promise<void> {
  const need = opts.idle + 500;
  const lim = readFdLimit();
  if (lim === null || lim.soft >= need) return;
  if (lim.hard >= need && process.env.BENCH_FD_REEXEC !== '1') {
    log(
      `open-files limit ${lim.soft} < ${need} needed for ${opts.idle} idle sockets: re-running under ulimit -n ${need}`,
    );
    const script = 'ulimit -n "$1" || exit 97; shift; exec "$@"';
    const child = spawnTracked(
      'bash',
      ['-c', script, 'bash', String(need), process.execPath, ...process.execArgv, ...process.argv.slice(1)],
      { stdio: 'inherit', env: { ...process.env, BENCH_FD_REEXEC: '1' } },
    );
    // Ctrl-C reaches the child directly (same process group); we just wait for it.
    process.on('SIGINT', () => undefined);
    await waitExit(child, 2 ** 31 - 1);
    process.exit(child.exitCode ?? 1);
  }
  throw new Error(
    `this process may open only ${lim.soft} files (hard limit ${lim.hard}), but ${opts.idle} idle client sockets ` +
      `need about ${need}: each idle client is one socket here (the proxy holds the other end). ` +
      `Raise it in the shell that runs this (\`ulimit -n ${need}\`; above the hard limit only root can) or use --idle ${Math.max(100, lim.soft - 500)}.`,
  );
}

interface HeapFiguresMb {
  usedMb: number;
  oldSpaceMb: number;
  newSpaceMb: number;
  /** The heap V8 has reserved (total_heap_size). */
  totalMb: number;
}

interface ProxyResult {
  proxy: string;
  version: string;
  pid: number;
  rssStartKb: number | null;
  rssBeforeIdleKb: number | null;
  rssWithIdleKb: number | null;
  /** RSS once the memory settled after a full GC with the idle clients connected (shardgate only). */
  rssWithIdleAfterGcKb: number | null;
  rssAfterActiveKb: number | null;
  bytesPerIdleClient: number | null;
  /** (RSS after the full GC − RSS before) / idle clients (shardgate only). */
  bytesPerIdleClientAfterGc: number | null;
  /** V8 heap (shardgate only): before the logins after a full GC, and with the idle clients as is. */
  heapBeforeIdle: HeapFiguresMb | null;
  heapWithIdle: HeapFiguresMb | null;
  /** Live V8 heap (after a full GC) per idle client: (with − before) / idle clients. Deterministic, unlike RSS. */
  liveHeapBytesPerIdleClient: number | null;
  idleConnected: number;
  idleFailed: number;
  idleFailures: string[];
  idleLostDuringActive: number;
  loginSeconds: number;
  loginsPerSecond: number;
  /** Queries per second of each round's runs, in order. */
  qpsWithout: (number | null)[];
  qpsWith: (number | null)[];
  medianQpsWithout: number | null;
  medianQpsWith: number | null;
  activeFailed: number | null;
  activeError?: string;
}

async function pgbenchSelect1(ep: Endpoint, scriptFile: string, seconds: number) {
  const target = benchLogin(ep);
  const args = ['-n', '-f', scriptFile, '-M', 'simple', '-c', String(opts.active), '-j', '2'];
  args.push('-T', String(seconds));
  const run = await runPgbench(target, args, (seconds + 60) * 1_000);
  const result: { qps: number | null; failed: number | null; error?: string } = {
    qps: run.tps,
    failed: run.failed,
  };
  if (run.error !== undefined) result.error = run.error.split('\n').slice(0, 3).join(' | ');
  return result;
}

/** RSS once it settles: a reading a second after the previous one within SETTLE_KB of it (null: the process is gone). */
async function settledRssKb(pid: number): Promise<number | null> {
  const deadline = Date.now() + RSS_SETTLE_MAX_MS;
  let last = readRssKb(pid)?.rssKb ?? null;
  for (;;) {
    await sleep(1_000);
    const now = readRssKb(pid)?.rssKb ?? null;
    if (now === null || last === null) return now;
    if (Math.abs(now - last) <= SETTLE_KB || Date.now() > deadline) return now;
    last = now;
  }
}

function heapMb(report: HeapReport | null, which: 'asIs' | 'afterGc'): HeapFiguresMb | null {
  const f = report?.[which];
  if (f === null || f === undefined) return null;
  const mb = (bytes: number | undefined): number => (bytes ?? 0) / 1024 / 1024;
  return {
    usedMb: mb(f.usedHeap),
    oldSpaceMb: mb(f.spaces.old_space?.used),
    newSpaceMb: mb(f.spaces.new_space?.size),
    totalMb: mb(f.totalHeap),
  };
}

/** The proxy's heap figures are read through the preloaded heap-report.mjs (shardgate only; null: PgBouncer). */
interface HeapProbe {
  file: string;
}

async function measureProxy(
  name: string,
  version: string,
  ep: Endpoint,
  scriptFile: string,
  heap: HeapProbe | null,
): Promise<ProxyResult> {
  const pid = ep.pid as number;
  const rss = (): number | null => readRssKb(pid)?.rssKb ?? null;
  log(`--- ${name} (pid ${pid})`);
  const rssStartKb = rss();
  // Warm-up (JIT, pool fill), not measured.
  await pgbenchSelect1(ep, scriptFile, 2);
  const loginOpts = { ...benchLogin(ep), timeoutMs: 60_000 };
  const qpsWithout: (number | null)[] = [];
  const qpsWith: (number | null)[] = [];
  let activeFailed = 0;
  let activeError: string | undefined;
  const noteRun = (run: Awaited<ReturnType<typeof pgbenchSelect1>>): void => {
    activeFailed += run.failed ?? 0;
    if (run.error !== undefined && activeError === undefined) activeError = run.error;
  };
  let memory: Pick<
    ProxyResult,
    | 'rssBeforeIdleKb'
    | 'rssWithIdleKb'
    | 'rssWithIdleAfterGcKb'
    | 'heapBeforeIdle'
    | 'heapWithIdle'
    | 'liveHeapBytesPerIdleClient'
  > | null = null;
  let logins = { connected: 0, failed: 0, failures: [] as string[], seconds: 0 };
  let idleLostDuringActive = 0;
  for (let round = 1; round <= opts.rounds; round++) {
    const without = await pgbenchSelect1(ep, scriptFile, opts['active-seconds']);
    noteRun(without);
    qpsWithout.push(without.qps);
    log(`${name} round ${round}: ${opts.active} active clients, no idle ones: ${fmtInt(without.qps)} q/s`);
    const isMemoryRound = round === 1;
    // The first round measures memory: the heap after a full GC, then RSS once settled, before the logins.
    const heapBefore = isMemoryRound && heap !== null ? await readHeapReport(pid, heap.file) : null;
    const rssBeforeIdleKb = isMemoryRound ? await settledRssKb(pid) : null;
    if (!isMemoryRound) await sleep(SETTLE_MS);
    const t0 = Date.now();
    const { conns, failures, firstErrors } = await openIdleConnections(
      loginOpts,
      opts.idle,
      opts.concurrency,
      (done) => {
        if (done < opts.idle) log(`${name}: ${done}/${opts.idle} idle clients ...`);
      },
    );
    const loginSeconds = (Date.now() - t0) / 1000;
    log(
      `${name} round ${round}: ${conns.length} idle clients logged in in ${loginSeconds.toFixed(1)} s` +
        (failures > 0 ? `, ${failures} failed (${firstErrors.join('; ')})` : ''),
    );
    try {
      if (isMemoryRound) {
        logins = { connected: conns.length, failed: failures, failures: firstErrors, seconds: loginSeconds };
        const rssWithIdleKb = await settledRssKb(pid);
        const heapWith = heap !== null ? await readHeapReport(pid, heap.file) : null;
        const rssWithIdleAfterGcKb = heapWith !== null ? await settledRssKb(pid) : null;
        const liveBefore = heapBefore?.afterGc?.usedHeap;
        const liveWith = heapWith?.afterGc?.usedHeap;
        memory = {
          rssBeforeIdleKb,
          rssWithIdleKb,
          rssWithIdleAfterGcKb,
          heapBeforeIdle: heapMb(heapBefore, 'afterGc'),
          heapWithIdle: heapMb(heapWith, 'asIs'),
          liveHeapBytesPerIdleClient:
            liveBefore !== undefined && liveWith !== undefined && conns.length > 0
              ? (liveWith - liveBefore) / conns.length
              : null,
        };
      } else {
        await sleep(SETTLE_MS);
      }
      const withIdle = await pgbenchSelect1(ep, scriptFile, opts['active-seconds']);
      noteRun(withIdle);
      qpsWith.push(withIdle.qps);
      log(
        `${name} round ${round}: ${opts.active} active clients + ${conns.length} idle: ${fmtInt(withIdle.qps)} q/s` +
          (withIdle.error ? ` (ERROR ${withIdle.error})` : ''),
      );
      const lost = conns.filter((c: IdleConnection) => c.lostReason !== null);
      idleLostDuringActive += lost.length;
      if (lost.length > 0)
        log(`${name}: ${lost.length} idle clients were disconnected (first reason: ${lost[0].lostReason})`);
    } finally {
      for (const c of conns) c.close();
      await sleep(1_000);
      for (const c of conns) c.destroy();
    }
  }
  const rssAfterActiveKb = rss();
  const m = memory;
  const perClient = (after: number | null | undefined): number | null =>
    m !== null && after !== null && after !== undefined && m.rssBeforeIdleKb !== null && logins.connected > 0
      ? ((after - m.rssBeforeIdleKb) * 1024) / logins.connected
      : null;
  const known = (xs: (number | null)[]): number[] => xs.filter((x): x is number => x !== null);
  return {
    proxy: name,
    version,
    pid,
    rssStartKb,
    rssBeforeIdleKb: m?.rssBeforeIdleKb ?? null,
    rssWithIdleKb: m?.rssWithIdleKb ?? null,
    rssWithIdleAfterGcKb: m?.rssWithIdleAfterGcKb ?? null,
    rssAfterActiveKb,
    bytesPerIdleClient: perClient(m?.rssWithIdleKb),
    bytesPerIdleClientAfterGc: perClient(m?.rssWithIdleAfterGcKb),
    heapBeforeIdle: m?.heapBeforeIdle ?? null,
    heapWithIdle: m?.heapWithIdle ?? null,
    liveHeapBytesPerIdleClient: m?.liveHeapBytesPerIdleClient ?? null,
    idleConnected: logins.connected,
    idleFailed: logins.failed,
    idleFailures: logins.failures,
    idleLostDuringActive,
    loginSeconds: logins.seconds,
    loginsPerSecond: logins.connected / logins.seconds,
    qpsWithout,
    qpsWith,
    medianQpsWithout: median(known(qpsWithout)),
    medianQpsWith: median(known(qpsWith)),
    activeFailed,
    ...(activeError !== undefined ? { activeError } : {}),
  };
}

const mib = (kb: number | null): string => (kb === null ? 'n/a' : (kb / 1024).toFixed(1));

async function main(): Promise<void> {
  await ensureOwnFdLimit();
  const auth = opts.auth as BenchAuth;
  const startedAt = new Date();
  const machine = machineInfo();
  const pgbenchV = await runCapture('pgbench', ['--version'], { timeoutMs: 10_000 }).catch(() => null);
  if (pgbenchV === null || pgbenchV.code !== 0) {
    throw new Error('pgbench not found: install it (Debian/Ubuntu: apt-get install postgresql-client)');
  }
  log(
    `${machine.cpus} CPU(s) ${machine.cpuModel}; load average ${machine.loadAvg.join(' ')}; own open-files limit ${readFdLimit()?.soft}`,
  );

  const postgres = await startBenchPostgres(auth);
  const dir = makeTempDir('bench-connscale-');
  const scriptFile = path.join(dir, 'select1.sql');
  fs.writeFileSync(scriptFile, 'SELECT 1;\n');

  const targets: {
    name: string;
    version: string;
    ep: Endpoint;
    child: ChildProcess;
    heap: HeapProbe | null;
  }[] = [];
  const bouncerBin = await ensurePgBouncer();
  let skipNote: string | null = null;
  if (bouncerBin.bin === null) {
    skipNote = `PgBouncer skipped: ${bouncerBin.reason}`;
    log(skipNote);
  } else {
    const bouncer = await startPgBouncer({
      bin: bouncerBin.bin,
      version: bouncerBin.version,
      server: postgres.server,
      auth,
      poolSize: opts['pool-size'],
      maxClientConn: Math.max(10_000, opts.idle + opts.active + 100),
      fdLimit: PROXY_FD_LIMIT,
    });
    targets.push({
      name: 'PgBouncer',
      version: bouncerBin.version,
      ep: bouncer.endpoint,
      child: bouncer.child,
      heap: null,
    });
  }
  const heapSetup = heapReportSetup(dir);
  const shardgate = await startShardgate({
    runner: opts.runner as Runner,
    server: postgres.server,
    auth,
    poolSize: opts['pool-size'],
    fdLimit: PROXY_FD_LIMIT,
    maxClients: opts.idle + opts.active,
    nodeArgs: heapSetup.nodeArgs,
    env: heapSetup.env,
  });
  targets.push({
    name: 'shardgate',
    version: shardgate.how,
    ep: shardgate.endpoint,
    child: shardgate.child,
    heap: { file: heapSetup.file },
  });

  const results: ProxyResult[] = [];
  for (const t of targets) results.push(await measureProxy(t.name, t.version, t.ep, scriptFile, t.heap));

  let loginAlloc: LoginAllocation | null = null;
  if (opts['alloc-logins'] > 0) {
    loginAlloc = await measureLoginAllocation(
      postgres.server,
      auth,
      opts.runner as Runner,
      opts['alloc-logins'],
    );
    log(
      `shardgate: ${fmtInt(loginAlloc.allocatedBytesPerLogin)} B of V8 heap allocated per login, ` +
        `${fmtInt(loginAlloc.keptBytesPerClient)} B kept per idle client (${loginAlloc.logins} logins, ${loginAlloc.minorGcs} minor GCs)`,
    );
  }

  const kib = (bytes: number | null): string => fmtFixed(bytes === null ? null : bytes / 1024, 1);
  const mb = (f: HeapFiguresMb | null, key: keyof HeapFiguresMb): string => fmtFixed(f?.[key] ?? null, 1);
  const memoryHeaders = [
    'proxy',
    'RSS start MiB',
    'RSS before idle MiB',
    `RSS +${opts.idle} idle MiB`,
    'per idle client KiB',
    'per idle client after full GC KiB',
    'live heap per idle client KiB',
    'heap used / old / new MiB',
    'logins/s',
    'failed/lost',
  ];
  const memoryRows = results.map((r) => [
    r.proxy,
    mib(r.rssStartKb),
    mib(r.rssBeforeIdleKb),
    mib(r.rssWithIdleKb),
    kib(r.bytesPerIdleClient),
    kib(r.bytesPerIdleClientAfterGc),
    kib(r.liveHeapBytesPerIdleClient),
    r.heapWithIdle === null
      ? 'n/a'
      : `${mb(r.heapWithIdle, 'usedMb')} / ${mb(r.heapWithIdle, 'oldSpaceMb')} / ${mb(r.heapWithIdle, 'newSpaceMb')}`,
    fmtInt(r.loginsPerSecond),
    `${r.idleFailed}/${r.idleLostDuringActive}`,
  ]);
  const qpsList = (xs: (number | null)[]): string => xs.map((x) => fmtInt(x)).join(', ');
  const throughputHeaders = [
    'proxy',
    `q/s ${opts.active} active, median`,
    `q/s + ${opts.idle} idle, median`,
    'with / without',
    'rounds without',
    'rounds with',
    'RSS after MiB',
  ];
  const throughputRows = results.map((r) => [
    r.proxy,
    fmtInt(r.medianQpsWithout),
    fmtInt(r.medianQpsWith),
    fmtRatio(r.medianQpsWith, r.medianQpsWithout),
    qpsList(r.qpsWithout),
    qpsList(r.qpsWith),
    mib(r.rssAfterActiveKb),
  ]);
  const notes: string[] = [];
  if (skipNote !== null) notes.push(skipNote);
  if (loginAlloc !== null) {
    notes.push(
      `shardgate, V8 heap per login (${loginAlloc.logins} ${auth} logins counted in a proxy of their own with a 64 MB ` +
        `young generation, ${loginAlloc.minorGcs} minor GCs in between): ${fmtInt(loginAlloc.allocatedBytesPerLogin)} B ` +
        `allocated, ${fmtInt(loginAlloc.keptBytesPerClient)} B kept per idle client.`,
    );
  }
  for (const r of results) {
    if (r.idleFailed > 0)
      notes.push(`${r.proxy}: ${r.idleFailed} idle logins failed: \`${r.idleFailures[0]}\``);
    if (r.activeError !== undefined) notes.push(`${r.proxy}: active clients: \`${r.activeError}\``);
  }
  const sg = results.find((r) => r.proxy === 'shardgate');
  const pgb = results.find((r) => r.proxy === 'PgBouncer');
  if (sg && pgb) {
    notes.push(
      `shardgate/PgBouncer: memory per idle client ${fmtRatio(sg.bytesPerIdleClient, pgb.bytesPerIdleClient)}, ` +
        `q/s with idle clients (medians) ${fmtRatio(sg.medianQpsWith, pgb.medianQpsWith)}.`,
    );
  }
  for (const t of targets) {
    const died = exitNote(t.name, t.child, t.ep.logFile);
    if (died !== null) notes.push(died);
  }
  const sgProblems = logProblems(shardgate.endpoint.logFile);
  if (sgProblems.count > 0)
    notes.push(
      `shardgate logged ${sgProblems.count} warning/error line(s); first: \`${sgProblems.sample[0]}\``,
    );

  process.stdout.write(
    `\n${textTable(memoryHeaders, memoryRows)}\n\n${textTable(throughputHeaders, throughputRows)}\n`,
  );
  for (const n of notes) process.stdout.write(`${n.replace(/`/g, '')}\n`);

  const resultsDir = path.join(REPO_ROOT, 'bench/results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const resultsFile = path.join(resultsDir, `connection-scale-${fileTimestamp(startedAt)}.json`);
  fs.writeFileSync(
    resultsFile,
    JSON.stringify(
      {
        script: SCRIPT,
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine,
        loadAvgAtEnd: machineInfo().loadAvg,
        versions: { node: process.version, pgbench: pgbenchV.stdout.trim(), postgres: postgres.version },
        settings: { ...opts, poolMode: 'transaction' },
        results,
        loginAllocation: loginAlloc,
        shardgateLogProblems: sgProblems,
        notes,
      },
      null,
      2,
    ) + '\n',
  );
  log(`results: ${path.relative(REPO_ROOT, resultsFile)}`);
  if (opts.docs === 'no') return;

  const cmdLine = `npx tsx ${SCRIPT} --idle ${opts.idle} --active ${opts.active} --active-seconds ${opts['active-seconds']} --rounds ${opts.rounds}`;
  const section = `## Connection scale: ${opts.idle} idle clients

Measured ${startedAt.toISOString().replace(/\.\d+Z$/, 'Z')} with \`${cmdLine}\` on the same kind of machine
(${machine.cpuModel}, **${machine.cpus} cores** shared by PostgreSQL ${postgres.version}, the proxy, pgbench and the
idle clients; load average ${machine.loadAvg.join(' / ')} at the start).

For each proxy in turn (transaction pooling, ${opts['pool-size']} server connections, ${auth} auth, open-files limit
${PROXY_FD_LIMIT}), after a 2 s warm-up, ${opts.rounds} interleaved round${opts.rounds === 1 ? '' : 's'}: ${opts.active} pgbench clients run \`SELECT 1\` (simple
protocol) for ${opts['active-seconds']} s with no idle client; ${opts.idle} clients log in (a minimal wire-protocol client: startup
message and ${auth} authentication, ${opts.concurrency} logins in flight) and stay idle; the ${opts.active} active clients run again for
${opts['active-seconds']} s while the idle ones stay connected; the idle clients leave. Throughput is the median of the rounds on each side.
Memory is measured in the first round. RSS is the proxy process's resident set (VmRSS in \`/proc/<pid>/status\`), read
once it settles (two readings a second apart within ${SETTLE_KB} KiB); "per idle client" is its growth from before the
logins to after them, divided by the idle clients. For shardgate the first reading follows a full GC (its heap figures
are read then), so the growth includes the garbage of the logins not yet collected; "after full GC" is the same growth
read once more after a full GC with the idle clients connected, and "live heap" the growth of V8's used heap after a
full GC (deterministic, unlike RSS). "heap used / old / new": V8's used heap, old space used and new space reserved,
with the idle clients connected, before the full GC. (Heap figures come from \`bench/lib/heap-report.mjs\`, preloaded
into the proxy with \`--expose-gc\`.)

${markdownTable(memoryHeaders, memoryRows)}

${markdownTable(throughputHeaders, throughputRows)}
${notes.length > 0 ? '\n' + notes.map((n) => `- ${n}`).join('\n') + '\n' : ''}
"failed/lost": idle logins that failed / idle clients disconnected before the end. Raw results:
\`bench/results/connection-scale-<timestamp>.json\` (not committed). To reproduce: \`${cmdLine}\`.`;
  await writeDocSection(path.join(REPO_ROOT, 'docs/benchmarks.md'), 'connection-scale', section);
  log('updated docs/benchmarks.md');
}

await runMain(main);
