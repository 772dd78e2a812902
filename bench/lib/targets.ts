// The three things a benchmark talks to: one throwaway PostgreSQL server, PgBouncer, and shardgate (as a
// separate `node dist/cli.js` process, like in production). Each start function registers its own cleanup.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pgbenchEnv } from './pgbench.js';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort } from '../../src/testing/free-port.js';
import { startPgCluster, type AuthMethod, type PgServer } from '../../src/testing/pg-cluster.js';
import { waitForLogin } from './pg-wire-client.js';
import {
  fileTail,
  log,
  onCleanup,
  readFdLimit,
  registerTempDir,
  runCapture,
  spawnTracked,
  stopChild,
  withFdLimit,
} from './procs.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const BENCH_USER = 'bench';
export const BENCH_PASSWORD = 'bench-secret';
export const BENCH_DB = 'bench';

/** The bench user's login at `ep` (its database): for pgbench (runPgbench) and pg-wire-client.ts's logins. */
export function benchLogin(ep: Endpoint): {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
} {
  return { host: ep.host, port: ep.port, user: BENCH_USER, password: BENCH_PASSWORD, database: ep.database };
}

/** What the scripts call the auth method; PostgreSQL, PgBouncer and shardgate each spell it differently. */
export type BenchAuth = 'md5' | 'scram';

export interface Endpoint {
  name: string;
  host: string;
  port: number;
  /** Database name to connect to (PgBouncer may expose more than one). */
  database: string;
  /** The process to measure (null for PostgreSQL: it is many processes). */
  pid: number | null;
  /** Log file, for error messages and the post-run scan. */
  logFile: string | null;
}

export interface OsIdentity {
  uid: number;
  gid: number;
  name: string;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function lookupOsUser(name: string): OsIdentity | null {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f.length >= 4) return { name, uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    // no /etc/passwd
  }
  return null;
}

/** A private temp dir, removed on cleanup; owned by `owner` when given (for programs we run as another user). */
export function makeTempDir(prefix: string, owner: OsIdentity | null = null): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (owner !== null) fs.chownSync(dir, owner.uid, owner.gid);
  registerTempDir(dir);
  return dir;
}

/**
 * A directory for PostgreSQL's Unix-domain socket (unix_socket_directories), for proxies with a Unix-socket upstream:
 * short (socket paths have at most 107 bytes), writable by the OS user PostgreSQL runs as, removed on cleanup.
 */
export function makeSocketDir(): string {
  const owner = isRoot() ? lookupOsUser('postgres') : null;
  return makeTempDir('bench-sock-', owner);
}

/** libpq environment for pgbench: none of our PG* variables, the password, and no TLS/GSS negotiation. */
export function libpqEnv(): NodeJS.ProcessEnv {
  return pgbenchEnv(BENCH_PASSWORD);
}

// ---------------------------------------------------------------------------------------------------------
// PostgreSQL

export interface BenchPostgres {
  server: PgServer;
  endpoint: Endpoint;
  version: string;
  /** A direct `pg` client as the bench user (for VACUUM etc.); closed on cleanup. */
  query(sql: string): Promise<pg.QueryResult>;
}

export async function startBenchPostgres(
  auth: BenchAuth,
  extraConf: Record<string, string> = {},
): Promise<BenchPostgres> {
  const authMethod: AuthMethod = auth === 'md5' ? 'md5' : 'scram-sha-256';
  const t0 = Date.now();
  const cluster = await startPgCluster({
    count: 1,
    authMethod,
    users: [{ name: BENCH_USER, password: BENCH_PASSWORD }],
    databases: [BENCH_DB],
    extraConf: { max_connections: '300', shared_buffers: '128MB', ...extraConf },
  });
  onCleanup('stop PostgreSQL', () => cluster.stop());
  const server = cluster.servers[0];
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: BENCH_USER,
    password: BENCH_PASSWORD,
    database: BENCH_DB,
  });
  client.on('error', () => undefined);
  await client.connect();
  onCleanup('close the direct pg client', () => client.end().catch(() => undefined));
  const version = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]
    .server_version;
  log(
    `PostgreSQL ${version} on 127.0.0.1:${server.port} (pid ${server.pid}, ${authMethod}) in ${Date.now() - t0} ms`,
  );
  const logFile = server.dataDir === null ? null : path.join(server.dataDir, 'postgres.log');
  return {
    server,
    version,
    endpoint: {
      name: 'direct',
      host: server.host,
      port: server.port,
      database: BENCH_DB,
      pid: server.pid,
      logFile,
    },
    query: (sql) => client.query(sql),
  };
}

