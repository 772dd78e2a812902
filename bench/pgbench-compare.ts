// pgbench throughput: PostgreSQL directly vs through PgBouncer vs through shardgate, same server, same pool size.
//
//   npx tsx bench/pgbench-compare.ts [--duration 15] [--clients 8] [--threads 2] [--scale 10] [--rounds 1]
//     [--only select-simple] [--profile DIR]   (DIR: a V8 CPU profile of shardgate, written when it stops)
//     [--upstream tcp|unix|both] [--bun PATH] [--relay yes]
//
// --upstream: how both proxies reach PostgreSQL: TCP (127.0.0.1), its Unix-domain socket (host = the socket
// directory, in PgBouncer and shardgate alike), or both (a PgBouncer and a shardgate per transport, interleaved).
// --bun: also run the same dist/cli.js on that Bun binary (one more shardgate per upstream transport). --relay yes:
// also a parse-free Node relay (bench/lib/node-relay.ts), Node's floor for a hop. With any of them, an extra table
// compares every target; docs/benchmarks.md is only rewritten for TCP without Bun (--relay yes adds the relay's rows).
//
// Starts one throwaway PostgreSQL server (user/database `bench`), loads it with `pgbench -i`, starts PgBouncer
// and shardgate in front of it (transaction pooling, equal pool sizes), runs each workload against the three
// targets in turn, prints a table, writes bench/results/pgbench-<timestamp>.json, docs/benchmarks.svg and the
// pgbench section of docs/benchmarks.md. Everything it starts is stopped by pid on exit, error or Ctrl-C.
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { parseArgs } from './lib/args.js';
import { runPgbench } from './lib/pgbench.js';
import { cpuTimes, log, runCapture, runMain, sleep } from './lib/procs.js';
import {
  fileTimestamp,
  fmtFixed,
  fmtInt,
  fmtRatio,
  groupedBarChartSvg,
  markdownTable,
  median,
  textTable,
  writeDocSection,
} from './lib/report.js';
import {
  BENCH_PASSWORD,
  BENCH_USER,
  REPO_ROOT,
  ensurePgBouncer,
  exitNote,
  makeSocketDir,
  libpqEnv,
  logProblems,
  machineInfo,
  startBenchPostgres,
  startPgBouncer,
  startNodeRelay,
  startShardgate,
  type BenchAuth,
  type Endpoint,
  type Runner,
} from './lib/targets.js';

const SCRIPT = 'bench/pgbench-compare.ts';

const opts = parseArgs(SCRIPT, {
  duration: { default: 15, help: 'seconds per measured pgbench run' },
  clients: { default: 8, help: 'pgbench -c' },
  threads: { default: 2, help: 'pgbench -j' },
  scale: { default: 10, help: 'pgbench -i -s' },
  'pool-size': { default: 20, help: 'server connections per pool, both proxies' },
  warmup: { default: 2, min: 0, help: 'seconds of warm-up run before each measured run (0: none)' },
  rounds: { default: 1, help: 'repeat the whole matrix; the table shows the median' },
  auth: { default: 'md5', choices: ['md5', 'scram'], help: 'password auth everywhere' },
  runner: {
    default: 'dist',
    choices: ['dist', 'tsx'],
    help: 'shardgate from dist/ (rebuilt if stale) or via tsx',
  },
  only: { default: '', help: 'comma-separated workload ids to run (default: all)' },
  profile: {
    default: '',
    help: 'directory for a V8 CPU profile of shardgate (node --cpu-prof; empty: none)',
  },
  docs: { default: 'yes', choices: ['yes', 'no'], help: 'update docs/benchmarks.md and docs/benchmarks.svg' },
  upstream: {
    default: 'tcp',
    choices: ['tcp', 'unix', 'both'],
    help: 'how the proxies connect to PostgreSQL: TCP, its Unix socket, or a proxy pair for each',
  },
  bun: { default: '', help: 'a Bun binary: also run dist/cli.js on it (empty: no)' },
  relay: {
    default: 'no',
    help: "also run a parse-free Node relay (bench/lib/node-relay.ts): Node's floor for a hop",
    choices: ['yes', 'no'],
  },
});

