// Child-process bookkeeping for the benchmark scripts: every process we spawn is tracked by its pid and stopped
// (SIGTERM, then SIGKILL) on normal exit, on errors, and on Ctrl-C / SIGTERM. Nothing is ever killed by name.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import { readLogTail } from '../../src/testing/pg-cluster.js';

const tracked = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const cleanups: { name: string; fn: () => Promise<void> | void }[] = [];
let isCleaningUp = false;
let areHandlersInstalled = false;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Resolves when the child has exited (at once if it already has), or after `ms` with false. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.removeListener('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** spawn() and remember the child, so that cleanup can stop it by its pid. */
export function spawnTracked(file: string, args: string[], options: SpawnOptions): ChildProcess {
  if (isCleaningUp) throw new Error(`not starting ${file}: shutting down`);
  const child = spawn(file, args, options);
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  // An 'error' event (ENOENT, EACCES) without a listener would crash the process.
  child.on('error', () => undefined);
  return child;
}

/** SIGTERM (or `signal`), wait up to graceMs, then SIGKILL. Only ever signals this child's own pid. */
export async function stopChild(child: ChildProcess, graceMs = 5_000, signal: NodeJS.Signals = 'SIGTERM') {
  if (child.pid === undefined || hasExited(child)) {
    tracked.delete(child);
    return;
  }
  try {
    process.kill(child.pid, signal);
  } catch {
    // already gone
  }
  if (!(await waitExit(child, graceMs))) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await waitExit(child, 2_000);
  }
  tracked.delete(child);
}

/** A directory to remove on cleanup, and (synchronously) on any exit. */
export function registerTempDir(dir: string): void {
  tempDirs.add(dir);
  onCleanup(`remove ${dir}`, () => {
    fs.rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  });
}

/** Register an async cleanup step (run in reverse order of registration, after the children are stopped). */
export function onCleanup(name: string, fn: () => Promise<void> | void): void {
  cleanups.push({ name, fn });
}

export async function cleanupAll(): Promise<void> {
  if (isCleaningUp) return;
  isCleaningUp = true;
  await Promise.all([...tracked].map((c) => stopChild(c, 3_000)));
  for (const { name, fn } of cleanups.reverse()) {
    try {
      await fn();
    } catch (err) {
      log(`cleanup "${name}" failed: ${errorText(err)}`);
    }
  }
  cleanups.length = 0;
}

/**
 * Run `body`; whatever happens (success, exception, Ctrl-C, SIGTERM) stop every tracked child and run the
 * cleanups before exiting. On 'exit' anything still alive gets SIGKILL by pid.
 */
export async function runMain(body: () => Promise<void>): Promise<void> {
  if (!areHandlersInstalled) {
    areHandlersInstalled = true;
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
      ['SIGHUP', 129],
    ] as const) {
      let firstAt = 0;
      process.on(signal, () => {
        if (firstAt === 0) {
          firstAt = Date.now();
          log(`${signal}: stopping everything this script started`);
          void cleanupAll().finally(() => process.exit(code));
        } else if (Date.now() - firstAt > 1_500) {
          // A second Ctrl-C while cleaning up: stop waiting ('exit' still SIGKILLs the children).
          // (Repeats within 1.5 s are the same Ctrl-C relayed by npx/tsx.)
          process.exit(code);
        }
      });
    }
    process.on('exit', () => {
      for (const child of tracked) {
        if (child.pid !== undefined && !hasExited(child)) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
      for (const dir of tempDirs) {
        try {
          fs.rmSync(dir, { recursive: true, force: true });
        } catch {
          // best effort on the way out
        }
      }
    });
  }
  let exitCode = 0;
  try {
    await body();
  } catch (err) {
    process.stderr.write(
      `\nbench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    exitCode = 1;
  }
  await cleanupAll();
  process.exit(exitCode);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a program to completion (tracked, so Ctrl-C stops it), capturing its output. Never throws on exit codes. */
export async function runCapture(
  file: string,
  args: string[],
  options: SpawnOptions & { timeoutMs?: number } = {},
): Promise<RunResult> {
  const { timeoutMs, ...spawnOptions } = options;
  const child = spawnTracked(file, args, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve([code, signal])),
  );
  let timer: NodeJS.Timeout | undefined;
  if (timeoutMs !== undefined) {
    timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms timeout)`;
      void stopChild(child, 2_000);
    }, timeoutMs);
  }
  try {
    const first = await Promise.race([exited, spawnError]);
    if (first instanceof Error) throw new Error(`could not run ${file}: ${first.message}`);
    return { code: first[0], signal: first[1], stdout, stderr };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** The last `maxBytes` of a file, for error messages. */
export function fileTail(file: string, maxBytes = 3_000): string {
  return readLogTail(file, 0, maxBytes);
}

/** VmRSS (and VmHWM) of a process in KiB, from /proc/<pid>/status; null if it is gone. */
export function readRssKb(pid: number): { rssKb: number; hwmKb: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status);
    if (rss === null) return null;
    return { rssKb: Number(rss[1]), hwmKb: hwm === null ? Number(rss[1]) : Number(hwm[1]) };
  } catch {
    return null;
  }
}

/** Soft and hard RLIMIT_NOFILE of a process (default: this one), from /proc/<pid>/limits. */
export function readFdLimit(pid: number | 'self' = 'self'): { soft: number; hard: number } | null {
  try {
    const limits = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
    if (m === null) return null;
    const num = (s: string): number => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
    return { soft: num(m[1]), hard: num(m[2]) };
  } catch {
    return null;
  }
}

/**
 * Wrap a command in `bash -c 'ulimit -n N; exec "$@"'` so the program gets a raised open-files limit
 * (capped at the hard limit) and keeps bash's pid: the returned pid is the program's own.
 */
export function withFdLimit(limit: number, file: string, args: string[]): { file: string; args: string[] } {
  const script = 'ulimit -n "$1" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; shift; exec "$@"';
  return { file: 'bash', args: ['-c', script, 'bash', String(limit), file, ...args] };
}

/** CPU seconds (user + system) the process has used so far, from /proc/<pid>/stat (USER_HZ = 100). */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** A process's user and system CPU seconds so far (utime, stime: fields 14 and 15 of /proc/PID/stat). */
export function cpuTimes(pid: number): { user: number; system: number } {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}
