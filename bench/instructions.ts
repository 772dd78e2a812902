// Benchmark (not a test): user-space instructions per transaction of each hop, counted by valgrind's callgrind —
// PgBouncer, the parse-free Node relay (Node's floor, bench/lib/node-relay.ts), shardgate unsharded and shardgate
// over 2 shards (pgbench_accounts sharded by aid), for pgbench -S in each query mode. Instruction counts do not move
// with the machine's load (the shared 2-core machines this project runs on make tps and CPU seconds noisy), so this
// is the check for a hot-path change and the measure of how far a proxy is above Node's floor. Kernel work (the
// loopback TCP every hop pays alike) is not counted; the CPU columns of bench/pgbench-compare.ts include it.
// Each proxy runs under `valgrind --tool=callgrind --instr-atstart=no` (all its threads: V8's compiler and GC
// count); first every mode is warmed up in every process (`--warmup` transactions per client, uncounted, so the JIT
// has compiled the paths), then per mode a shorter warm-up and counting switched on for `--tx` transactions per
// client and off again (callgrind_control), `--repeat` times; the median is reported. Needs valgrind (apt-get install valgrind) and pgbench; PgBouncer when installed.
// Usage: npx tsx bench/instructions.ts [--tx 2000] [--warmup 8000] [--clients 4] [--repeat 3] [--docs yes]
//   [--targets unsharded,sharded] [--modes simple,extended] [--baseline OLD/dist/cli.js] [--keep yes]
// --targets picks among pgbouncer, relay, unsharded, sharded (default: all); --baseline adds the unsharded and sharded
// hops of another build (e.g. main's) counted in the same run; --keep yes keeps the callgrind output files (one per
// counted run, named by mode) for callgrind_annotate and prints their directory. JIT-compiled JavaScript shows there
// as unknown addresses: for JS functions profile with `node --cpu-prof` or `perf record` + `--perf-basic-prof`.
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPgCluster } from '../src/testing/pg-cluster.js';
import { freePort } from '../src/testing/free-port.js';
import { parseArgs } from './lib/args.js';
import { runPgbench } from './lib/pgbench.js';
import { loadShardedPgbench } from './lib/sharded-pgbench.js';
import { log, onCleanup, runMain, spawnTracked, stopChild } from './lib/procs.js';
import { fmtRatio, markdownTable, median, textTable, writeDocSection } from './lib/report.js';
import {
  BENCH_DB,
  BENCH_PASSWORD,
  BENCH_USER,
  ensurePgBouncer,
  makeTempDir,
  machineInfo,
  REPO_ROOT,
  shardgateCommand,
  startNodeRelay,
  startPgBouncer,
  type OsIdentity,
  waitUntilUp,
} from './lib/targets.js';

const SCRIPT = 'bench/instructions.ts';
const opts = parseArgs(SCRIPT, {
  tx: { default: 2000, min: 100, help: 'counted transactions per client, per repeat' },
  warmup: { default: 8000, min: 0, help: 'uncounted transactions per client before counting, per mode' },
  clients: { default: 4, min: 1, help: 'pgbench clients (-c)' },
  repeat: { default: 3, min: 1, help: 'counted runs per target and mode (median reported)' },
  scale: { default: 2, min: 1, help: 'pgbench scale factor' },
  docs: { default: 'no', help: 'write the results into docs/benchmarks.md', choices: ['yes', 'no'] },
  targets: { default: 'pgbouncer,relay,unsharded,sharded', help: 'comma-separated targets to count' },
  modes: { default: 'simple,extended,prepared', help: 'comma-separated pgbench -M modes' },
  baseline: { default: '', help: "another build's dist/cli.js: its unsharded and sharded hops counted too" },
  keep: { default: 'no', help: 'keep the callgrind output files', choices: ['yes', 'no'] },
});

const ALL_MODES = ['simple', 'extended', 'prepared'] as const;
type Mode = (typeof ALL_MODES)[number];
const ALL_TARGETS = ['pgbouncer', 'relay', 'unsharded', 'sharded'] as const;