/** The targets of the docs table; `relay` (--relay yes) is only in the every-target table. */
type DefaultTargetName = 'direct' | 'pgbouncer' | 'shardgate';
type TargetName = DefaultTargetName | 'relay';
const TARGETS: DefaultTargetName[] = ['direct', 'pgbouncer', 'shardgate'];
type Transport = 'tcp' | 'unix';

/** One thing pgbench runs against: the server itself, or a proxy with its upstream transport and runtime. */
interface Target {
  /** `direct`, `pgbouncer`, `shardgate` (the first transport, on Node), else e.g. `shardgate-bun-unix`. */
  id: string;
  kind: TargetName;
  label: string;
  transport: Transport;
  endpoint: Endpoint;
  child?: ChildProcess;
}
const TARGET_LABEL: Record<TargetName, string> = {
  direct: 'direct',
  pgbouncer: 'PgBouncer',
  shardgate: 'shardgate',
  relay: 'Node relay',
};

interface Workload {
  id: string;
  label: string;
  args: string[];
  /** Writes to the pgbench tables: vacuum/truncate (directly) before each run, like pgbench without -n. */
  isWrite: boolean;
  /** Uses -M prepared (PgBouncer < 1.21 cannot do that in transaction mode). */
  isPrepared: boolean;
}

const WORKLOADS: Workload[] = [
  {
    id: 'select-simple',
    label: 'select-only, simple',
    args: ['-S', '-M', 'simple'],
    isWrite: false,
    isPrepared: false,
  },
  {
    id: 'select-extended',
    label: 'select-only, extended',
    args: ['-S', '-M', 'extended'],
    isWrite: false,
    isPrepared: false,
  },
  {
    id: 'select-prepared',
    label: 'select-only, prepared',
    args: ['-S', '-M', 'prepared'],
    isWrite: false,
    isPrepared: true,
  },
  // The default script; -M simple (pgbench's default query mode).
  { id: 'tpcb-simple', label: 'tpcb-like, simple', args: ['-M', 'simple'], isWrite: true, isPrepared: false },
];

interface PgbenchRun {
  tps: number | null;
  processed: number | null;
  failed: number | null;
  latencyMs: number | null;
  exitCode: number | null;
  /** The proxy's CPU (user + system) per processed transaction over the run, in µs; null for direct. */
  cpuMicrosPerTx?: number | null;
  /** The same split into user and system time, for the log line. */
  cpuSplit?: string;
  /** pgbench's complaints (stderr lines), when it failed or reported errors. */
  error?: string;
  /** e.g. "PgBouncer session mode" when the target had to be used differently. */
  note?: string;
}

async function runWorkload(
  target: Endpoint,
  database: string,
  w: Workload,
  seconds: number,
): Promise<PgbenchRun> {
  const args = [
    '-c',
    String(opts.clients),
    '-j',
    String(opts.threads),
    '-T',
    String(seconds),
    '-n',
    ...w.args,
  ];
  const login = {
    host: target.host,
    port: target.port,
    user: BENCH_USER,
    password: BENCH_PASSWORD,
    database,
  };
  const { out: _out, ...run } = await runPgbench(login, args, (seconds + 60) * 1_000);
  return run;
}

