// Benchmark (not a test): pgbench through shardgate with pgbench_accounts and pgbench_history sharded by aid over 2
// shards (branches/tellers copied to both), against the same workload on one PostgreSQL directly and against
// client-side routing (two pgbench runs at once, half the clients each, straight at the shards: what an application
// routing its own queries gets). Rounds are interleaved and medians reported, with the proxy's CPU per transaction
// (utime + stime from /proc over the run). Writes its section of docs/benchmarks.md when asked (--docs yes);
// --profile DIR writes a V8 CPU profile of the proxy there (node --cpu-prof). --baseline PATH/dist/cli.js runs a
// second proxy from another build beside this one (same config, own port; rounds alternate which goes first) and
// prints new/baseline throughput and CPU: an old-vs-new check of a hot-path change in one run. --unsharded yes runs a
// third proxy of this build in front of the one reference server (no sharded tables), interleaved too (with --baseline,
// the baseline build unsharded as well), and prints the sharded hop's CPU per transaction against the unsharded hop's
// (issue 16: a request pinned to one shard should cost what an unsharded request costs). --floor yes measures what a
// hop costs in the client-side routing setup itself, interleaved too: the same two pgbench runs (half the clients
// each, each at its shard) through one PgBouncer process (a database per shard; prepared mode on its session-mode
// databases when it has no prepared statements in transaction mode) and through one parse-free Node relay process
// (bench/lib/node-relay.ts, a port per shard) — PgBouncer's pooling hop, which goal 1 names as the bar, and Node's
// floor for any proxy in front of both shards, each with its CPU per transaction.
// Usage: npx tsx bench/pgbench-sharded.ts [--duration 10] [--scale 2] [--clients 8] [--rounds 3] [--docs yes]
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPgCluster } from '../src/testing/pg-cluster.js';
import { freePort } from '../src/testing/free-port.js';
import { parseArgs } from './lib/args.js';
import { runPgbench } from './lib/pgbench.js';
import { loadShardedPgbench } from './lib/sharded-pgbench.js';
import { cpuSeconds } from './lib/procs.js';
import { groupedBarChartSvg, median, writeDocSection } from './lib/report.js';
import {
  BENCH_DB,
  BENCH_PASSWORD,
  BENCH_USER,
  ensurePgBouncer,
  shardgateCommand,
  startNodeRelays,
  startPgBouncer,
  type RunningPgBouncer,
} from './lib/targets.js';

const SCRIPT = 'bench/pgbench-sharded.ts';
const opts = parseArgs(SCRIPT, {
  duration: { default: 10, help: 'seconds per pgbench run' },
  scale: { default: 2, help: 'pgbench scale factor' },
  clients: { default: 8, help: 'pgbench clients (-c)' },
  rounds: { default: 3, help: 'interleaved rounds per workload (medians reported)' },
  select: { default: 'no', help: 'select-only workloads only', choices: ['yes', 'no'] },
  profile: { default: '', help: 'directory for a V8 CPU profile of the proxy (empty: none)' },
  only: { default: '', help: 'run only the workloads whose label contains this (e.g. extended)' },
  warmup: {
    default: 2,
    min: 0,
    help: 'seconds of unmeasured pgbench through each proxy before each workload',
  },
  baseline: {
    default: '',
    help: "another build's dist/cli.js (e.g. a worktree of main): run it too, interleaved, and report new/baseline",
  },
  unsharded: {
    default: 'no',
    help: 'also run this build unsharded in front of the reference server, and compare CPU per transaction',
    choices: ['yes', 'no'],
  },
  floor: {
    default: 'no',
    help: 'also run client-side routing through one PgBouncer and through one Node relay (the hop floor)',
    choices: ['yes', 'no'],
  },
  'node-args': {
    default: '',
    help: "node flags for this build's proxies only, space-separated (e.g. V8 GC flags; the baseline runs without)",
  },
  docs: { default: 'no', help: 'write the results into docs/benchmarks.md', choices: ['yes', 'no'] },
});
const DURATION = opts.duration;
const SCALE = opts.scale;
const CLIENTS = opts.clients;
const ROUNDS = opts.rounds;
const USER = BENCH_USER;
const PASSWORD = BENCH_PASSWORD;
const LOGIN = { user: USER, password: PASSWORD, database: BENCH_DB };
const root = path.resolve(import.meta.dirname, '..');