/** The comma-separated `list`, each item one of `allowed` (exits with a message otherwise). */
function pick<T extends string>(option: string, list: string, allowed: readonly T[]): T[] {
  const items = list.split(',').map((s) => s.trim());
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) {
      process.stderr.write(`--${option}: unknown "${item}" (one of ${allowed.join(', ')})\n`);
      process.exit(2);
    }
  }
  return allowed.filter((a) => items.includes(a));
}
const MODES = pick('modes', opts.modes, ALL_MODES);
const TARGETS = pick('targets', opts.targets, ALL_TARGETS);
if (opts.docs === 'yes' && (MODES.length < ALL_MODES.length || TARGETS.length < ALL_TARGETS.length)) {
  process.stderr.write('--docs yes writes the whole table: every target and mode\n');
  process.exit(2);
}

interface Counted {
  label: string;
  port: number;
  child: ChildProcess;
  /** callgrind's output files for this process: `<outPrefix>.<pid>.<n>`. */
  outPrefix: string;
  /** Run callgrind_control as this OS user (the one the process runs as), null: as we are. */
  identity: OsIdentity | null;
  database: string;
  /** Prepared mode against PgBouncer < 1.21 runs on its session-mode database. */
  preparedDatabase?: string;
}

function callgrindArgs(outPrefix: string): string[] {
  return ['valgrind', '--tool=callgrind', '--instr-atstart=no', `--callgrind-out-file=${outPrefix}.%p`];
}

