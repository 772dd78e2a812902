// shardgate as a child process (`node --import tsx src/cli.ts`), for fault tests that kill -9 it and start it again
// on the same port, config and decision log: start, wait until it listens, SIGKILL by its pid, collect its output.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { PgCluster } from '../../src/testing/pg-cluster.js';
import { freePort } from '../../src/testing/free-port.js';
import { APP_DB, APP_PASSWORD, APP_USER } from './proxy.js';

const root = path.resolve(import.meta.dirname, '../..');
const CLI = ['--import', 'tsx', path.join(root, 'src/cli.ts')];

export interface ProxyProcessOptions {
  /** Folder for the TOML files and the decision log (the caller creates and removes it). */
  dir: string;
  /** Extra `[general]` lines. */
  general?: string;
  /** Extra pgdog.toml text (sharded tables). */
  extraPgdog?: string;
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

  private constructor(port: number, configPath: string, usersPath: string) {
    this.port = port;
    this.configPath = configPath;
    this.usersPath = usersPath;
    this.url = `postgres://${APP_USER}:${APP_PASSWORD}@127.0.0.1:${port}/${APP_DB}`;
  }

  static async create(cluster: PgCluster, opts: ProxyProcessOptions): Promise<ProxyProcess> {
    const port = await freePort();
    const dbs = cluster.servers
      .map(
        (s, shard) =>
          `[[databases]]\nname = "${APP_DB}"\nhost = "${s.host}"\nport = ${s.port}\ndatabase_name = "${APP_DB}"\nshard = ${shard}\n`,
      )
      .join('\n');
    const configPath = path.join(opts.dir, 'pgdog.toml');
    const usersPath = path.join(opts.dir, 'users.toml');
    fs.writeFileSync(
      configPath,
      `[general]\nhost = "127.0.0.1"\nport = ${port}\nlog_format = "json"\n${opts.general ?? ''}\n` +
        `[admin]\npassword = "admin"\n\n${dbs}\n${opts.extraPgdog ?? ''}\n`,
    );
    fs.writeFileSync(
      usersPath,
      `[[users]]\nname = "${APP_USER}"\ndatabase = "${APP_DB}"\npassword = "${APP_PASSWORD}"\n`,
    );
    return new ProxyProcess(port, configPath, usersPath);
  }

  /** Start (again) and wait until it listens; `env` e.g. { SHARDGATE_FAILPOINTS: 'after_decision=kill' }. */
  async start(env: Record<string, string> = {}): Promise<void> {
    if (this.child !== null) throw new Error('already running');
    const from = this.output.length;
    const child = spawn(process.execPath, [...CLI, '--config', this.configPath, '--users', this.usersPath], {
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
    const deadline = Date.now() + 30_000;
    while (!this.output.slice(from).includes('shardgate listening')) {
      if (this.child === null)
        throw new Error(`shardgate exited during startup:\n${this.output.slice(from)}`);
      if (Date.now() > deadline)
        throw new Error(`shardgate did not start in 30 s:\n${this.output.slice(from)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
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
    return this.output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => typeof l.msg === 'string' && msg.test(l.msg));
  }
}