async function main(): Promise<void> {
  const auth = opts.auth as BenchAuth;
  const startedAt = new Date();
  const machine = machineInfo();
  const workloads =
    opts.only === '' ? WORKLOADS : WORKLOADS.filter((w) => opts.only.split(',').includes(w.id));
  if (workloads.length === 0)
    throw new Error(`--only matched no workload; ids: ${WORKLOADS.map((w) => w.id).join(', ')}`);
  if (opts.threads > opts.clients) throw new Error('--threads must not exceed --clients');

  const pgbenchVersion = await runCapture('pgbench', ['--version'], { timeoutMs: 10_000 }).catch(() => null);
  if (pgbenchVersion === null || pgbenchVersion.code !== 0) {
    throw new Error('pgbench not found: install it (Debian/Ubuntu: apt-get install postgresql-client)');
  }
  const pgbenchV = pgbenchVersion.stdout.trim();
  const perRun = opts.warmup + opts.duration + 1;
  const transportCount = opts.upstream === 'both' ? 2 : 1;
  // direct, PgBouncer(s), shardgate(s), the Node relay
  const targetCount = 1 + transportCount * (opts.bun === '' ? 2 : 3) + (opts.relay === 'yes' ? 1 : 0);
  const estimate = opts.rounds * workloads.length * targetCount * perRun + 30;
  log(
    `${pgbenchV}; ${machine.cpus} CPU(s) ${machine.cpuModel}; load average ${machine.loadAvg.join(' ')}; ` +
      `expect about ${Math.ceil(estimate / 60)} min`,
  );

  // --- targets
  const transports: Transport[] = opts.upstream === 'both' ? ['tcp', 'unix'] : [opts.upstream as Transport];
  // PostgreSQL's socket directory when a proxy connects by Unix socket (pgbench itself always uses TCP).
  const socketDir = transports.includes('unix') ? makeSocketDir() : null;
  const postgres = await startBenchPostgres(
    auth,
    socketDir === null ? {} : { unix_socket_directories: socketDir },
  );
  log(`pgbench -i -s ${opts.scale} ...`);
  const t0 = Date.now();
  const init = await runCapture(
    'pgbench',
    [
      '-i',
      '-q',
      '-s',
      String(opts.scale),
      '-h',
      postgres.server.host,
      '-p',
      String(postgres.server.port),
      '-U',
      BENCH_USER,
      'bench',
    ],
    { env: libpqEnv(), timeoutMs: 600_000 },
  );
  if (init.code !== 0) throw new Error(`pgbench -i failed:\n${init.stderr || init.stdout}`);
  log(`pgbench -i done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const hostFor = (t: Transport): string => (t === 'unix' ? (socketDir as string) : postgres.server.host);
  const suffix = (t: Transport): string => (t === transports[0] ? '' : `-${t}`);
  const transportLabel = (t: Transport): string => (t === 'unix' ? 'Unix socket' : 'TCP');

  const targets: Target[] = [
    { id: 'direct', kind: 'direct', label: 'direct', transport: 'tcp', endpoint: postgres.endpoint },
  ];
  const bouncerBin = await ensurePgBouncer();
  let bouncer: Awaited<ReturnType<typeof startPgBouncer>> | null = null;
  let bouncerVersion: string | null = null;
  if (bouncerBin.bin === null) {
    log(`SKIPPING PgBouncer: ${bouncerBin.reason}`);
  } else {
    bouncerVersion = bouncerBin.version;
    for (const t of transports) {
      const b = await startPgBouncer({
        bin: bouncerBin.bin,
        version: bouncerBin.version,
        server: postgres.server,
        auth,
        poolSize: opts['pool-size'],
        maxClientConn: 10_000,
        fdLimit: 20_000,
        serverHost: hostFor(t),
      });
      bouncer ??= b;
      const id = `pgbouncer${suffix(t)}`;
      const label = `PgBouncer (${transportLabel(t)})`;
      targets.push({ id, kind: 'pgbouncer', label, transport: t, endpoint: b.endpoint, child: b.child });
    }
    if (bouncer !== null && !bouncer.hasPreparedStatements) {
      log(
        `PgBouncer ${bouncerVersion} has no max_prepared_statements (added in 1.21): ` +
          `-M prepared runs against its session-mode database ${bouncer.sessionDatabase} instead`,
      );
    }
  }
  const runtimes: (string | undefined)[] = opts.bun === '' ? [undefined] : [undefined, opts.bun];
  let shardgate: Awaited<ReturnType<typeof startShardgate>> | null = null;
  const shardgateHows: string[] = [];
  for (const runtime of runtimes) {
    for (const t of transports) {
      const sg = await startShardgate({
        runner: opts.runner as Runner,
        server: postgres.server,
        auth,
        poolSize: opts['pool-size'],
        fdLimit: 20_000,
        maxClients: 1_000,
        nodeArgs:
          opts.profile !== '' && runtime === undefined
            ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(opts.profile)]
            : [],
        serverHost: hostFor(t),
        runtime,
      });
      shardgate ??= sg;
      if (!shardgateHows.includes(sg.how)) shardgateHows.push(sg.how);
      const on = runtime === undefined ? '' : '-bun';
      const id = `shardgate${on}${suffix(t)}`;
      const label = `shardgate${runtime === undefined ? '' : ' on Bun'} (${transportLabel(t)})`;
      targets.push({ id, kind: 'shardgate', label, transport: t, endpoint: sg.endpoint, child: sg.child });
    }
  }
  if (shardgate === null) throw new Error('no shardgate started');
  if (opts.relay === 'yes') {
    // Node's floor: the same hop with nothing but the socket calls (TCP upstream, like the default targets).
    const relay = await startNodeRelay(postgres.server.host, postgres.server.port);
    targets.push({
      id: 'relay',
      kind: 'relay',
      label: 'Node relay (TCP, floor)',
      transport: 'tcp',
      endpoint: relay.endpoint,
      child: relay.child,
    });
  }
  const isDefaultTargets = targets.length === TARGETS.length;
  // The docs section is the default targets' (TCP, Node); the relay only adds its rows (Node's floor) beside them.
  const isDocTargets = targets.filter((t) => t.kind !== 'relay').length === TARGETS.length;

  // --- runs
  const runs: Record<string, Record<string, PgbenchRun[]>> = {};
  for (const w of workloads) runs[w.id] = Object.fromEntries(targets.map((t) => [t.id, []]));
  for (let round = 1; round <= opts.rounds; round++) {
    for (const w of workloads) {
      for (const target of targets) {
        const t = target.id;
        const ep = target.endpoint;
        const proc = target.child;
        if (proc !== undefined && (proc.exitCode !== null || proc.signalCode !== null)) {
          const error = exitNote(target.label, proc, ep.logFile) ?? 'exited';
          runs[w.id][t].push({
            tps: null,
            processed: null,
            failed: null,
            latencyMs: null,
            exitCode: null,
            error,
          });
          log(`${w.id.padEnd(16)} ${t.padEnd(18)} not run: ${error}`);
          continue;
        }
        let database = ep.database;
        let note: string | undefined;
        if (
          target.kind === 'pgbouncer' &&
          w.isPrepared &&
          bouncer !== null &&
          !bouncer.hasPreparedStatements
        ) {
          database = bouncer.sessionDatabase;
          note = `PgBouncer ${bouncerVersion} in session mode (no prepared statement support in transaction mode before 1.21)`;
        }
        if (opts.warmup > 0) {
          if (w.isWrite) await resetTables(postgres.query);
          const warm = await runWorkload(ep, database, w, opts.warmup);
          if (warm.error !== undefined) log(`  warm-up ${w.id} → ${t}: ${warm.error.split('\n')[0]}`);
        }
        if (w.isWrite) await resetTables(postgres.query);
        const cpuBefore = proc?.pid === undefined ? null : cpuTimes(proc.pid);
        const run = await runWorkload(ep, database, w, opts.duration);
        if (cpuBefore !== null && proc?.pid !== undefined && run.processed !== null && run.processed > 0) {
          const after = cpuTimes(proc.pid);
          const perTx = (seconds: number): number => (seconds / (run.processed ?? 1)) * 1e6;
          run.cpuMicrosPerTx = perTx(after.user - cpuBefore.user + after.system - cpuBefore.system);
          run.cpuSplit = `user ${perTx(after.user - cpuBefore.user).toFixed(1)} + system ${perTx(after.system - cpuBefore.system).toFixed(1)} µs/tx`;
        }
        if (note !== undefined) run.note = note;
        runs[w.id][t].push(run);
        const round_ = opts.rounds > 1 ? ` (round ${round}/${opts.rounds})` : '';
        log(
          `${w.id.padEnd(16)} ${t.padEnd(18)} tps ${fmtInt(run.tps).padStart(8)}  failed ${run.failed ?? '?'}` +
            `${run.cpuSplit !== undefined ? `  CPU ${run.cpuSplit}` : ''}` +
            `${run.error !== undefined ? `  ERROR: ${run.error.split('\n')[0]}` : ''}${round_}`,
        );
        await sleep(300);
      }
    }
  }

  // --- results
  const summary = workloads.map((w) => {
    const cell = (t: DefaultTargetName) => {
      const rs = runs[w.id][t] ?? [];
      const tpsList = rs.map((r) => r.tps).filter((x): x is number => x !== null);
      const cpuList = rs.map((r) => r.cpuMicrosPerTx ?? null).filter((x): x is number => x !== null);
      return {
        tps: median(tpsList),
        cpuMicrosPerTx: median(cpuList),
        failed: rs.reduce((a, r) => a + (r.failed ?? 0), 0),
        errors: rs.filter((r) => r.error !== undefined).map((r) => r.error as string),
        note: rs.find((r) => r.note !== undefined)?.note,
        measured: rs.length > 0,
      };
    };
    return {
      workload: w,
      direct: cell('direct'),
      pgbouncer: cell('pgbouncer'),
      shardgate: cell('shardgate'),
    };
  });

  const headers = [
    'workload',
    'direct tps',
    'PgBouncer tps',
    'shardgate tps',
    'shardgate/PgBouncer',
    'shardgate/direct',
    'CPU µs/tx PgBouncer',
    'CPU µs/tx shardgate',
    'CPU shardgate/PgBouncer',
    'failed tx d/p/s',
  ];
  const rows = summary.map((s) => [
    s.workload.label + (s.pgbouncer.note !== undefined ? ' †' : ''),
    fmtInt(s.direct.tps),
    s.pgbouncer.measured ? fmtInt(s.pgbouncer.tps) : 'skipped',
    fmtInt(s.shardgate.tps),
    fmtRatio(s.shardgate.tps, s.pgbouncer.tps),
    fmtRatio(s.shardgate.tps, s.direct.tps),
    fmtFixed(s.pgbouncer.cpuMicrosPerTx, 1),
    fmtFixed(s.shardgate.cpuMicrosPerTx, 1),
    fmtRatio(s.shardgate.cpuMicrosPerTx, s.pgbouncer.cpuMicrosPerTx),
    `${s.direct.failed}/${s.pgbouncer.measured ? s.pgbouncer.failed : '-'}/${s.shardgate.failed}`,
  ]);
  const notes: string[] = [];
  if (summary.some((s) => s.pgbouncer.note !== undefined)) {
    notes.push(`† ${summary.find((s) => s.pgbouncer.note !== undefined)?.pgbouncer.note}.`);
  }
  if (bouncer === null)
    notes.push(`PgBouncer was skipped: ${bouncerBin.bin === null ? bouncerBin.reason : ''}.`);
  for (const s of summary) {
    for (const t of TARGETS) {
      const errs = s[t].errors;
      if (errs.length > 0)
        notes.push(`${TARGET_LABEL[t]}, ${s.workload.label}: \`${errs[0].split('\n')[0]}\``);
    }
  }
  for (const [name, child, file] of [
    ['PgBouncer', bouncer?.child, bouncer?.endpoint.logFile ?? null],
    ['shardgate', shardgate.child, shardgate.endpoint.logFile],
  ] as const) {
    const died = child === undefined ? null : exitNote(name, child, file);
    if (died !== null) notes.push(died);
  }
  const sgProblems = logProblems(shardgate.endpoint.logFile);
  if (sgProblems.count > 0) {
    notes.push(
      `shardgate logged ${sgProblems.count} warning/error line(s); first: \`${sgProblems.sample[0]}\``,
    );
  }

  process.stdout.write(`\n${textTable(headers, rows)}\n`);
  for (const n of notes) process.stdout.write(`${n.replace(/`/g, '')}\n`);
  const byTarget = isDefaultTargets ? null : targetTable(workloads, targets, runs);
  if (byTarget !== null)
    process.stdout.write(`\nEvery target (medians):\n${textTable(byTarget.headers, byTarget.rows)}\n`);

  const finishedAt = new Date();
  const resultsDir = path.join(REPO_ROOT, 'bench/results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const resultsFile = path.join(resultsDir, `pgbench-${fileTimestamp(startedAt)}.json`);
  const json = {
    script: SCRIPT,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    machine,
    loadAvgAtEnd: machineInfo().loadAvg,
    versions: {
      node: process.version,
      pgbench: pgbenchV,
      postgres: postgres.version,
      pgbouncer: bouncerVersion,
      shardgateRunner: shardgateHows.join('; '),
    },
    settings: {
      duration: opts.duration,
      warmup: opts.warmup,
      clients: opts.clients,
      threads: opts.threads,
      scale: opts.scale,
      poolSize: opts['pool-size'],
      poolMode: 'transaction',
      auth,
      rounds: opts.rounds,
      order: targets.map((t) => t.id),
      upstream: opts.upstream,
      bun: opts.bun === '' ? null : opts.bun,
    },
    targets: targets.map((t) => ({ id: t.id, label: t.label, transport: t.transport })),
    everyTarget: byTarget,
    workloads: summary.map((s) => ({
      id: s.workload.id,
      label: s.workload.label,
      pgbenchArgs: s.workload.args,
      medianTps: { direct: s.direct.tps, pgbouncer: s.pgbouncer.tps, shardgate: s.shardgate.tps },
      medianCpuMicrosPerTx: { pgbouncer: s.pgbouncer.cpuMicrosPerTx, shardgate: s.shardgate.cpuMicrosPerTx },
      shardgateVsPgbouncer:
        s.shardgate.tps !== null && s.pgbouncer.tps ? s.shardgate.tps / s.pgbouncer.tps : null,
      shardgateVsDirect: s.shardgate.tps !== null && s.direct.tps ? s.shardgate.tps / s.direct.tps : null,
      runs: runs[s.workload.id],
    })),
    shardgateLogProblems: sgProblems,
    pgbouncerLogProblems: logProblems(bouncer?.endpoint.logFile ?? null),
    notes,
  };
  fs.writeFileSync(resultsFile, JSON.stringify(json, null, 2) + '\n');
  log(`results: ${path.relative(REPO_ROOT, resultsFile)}`);

  if (opts.docs === 'no') return;
  if (!isDocTargets) {
    log('docs/benchmarks.md not updated: its section is for the default targets (--upstream tcp, no --bun)');
    return;
  }
  const date = startedAt.toISOString().slice(0, 10);
  const svg = groupedBarChartSvg({
    title: 'pgbench: PostgreSQL direct vs PgBouncer vs shardgate',
    subtitle: `tps, -c ${opts.clients} -j ${opts.threads} -T ${opts.duration}, scale ${opts.scale}, transaction pooling, pool ${opts['pool-size']}; higher is better`,
    yLabel: 'transactions per second',
    series: [
      { name: 'direct', color: '#9e9e9e' },
      { name: `PgBouncer ${bouncerVersion ?? '(skipped)'}`, color: '#4e79a7' },
      { name: 'shardgate', color: '#f28e2b' },
    ],
    groups: summary.map((s) => ({
      label: s.workload.label + (s.pgbouncer.note !== undefined ? ' †' : ''),
      values: [s.direct.tps, s.pgbouncer.tps, s.shardgate.tps],
      notes: [
        `vs PgBouncer ${fmtRatio(s.shardgate.tps, s.pgbouncer.tps)}`,
        `vs direct ${fmtRatio(s.shardgate.tps, s.direct.tps)}`,
      ],
    })),
    footnote:
      `${date}, ${machine.cpus} cores shared by pgbench, PostgreSQL ${postgres.version.split(' ')[0]} and the proxy` +
      (summary.some((s) => s.pgbouncer.note !== undefined)
        ? '; † PgBouncer in session mode (no prepared statements in transaction mode before 1.21)'
        : ''),
  });
  fs.writeFileSync(path.join(REPO_ROOT, 'docs/benchmarks.svg'), svg);

  const cmdLine = `npx tsx ${SCRIPT} --duration ${opts.duration} --clients ${opts.clients} --threads ${opts.threads} --scale ${opts.scale}${opts.rounds > 1 ? ` --rounds ${opts.rounds}` : ''}${opts.relay === 'yes' ? ' --relay yes' : ''}`;
  const section = `## pgbench: direct vs PgBouncer vs shardgate

