// The node-postgres and postgres.js integration suites, run against one throwaway PostgreSQL directly and through
// shardgate (session mode, one shard) in front of it; prints the tests that fail through the proxy only.
//
//   npx tsx bench/driver-suites.ts --node-postgres /path/to/node-postgres --postgres-js /path/to/postgres
//
// The checkouts are the drivers' own repositories (brianc/node-postgres, porsager/postgres); nothing of theirs is
// kept here. node-postgres: each packages/pg/test/integration/**/*-tests.js file is one run (exit code); its
// dependencies come from this repo's node_modules plus `npm install --no-save` of its test-only ones in the checkout.
// postgres.js: tests/index.js is one run that stops at its first failure, so it is run with that stop switched off
// (a copy of tests/test.js in a temporary folder) and its per-test verdicts are compared. Not run by `npm test`.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseConfig } from '../src/config/load.js';
import { silentLogger } from '../src/logging/logger.js';
import { startProxy, type RunningProxy } from '../src/proxy.js';
import { startPgCluster, type PgCluster } from '../src/testing/pg-cluster.js';

const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const FILE_TIMEOUT_MS = 120_000;

interface Endpoint {
  name: 'direct' | 'proxy';
  host: string;
  port: number;
}

interface Outcome {
  name: string;
  isPass: boolean;
  detail: string;
}

function argValue(flag: string): string | null {
  const i = process.argv.indexOf(flag);
  return i >= 0 && i + 1 < process.argv.length ? path.resolve(process.argv[i + 1]) : null;
}

function run(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<{ code: number | null; output: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - started });
    });
  });
}

interface Setup {
  /** How the server (pg_hba) and the proxy (auth_type) check passwords. */
  auth: 'scram' | 'trust';
  users: { name: string; password: string }[];
  databases: string[];
  /** postgresql.conf settings for the server. */
  extraConf?: Record<string, string>;
}

/**
 * One throwaway PostgreSQL server and shardgate in session mode in front of it (one shard, min_pool_size 0 so the
 * suites can drop and create their databases), then `fn(direct, proxy, superuser)`; everything stops afterwards.
 */
async function withTargets(
  setup: Setup,
  fn: (endpoints: Endpoint[], superuser: [string, string]) => Promise<void>,
): Promise<void> {
  const cluster: PgCluster = await startPgCluster({
    count: 1,
    authMethod: setup.auth === 'scram' ? 'scram-sha-256' : 'trust',
    baseDir: os.tmpdir(),
    extraConf: setup.extraConf,
  });
  let proxy: RunningProxy | null = null;
  try {
    const s = cluster.servers[0];
    const users = [{ name: s.superuser, password: s.superuserPassword }, ...setup.users];
    const dbs = setup.databases
      .map(
        (d) => `[[databases]]\nname = "${d}"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "${d}"\n`,
      )
      .join('\n');
    const pgdog =
      `[general]\nhost = "127.0.0.1"\nport = 0\npooler_mode = "session"\nmin_pool_size = 0\n` +
      `auth_type = "${setup.auth}"\n\n${dbs}`;
    const usersToml = users
      .flatMap((u) =>
        setup.databases.map(
          (d) => `[[users]]\nname = "${u.name}"\ndatabase = "${d}"\npassword = "${u.password}"\n`,
        ),
      )
      .join('\n');
    const { config } = parseConfig(pgdog, usersToml, { configPath: 'pgdog.toml', usersPath: 'users.toml' });
    proxy = await startProxy(config, silentLogger());
    await fn(
      [
        { name: 'direct', host: s.host, port: s.port },
        { name: 'proxy', host: '127.0.0.1', port: proxy.port },
      ],
      [s.superuser, s.superuserPassword],
    );
  } finally {
    await proxy?.close();
    await cluster.stop();
  }
}

function libpqEnv(e: Endpoint, user: string, password: string, database: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: e.host,
    PGPORT: String(e.port),
    PGUSER: user,
    PGPASSWORD: password,
    PGDATABASE: database,
  };
}

