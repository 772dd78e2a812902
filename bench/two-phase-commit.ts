// Benchmark (not a test): the same 2-shard transfer transaction (BEGIN; UPDATE on shard 0; UPDATE on shard 1;
// COMMIT) through shardgate in three modes, rounds interleaved in one run: plain commit (two_phase_commit = false),
// stateless two-phase commit answered after phase 2 (two_phase_commit_reply = "after_commit_prepared"), and answered at
// the decision (= "at_decision", phase 2 in the background, reads of its shards through the proxy wait for it). Both
// 2PC modes run with atomic_visibility (two_phase_commit's default). pgbench runs it with a custom script; per-
// transaction latencies come from pgbench's --log files (p50/p99), the COMMIT statement's own mean latency from -r.
// Accounts are range-sharded (ids 1..N on shard 0, N+1..2N on shard 1) so every transfer really spans both shards.
// Writes its section of docs/benchmarks.md with --docs yes. --baseline PATH/dist/cli.js runs another build (e.g. a
// worktree of main) in every round too, right after this one, and prints its table and the p50 ratios beside: an
// old-vs-new check of a commit-path change on a machine too noisy for runs minutes apart.
// Usage: npx tsx bench/two-phase-commit.ts [--duration 10] [--clients 8] [--rounds 3] [--baseline PATH] [--docs yes]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startPgCluster } from '../src/testing/pg-cluster.js';
import { freePort } from '../src/testing/free-port.js';
import { parseArgs } from './lib/args.js';
import { markdownTable, textTable, writeDocSection } from './lib/report.js';
import { shardgateCommand } from './lib/targets.js';

const SCRIPT = 'bench/two-phase-commit.ts';
const opts = parseArgs(SCRIPT, {
  duration: { default: 10, help: 'seconds per pgbench run' },
  clients: { default: 8, help: 'pgbench clients (-c)' },
  rounds: { default: 3, help: 'runs of each mode, interleaved; the median run of each is reported' },
  baseline: {
    default: '',
    help: "another build's dist/cli.js (e.g. a worktree of main): run it too, interleaved, and report both",
  },
  docs: { default: 'no', help: 'write the results into docs/benchmarks.md', choices: ['yes', 'no'] },
});
/** The builds measured: this one, and the baseline when given (never written to the docs). */
const BUILDS = opts.baseline === '' ? ['new'] : ['new', 'baseline'];
const USER = 'bench';
const PASSWORD = 'bench';
const ACCOUNTS_PER_SHARD = 100_000;
const root = path.resolve(import.meta.dirname, '..');

const TRANSFER = `\\set a random(1, ${ACCOUNTS_PER_SHARD})
\\set b random(${ACCOUNTS_PER_SHARD + 1}, ${2 * ACCOUNTS_PER_SHARD})
\\set amount random(1, 100)
BEGIN;
UPDATE accounts SET balance = balance - :amount WHERE id = :a;
UPDATE accounts SET balance = balance + :amount WHERE id = :b;
COMMIT;
`;

interface Result {
  tps: number;
  p50: number;
  p99: number;
  /** Mean latency of the COMMIT statement alone (pgbench -r), ms. */
  commitMs: number;
  failed: number;
}

