// Benchmark (not a test): how read throughput scales with a streaming replica behind shardgate, and what
// read-your-writes costs. One primary and one replica (pg_basebackup -R) on this machine; pgbench -S straight at the
// primary, through shardgate with the primary only, with primary + replica (reads split round robin, and replica
// only); then a write workload (pgbench -N) through shardgate with the replay-LSN monitor off and on (on: each
// transaction that may have written asks the primary for its WAL position before its server goes back to the pool).
// Rounds interleaved, medians reported, with the proxy's CPU per transaction. --docs yes writes docs/benchmarks.md.
// Usage: npx tsx bench/pgbench-replicas.ts [--duration 10] [--scale 2] [--clients 8] [--rounds 2] [--docs yes]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPgCluster } from '../src/testing/pg-cluster.js';
import { freePort } from '../src/testing/free-port.js';
import { parseArgs } from './lib/args.js';
import { runPgbench } from './lib/pgbench.js';
import { cpuSeconds } from './lib/procs.js';
import { median, writeDocSection } from './lib/report.js';
import { shardgateCommand } from './lib/targets.js';

const SCRIPT = 'bench/pgbench-replicas.ts';
const opts = parseArgs(SCRIPT, {
  duration: { default: 10, help: 'seconds per pgbench run' },
  scale: { default: 2, help: 'pgbench scale factor' },
  clients: { default: 8, help: 'pgbench clients (-c)' },
  rounds: { default: 2, help: 'interleaved rounds per workload (medians reported)' },
  docs: { default: 'no', help: 'write the results into docs/benchmarks.md', choices: ['yes', 'no'] },
});
const USER = 'bench';
const PASSWORD = 'bench';
const root = path.resolve(import.meta.dirname, '..');

/** One pgbench run (resolves when it exits): tps NaN when it printed none. */
async function pgbench(port: number, extra: string[]): Promise<{ tps: number; failed: number; out: string }> {
  const target = { host: '127.0.0.1', port, user: USER, password: PASSWORD, database: USER };
  const run = await runPgbench(target, extra, 15 * 60_000);
  return { tps: run.tps ?? NaN, failed: run.failed ?? 0, out: run.out };
}

interface Proxy {
  port: number;
  child: ChildProcess;
}

