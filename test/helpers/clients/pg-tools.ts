// PostgreSQL command-line clients (psql, pgbench) for integration tests: find them, run them, collect their output.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findPgBinaries } from '../../../src/testing/pg-binaries.js';

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** `name` on PATH, else in the PostgreSQL bindir the test servers use; null when neither has it. */
export function findPgTool(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir !== '' && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  try {
    const bins = findPgBinaries();
    if (bins !== null && isExecutable(path.join(bins.bindir, name))) return path.join(bins.bindir, name);
  } catch {
    // a bad $PG_BINDIR: the tool counts as missing
  }
  return null;
}

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

export interface RunToolOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
  /** Kill the tool (SIGKILL) after this long; the result then has signal 'SIGKILL'. Default 30 s. */
  timeoutMs?: number;
  /** Called with the child's pid once it runs (e.g. to signal it). */
  onSpawn?: (pid: number) => void;
}

/** Run `file args`, never rejecting on a non-zero exit: the caller asserts on code and output. */
export function runTool(file: string, args: string[], opts: RunToolOptions = {}): Promise<ToolResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: { ...process.env, PGCONNECT_TIMEOUT: '10', PSQLRC: '/dev/null', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('spawn', () => {
      if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, elapsedMs: Date.now() - started });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** libpq environment for the app user through a proxy on 127.0.0.1:port. */
export function libpqEnv(
  port: number,
  user: string,
  password: string,
  database: string,
): Record<string, string> {
  return {
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGUSER: user,
    PGPASSWORD: password,
    PGDATABASE: database,
    PGSSLMODE: 'prefer', // no TLS on the test proxy: exercises SSLRequest answered 'N'
    PGAPPNAME: 'shardgate-test',
  };
}