/** The modes measured, in the order they run in each round. */
const MODES = [
  { label: 'plain commit (two_phase_commit = false)', general: 'two_phase_commit = false' },
  {
    label: '2PC, reply after_commit_prepared',
    general: 'two_phase_commit = true\ntwo_phase_commit_reply = "after_commit_prepared"',
  },
  {
    label: '2PC, reply at_decision',
    general: 'two_phase_commit = true\ntwo_phase_commit_reply = "at_decision"',
  },
] as const;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** pgbench through the proxy on `port`; latencies (ms) from the per-transaction log files. */
function pgbench(port: number, dir: string, label: string): Result {
  const runDir = fs.mkdtempSync(path.join(dir, `${label}-`));
  const scriptFile = path.join(runDir, 'transfer.sql');
  fs.writeFileSync(scriptFile, TRANSFER);
  const args = ['-h', '127.0.0.1', '-p', String(port), '-U', USER, '-n', '-M', 'extended', '-f', scriptFile];
  args.push(
    '-c',
    String(opts.clients),
    '-j',
    '2',
    '-T',
    String(opts.duration),
    '-r',
    '--log',
    '--log-prefix',
    'tx',
    USER,
  );
  const r = spawnSync('pgbench', args, {
    cwd: runDir,
    env: { ...process.env, PGPASSWORD: PASSWORD },
    encoding: 'utf8',
  });
  const out = `${r.stdout}${r.stderr}`;
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? NaN);
  if (!Number.isFinite(tps)) throw new Error(`pgbench failed:\n${out}`);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  // -r: "  <latency ms>  <failures>  COMMIT;" (the statement's mean latency)
  const commitMs = Number(/^\s*([\d.]+)\s+(?:\d+\s+)*COMMIT;/m.exec(out)?.[1] ?? NaN);
  const latencies: number[] = [];
  for (const f of fs.readdirSync(runDir).filter((n) => n.startsWith('tx.'))) {
    for (const line of fs.readFileSync(path.join(runDir, f), 'utf8').split('\n')) {
      const fields = line.split(' ');
      if (fields.length >= 3) latencies.push(Number(fields[2]) / 1000); // µs → ms
    }
  }
  latencies.sort((x, y) => x - y);
  return { tps, p50: percentile(latencies, 50), p99: percentile(latencies, 99), commitMs, failed };
}

async function startProxy(
  dir: string,
  shards: { port: number }[],
  mode: number,
  build: string,
): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const config = path.join(dir, `pgdog-${mode}.toml`);
  const users = path.join(dir, 'users.toml');
  fs.writeFileSync(
    config,
    `[general]\nhost = "127.0.0.1"\nport = ${port}\nlog_level = "warn"\nauth_type = "md5"\ndefault_pool_size = 20\n` +
      `${MODES[mode].general}\n[admin]\npassword = "admin"\n` +
      shards
        .map(
          (s, i) => `[[databases]]\nname = "${USER}"\nhost = "127.0.0.1"\nport = ${s.port}\nshard = ${i}\n`,
        )
        .join('') +
      `[[sharded_tables]]\ndatabase = "${USER}"\nname = "accounts"\ncolumn = "id"\ndata_type = "bigint"\n` +
      `[[sharded_tables.mapping]]\nstart = 1\nend = ${ACCOUNTS_PER_SHARD + 1}\nshard = 0\n` +
      `[[sharded_tables.mapping]]\nstart = ${ACCOUNTS_PER_SHARD + 1}\nshard = 1\n`,
  );
  fs.writeFileSync(users, `[[users]]\nname = "${USER}"\ndatabase = "${USER}"\npassword = "${PASSWORD}"\n`);
  // BENCH_CPU_PROF=<dir>: a CPU profile of each proxy run (written when it stops), to see where 2PC time goes.
  const prof = process.env.BENCH_CPU_PROF;
  const nodeArgs = prof !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
  // The built proxy, rebuilt first when src/ is newer (a stale dist/ would measure code that is gone).
  const command =
    build === 'baseline'
      ? { file: process.execPath, args: [path.resolve(opts.baseline)] }
      : await shardgateCommand('dist');
  const child = spawn(command.file, [...nodeArgs, ...command.args, '--config', config, '--users', users], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 100; i++) {
    const c = new pg.Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database: USER });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.end();
      return { port, child };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('shardgate did not start');
}

