// One local PostgreSQL server as our own child process: its conf file, start on a free port (retrying when another
// process takes the port first), wait until it answers, restart, and fast → immediate → SIGKILL shutdown.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './free-port.js';
import {
  errorText,
  fileSize,
  liveChildren,
  readLogTail,
  run,
  sleep,
  spawnIdentityOptions,
  sqlState,
  type OsIdentity,
} from './local-process.js';
import type { PgBinaries } from './pg-binaries.js';
import { isConfName, SUPERUSER, type PgServer } from './pg-server.js';
import { connectClient } from './provision.js';

const READY_TIMEOUT_MS = 30_000;
const READY_POLL_MS = 50;
const STOP_GRACE_MS = 5_000;
const PORT_ATTEMPTS = 5;
const LOG_FILE = 'postgres.log';
/** The per-server settings file, included from the template's postgresql.conf. */
export const CONF_FILE = 'shardgate.conf';
/** sockaddr_un.sun_path is 108 bytes on Linux. */
const MAX_SOCKET_PATH = 107;

function confValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function renderConf(settings: Record<string, string>): string {
  const lines = ['# Written by shardgate src/testing/local-server.ts; included from postgresql.conf.'];
  for (const [key, value] of Object.entries(settings)) {
    if (!isConfName(key)) throw new Error(`invalid postgresql.conf setting name: ${key}`);
    lines.push(`${key} = ${confValue(value)}`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------------
// One local server

class PortInUseError extends Error {}

export interface LocalServerContext {
  bins: PgBinaries;
  identity: OsIdentity | null;
  log: (line: string) => void;
  hasLogCallback: boolean;
}

export class LocalServer {
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

  /** Start on a fresh free port, retrying when another process takes the port first. `conf`: clusterConf(). */
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