function control(target: Counted, args: string[]): void {
  const pid = target.child.pid;
  if (pid === undefined) throw new Error(`${target.label}: no pid`);
  const r = spawnSync('callgrind_control', [...args, String(pid)], {
    encoding: 'utf8',
    ...(target.identity !== null ? { uid: target.identity.uid, gid: target.identity.gid } : {}),
  });
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(' ')} ${pid}: ${r.stderr || r.stdout}`);
}

/** The `totals:` of the newest dump of `target` (instructions of every thread while counting was on). */
function lastDumpTotal(target: Counted): number {
  const dir = path.dirname(target.outPrefix);
  const base = `${path.basename(target.outPrefix)}.${target.child.pid}.`;
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(base))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (files.length === 0) throw new Error(`${target.label}: no callgrind dump in ${dir}`);
  const m = /^totals: (\d+)/m.exec(fs.readFileSync(files[0], 'utf8'));
  if (m === null) throw new Error(`${target.label}: no totals in ${files[0]}`);
  return Number(m[1]);
}

async function pgbench(target: Counted, mode: Mode, tx: number): Promise<number> {
  const database = mode === 'prepared' ? (target.preparedDatabase ?? target.database) : target.database;
  const ep = { host: '127.0.0.1', port: target.port, user: BENCH_USER, password: BENCH_PASSWORD, database };
  const run = await runPgbench(
    ep,
    ['-S', '-M', mode, '-c', String(opts.clients), '-j', '2', '-t', String(tx)],
    30 * 60_000,
  );
  if (run.error !== undefined) throw new Error(`pgbench ${mode} → ${target.label}: ${run.error}`);
  return run.processed ?? 0;
}

/** Instructions per transaction of one counted run. */
async function countOnce(target: Counted, mode: Mode): Promise<number> {
  control(target, ['-z']);
  control(target, ['-i', 'on']);
  const processed = await pgbench(target, mode, opts.tx);
  control(target, ['-i', 'off']);
  control(target, ['-d', `${mode}`]);
  await new Promise((r) => setTimeout(r, 500));
  if (processed === 0) throw new Error(`${target.label} ${mode}: no transaction processed`);
  return lastDumpTotal(target) / processed;
}

/** A shardgate (this build's dist/cli.js, or `cli`) under callgrind with the given config. */
async function startShardgateCounted(
  dir: string,
  name: string,
  config: string,
  users: string,
  cli: string | null = null,
): Promise<Counted> {
  const port = Number(/^port = (\d+)/m.exec(config)?.[1]);
  const configPath = path.join(dir, `${name}.toml`);
  fs.writeFileSync(configPath, config);
  const cmd = cli === null ? await shardgateCommand('dist') : { file: process.execPath, args: [cli] };
  const outPrefix = path.join(dir, `cg.${name.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, '')}`);
  const logFile = path.join(dir, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const [file, ...args] = callgrindArgs(outPrefix);
  const child = spawnTracked(
    file,
    [...args, cmd.file, ...cmd.args, '--config', configPath, '--users', users],
    {
      cwd: REPO_ROOT,
      stdio: ['ignore', out, out],
      env: { ...process.env, NODE_ENV: 'production' },
    },
  );
  fs.closeSync(out);
  onCleanup(`stop ${name}`, () => stopChild(child, 10_000, 'SIGTERM'));
  await waitUntilUp(name, child, port, 180_000, [logFile]);
  log(`${name} under callgrind on 127.0.0.1:${port} (pid ${child.pid})`);
  return { label: name, port, child, outPrefix, identity: null, database: BENCH_DB };
}

async function main(): Promise<void> {
  if (spawnSync('valgrind', ['--version']).status !== 0)
    throw new Error('valgrind not found: apt-get install valgrind');
  const cluster = await startPgCluster({
    count: 3,
    authMethod: 'md5',
    users: [{ name: BENCH_USER, password: BENCH_PASSWORD }],
    databases: [BENCH_DB],
  });
  onCleanup('stop PostgreSQL', () => cluster.stop());
  const [direct, s0, s1] = cluster.servers;
  const login = { user: BENCH_USER, password: BENCH_PASSWORD, database: BENCH_DB };
  await loadShardedPgbench(direct.port, [s0.port, s1.port], login, opts.scale);

  const dir =
    opts.keep === 'yes'
      ? fs.mkdtempSync(path.join(os.tmpdir(), 'bench-instructions-'))
      : makeTempDir('bench-instructions-');
  fs.chmodSync(dir, 0o777); // PgBouncer (run as another OS user under root) writes its dumps here too
  const users = path.join(dir, 'users.toml');
  fs.writeFileSync(
    users,
    `[[users]]\nname = "${BENCH_USER}"\ndatabase = "${BENCH_DB}"\npassword = "${BENCH_PASSWORD}"\n`,
  );
  const general = (port: number): string =>
    `[general]\nhost = "127.0.0.1"\nport = ${port}\nlog_level = "warn"\nauth_type = "md5"\ndefault_pool_size = 20\n` +
    `[admin]\npassword = "admin"\n`;
  const database = (port: number, shard?: number): string =>
    `[[databases]]\nname = "${BENCH_DB}"\nhost = "127.0.0.1"\nport = ${port}\n` +
    (shard === undefined ? '' : `shard = ${shard}\n`);

  const targets: Counted[] = [];
  const bouncerBin = TARGETS.includes('pgbouncer') ? await ensurePgBouncer() : null;
  if (bouncerBin !== null && bouncerBin.bin === null) log(`SKIPPING PgBouncer: ${bouncerBin.reason}`);
  else if (bouncerBin !== null && bouncerBin.bin !== null) {
    const outPrefix = path.join(dir, 'cg.pgbouncer');
    const b = await startPgBouncer({
      bin: bouncerBin.bin,
      version: bouncerBin.version,
      server: direct,
      auth: 'md5',
      poolSize: 20,
      maxClientConn: 200,
      fdLimit: 4096,
      wrap: callgrindArgs(outPrefix),
    });
    targets.push({
      label: `PgBouncer ${bouncerBin.version}`,
      port: b.endpoint.port,
      child: b.child,
      outPrefix,
      identity: b.identity,
      database: BENCH_DB,
      ...(b.hasPreparedStatements ? {} : { preparedDatabase: b.sessionDatabase }),
    });
  }
  if (TARGETS.includes('relay')) {
    const relayPrefix = path.join(dir, 'cg.relay');
    const relay = await startNodeRelay(direct.host, direct.port, callgrindArgs(relayPrefix));
    targets.push({
      label: 'Node relay (floor)',
      port: relay.endpoint.port,
      child: relay.child,
      outPrefix: relayPrefix,
      identity: null,
      database: BENCH_DB,
    });
  }
  const shardedConfig = (port: number): string =>
    general(port) +
    database(s0.port, 0) +
    database(s1.port, 1) +
    `[[sharded_tables]]\ndatabase = "${BENCH_DB}"\nname = "pgbench_accounts"\ncolumn = "aid"\ndata_type = "integer"\n`;
  const builds: { suffix: string; cli: string | null }[] = [{ suffix: '', cli: null }];
  if (opts.baseline !== '') builds.push({ suffix: ' (baseline)', cli: path.resolve(opts.baseline) });
  for (const { suffix, cli } of builds) {
    if (TARGETS.includes('unsharded')) {
      const config = general(await freePort()) + database(direct.port);
      targets.push(await startShardgateCounted(dir, `shardgate unsharded${suffix}`, config, users, cli));
    }
    if (TARGETS.includes('sharded')) {
      const config = shardedConfig(await freePort());
      targets.push(await startShardgateCounted(dir, `shardgate 2 shards${suffix}`, config, users, cli));
    }
  }

  const results: Record<string, Record<Mode, number[]>> = {};
  for (const t of targets) results[t.label] = { simple: [], extended: [], prepared: [] };
  if (opts.keep === 'yes') log(`callgrind output files kept in ${dir}`);
  // Every mode's path warmed up in every process first: a mode counted first would otherwise also count the
  // compiling of code the later modes share with it.
  for (const mode of MODES) {
    for (const t of targets) if (opts.warmup > 0) await pgbench(t, mode, opts.warmup);
  }
  for (const mode of MODES) {
    for (const t of targets) {
      if (opts.warmup > 0) await pgbench(t, mode, Math.ceil(opts.warmup / 4));
      for (let i = 0; i < opts.repeat; i++) {
        const ir = await countOnce(t, mode);
        results[t.label][mode].push(ir);
        log(
          `${mode.padEnd(9)} ${t.label.padEnd(33)} ${Math.round(ir).toLocaleString('en-US')} instructions/tx`,
        );
      }
    }
  }

  const bouncer = targets.find((t) => t.label.startsWith('PgBouncer'));
  const floor = targets.find((t) => t.label.startsWith('Node relay'));
  const med = (label: string, mode: Mode): number | null => median(results[label][mode]);
  const headers = ['pgbench -S', 'target', 'instructions/tx', 'vs PgBouncer', 'vs Node relay'];
  const rows: string[][] = [];
  for (const mode of MODES) {
    for (const t of targets) {
      const ir = med(t.label, mode);
      rows.push([
        mode,
        t.label,
        ir === null ? 'n/a' : Math.round(ir).toLocaleString('en-US'),
        bouncer === undefined || t === bouncer ? '' : fmtRatio(ir, med(bouncer.label, mode)),
        floor === undefined || t === floor || t === bouncer ? '' : fmtRatio(ir, med(floor.label, mode)),
      ]);
    }
  }
  process.stdout.write(`\n${textTable(headers, rows)}\n`);
  const raw = path.join(
    REPO_ROOT,
    'bench/results',
    `instructions-${new Date().toISOString().replace(/[:.]/g, '-')}.json`,
  );
  fs.mkdirSync(path.dirname(raw), { recursive: true });
  fs.writeFileSync(raw, JSON.stringify({ opts, results, machine: machineInfo() }, null, 2));
  log(`results: ${path.relative(REPO_ROOT, raw)}`);
  if (opts.keep === 'yes') log(`callgrind output files: ${dir} (callgrind_annotate <file>)`);
  if (opts.docs === 'no') return;
  const cmdLine = `npx tsx ${SCRIPT} --tx ${opts.tx} --warmup ${opts.warmup} --clients ${opts.clients} --repeat ${opts.repeat}`;
  const m = machineInfo();
  const section = `
## Instructions per transaction (callgrind)

Measured ${new Date().toISOString()} with \`${cmdLine}\` (${m.cpuModel}, Node ${process.version}).
User-space instructions each proxy process executes per pgbench -S transaction (every thread, V8's compiler and GC
included), counted by valgrind's callgrind after a warm-up of ${opts.warmup} transactions per client; median of
${opts.repeat} counted runs of ${opts.tx} transactions × ${opts.clients} clients. The count does not move with the
machine's load: PgBouncer's and the relay's runs repeat within 3 %; shardgate's spread by up to ±15 %, from V8's
garbage collector, whose major cycles fall into some counted windows and not others. Kernel work is not in it: every hop pays about the same for loopback TCP (about 25 µs per
transaction here, most of PgBouncer's CPU; see the CPU columns above). "Node relay" is bench/lib/node-relay.ts, a
parse-free 1:1 relay with the socket calls shardgate uses: what a hop costs on Node before any proxy logic.

${markdownTable(headers, rows)}
`;
  await writeDocSection(path.join(REPO_ROOT, 'docs/benchmarks.md'), 'instructions', section);
  log('docs/benchmarks.md: instructions section written');
}

await runMain(main);