async function main(): Promise<void> {
  const cluster = await startPgCluster({
    count: 2,
    authMethod: 'md5',
    users: [{ name: USER, password: PASSWORD }],
    databases: [USER],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-bench-2pc-'));
  const children: ChildProcess[] = [];
  try {
    for (const [shard, s] of cluster.servers.entries()) {
      const c = new pg.Client({
        host: '127.0.0.1',
        port: s.port,
        user: USER,
        password: PASSWORD,
        database: USER,
      });
      await c.connect();
      const from = shard * ACCOUNTS_PER_SHARD + 1;
      await c.query('create table accounts (id bigint primary key, balance bigint not null)');
      await c.query(
        `insert into accounts select g, 1000000 from generate_series(${from}, ${from + ACCOUNTS_PER_SHARD - 1}) g`,
      );
      await c.query('vacuum analyze accounts');
      await c.end();
    }
    // Interleaved rounds: a shared 2-core machine drifts; the median run per mode (by p50) is the reported one.
    // runs[build][mode]: with --baseline, each mode runs on both builds back to back.
    const runs: Result[][][] = BUILDS.map(() => MODES.map(() => []));
    for (let round = 0; round < opts.rounds; round++) {
      for (let mode = 0; mode < MODES.length; mode++) {
        for (let b = 0; b < BUILDS.length; b++) {
          const proxy = await startProxy(dir, cluster.servers, mode, BUILDS[b]);
          children.push(proxy.child);
          const r = pgbench(proxy.port, dir, `${mode}-${round}-${BUILDS[b]}`);
          console.log(
            `round ${round + 1}: ${BUILDS.length > 1 ? `${BUILDS[b]}: ` : ''}${MODES[mode].label}: ` +
              `${r.tps.toFixed(0)} tps, p50 ${r.p50.toFixed(2)} ms, COMMIT ${r.commitMs.toFixed(2)} ms`,
          );
          runs[b][mode].push(r);
          proxy.child.kill('SIGTERM');
          await new Promise((done) => proxy.child.once('exit', done));
        }
      }
      if (BUILDS.length > 1) {
        const ratio = (b: number, mode: number): string =>
          (runs[b][mode][round].p50 / runs[b][0][round].p50).toFixed(2);
        console.log(
          `round ${round + 1} p50 vs plain (new | baseline): ` +
            MODES.slice(1)
              .map((m, i) => `${m.label}: ${ratio(0, i + 1)}× | ${ratio(1, i + 1)}×`)
              .join('; '),
        );
      }
    }
    const median = (list: Result[]): Result =>
      [...list].sort((a, b) => a.p50 - b.p50)[Math.floor(list.length / 2)];
    const table = (b: number): string[][] => {
      const results: [string, Result][] = MODES.map((m, i) => [m.label, median(runs[b][i])]);
      const plain = results[0][1];
      return results.map(([label, r]) => [
        label,
        r.tps.toFixed(0),
        r.p50.toFixed(2),
        r.p99.toFixed(2),
        `${(r.p50 / plain.p50).toFixed(2)}×`,
        r.commitMs.toFixed(2),
        `${(r.commitMs / plain.commitMs).toFixed(2)}×`,
        String(r.failed),
      ]);
    };
    const rows = table(0);
    const headers = [
      'commit',
      'tps',
      'txn p50 ms',
      'txn p99 ms',
      'p50 vs plain',
      'COMMIT mean ms',
      'COMMIT vs plain',
      'failed',
    ];
    const load = os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(', ');
    console.log(textTable(headers, rows));
    if (BUILDS.length > 1) console.log(`baseline (${opts.baseline}):\n${textTable(headers, table(1))}`);
    console.log(`load average at the end (uptime): ${load}`);
    if (opts.docs === 'yes') {
      const section = [
        '## Two-phase commit overhead (2-shard transfer transaction), per reply mode',
        '',
        `Measured ${new Date().toISOString()} with \`npx tsx ${SCRIPT} --duration ${opts.duration} --clients ${opts.clients} --rounds ${opts.rounds}\`` +
          ` (median run of each mode, by p50; runs interleaved; load average at the end: ${load}):`,
        'pgbench runs `BEGIN; UPDATE accounts … (shard 0); UPDATE accounts … (shard 1); COMMIT` through shardgate over two',
        'PostgreSQL shards on the same 2-core machine (pgbench, both servers and the proxy share the cores). Plain commit:',
        'a COMMIT on each shard. Both 2PC modes run with `atomic_visibility`. `after_commit_prepared`: PREPARE TRANSACTION',
        'on both shards, then the decision row INSERT on shard 0 (the decision shard) as its own autocommit transaction (the',
        'decision, in its WAL), then COMMIT PREPARED on both; the client is answered after them. `at_decision` keeps the',
        'decision-COMMIT layout: PREPARE TRANSACTION on shard 1, then the decision row INSERT and a plain COMMIT on shard',
        '0 in one write (the decision), answered at once; COMMIT PREPARED on shard 1 goes out in the same tick on a',
        "connection of the manager's own, and this proxy's requests to shard 1 wait for it.",
        '`txn` columns: the whole transaction (pgbench --log); `COMMIT`: the COMMIT statement alone (pgbench -r, mean).',
        '',
        markdownTable(headers, rows),
        '',
      ].join('\n');
      await writeDocSection(path.join(root, 'docs/benchmarks.md'), 'two-phase-commit', section);
    }
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
