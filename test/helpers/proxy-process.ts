// shardgate as a child process (`node --import tsx src/cli.ts`, or dist/cli.js on SHARDGATE_TEST_RUNTIME), for fault
// tests that kill -9 it and start it again on the same port, config and decision log, or signal it (SIGHUP after
// rewriting its files, SIGTERM): start, wait until it listens, signal or SIGKILL it by its pid, collect its output
// and exit code.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { freePort } from '../../src/testing/free-port.js';
import { APP_DB, APP_PASSWORD, APP_USER } from './proxy.js';

const root = path.resolve(import.meta.dirname, '../..');
const CLI = ['--import', 'tsx', path.join(root, 'src/cli.ts')];

/**
 * SHARDGATE_TEST_RUNTIME=<binary> (e.g. Bun's): run the built dist/cli.js on that runtime instead (`npm run build`
 * first), to check the proxy on another runtime with these tests; unset: Node with tsx.
 */
function proxyCommand(): { file: string; args: string[] } {
  const runtime = process.env.SHARDGATE_TEST_RUNTIME;
  if (runtime === undefined || runtime === '') return { file: process.execPath, args: CLI };
  return { file: runtime, args: [path.join(root, 'dist/cli.js')] };
}

export interface ProxyProcessOptions {
  /** Folder for the TOML files and the decision log (the caller creates and removes it). */
  dir: string;
  /** Extra `[general]` lines. */
  general?: string;
  /** Extra pgdog.toml text (sharded tables). */
  extraPgdog?: string;
  /** Extra lines of the app user's [[users]] entry, e.g. `pool_size = 2`. */
  userExtra?: string;
  /** users.toml as a whole, instead of the app user entry. */
  users?: string;
}

export class ProxyProcess {
  readonly port: number;
  readonly url: string;
  private readonly configPath: string;
  private readonly usersPath: string;
  private child: ChildProcess | null = null;
  private exited: Promise<number | null> = Promise.resolve(null);
  /** Everything every run printed (stdout + stderr), in order. */
  output = '';

  private readonly cluster: PgCluster;

  private constructor(cluster: PgCluster, port: number, configPath: string, usersPath: string) {
    this.cluster = cluster;
    this.port = port;
    this.configPath = configPath;
    this.usersPath = usersPath;
    this.url = `postgres://${APP_USER}:${APP_PASSWORD}@127.0.0.1:${port}/${APP_DB}`;
  }

  static async create(cluster: PgCluster, opts: ProxyProcessOptions): Promise<ProxyProcess> {
    const port = await freePort();
    const proxy = new ProxyProcess(
      cluster,
      port,
      path.join(opts.dir, 'pgdog.toml'),
      path.join(opts.dir, 'users.toml'),
    );
    proxy.writeFiles(opts);
    return proxy;
  }

  /** (Re)write pgdog.toml and users.toml (same port); a running proxy reads them at the next SIGHUP. */
  writeFiles(opts: Omit<ProxyProcessOptions, 'dir'>): void {
    const dbs = this.cluster.servers
      .map(
        (s, shard) =>
          `[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "${APP_DB}"\nshard = ${shard}\n`,
      )
      .join('\n');
    fs.writeFileSync(
      this.configPath,
      `[general]\nhost = "127.0.0.1"\nport = ${this.port}\nlog_format = "json"\n${opts.general ?? ''}\n` +
        `[admin]\npassword = "admin"\n\n${dbs}\n${opts.extraPgdog ?? ''}\n`,
    );
    fs.writeFileSync(
      this.usersPath,
      opts.users ??
        `[[users]]\nname = "${APP_USER}"\ndatabase = "${APP_DB}"\npassword = "${APP_PASSWORD}"\n${opts.userExtra ?? ''}\n`,
    );
  }

  /** Send `signal` (SIGHUP, SIGTERM, SIGINT) to the running process. */
  signal(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error('not running');
    process.kill(pid, signal);
  }

  /** Wait until a JSON log line whose msg matches appears (after `from` characters of output); returns it. */
  async waitForLog(msg: RegExp, timeoutMs = 10_000, from = 0): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.logLinesFrom(from).find((l) => typeof l.msg === 'string' && msg.test(l.msg));
      if (line !== undefined) return line;
      if (Date.now() > deadline)
        throw new Error(`no log line matching ${msg} in:\n${this.output.slice(from)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Start (again) and wait until it listens; `env` e.g. { SHARDGATE_FAILPOINTS: 'after_decision=kill' }. */
  async start(env: Record<string, string> = {}): Promise<void> {
    if (this.child !== null) throw new Error('already running');
    const from = this.output.length;
    const cmd = proxyCommand();
    const child = spawn(cmd.file, [...cmd.args, '--config', this.configPath, '--users', this.usersPath], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.child = null;
        resolve(signal === 'SIGKILL' ? 137 : code);
      }),
    );
    const deadline = Date.now() + 60_000; // a Node start-up on a loaded 2-core machine can take over 30 s
    while (!this.output.slice(from).includes('shardgate listening')) {
      if (this.child === null)
        throw new Error(`shardgate exited during startup:\n${this.output.slice(from)}`);
      if (Date.now() > deadline)
        throw new Error(`shardgate did not start in 60 s:\n${this.output.slice(from)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The running process's pid (for its state in /proc); null when not running. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  get isRunning(): boolean {
    return this.child !== null;
  }

  /** Resolves with the exit code (137 for SIGKILL) once the process is gone. */
  waitForExit(): Promise<number | null> {
    return this.exited;
  }

  /** kill -9 by pid, and wait until it is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (child?.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    await this.exited;
  }

  /** SIGTERM, and wait. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child?.pid !== undefined) process.kill(child.pid, 'SIGTERM');
    await this.exited;
  }

  /** Parsed JSON log lines with `msg` matching. */
  logLines(msg: RegExp): Record<string, unknown>[] {
    return this.logLinesFrom(0).filter((l) => typeof l.msg === 'string' && msg.test(l.msg));
  }

  private logLinesFrom(from: number): Record<string, unknown>[] {
    return this.output
      .slice(from)
      .split('\n')
      .filter((l) => l.startsWith('{') && l.endsWith('}'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}
