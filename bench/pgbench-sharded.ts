// Benchmark (not a test): pgbench through shardgate with pgbench_accounts and pgbench_history sharded by aid over 2
// shards (branches/tellers copied to both), against the same workload on one PostgreSQL directly. Prints TPS and the
// ratio per workload, and writes its section of docs/benchmarks.md when asked (--docs yes).
// Usage: npx tsx bench/pgbench-sharded.ts [--duration 10] [--scale 2] [--clients 8] [--docs yes]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startPgCluster } from '../src/testing/pg-cluster.js';
import { freePort } from '../src/testing/free-port.js';
import { parseArgs } from './lib/args.js';
import { writeDocSection } from './lib/report.js';
import { shardgateCommand } from './lib/targets.js';

const SCRIPT = 'bench/pgbench-sharded.ts';
const opts = parseArgs(SCRIPT, {
  duration: { default: 10, help: 'seconds per pgbench run' },
  scale: { default: 2, help: 'pgbench scale factor' },
  clients: { default: 8, help: 'pgbench clients (-c)' },
  docs: { default: 'no', help: 'write the results into docs/benchmarks.md', choices: ['yes', 'no'] },
});
const DURATION = opts.duration;
const SCALE = opts.scale;
const CLIENTS = opts.clients;
const USER = 'bench';
const PASSWORD = 'bench';
const root = path.resolve(import.meta.dirname, '..');

function pgbench(port: number, extra: string[]): { tps: number; failed: number; out: string } {
  const r = spawnSync('pgbench', ['-h', '127.0.0.1', '-p', String(port), '-U', USER, ...extra, USER], {
    env: { ...process.env, PGPASSWORD: PASSWORD },
    encoding: 'utf8',
  });
  const out = `${r.stdout}${r.stderr}`;
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? NaN);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  return { tps, failed, out };
}

async function sql(port: number, text: string): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database: USER });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

async function main(): Promise<void> {
  const cluster = await startPgCluster({
    count: 3,
    authMethod: 'md5',
    users: [{ name: USER, password: PASSWORD }],
    databases: [USER],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardgate-bench-'));
  let proxy: ReturnType<typeof spawn> | null = null;
  try {
    const [direct, s0, s1] = cluster.servers;
    console.log(`pgbench -i -s ${SCALE} on the reference and on both shards …`);
    for (const s of [direct, s0, s1]) {
      const r = spawnSync(
        'pgbench',
        ['-h', '127.0.0.1', '-p', String(s.port), '-U', USER, '-i', '-q', '-s', String(SCALE), USER],
        {
          env: { ...process.env, PGPASSWORD: PASSWORD },
          encoding: 'utf8',
        },
      );
      if (r.status !== 0) throw new Error(`pgbench -i failed: ${r.stderr}`);
    }
    // Keep on each shard only the accounts PostgreSQL's own hash partitioning assigns to it.
    for (const [shard, s] of [s0, s1].entries()) {
      await sql(
        s.port,
        `create table sg_hash (aid int) partition by hash (aid);
         delete from pgbench_accounts where not satisfies_hash_partition('sg_hash'::regclass, 2, ${shard}, aid);
         drop table sg_hash;`,
      );
      await sql(s.port, 'vacuum analyze pgbench_accounts');
    }
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
    proxy = spawn(command.file, [...command.args, '--config', config, '--users', users], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await new Promise((r) => setTimeout(r, 1500));

    const workloads: [string, string[]][] = [
      ['select-only, simple', ['-S', '-M', 'simple']],
      ['select-only, extended', ['-S', '-M', 'extended']],
      ['select-only, prepared', ['-S', '-M', 'prepared']],
      ['tpcb-like, extended', ['-n', '-M', 'extended']],
    ];
    const rows: string[] = [];
    for (const [label, w] of workloads) {
      const base = ['-c', String(CLIENTS), '-j', '2', '-T', String(DURATION), ...w];
      const d = pgbench(direct.port, base);
      const p = pgbench(port, base);
      if (!Number.isFinite(p.tps)) console.error(p.out);
      const line = `| ${label} | ${d.tps.toFixed(0)} | ${p.tps.toFixed(0)} | ${(p.tps / d.tps).toFixed(2)}× | ${d.failed}/${p.failed} |`;
      console.log(line);
      rows.push(line);
    }
    if (opts.docs === 'yes') {
      const section = [
        '## pgbench over 2 shards (pgbench_accounts and pgbench_history sharded by aid)',
        '',
        `Measured ${new Date().toISOString()} with \`npx tsx ${SCRIPT} --duration ${DURATION} --scale ${SCALE} --clients ${CLIENTS}\`:`,
        'one PostgreSQL directly vs shardgate over two PostgreSQL shards on the same 2-core machine (so the sharded side',
        'runs two servers and the proxy on the cores the direct side gives to one server). Statements are routed by aid;',
        'with `-M extended`/`prepared` the text is constant and parsed once (plan cache); with `-M simple` the literals are',
        'made parameters first (router/literals.ts, ~0.3 µs), so one plan serves every aid. branches/tellers are copied to both shards, so the',
        "tpcb-like UPDATEs of them run on both shards, one after the other, inside the client's transaction.",
        '',
        '| workload | direct tps | shardgate (2 shards) tps | ratio | failed d/s |',
        '| :-- | --: | --: | --: | --: |',
        ...rows,
        '',
      ].join('\n');
      await writeDocSection(path.join(root, 'docs/benchmarks.md'), 'pgbench-sharded', section);
    }
  } finally {
    proxy?.kill('SIGTERM');
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