function listFiles(dir: string, suffix: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(suffix))
    .sort();
}

async function nodePostgres(
  checkout: string,
  endpoints: Endpoint[],
  superuser: [string, string],
): Promise<void> {
  const pkg = path.join(checkout, 'packages', 'pg');
  const modules = path.join(pkg, 'node_modules');
  fs.mkdirSync(modules, { recursive: true });
  for (const dep of ['pg-connection-string', 'pg-pool', 'pg-protocol', 'pg-types', 'pgpass']) {
    const link = path.join(modules, dep);
    if (!fs.existsSync(link)) fs.symlinkSync(path.join(REPO, 'node_modules', dep), link);
  }
  if (!fs.existsSync(path.join(modules, 'pg-copy-streams'))) {
    await promisify(execFile)(
      'npm',
      [
        'install',
        '--no-save',
        '--no-audit',
        '--no-fund',
        '--prefix',
        pkg,
        'async@2.6.4',
        'bluebird@3.7.2',
        'co@4.6.0',
        'pg-copy-streams@0.3.0',
      ],
      { cwd: pkg },
    );
  }
  const files = listFiles(path.join(pkg, 'test', 'integration'), '-tests.js');
  const results = new Map<string, Outcome[]>();
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'driver-suites-node-postgres-'));
  console.log(`node-postgres: each file's output in ${logDir}`);
  for (const e of endpoints) {
    const outcomes: Outcome[] = [];
    for (const f of files) {
      const r = await run(process.execPath, [path.join('test', 'integration', f)], {
        cwd: pkg,
        env: libpqEnv(e, superuser[0], superuser[1], 'postgres'),
        timeoutMs: FILE_TIMEOUT_MS,
      });
      outcomes.push({ name: f, isPass: r.code === 0, detail: r.output.slice(-4000) });
      const logFile = path.join(logDir, `${e.name}-${f.replaceAll('/', '_')}.log`);
      fs.writeFileSync(logFile, r.output);
    }
    results.set(e.name, outcomes);
    console.log(
      `node-postgres ${e.name}: ${outcomes.filter((o) => o.isPass).length}/${outcomes.length} files pass`,
    );
  }
  report('node-postgres', results);
}