/** One pgbench run (resolves when it exits): tps NaN when it printed none. */
async function pgbench(
  port: number,
  extra: string[],
  database = BENCH_DB,
): Promise<{ tps: number; failed: number; out: string }> {
  const target = { host: '127.0.0.1', port, user: USER, password: PASSWORD, database };
  const run = await runPgbench(target, extra, 15 * 60_000);
  return { tps: run.tps ?? NaN, failed: run.failed ?? 0, out: run.out };
}

async function main(): Promise<void> {
  const cluster = await startPgCluster({
    count: 3,
    authMethod: 'md5',
    users: [{ name: USER, password: PASSWORD }],
    databases: [BENCH_DB],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-bench-'));
  let proxy: ReturnType<typeof spawn> | null = null;
  let baseline: ReturnType<typeof spawn> | null = null;
  let unsharded: ReturnType<typeof spawn> | null = null;
  let baselineUnsharded: ReturnType<typeof spawn> | null = null;
  let bouncer: RunningPgBouncer | null = null;
  let relay: ChildProcess | null = null;
  try {
    const [direct, s0, s1] = cluster.servers;
    console.log(`pgbench -i -s ${SCALE} on the reference and on both shards …`);
    await loadShardedPgbench(direct.port, [s0.port, s1.port], LOGIN, SCALE);
    const port = await freePort();
    const config = path.join(dir, 'pgdog.toml');
    const users = path.join(dir, 'users.toml');
    fs.writeFileSync(
      config,
      `[general]\nhost = "127.0.0.1"\nport = ${port}\nlog_level = "warn"\nauth_type = "md5"\ndefault_pool_size = 20\n[admin]\npassword = "admin"\n` +
        [s0, s1]
          .map(
            (s, i) => `[[databases]]\nname = "${USER}"\nhost = "127.0.0.1"\nport = ${s.port}\nshard = ${i}\n`,
          )
          .join('') +
        `[[sharded_tables]]\ndatabase = "${USER}"\nname = "pgbench_accounts"\ncolumn = "aid"\ndata_type = "integer"\n` +
        `[[sharded_tables]]\ndatabase = "${USER}"\nname = "pgbench_history"\ncolumn = "aid"\ndata_type = "integer"\n`,
    );
    fs.writeFileSync(users, `[[users]]\nname = "${USER}"\ndatabase = "${USER}"\npassword = "${PASSWORD}"\n`);
    // The built proxy, rebuilt first when src/ is newer (a stale dist/ would measure code that is gone).
    const command = await shardgateCommand('dist');
    const flags = opts['node-args'].split(' ').filter((f) => f !== '');
    const nodeArgs = [
      ...flags,
      ...(opts.profile !== '' ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(opts.profile)] : []),
    ];
    proxy = spawn(command.file, [...nodeArgs, ...command.args, '--config', config, '--users', users], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    let basePort = 0;
    if (opts.baseline !== '') {
      basePort = await freePort();
      baseline = startBaseline(dir, 'baseline.toml', config, port, basePort, users);
    }
    let flatPort = 0;
    let baseFlatPort = 0;
    if (opts.unsharded === 'yes') {
      flatPort = await freePort();
      const flatConfig = path.join(dir, 'unsharded.toml');
      fs.writeFileSync(
        flatConfig,
        `[general]\nhost = "127.0.0.1"\nport = ${flatPort}\nlog_level = "warn"\nauth_type = "md5"\ndefault_pool_size = 20\n` +
          `[admin]\npassword = "admin"\n[[databases]]\nname = "${USER}"\nhost = "127.0.0.1"\nport = ${direct.port}\n`,
      );
      unsharded = spawn(command.file, [...flags, ...command.args, '--config', flatConfig, '--users', users], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      if (opts.baseline !== '') {
        // The baseline build unsharded too: old vs new for the unsharded hop in the same rounds.
        baseFlatPort = await freePort();
        baselineUnsharded = startBaseline(
          dir,
          'baseline-unsharded.toml',
          flatConfig,
          flatPort,
          baseFlatPort,
          users,
        );
      }
    }
    // The hop floor (--floor yes): client-side routing through one PgBouncer and through one Node relay.
    let relayPorts: number[] = [];
    if (opts.floor === 'yes') {
      const found = await ensurePgBouncer();
      if (found.bin === null) console.error(`no PgBouncer: ${found.reason}`);
      else {
        bouncer = await startPgBouncer({
          bin: found.bin,
          version: found.version,
          server: s0,
          auth: 'md5',
          poolSize: 20,
          maxClientConn: 200,
          fdLimit: 1024,
          moreDatabases: [{ name: `${BENCH_DB}_s1`, port: s1.port }],
        });
      }
      const relays = await startNodeRelays([s0, s1].map((s) => ({ host: '127.0.0.1', port: s.port })));
      relay = relays.child;
      relayPorts = relays.endpoints.map((e) => e.port);
    }
    await new Promise((r) => setTimeout(r, 1500));
    const proxyPid = proxy.pid ?? 0;
    const flatPid = unsharded?.pid ?? 0;
    const baseFlatPid = baselineUnsharded?.pid ?? 0;
    const basePid = baseline?.pid ?? 0;

    const workloads: [string, string[]][] = [
      ['select-only, simple', ['-S', '-M', 'simple']],
      ['select-only, extended', ['-S', '-M', 'extended']],
      ['select-only, prepared', ['-S', '-M', 'prepared']],
      ...(opts.select === 'yes'
        ? []
        : ([['tpcb-like, extended', ['-n', '-M', 'extended']]] as [string, string[]][])),
    ];
    const rows: string[] = [];
    const floorRows: string[] = [];
    /** Per workload, the medians the chart shows (null: that target did not run). */
    const chart: { label: string; values: (number | null)[]; notes: string[] }[] = [];
    /** "tps (× client-side routing), CPU µs/tx" of one hop's rounds, or — when it did not run. */
    const cell = (tps: number[], cpu: number[], routedTps: number): string => {
      const t = median(tps);
      return t === null
        ? '—'
        : `${t.toFixed(0)} (${(t / routedTps).toFixed(2)}×), ${(median(cpu) ?? NaN).toFixed(1)} µs`;
    };
    for (const [label, w] of workloads.filter(([l]) => l.includes(opts.only))) {
      const runArgs = (clients: number, jobs: number, seconds = DURATION): string[] => [
        '-c',
        String(clients),
        '-j',
        String(jobs),
        '-T',
        String(seconds),
        ...w,
      ];
      const direct1: number[] = [];
      const routed: number[] = [];
      const sharded: number[] = [];
      const cpuPerTx: number[] = [];
      const baseTps: number[] = [];
      const baseCpu: number[] = [];
      const flatTps: number[] = [];
      const flatCpu: number[] = [];
      const baseFlatTps: number[] = [];
      const baseFlatCpu: number[] = [];
      const bouncerTps: number[] = [];
      const bouncerCpu: number[] = [];
      const relayTps: number[] = [];
      const relayCpu: number[] = [];
      let failed = 0;
      const isSelect = w[0] === '-S';
      // PgBouncer < 1.21 has no prepared statements in transaction mode: its session-mode databases then.
      const bouncerDb = (db: string): string =>
        w.includes('prepared') && bouncer !== null && !bouncer.hasPreparedStatements ? `${db}_session` : db;
      // Warm-up (JIT, plan cache, pools) through each proxy, not measured.
      if (opts.warmup > 0) {
        const warm = runArgs(CLIENTS, 2, opts.warmup);
        await pgbench(port, warm);
        if (basePort !== 0) await pgbench(basePort, warm);
        if (flatPort !== 0) await pgbench(flatPort, warm);
        if (baseFlatPort !== 0) await pgbench(baseFlatPort, warm);
      }
      for (let round = 0; round < ROUNDS; round++) {
        direct1.push((await pgbench(direct.port, runArgs(CLIENTS, 2))).tps);
        // Client-side routing (select-only only: tpcb-like writes need every shard's branches/tellers).
        const half = Math.max(1, CLIENTS / 2);
        /** Half the clients at each shard at once, at `[port, database]` per shard; tps summed, CPU of `pid`. */
        const routedRun = async (
          at: readonly [number, string][],
          tps: number[],
          pid = 0,
          cpu: number[] = [],
        ): Promise<void> => {
          const before = pid === 0 ? 0 : cpuSeconds(pid);
          const both = await Promise.all(at.map(([p, db]) => pgbench(p, runArgs(half, 1), db)));
          const sum = both[0].tps + both[1].tps;
          for (const b of both) if (!Number.isFinite(b.tps)) console.error(b.out);
          tps.push(sum);
          if (pid !== 0) cpu.push(((cpuSeconds(pid) - before) / (sum * DURATION)) * 1e6);
        };
        if (isSelect) {
          const direct2: [number, string][] = [
            [s0.port, BENCH_DB],
            [s1.port, BENCH_DB],
          ];
          await routedRun(direct2, routed);
          if (bouncer !== null) {
            const at: [number, string][] = [
              [bouncer.endpoint.port, bouncerDb(BENCH_DB)],
              [bouncer.endpoint.port, bouncerDb(`${BENCH_DB}_s1`)],
            ];
            await routedRun(at, bouncerTps, bouncer.child.pid ?? 0, bouncerCpu);
          }
          if (relay !== null) {
            const at: [number, string][] = relayPorts.map((p) => [p, BENCH_DB]);
            await routedRun(at, relayTps, relay.pid ?? 0, relayCpu);
          }
        }
        const throughProxy = async (pid: number, at: number, tps: number[], cpu: number[]): Promise<void> => {
          const before = cpuSeconds(pid);
          const p = await pgbench(at, runArgs(CLIENTS, 2));
          const used = cpuSeconds(pid) - before;
          if (!Number.isFinite(p.tps)) console.error(p.out);
          failed += p.failed;
          tps.push(p.tps);
          cpu.push((used / (p.tps * DURATION)) * 1e6);
        };
        const isBaselineFirst = basePid !== 0 && round % 2 === 1;
        if (isBaselineFirst) await throughProxy(basePid, basePort, baseTps, baseCpu);
        await throughProxy(proxyPid, port, sharded, cpuPerTx);
        if (basePid !== 0 && !isBaselineFirst) await throughProxy(basePid, basePort, baseTps, baseCpu);
        if (baseFlatPid !== 0 && isBaselineFirst)
          await throughProxy(baseFlatPid, baseFlatPort, baseFlatTps, baseFlatCpu);
        if (flatPid !== 0) await throughProxy(flatPid, flatPort, flatTps, flatCpu);
        if (baseFlatPid !== 0 && !isBaselineFirst)
          await throughProxy(baseFlatPid, baseFlatPort, baseFlatTps, baseFlatCpu);
      }
      if (baseFlatPid !== 0)
        printVsBaseline(`${label}, unsharded`, flatTps, flatCpu, baseFlatTps, baseFlatCpu);
      if (flatPid !== 0) {
        const [ft, fc] = [median(flatTps) ?? NaN, median(flatCpu) ?? NaN];
        const [st, sc] = [median(sharded) ?? NaN, median(cpuPerTx) ?? NaN];
        console.log(
          `${label}: sharded ${st.toFixed(0)} tps ${sc.toFixed(1)} µs/tx; unsharded (one server) ${ft.toFixed(0)} tps ` +
            `${fc.toFixed(1)} µs/tx; sharded/unsharded ${(st / ft).toFixed(3)}× tps, ${(sc / fc).toFixed(3)}× CPU`,
        );
      }
      if (basePid !== 0) printVsBaseline(label, sharded, cpuPerTx, baseTps, baseCpu);
      if (isSelect && (bouncerTps.length > 0 || relayTps.length > 0)) {
        // The hop floor: each hop in front of client-side routing against client-side routing without one.
        const r = median(routed) ?? NaN;
        const [st, sc] = [median(sharded) ?? NaN, median(cpuPerTx) ?? NaN];
        const hop = (name: string, tps: number[], cpu: number[]): string =>
          tps.length === 0
            ? ''
            : ` ${name} ${(median(tps) ?? NaN).toFixed(0)} tps (${((median(tps) ?? NaN) / r).toFixed(2)}×, ` +
              `${(median(cpu) ?? NaN).toFixed(1)} µs/tx);`;
        floorRows.push(
          `| ${label} | ${r.toFixed(0)} | ${cell(bouncerTps, bouncerCpu, r)} | ${cell(relayTps, relayCpu, r)} | ` +
            `${st.toFixed(0)} (${(st / r).toFixed(2)}×), ${sc.toFixed(1)} µs |`,
        );
        console.log(
          `${label}, client-side routing ${r.toFixed(0)} tps; through one hop:` +
            hop('PgBouncer', bouncerTps, bouncerCpu) +
            hop('Node relay', relayTps, relayCpu) +
            ` shardgate ${st.toFixed(0)} tps (${(st / r).toFixed(2)}×, ${sc.toFixed(1)} µs/tx; ` +
            `÷ PgBouncer's hop ${(st / (median(bouncerTps) ?? NaN)).toFixed(2)}× tps, ` +
            `${(sc / (median(bouncerCpu) ?? NaN)).toFixed(2)}× CPU; ÷ Node relay's ` +
            `${(st / (median(relayTps) ?? NaN)).toFixed(2)}× tps)` +
            ` — tps per round: routed ${routed.map((x) => x.toFixed(0)).join(' ')}, PgBouncer ` +
            `${bouncerTps.map((x) => x.toFixed(0)).join(' ')}, relay ${relayTps.map((x) => x.toFixed(0)).join(' ')}, ` +
            `shardgate ${sharded.map((x) => x.toFixed(0)).join(' ')}`,
        );
      }
      const d = median(direct1) ?? NaN;
      const r = median(routed);
      const p = median(sharded) ?? NaN;
      const us = median(cpuPerTx) ?? NaN;
      const flat =
        flatPid === 0
          ? ''
          : ` ${(median(flatTps) ?? NaN).toFixed(0)} | ${(median(flatCpu) ?? NaN).toFixed(1)} | ` +
            `${(us / (median(flatCpu) ?? NaN)).toFixed(2)}× |`;
      const line =
        `| ${label} | ${d.toFixed(0)} | ${r === null ? '—' : r.toFixed(0)} | ${p.toFixed(0)} | ` +
        `${(p / d).toFixed(2)}× | ${r === null ? '—' : `${(p / r).toFixed(2)}×`} | ${us.toFixed(1)} | ${failed} |` +
        flat;
      console.log(line);
      rows.push(line);
      chart.push({
        label,
        values: [d, r, median(bouncerTps), median(relayTps), p, median(flatTps)],
        notes: r === null ? [] : [`shardgate vs client-side routing ${(p / r).toFixed(2)}×`],
      });
    }
    // With --baseline the section shows this build (the baseline's numbers are printed, not written).
    if (opts.docs === 'yes') {
      const section = [
        '## pgbench over 2 shards (pgbench_accounts and pgbench_history sharded by aid)',
        '',
        `Measured ${new Date().toISOString()} with \`npx tsx ${SCRIPT} --duration ${DURATION} --scale ${SCALE} --clients ${CLIENTS} --rounds ${ROUNDS}` +
          `${opts.select === 'yes' ? ' --select yes' : ''}${flatPid === 0 ? '' : ' --unsharded yes'}${opts.floor === 'yes' ? ' --floor yes' : ''}\``,
        '(medians of interleaved rounds):',
        'one PostgreSQL directly vs shardgate over two PostgreSQL shards on the same 2-core machine (so the sharded side',
        'runs two servers and the proxy on the cores the direct side gives to one server). Statements are routed by aid;',
        'with `-M extended`/`prepared` the text is constant and parsed once (plan cache); with `-M simple` the literals are',
        'made parameters first (router/literals.ts, ~0.3 µs), so one plan serves every aid. branches/tellers are copied to both shards, so the',
        "tpcb-like UPDATEs of them run on both shards, one after the other, inside the client's transaction.",
        '',
        'Client-side routing = two pgbench runs at once, half the clients each, straight at the two shards (the',
        "application routing its own queries). Proxy CPU = the proxy process's utime + stime per transaction.",
        ...(flatPid === 0
          ? []
          : [
              'shardgate unsharded = a second proxy of the same build in front of the direct server (no sharded',
              'tables), in the same rounds: sharded/unsharded CPU is what the sharding hop adds per transaction.',
            ]),
        '',
        '| workload | direct tps | client-side routing tps | shardgate (2 shards) tps | vs direct | vs client-side routing | proxy CPU µs/tx | failed |' +
          (flatPid === 0 ? '' : ' shardgate unsharded tps | unsharded CPU µs/tx | sharded/unsharded CPU |'),
        '| :-- | --: | --: | --: | --: | --: | --: | --: |' + (flatPid === 0 ? '' : ' --: | --: | --: |'),
        ...rows,
        '',
        ...(floorRows.length === 0
          ? []
          : [
              'The hop floor (`--floor yes`): the client-side routing runs again through one hop in front of both',
              "shards — one PgBouncer process (a database per shard; PgBouncer's pooling hop, goal 1's bar) and one",
              'parse-free Node relay process (a port per shard, bench/lib/node-relay.ts: what any proxy on Node pays',
              "before its own logic) — in the same rounds; tps (× client-side routing), the hop process's CPU per transaction.",
              '',
              '| workload | client-side routing tps | through PgBouncer | through a Node relay | shardgate (2 shards) |',
              '| :-- | --: | --: | --: | --: |',
              ...floorRows,
              '',
            ]),
        '![pgbench -S over 2 shards](benchmarks-sharded.svg)',
        '',
      ].join('\n');
      await writeDocSection(path.join(root, 'docs/benchmarks.md'), 'pgbench-sharded', section);
      const svg = groupedBarChartSvg({
        title: 'pgbench -S over 2 shards: client-side routing vs one hop in front of the shards',
        subtitle: `tps, -c ${CLIENTS} -j 2 -T ${DURATION}, scale ${SCALE}, medians of ${ROUNDS} interleaved rounds; higher is better`,
        yLabel: 'transactions per second',
        series: [
          { name: 'one server direct', color: '#9e9e9e' },
          { name: 'client-side routing', color: '#59a14f' },
          { name: 'routing through PgBouncer', color: '#4e79a7' },
          { name: 'routing through a Node relay', color: '#b07aa1' },
          { name: 'shardgate, 2 shards', color: '#f28e2b' },
          { name: 'shardgate unsharded', color: '#edc948' },
        ],
        groups: chart,
        footnote: `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores shared by pgbench, PostgreSQL and the proxy`,
      });
      fs.writeFileSync(path.join(root, 'docs/benchmarks-sharded.svg'), svg);
    }
  } finally {
    await stopProxy(proxy);
    await stopProxy(baseline);
    await stopProxy(unsharded);
    await stopProxy(baselineUnsharded);
    await stopProxy(relay);
    await stopProxy(bouncer?.child ?? null);
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The baseline build (--baseline) on a copy of `config` that listens on `basePort` instead of `port`. */
function startBaseline(
  dir: string,
  name: string,
  config: string,
  port: number,
  basePort: number,
  users: string,
): ChildProcess {
  const baseConfig = path.join(dir, name);
  fs.writeFileSync(
    baseConfig,
    fs.readFileSync(config, 'utf8').replace(`port = ${port}\n`, `port = ${basePort}\n`),
  );
  return spawn(process.execPath, [path.resolve(opts.baseline), '--config', baseConfig, '--users', users], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** This build's medians against the baseline's, with the tps of every round. */
function printVsBaseline(
  label: string,
  tps: number[],
  cpu: number[],
  baseTps: number[],
  baseCpu: number[],
): void {
  const [bt, bc] = [median(baseTps) ?? NaN, median(baseCpu) ?? NaN];
  const [nt, nc] = [median(tps) ?? NaN, median(cpu) ?? NaN];
  console.log(
    `${label}: this build ${nt.toFixed(0)} tps ${nc.toFixed(1)} µs/tx; baseline ${bt.toFixed(0)} tps ` +
      `${bc.toFixed(1)} µs/tx; new/baseline ${(nt / bt).toFixed(3)}× tps, ${(nc / bc).toFixed(3)}× CPU ` +
      `(tps per round: ${tps.map((x) => x.toFixed(0)).join(' ')} vs ${baseTps.map((x) => x.toFixed(0)).join(' ')})`,
  );
}

/** SIGTERM, then wait for the exit (a CPU profile is written on the way out). */
async function stopProxy(proxy: ChildProcess | null): Promise<void> {
  if (proxy === null || proxy.exitCode !== null) return;
  const exited = new Promise((r) => proxy.once('exit', r));
  proxy.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