Measured ${startedAt.toISOString().replace(/\.\d+Z$/, 'Z')} with \`${cmdLine}\`.

**Machine:** ${machine.cpuModel}, **${machine.cpus} cores**, ${machine.memGiB} GiB RAM, ${machine.kernel}; load average
${machine.loadAvg.join(' / ')} at the start. pgbench, PostgreSQL and the proxy under test all share these ${machine.cpus} cores.
That hurts the proxies most: every CPU cycle a proxy spends is taken from PostgreSQL and pgbench, so "direct" has
a built-in advantage and the proxy numbers are lower than on a machine where the proxy has its own cores.

**Setup:** PostgreSQL ${postgres.version} (one throwaway server, fsync off), ${pgbenchV}, PgBouncer
${bouncerVersion ?? '(skipped)'}, shardgate (${shardgate.how}, Node ${process.version}). Both proxies run in transaction pooling mode with
${opts['pool-size']} server connections, ${auth} authentication. Each measured run is \`pgbench -c ${opts.clients} -j ${opts.threads} -T ${opts.duration} -n\`,
preceded by a ${opts.warmup} s warm-up run of the same workload against the same target; targets run in the order direct, PgBouncer,
shardgate for every workload. The tpcb-like workload is pgbench's default script with \`-M simple\` (pgbench's default
query mode); before each of its runs \`pgbench_branches\` and \`pgbench_tellers\` are vacuumed and \`pgbench_history\`
is truncated (directly, as pgbench does without \`-n\`).${opts.rounds > 1 ? ` The table shows the median of ${opts.rounds} rounds.` : ''}

${markdownTable(headers, rows)}
${notes.length > 0 ? '\n' + notes.map((n) => `- ${n}`).join('\n') + '\n' : ''}${
    byTarget === null
      ? ''
      : `