async function postgresJs(
  checkout: string,
  endpoints: Endpoint[],
  superuser: [string, string],
): Promise<void> {
  // tests/test.js stops after the first failure; a copy of the tests folder runs every test and prints each verdict.
  const work = fs.mkdtempSync(path.join(checkout, '.sg-tests-'));
  try {
    fs.cpSync(path.join(checkout, 'tests'), work, { recursive: true });
    const testJs = path.join(work, 'test.js');
    const original = fs.readFileSync(testJs, 'utf8');
    const patched = original
      .replace('failed\n      ? (ignored++, ignore)\n      : fn()', 'fn()')
      .replace(
        "process.stdout.write('✅')",
        "process.stdout.write('\\nSG-PASS ' + line + ' ' + name + '\\n')",
      )
      .replace(
        'tests[line].failed = failed = true',
        "tests[line].failed = failed = true; process.stdout.write('\\nSG-FAIL ' + line + ' ' + name + ' :: ' + String(err && err.message || err).split('\\n')[0] + '\\n')",
      );
    // A test that rejects outside its own promise (postgres.js `subscribe` when refused) would end the process.
    const guarded =
      "const sgSeen = new Set(); process.on('unhandledRejection', (e) => { const m = String((e && e.message) || e); " +
      "if (!sgSeen.has(m)) { sgSeen.add(m); process.stdout.write('\\nSG-UNHANDLED ' + m + '\\n') } })\n" +
      patched;
    if (patched === original)
      throw new Error('postgres.js tests/test.js: unknown layout, cannot run every test');
    fs.writeFileSync(testJs, guarded);
    // The suite imports ../src/index.js relative to tests/: point the copy at the checkout's source.
    for (const f of listFiles(work, '.js')) {
      const file = path.join(work, f);
      fs.writeFileSync(
        file,
        fs.readFileSync(file, 'utf8').replaceAll("'../src/", `'${path.join(checkout, 'src')}/`),
      );
    }
    const results = new Map<string, Outcome[]>();
    for (const e of endpoints) {
      const r = await run(process.execPath, ['index.js'], {
        cwd: work,
        env: libpqEnv(e, superuser[0], superuser[1], 'postgres'),
        timeoutMs: 6 * 60_000,
      });
      const logFile = path.join(os.tmpdir(), `driver-suites-postgres-js-${e.name}.log`);
      fs.writeFileSync(logFile, r.output);
      console.log(
        `postgres.js ${e.name}: exit ${r.code} after ${Math.round(r.ms / 1000)} s, output in ${logFile}`,
      );
      const outcomes: Outcome[] = [];
      for (const line of r.output.split('\n')) {
        const m = /^SG-(PASS|FAIL) (\d+) (.*?)(?: :: (.*))?$/.exec(line);
        if (m) outcomes.push({ name: `${m[3]} (line ${m[2]})`, isPass: m[1] === 'PASS', detail: m[4] ?? '' });
      }
      results.set(e.name, outcomes);
      console.log(
        `postgres.js ${e.name}: ${outcomes.filter((o) => o.isPass).length}/${outcomes.length} tests pass`,
      );
    }
    report('postgres.js', results);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The first line of `output` that names an error (else its last line), for the summary. */
function firstError(output: string): string {
  const lines = output.split('\n').map((l) => l.trim());
  const hit = lines.find((l) => /error|assert|timed out|expected/i.test(l) && !l.startsWith('at '));
  return (hit ?? lines.filter((l) => l !== '').pop() ?? '').slice(0, 300);
}

function report(suite: string, results: Map<string, Outcome[]>): void {
  const direct = new Map((results.get('direct') ?? []).map((o) => [o.name, o]));
  const proxied = results.get('proxy') ?? [];
  const worse = proxied.filter((o) => !o.isPass && direct.get(o.name)?.isPass === true);
  const better = proxied.filter((o) => o.isPass && direct.get(o.name)?.isPass === false);
  const seen = new Set(proxied.map((o) => o.name));
  const missing = [...direct.values()].filter((o) => !seen.has(o.name));
  console.log(
    `\n${suite}: ${worse.length} fail through the proxy only, ${better.length} pass through it only`,
  );
  for (const o of worse) console.log(`  proxy only: ${o.name}\n    ${firstError(o.detail)}`);
  for (const o of better) console.log(`  direct only: ${o.name}`);
  if (missing.length > 0) {
    console.log(`  ${missing.length} finished directly but not through the proxy (the run stopped or hung):`);
    for (const o of missing) console.log(`    ${o.name}`);
  }
}

async function main(): Promise<void> {
  const np = argValue('--node-postgres');
  const pj = argValue('--postgres-js');
  if (np === null && pj === null) {
    console.error('usage: npx tsx bench/driver-suites.ts [--node-postgres DIR] [--postgres-js DIR]');
    process.exit(2);
  }
  if (np !== null) {
    await withTargets(
      { auth: 'scram', users: [], databases: ['postgres', 'template1'] },
      (endpoints, superuser) => nodePostgres(np, endpoints, superuser),
    );
  }
  if (pj !== null) {
    // Its tests log in as these users (trust, md5 and SCRAM in its own pg_hba.conf; all trusted here) to its database.
    const users = ['postgres_js_test', 'postgres_js_test_md5', 'postgres_js_test_scram'].map((name) => ({
      name,
      password: name,
    }));
    // wal_level = logical: its `subscribe` tests use logical replication.
    const setup: Setup = {
      auth: 'trust',
      users,
      databases: ['postgres', 'postgres_js_test'],
      extraConf: { wal_level: 'logical' },
    };
    await withTargets(setup, (endpoints, superuser) => postgresJs(pj, endpoints, superuser));
  }
}

await main();
