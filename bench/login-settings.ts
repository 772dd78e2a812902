// What checking startup settings on a server costs a login (src/frontend/startup-check.ts).
//
//   npx tsx bench/login-settings.ts [--logins 400] [--auth md5]
//
// Starts one PostgreSQL server and shardgate (transaction pooling, its own process), then logs in `--logins` times per
// case, the cases interleaved (connect, authenticate, ReadyForQuery, Terminate), and reports median and p95 login time:
// PostgreSQL directly; shardgate with no startup settings (node-postgres' default); postgres.js' packet
// (client_encoding, application_name: valid as given, never sent to a server); a JDBC-like packet (DateStyle,
// TimeZone, extra_float_digits …: checked on a server once, then from the cache); and a packet that is new every time
// (statement_timeout = <n>: a server round trip per login, the worst case). Writes bench/results/login-settings-<ts>.json
// and the login-settings section of docs/benchmarks.md.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from './lib/args.js';
import { login } from './lib/pg-wire-client.js';
import { log, runMain } from './lib/procs.js';
import { fileTimestamp, fmtFixed, markdownTable, textTable, writeDocSection } from './lib/report.js';
import {
  BENCH_DB,
  BENCH_PASSWORD,
  BENCH_USER,
  REPO_ROOT,
  machineInfo,
  startBenchPostgres,
  startShardgate,
  type BenchAuth,
  type Endpoint,
  type Runner,
} from './lib/targets.js';

const SCRIPT = 'bench/login-settings.ts';

const opts = parseArgs(SCRIPT, {
  logins: { default: 400, help: 'logins per case, one after the other' },
  auth: { default: 'md5', help: 'md5 | scram (SCRAM makes every login slower, for all cases alike)' },
  runner: { default: 'dist', help: 'dist (node dist/cli.js, rebuilt if stale) | tsx' },
});

interface Case {
  name: string;
  target: 'direct' | 'shardgate';
  params: (i: number) => Record<string, string>;
}

const CASES: Case[] = [
  { name: 'shardgate, no settings (node-postgres)', target: 'shardgate', params: () => ({}) },
  {
    name: 'shardgate, postgres.js packet (valid as given)',
    target: 'shardgate',
    params: () => ({ client_encoding: 'UTF8', application_name: 'postgres.js' }),
  },
  {
    name: 'shardgate, JDBC-like packet (cached)',
    target: 'shardgate',
    params: () => ({
      client_encoding: 'UTF8',
      DateStyle: 'ISO',
      TimeZone: 'Europe/Paris',
      extra_float_digits: '3',
      application_name: 'PostgreSQL JDBC Driver',
    }),
  },
  {
    name: 'shardgate, new packet every login (server round trip)',
    target: 'shardgate',
    params: (i) => ({ options: `-c statement_timeout=${1000 + i}` }),
  },
  { name: 'PostgreSQL directly, no settings', target: 'direct', params: () => ({}) },
];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

async function loginOnce(ep: Endpoint, params: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const conn = await login({
    host: ep.host,
    port: ep.port,
    user: BENCH_USER,
    password: BENCH_PASSWORD,
    database: BENCH_DB,
    params,
  });
  const ms = performance.now() - t0;
  conn.close();
  return ms;
}

/**
 * `n` rounds of one login per shardgate case, interleaved so that load changes and warm-up affect them alike; then the
 * direct logins (a PostgreSQL backend still exiting after its login would slow down whichever login came next).
 */
async function timeLogins(endpoints: Endpoint[], n: number): Promise<number[][]> {
  const times = CASES.map(() => [] as number[]);
  const proxied = CASES.map((c, i) => i).filter((i) => CASES[i].target === 'shardgate');
  for (let i = 0; i < n; i++) {
    for (const c of proxied) times[c].push(await loginOnce(endpoints[c], CASES[c].params(i)));
  }
  for (let c = 0; c < CASES.length; c++) {
    if (CASES[c].target === 'direct')
      for (let i = 0; i < n; i++) times[c].push(await loginOnce(endpoints[c], {}));
  }
  return times;
}

async function main(): Promise<void> {
  const auth = opts.auth as BenchAuth;
  const startedAt = new Date();
  const machine = machineInfo();
  const postgres = await startBenchPostgres(auth);
  const shardgate = await startShardgate({
    runner: opts.runner as Runner,
    server: postgres.server,
    auth,
    poolSize: 10,
    fdLimit: 4096,
    maxClients: 100,
  });
  const endpoints = CASES.map((c) => (c.target === 'direct' ? postgres.endpoint : shardgate.endpoint));
  await timeLogins(endpoints, Math.min(100, opts.logins)); // warm-up (JIT, pools, the cache's first entries)
  const times = await timeLogins(endpoints, opts.logins);
  const results = CASES.map((c, i) => {
    const sorted = times[i].sort((a, b) => a - b);
    const r = { name: c.name, p50: percentile(sorted, 50), p95: percentile(sorted, 95) };
    log(`${c.name}: median ${r.p50.toFixed(2)} ms, p95 ${r.p95.toFixed(2)} ms`);
    return r;
  });
  const headers = ['case', 'median ms', 'p95 ms'];
  const rows = results.map((r) => [r.name, fmtFixed(r.p50, 2), fmtFixed(r.p95, 2)]);
  process.stdout.write(`\n${textTable(headers, rows)}\n`);

  const resultsDir = path.join(REPO_ROOT, 'bench/results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `login-settings-${fileTimestamp(startedAt)}.json`);
  fs.writeFileSync(file, JSON.stringify({ startedAt, machine, auth, logins: opts.logins, results }, null, 2));
  log(`results: ${path.relative(REPO_ROOT, file)}`);
  await writeDocSection(
    path.join(REPO_ROOT, 'docs/benchmarks.md'),
    'login-settings',
    `## Login time with startup settings (${opts.logins} logins per case, cases interleaved, ${auth})

${markdownTable(headers, rows)}

Measured ${startedAt.toISOString().slice(0, 10)} on ${machine.cpus} CPU(s) (${machine.cpuModel}), load average
${machine.loadAvg.join(' ')}, PostgreSQL ${postgres.version}, by \`npx tsx ${SCRIPT}\`. Startup settings are checked on a
server as PostgreSQL checks them at login (src/frontend/startup-check.ts): settings valid as given cost nothing, a
packet seen before is answered from a per-pool cache, and only a packet never seen costs a round trip to a server
(plus a set_config per setting, then the pooled connection carries them).`,
  );
}

void runMain(main);