// ---------------------------------------------------------------------------------------------------------
// PgBouncer

export const PGBOUNCER_CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

function findPgBouncer(): string | null {
  for (const c of PGBOUNCER_CANDIDATES) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const c = path.join(dir, 'pgbouncer');
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return null;
}

/** Waits for a background apt install (see the brief: /tmp/apt-pgb.log ends with "done"), at most `ms`. */
async function waitForBackgroundInstall(ms: number): Promise<void> {
  const logPath = '/tmp/apt-pgb.log';
  if (!fs.existsSync(logPath)) return;
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (/done\s*$/.test(fileTail(logPath, 200)) || findPgBouncer() !== null) return;
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/**
 * The pgbouncer binary: installed, or installed now with apt-get when we are root. Returns null (with the
 * reason) when there is none, so the caller can skip PgBouncer with a clear message.
 */
export async function ensurePgBouncer(): Promise<
  { bin: string; version: string } | { bin: null; reason: string }
> {
  let bin = findPgBouncer();
  if (bin === null) await waitForBackgroundInstall(120_000);
  bin = findPgBouncer();
  if (bin === null) {
    if (!isRoot()) {
      return {
        bin: null,
        reason: 'pgbouncer is not installed and we are not root (try: sudo apt-get install -y pgbouncer)',
      };
    }
    log('pgbouncer not found: apt-get install -y pgbouncer ...');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let res = await runCapture('apt-get', ['install', '-y', '--no-install-recommends', 'pgbouncer'], {
      env,
      timeoutMs: 300_000,
    });
    if (res.code !== 0) {
      await runCapture('apt-get', ['update'], { env, timeoutMs: 300_000 });
      res = await runCapture('apt-get', ['install', '-y', '--no-install-recommends', 'pgbouncer'], {
        env,
        timeoutMs: 300_000,
      });
    }
    bin = findPgBouncer();
    if (bin === null) {
      return {
        bin: null,
        reason: `apt-get install pgbouncer failed: ${(res.stderr || res.stdout).trim().split('\n').slice(-3).join(' | ')}`,
      };
    }
  }
  const v = await runCapture(bin, ['--version'], { timeoutMs: 10_000 });
  const m = /PgBouncer\s+(\d+\.\d+(?:\.\d+)?)/.exec(v.stdout + v.stderr);
  return { bin, version: m ? m[1] : 'unknown' };
}

export function versionAtLeast(version: string, want: string): boolean {
  const a = version.split('.').map(Number);
  const b = want.split('.').map(Number);
  for (let i = 0; i < b.length; i++) {
    const x = a[i] ?? 0;
    if (Number.isNaN(x)) return false;
    if (x !== b[i]) return x > b[i];
  }
  return true;
}

export interface PgBouncerOptions {
  bin: string;
  version: string;
  server: PgServer;
  auth: BenchAuth;
  poolSize: number;
  maxClientConn: number;
  fdLimit: number;
  /** Where PgBouncer connects to the server: default its address (TCP); a socket directory: its Unix socket. */
  serverHost?: string;
  /** A command to run PgBouncer under, e.g. valgrind and its flags (bench/instructions.ts); none by default. */
  wrap?: readonly string[];
  /**
   * More databases, each on its own server of the same host (bench/pgbench-sharded.ts `--floor yes`: client-side
   * routing through one PgBouncer). Each in transaction mode and, as `<name>_session`, in session mode.
   */
  moreDatabases?: readonly { name: string; port: number }[];
}

export interface RunningPgBouncer {
  endpoint: Endpoint;
  /** Database name served in session mode (same server), for `-M prepared` on PgBouncer < 1.21. */
  sessionDatabase: string;
  /** True when this PgBouncer tracks protocol-level prepared statements in transaction mode (≥ 1.21). */
  hasPreparedStatements: boolean;
  child: ChildProcess;
  /** The OS user it runs as (root cannot run it), null when it runs as we do. */
  identity: OsIdentity | null;
}

export async function startPgBouncer(opts: PgBouncerOptions): Promise<RunningPgBouncer> {
  // PgBouncer refuses to run as root: run it as the `postgres` OS user (as PostgreSQL itself is).
  let identity: OsIdentity | null = null;
  if (isRoot()) {
    identity = lookupOsUser('postgres') ?? lookupOsUser('nobody');
    if (identity === null)
      throw new Error('running as root, and there is no `postgres` or `nobody` OS user to run PgBouncer as');
  }
  const dir = makeTempDir('bench-pgbouncer-', identity);
  const port = await freePort();
  const hasPrepared = versionAtLeast(opts.version, '1.21');
  const authFile = path.join(dir, 'userlist.txt');
  fs.writeFileSync(authFile, `"${BENCH_USER}" "${BENCH_PASSWORD}"\n`, { mode: 0o600 });
  const s = opts.server;
  const host = opts.serverHost ?? s.host;
  const conf = [
    '[databases]',
    `${BENCH_DB} = host=${host} port=${s.port} dbname=${BENCH_DB}`,
    `${BENCH_DB}_session = host=${host} port=${s.port} dbname=${BENCH_DB} pool_mode=session`,
    ...(opts.moreDatabases ?? []).flatMap((d) => [
      `${d.name} = host=${host} port=${d.port} dbname=${BENCH_DB}`,
      `${d.name}_session = host=${host} port=${d.port} dbname=${BENCH_DB} pool_mode=session`,
    ]),
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    `auth_type = ${opts.auth === 'md5' ? 'md5' : 'scram-sha-256'}`,
    `auth_file = ${authFile}`,
    'pool_mode = transaction',
    `default_pool_size = ${opts.poolSize}`,
    'min_pool_size = 0',
    'reserve_pool_size = 0',
    `max_client_conn = ${opts.maxClientConn}`,
    'listen_backlog = 4096',
    ...(hasPrepared ? ['max_prepared_statements = 200'] : []),
    'ignore_startup_parameters = extra_float_digits,options',
    `logfile = ${path.join(dir, 'pgbouncer.log')}`,
    `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
    'log_connections = 0',
    'log_disconnections = 0',
    'log_pooler_errors = 1',
    'stats_period = 3600',
    '',
  ].join('\n');
  const confFile = path.join(dir, 'pgbouncer.ini');
  fs.writeFileSync(confFile, conf);
  if (identity !== null) {
    for (const f of [authFile, confFile]) fs.chownSync(f, identity.uid, identity.gid);
  }
  const logFile = path.join(dir, 'pgbouncer.log');
  const stdoutFile = path.join(dir, 'stdout.log');
  const out = fs.openSync(stdoutFile, 'a');
  if (identity !== null) fs.fchownSync(out, identity.uid, identity.gid);
  const wrap = opts.wrap ?? [];
  const cmd =
    wrap.length === 0
      ? withFdLimit(opts.fdLimit, opts.bin, [confFile])
      : withFdLimit(opts.fdLimit, wrap[0], [...wrap.slice(1), opts.bin, confFile]);
  const child = spawnTracked(cmd.file, cmd.args, {
    cwd: dir,
    stdio: ['ignore', out, out],
    ...(identity !== null ? { uid: identity.uid, gid: identity.gid } : {}),
  });
  fs.closeSync(out);
  // SIGTERM is PgBouncer's immediate shutdown (SIGINT would wait for clients).
  onCleanup('stop PgBouncer', () => stopChild(child, 5_000, 'SIGTERM'));
  const endpoint: Endpoint = {
    name: 'pgbouncer',
    host: '127.0.0.1',
    port,
    database: BENCH_DB,
    pid: child.pid ?? null,
    logFile,
  };
  await waitUntilUp('PgBouncer', child, port, wrap.length === 0 ? 20_000 : 120_000, [stdoutFile, logFile]);
  reportFdLimit('PgBouncer', child.pid, opts.maxClientConn);
  log(
    `PgBouncer ${opts.version} on 127.0.0.1:${port} (pid ${child.pid}${identity ? `, as OS user ${identity.name}` : ''}, pool ${opts.poolSize}, transaction mode${hasPrepared ? ', max_prepared_statements 200' : ''}, server at ${host}:${s.port})`,
  );
  return {
    endpoint,
    sessionDatabase: `${BENCH_DB}_session`,
    hasPreparedStatements: hasPrepared,
    child,
    identity,
  };
}

function reportFdLimit(name: string, pid: number | undefined, need: number): void {
  if (pid === undefined) return;
  const lim = readFdLimit(pid);
  if (lim !== null && lim.soft < need + 100) {
    log(
      `warning: ${name} (pid ${pid}) may open only ${lim.soft} files, fewer than the ${need} clients it should accept; raise the hard limit (ulimit -Hn)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------
// shardgate

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtimeMs(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

function mtimeMs(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

export type Runner = 'dist' | 'tsx';

/**
 * How to start the proxy. `dist`: `node dist/cli.js`, rebuilding (tsc -p tsconfig.build.json) first when any
 * src/ file is newer than dist/cli.js. `tsx`: `node --import tsx src/cli.ts`, no build.
 */
export async function shardgateCommand(
  runner: Runner,
): Promise<{ file: string; args: string[]; how: string }> {
  if (runner === 'tsx') {
    return {
      file: process.execPath,
      args: ['--import', 'tsx', path.join(REPO_ROOT, 'src/cli.ts')],
      how: 'node --import tsx src/cli.ts',
    };
  }
  const cli = path.join(REPO_ROOT, 'dist/cli.js');
  const srcNewest = newestMtimeMs(path.join(REPO_ROOT, 'src'));
  if (mtimeMs(cli) < srcNewest) {
    log('dist/ is older than src/: building (tsc -p tsconfig.build.json) ...');
    const t0 = Date.now();
    const tsc = path.join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
    const res = await runCapture(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
      cwd: REPO_ROOT,
      timeoutMs: 300_000,
    });
    if (res.code !== 0) {
      const errors = (res.stdout + res.stderr).split('\n').filter((l) => /error TS/.test(l));
      if (mtimeMs(cli) < t0 - 1_000) {
        throw new Error(`build failed and produced no dist/cli.js:\n${(res.stdout + res.stderr).trim()}`);
      }
      // tsc still emits JavaScript when there are type errors.
      log(
        `warning: build reported ${errors.length} type error(s) but emitted dist/ (first: ${errors[0] ?? '?'})`,
      );
    } else {
      log(`built dist/ in ${Date.now() - t0} ms`);
    }
  }
  return { file: process.execPath, args: [cli], how: 'node dist/cli.js' };
}

export interface ShardgateOptions {
  runner: Runner;
  server: PgServer;
  auth: BenchAuth;
  poolSize: number;
  fdLimit: number;
  /** Clients it must accept, for the file-descriptor check. */
  maxClients: number;
  /** Extra node flags before the script (e.g. --cpu-prof); none by default. */
  nodeArgs?: readonly string[];
  /** Where shardgate connects to the server: default its address (TCP); a socket directory: its Unix socket. */
  serverHost?: string;
  /**
   * Another JavaScript runtime's binary (e.g. Bun's) to run the built dist/cli.js with instead of node; needs
   * runner "dist". nodeArgs are passed to it as they are.
   */
  runtime?: string;
  /** Extra environment variables for the proxy process. */
  env?: NodeJS.ProcessEnv;
}

export interface RunningShardgate {
  endpoint: Endpoint;
  child: ChildProcess;
  how: string;
}

export async function startShardgate(opts: ShardgateOptions): Promise<RunningShardgate> {
  let cmd = await shardgateCommand(opts.runner);
  if (opts.runtime !== undefined) {
    if (opts.runner !== 'dist') throw new Error('another runtime runs dist/cli.js: use runner "dist"');
    const version = await runCapture(opts.runtime, ['--version'], { timeoutMs: 10_000 });
    cmd = {
      file: opts.runtime,
      args: cmd.args,
      how: `${path.basename(opts.runtime)} ${version.stdout.trim()} dist/cli.js`,
    };
  }
  const dir = makeTempDir('bench-shardgate-');
  const port = await freePort();
  const s = opts.server;
  const pgdogToml = [
    '[general]',
    'host = "127.0.0.1"',
    `port = ${port}`,
    `default_pool_size = ${opts.poolSize}`,
    'min_pool_size = 0',
    'pooler_mode = "transaction"',
    `auth_type = "${opts.auth}"`,
    'log_level = "warn"',
    'log_format = "text"',
    '',
    '[admin]',
    'password = "bench-admin"',
    '',
    '[[databases]]',
    `name = "${BENCH_DB}"`,
    `host = "${opts.serverHost ?? s.host}"`,
    `port = ${s.port}`,
    `database_name = "${BENCH_DB}"`,
    '',
  ].join('\n');
  const usersToml = [
    '[[users]]',
    `name = "${BENCH_USER}"`,
    `database = "${BENCH_DB}"`,
    `password = "${BENCH_PASSWORD}"`,
    '',
  ].join('\n');
  const configPath = path.join(dir, 'pgdog.toml');
  const usersPath = path.join(dir, 'users.toml');
  fs.writeFileSync(configPath, pgdogToml);
  fs.writeFileSync(usersPath, usersToml, { mode: 0o600 });
  const logFile = path.join(dir, 'shardgate.log');
  const out = fs.openSync(logFile, 'a');
  const wrapped = withFdLimit(opts.fdLimit, cmd.file, [
    ...(opts.nodeArgs ?? []),
    ...cmd.args,
    '--config',
    configPath,
    '--users',
    usersPath,
  ]);
  const child = spawnTracked(wrapped.file, wrapped.args, {
    cwd: REPO_ROOT,
    stdio: ['ignore', out, out],
    env: { ...process.env, NODE_ENV: 'production', ...opts.env },
  });
  fs.closeSync(out);
  onCleanup('stop shardgate', () => stopChild(child, 5_000, 'SIGTERM'));
  const endpoint: Endpoint = {
    name: 'shardgate',
    host: '127.0.0.1',
    port,
    database: BENCH_DB,
    pid: child.pid ?? null,
    logFile,
  };
  await waitUntilUp('shardgate', child, port, 30_000, [logFile]);
  reportFdLimit('shardgate', child.pid, opts.maxClients);
  log(
    `shardgate (${cmd.how}) on 127.0.0.1:${port} (pid ${child.pid}, pool ${opts.poolSize}, transaction mode, ${opts.auth}, server at ${opts.serverHost ?? s.host}:${s.port})`,
  );
  return { endpoint, child, how: cmd.how };
}

export interface RunningRelay {
  endpoint: Endpoint;
  child: ChildProcess;
}

/**
 * The parse-free Node relay (bench/lib/node-relay.ts) in front of `serverHost:serverPort`: the floor a hop on Node
 * costs here. One upstream connection per client, so it needs no pool and no credentials of its own.
 */
export async function startNodeRelay(
  serverHost: string,
  serverPort: number,
  wrap: readonly string[] = [],
): Promise<RunningRelay> {
  const { endpoints, child } = await startNodeRelays([{ host: serverHost, port: serverPort }], wrap);
  return { endpoint: endpoints[0], child };
}

/** One relay process with one listening port per upstream (client-side routing through one Node hop). */
export async function startNodeRelays(
  upstreams: readonly { host: string; port: number }[],
  wrap: readonly string[] = [],
): Promise<{ endpoints: Endpoint[]; child: ChildProcess }> {
  const dir = makeTempDir('bench-relay-');
  const ports: number[] = [];
  for (let i = 0; i < upstreams.length; i++) ports.push(await freePort());
  const logFile = path.join(dir, 'relay.log');
  const out = fs.openSync(logFile, 'a');
  const relayArgs = [
    '--import',
    'tsx',
    path.join(REPO_ROOT, 'bench/lib/node-relay.ts'),
    ...upstreams.flatMap((u, i) => [String(ports[i]), u.host, String(u.port)]),
  ];
  const [file, ...args] = [...wrap, process.execPath, ...relayArgs];
  const child = spawnTracked(file, args, { cwd: REPO_ROOT, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  onCleanup('stop node relay', () => stopChild(child, 5_000, 'SIGTERM'));
  const endpoints = ports.map((port): Endpoint => ({
    name: 'node-relay',
    host: '127.0.0.1',
    port,
    database: BENCH_DB,
    pid: child.pid ?? null,
    logFile,
  }));
  for (const port of ports)
    await waitUntilUp('node relay', child, port, wrap.length === 0 ? 30_000 : 120_000, [logFile]);
  const where = upstreams.map((u, i) => `127.0.0.1:${ports[i]} → ${u.host}:${u.port}`).join(', ');
  log(`node relay (pid ${child.pid}): ${where}`);
  return { endpoints, child };
}

/** "shardgate exited (code 1) during the benchmark; log: ..." when a proxy died under us, else null. */
/** Wait until the bench user can log in through a proxy we started; on failure, the error carries its log tails. */
export async function waitUntilUp(
  name: string,
  child: ChildProcess,
  port: number,
  timeoutMs: number,
  logFiles: string[],
): Promise<void> {
  try {
    await waitForLogin(
      { host: '127.0.0.1', port, user: BENCH_USER, password: BENCH_PASSWORD, database: BENCH_DB },
      timeoutMs,
      () => child.exitCode === null && child.signalCode === null,
    );
  } catch (err) {
    const tails = logFiles.map((f) => `\n--- ${f}:\n${fileTail(f)}`).join('');
    throw new Error(`${name} did not come up: ${(err as Error).message}${tails}`);
  }
}

export function exitNote(name: string, child: ChildProcess, logFile: string | null): string | null {
  if (child.exitCode === null && child.signalCode === null) return null;
  const how = child.signalCode ?? `code ${child.exitCode}`;
  const tail = logFile === null ? '' : fileTail(logFile, 600).trim().split('\n').slice(-3).join(' | ');
  return `${name} exited (${how}) during the benchmark${tail ? `; end of its log: ${tail}` : ''}`;
}

/** Lines of a proxy's log that look like warnings or errors (for the report). */
export function logProblems(logFile: string | null, maxLines = 5): { count: number; sample: string[] } {
  if (logFile === null) return { count: 0, sample: [] };
  let text = '';
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch {
    return { count: 0, sample: [] };
  }
  const lines = text.split('\n').filter((l) => /\b(WARN|WARNING|ERROR|FATAL|error|fatal|warn)\b/.test(l));
  return { count: lines.length, sample: lines.slice(0, maxLines).map((l) => l.slice(0, 300)) };
}

/** Short description of the machine, for the reports. */
export function machineInfo(): {
  cpus: number;
  cpuModel: string;
  memGiB: number;
  loadAvg: number[];
  kernel: string;
} {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown',
    memGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    kernel: `${os.type()} ${os.release()}`,
  };
}