async function startProxy(dir: string, name: string, general: string, entries: string): Promise<Proxy> {
  const port = await freePort();
  const config = path.join(dir, `${name}.toml`);
  const users = path.join(dir, 'users.toml');
  fs.writeFileSync(
    config,
    `[general]\nhost = "127.0.0.1"\nport = ${port}\nlog_level = "warn"\nauth_type = "md5"\ndefault_pool_size = 20\n${general}\n[admin]\npassword = "admin"\n${entries}`,
  );
  fs.writeFileSync(users, `[[users]]\nname = "${USER}"\ndatabase = "${USER}"\npassword = "${PASSWORD}"\n`);
  const command = await shardgateCommand('dist');
  const child = spawn(command.file, [...command.args, '--config', config, '--users', users], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await new Promise((r) => setTimeout(r, 1500));
  return { port, child };
}

async function stopProxy(proxy: Proxy): Promise<void> {
  if (proxy.child.exitCode !== null) return;
  const exited = new Promise((r) => proxy.child.once('exit', r));
  proxy.child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
}

async function main(): Promise<void> {
  const cluster = await startPgCluster({
    count: 1,
    authMethod: 'md5',
    users: [{ name: USER, password: PASSWORD }],
    databases: [USER],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-bench-replicas-'));
  const proxies: Proxy[] = [];
  try {
    const primary = cluster.servers[0];
    const init = spawnSync(
      'pgbench',
      ['-h', '127.0.0.1', '-p', String(primary.port), '-U', USER, '-i', '-q', '-s', String(opts.scale), USER],
      { env: { ...process.env, PGPASSWORD: PASSWORD }, encoding: 'utf8' },
    );
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    if (cluster.addReplica === undefined) throw new Error('needs local PostgreSQL binaries (pg_basebackup)');
    const replica = cluster.servers[await cluster.addReplica(0)];
    const entry = (port: number, role: string): string =>
      `[[databases]]\nname = "${USER}"\nhost = "127.0.0.1"\nport = ${port}\nrole = "${role}"\n`;
    const both = entry(primary.port, 'primary') + entry(replica.port, 'replica');
    const targets: [string, number][] = [['PostgreSQL primary, direct', primary.port]];
    const add = async (label: string, general: string, entries: string): Promise<void> => {
      const p = await startProxy(dir, `p${proxies.length}`, general, entries);
      proxies.push(p);
      targets.push([label, p.port]);
    };
    await add('shardgate, primary only', '', entry(primary.port, 'primary'));
    await add('shardgate, primary + replica (round robin)', 'load_balancing_strategy = "round_robin"', both);
    await add('shardgate, replica only (exclude_primary)', 'read_write_split = "exclude_primary"', both);
    await add('shardgate, primary + replica, LSN monitor off', '', both);
    await add('shardgate, primary + replica, LSN monitor on (read-your-writes)', 'lsn_check_delay = 0', both);

    const run = (clients: number, w: string[]): string[] => [
      '-c',
      String(clients),
      '-j',
      '2',
      '-T',
      String(opts.duration),
      '-n',
      ...w,
    ];
    const workloads: { label: string; args: string[]; targets: number[] }[] = [
      { label: 'select-only (-S), extended', args: ['-S', '-M', 'extended'], targets: [0, 1, 2, 3] },
      { label: 'select-only (-S), prepared', args: ['-S', '-M', 'prepared'], targets: [0, 1, 2, 3] },
      { label: 'simple-update (-N), extended', args: ['-N', '-M', 'extended'], targets: [0, 4, 5] },
    ];
    const rows: string[] = [];
    for (const w of workloads) {
      const tps = new Map<number, number[]>();
      const cpu = new Map<number, number[]>();
      let failed = 0;
      for (let round = 0; round < opts.rounds; round++) {
        for (const t of w.targets) {
          const pid = t === 0 ? null : (proxies[t - 1].child.pid ?? null);
          const before = pid === null ? 0 : cpuSeconds(pid);
          const r = await pgbench(targets[t][1], run(opts.clients, w.args));
          if (!Number.isFinite(r.tps)) console.error(r.out);
          failed += r.failed;
          (tps.get(t) ?? tps.set(t, []).get(t))?.push(r.tps);
          if (pid !== null)
            (cpu.get(t) ?? cpu.set(t, []).get(t))?.push(
              ((cpuSeconds(pid) - before) / (r.tps * opts.duration)) * 1e6,
            );
        }
      }
      const base = median(tps.get(w.targets[1]) ?? []) ?? NaN;
      for (const t of w.targets) {
        const m = median(tps.get(t) ?? []) ?? NaN;
        const us = median(cpu.get(t) ?? []);
        const line = `| ${w.label} | ${targets[t][0]} | ${m.toFixed(0)} | ${t === 0 ? '—' : `${(m / base).toFixed(2)}×`} | ${us === null ? '—' : us.toFixed(1)} |`;
        console.log(line);
        rows.push(line);
      }
      if (failed > 0) console.log(`  (${failed} failed transactions)`);
    }
    if (opts.docs === 'yes') {
      const section = [
        '## Replicas: pgbench -S with a primary and a streaming replica; the cost of read-your-writes',
        '',
        `Measured ${new Date().toISOString()} with \`npx tsx ${SCRIPT} --duration ${opts.duration} --scale ${opts.scale} --clients ${opts.clients} --rounds ${opts.rounds}\``,
        '(medians of interleaved rounds). The primary and its replica (pg_basebackup -R) run on the same 2-core machine as',
        'pgbench and the proxy, so a replica adds no CPU here: these numbers show what the read/write split itself costs',
        'and that reads spread, not the capacity a replica on its own machine adds (there, select-only throughput grows',
        'with the servers taking reads until the proxy or the clients are the limit). "vs" compares with the row',
        '"shardgate, primary only" (select-only) or "LSN monitor off" (simple-update). Proxy CPU = the proxy process\'s',
        'utime + stime per transaction. A database with replicas parses each statement to classify it (plan cache: once',
        'per distinct text).',
        '',
        '| workload | target | tps | vs | proxy CPU µs/tx |',
        '| :-- | :-- | --: | --: | --: |',
        ...rows,
        '',
      ].join('\n');
      await writeDocSection(path.join(root, 'docs/benchmarks.md'), 'pgbench-replicas', section);
    }
  } finally {
    for (const p of proxies) await stopProxy(p);
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
