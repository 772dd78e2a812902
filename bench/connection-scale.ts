// Many idle clients: memory per client connection and throughput of the active ones, PgBouncer vs shardgate.
//
//   npx tsx bench/connection-scale.ts [--idle 5000] [--active 50] [--active-seconds 10] [--baseline-seconds 5]
//
// Starts one PostgreSQL server, PgBouncer and shardgate (transaction pooling, pool 20 each). For each proxy in
// turn: a baseline run of `--active` pgbench clients doing `SELECT 1` (this also fills the pool), then RSS of
// the proxy process (/proc/<pid>/status VmRSS), then `--idle` clients log in (minimal wire-protocol client:
// startup + md5/SCRAM, then silence), RSS again → bytes per idle client, then the active clients again
// while the idle ones stay connected. Prints a table, writes bench/results/connection-scale-<ts>.json and the
// connection-scale section of docs/benchmarks.md.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from './lib/args.js';
import { runPgbench } from './lib/pgbench.js';
import { openIdleConnections, type IdleConnection } from './lib/pg-wire-client.js';
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
  textTable,
  writeDocSection,
} from './lib/report.js';
import {
  BENCH_PASSWORD,
  BENCH_USER,
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
  'active-seconds': { default: 10, help: 'seconds of active load while the idle clients are connected' },
  'baseline-seconds': {
    default: 5,
    min: 0,
    help: 'seconds of active load before the idle clients connect (0: skip)',
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
const SETTLE_MS = 2_000;

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

interface ProxyResult {
  proxy: string;
  version: string;
  pid: number;
  rssStartKb: number | null;
  rssBeforeIdleKb: number | null;
  rssWithIdleKb: number | null;
  rssAfterActiveKb: number | null;
  bytesPerIdleClient: number | null;
  idleConnected: number;
  idleFailed: number;
  idleFailures: string[];
  idleLostDuringActive: number;
  loginSeconds: number;
  loginsPerSecond: number;
  baselineQps: number | null;
  activeQps: number | null;
  activeFailed: number | null;
  activeError?: string;
}

async function pgbenchSelect1(ep: Endpoint, scriptFile: string, seconds: number) {
  const target = {
    host: ep.host,
    port: ep.port,
    user: BENCH_USER,
    password: BENCH_PASSWORD,
    database: ep.database,
  };
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

async function measureProxy(
  name: string,
  version: string,
  ep: Endpoint,
  scriptFile: string,
): Promise<ProxyResult> {
  const pid = ep.pid as number;
  const rss = (): number | null => readRssKb(pid)?.rssKb ?? null;
  log(`--- ${name} (pid ${pid})`);
  const rssStartKb = rss();
  // Warm-up (JIT, pool fill), not measured.
  await pgbenchSelect1(ep, scriptFile, 2);
  let baselineQps: number | null = null;
  if (opts['baseline-seconds'] > 0) {
    const base = await pgbenchSelect1(ep, scriptFile, opts['baseline-seconds']);
    baselineQps = base.qps;
    log(
      `${name}: ${opts.active} active clients, no idle ones: ${fmtInt(base.qps)} q/s${base.error ? ` (ERROR ${base.error})` : ''}`,
    );
  }
  await sleep(SETTLE_MS);
  const rssBeforeIdleKb = rss();

  const t0 = Date.now();
  const { conns, failures, firstErrors } = await openIdleConnections(
    {
      host: ep.host,
      port: ep.port,
      user: BENCH_USER,
      password: BENCH_PASSWORD,
      database: ep.database,
      timeoutMs: 60_000,
    },
    opts.idle,
    opts.concurrency,
    (done) => {
      if (done < opts.idle) log(`${name}: ${done}/${opts.idle} idle clients ...`);
    },
  );
  const loginSeconds = (Date.now() - t0) / 1000;
  log(
    `${name}: ${conns.length} idle clients logged in in ${loginSeconds.toFixed(1)} s` +
      (failures > 0 ? `, ${failures} failed (${firstErrors.join('; ')})` : ''),
  );
  let idleLostDuringActive = 0;
  let result: ProxyResult;
  try {
    await sleep(SETTLE_MS);
    const rssWithIdleKb = rss();
    const active = await pgbenchSelect1(ep, scriptFile, opts['active-seconds']);
    log(
      `${name}: ${opts.active} active clients + ${conns.length} idle: ${fmtInt(active.qps)} q/s` +
        (active.error ? ` (ERROR ${active.error})` : ''),
    );
    const rssAfterActiveKb = rss();
    idleLostDuringActive = conns.filter((c: IdleConnection) => c.lostReason !== null).length;
    if (idleLostDuringActive > 0) {
      const reason = conns.find((c) => c.lostReason !== null)?.lostReason;
      log(`${name}: ${idleLostDuringActive} idle clients were disconnected (first reason: ${reason})`);
    }
    result = {
      proxy: name,
      version,
      pid,
      rssStartKb,
      rssBeforeIdleKb,
      rssWithIdleKb,
      rssAfterActiveKb,
      bytesPerIdleClient:
        rssWithIdleKb !== null && rssBeforeIdleKb !== null && conns.length > 0
          ? ((rssWithIdleKb - rssBeforeIdleKb) * 1024) / conns.length
          : null,
      idleConnected: conns.length,
      idleFailed: failures,
      idleFailures: firstErrors,
      idleLostDuringActive,
      loginSeconds,
      loginsPerSecond: conns.length / loginSeconds,
      baselineQps,
      activeQps: active.qps,
      activeFailed: active.failed,
      ...(active.error !== undefined ? { activeError: active.error } : {}),
    };
  } finally {
    for (const c of conns) c.close();
    await sleep(1_000);
    for (const c of conns) c.destroy();
  }
  return result;
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

  const targets: { name: string; version: string; ep: Endpoint; child: ChildProcess }[] = [];
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
    });
  }
  const shardgate = await startShardgate({
    runner: opts.runner as Runner,
    server: postgres.server,
    auth,
    poolSize: opts['pool-size'],
    fdLimit: PROXY_FD_LIMIT,
    maxClients: opts.idle + opts.active,
  });
  targets.push({ name: 'shardgate', version: shardgate.how, ep: shardgate.endpoint, child: shardgate.child });

  const results: ProxyResult[] = [];
  for (const t of targets) results.push(await measureProxy(t.name, t.version, t.ep, scriptFile));

  const headers = [
    'proxy',
    'RSS start MiB',
    'RSS before idle MiB',
    `RSS +${opts.idle} idle MiB`,
    'per idle client KiB',
    'logins/s',
    `q/s ${opts.active} active`,
    `q/s ${opts.active} active + idle`,
    'RSS after MiB',
    'failed/lost',
  ];
  const rows = results.map((r) => [
    r.proxy,
    mib(r.rssStartKb),
    mib(r.rssBeforeIdleKb),
    mib(r.rssWithIdleKb),
    fmtFixed(r.bytesPerIdleClient === null ? null : r.bytesPerIdleClient / 1024, 1),
    fmtInt(r.loginsPerSecond),
    fmtInt(r.baselineQps),
    fmtInt(r.activeQps),
    mib(r.rssAfterActiveKb),
    `${r.idleFailed}/${r.idleLostDuringActive}`,
  ]);
  const notes: string[] = [];
  if (skipNote !== null) notes.push(skipNote);
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
        `q/s with idle clients ${fmtRatio(sg.activeQps, pgb.activeQps)}.`,
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

  process.stdout.write(`\n${textTable(headers, rows)}\n`);
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
        shardgateLogProblems: sgProblems,
        notes,
      },
      null,
      2,
    ) + '\n',
  );
  log(`results: ${path.relative(REPO_ROOT, resultsFile)}`);
  if (opts.docs === 'no') return;

  const cmdLine = `npx tsx ${SCRIPT} --idle ${opts.idle} --active ${opts.active} --active-seconds ${opts['active-seconds']}`;
  const section = `## Connection scale: ${opts.idle} idle clients

Measured ${startedAt.toISOString().replace(/\.\d+Z$/, 'Z')} with \`${cmdLine}\` on the same kind of machine
(${machine.cpuModel}, **${machine.cpus} cores** shared by PostgreSQL ${postgres.version}, the proxy, pgbench and the
idle clients; load average ${machine.loadAvg.join(' / ')} at the start).

For each proxy in turn (transaction pooling, ${opts['pool-size']} server connections, ${auth} auth, open-files limit
${PROXY_FD_LIMIT}): after a 2 s warm-up, ${opts.active} pgbench clients run \`SELECT 1\` (simple protocol) for ${opts['baseline-seconds']} s; then ${opts.idle}
clients log in (a minimal wire-protocol client: startup message and ${auth} authentication, ${opts.concurrency} logins in
flight) and stay idle; then the ${opts.active} active clients run again for ${opts['active-seconds']} s while the idle ones stay
connected. Memory is the proxy process's resident set (VmRSS in \`/proc/<pid>/status\`); "per idle client" is the
RSS growth from just before the idle clients connected to ${SETTLE_MS / 1000} s after the last one did, divided by their number.
shardgate is one Node.js process, so its RSS also moves with garbage collection; treat small differences as noise.

${markdownTable(headers, rows)}
${notes.length > 0 ? '\n' + notes.map((n) => `- ${n}`).join('\n') + '\n' : ''}
"failed/lost": idle logins that failed / idle clients disconnected before the end. Raw results:
\`bench/results/connection-scale-<timestamp>.json\` (not committed). To reproduce: \`${cmdLine}\`.`;
  await writeDocSection(path.join(REPO_ROOT, 'docs/benchmarks.md'), 'connection-scale', section);
  log('updated docs/benchmarks.md');
}

await runMain(main);