With \`--relay yes\`, the parse-free Node relay (bench/lib/node-relay.ts: Node's floor for a hop) in the same rounds:

${markdownTable(byTarget.headers, byTarget.rows)}
`
  }
![pgbench tps: direct, PgBouncer, shardgate](benchmarks.svg)

Numbers from a shared ${machine.cpus}-core machine are noisy (other jobs may have been running); compare ratios from the same run,
not absolute tps across runs. Raw results: \`bench/results/pgbench-<timestamp>.json\` (not committed).

To reproduce: \`${cmdLine}\` (needs \`pgbench\` and \`pgbouncer\` on the PATH or in /usr/sbin, and PostgreSQL server
binaries; see \`bench/README.md\`).`;
  await writeDocSection(path.join(REPO_ROOT, 'docs/benchmarks.md'), 'pgbench-compare', section);
  log('updated docs/benchmarks.md and docs/benchmarks.svg');
}

/**
 * Medians per workload and target, with each proxy's ratios to PgBouncer on the same transport and to its own kind on
 * TCP (e.g. shardgate over the Unix socket / shardgate over TCP).
 */
function targetTable(
  workloads: Workload[],
  targets: Target[],
  runs: Record<string, Record<string, PgbenchRun[]>>,
): { headers: string[]; rows: string[][] } {
  const headers = [
    'workload',
    'target',
    'tps',
    'CPU µs/tx',
    'vs PgBouncer same transport',
    'CPU vs PgBouncer',
    'vs own TCP',
  ];
  const rows: string[][] = [];
  for (const w of workloads) {
    const tps = (id: string): number | null =>
      median((runs[w.id][id] ?? []).flatMap((r) => (r.tps === null ? [] : [r.tps])));
    const cpu = (id: string): number | null =>
      median((runs[w.id][id] ?? []).flatMap((r) => (r.cpuMicrosPerTx == null ? [] : [r.cpuMicrosPerTx])));
    for (const t of targets) {
      const bouncer = targets.find((b) => b.kind === 'pgbouncer' && b.transport === t.transport);
      // e.g. shardgate-bun-unix → shardgate-bun: the same proxy on TCP (only with --upstream both).
      const tcpSelf = t.id.endsWith('-unix')
        ? targets.find((o) => o.id === t.id.slice(0, -'-unix'.length))
        : undefined;
      rows.push([
        w.label,
        t.label,
        fmtInt(tps(t.id)),
        fmtFixed(cpu(t.id), 1),
        t.kind === 'direct' || bouncer === undefined || bouncer === t
          ? ''
          : fmtRatio(tps(t.id), tps(bouncer.id)),
        t.kind === 'direct' || bouncer === undefined || bouncer === t
          ? ''
          : fmtRatio(cpu(t.id), cpu(bouncer.id)),
        tcpSelf === undefined ? '' : fmtRatio(tps(t.id), tps(tcpSelf.id)),
      ]);
    }
  }
  return { headers, rows };
}

/** What pgbench does before a run unless -n: keep the write workload's tables from growing across runs. */
async function resetTables(query: (sql: string) => Promise<unknown>): Promise<void> {
  await query('VACUUM pgbench_branches');
  await query('VACUUM pgbench_tellers');
  await query('TRUNCATE pgbench_history');
}

await runMain(main);
