// The local server processes' plumbing: which children and temp dirs to clean up when this process exits, which OS
// user PostgreSQL runs as when we are root, the environment it gets, running a helper program, reading log tails.
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';

// ---------------------------------------------------------------------------------------------------------
// Process bookkeeping: whatever is still running when this process exits gets SIGKILL and its dir removed.

export const liveChildren = new Set<ChildProcess>();
export const liveDirs = new Set<string>();
let isExitHookInstalled = false;

export function installExitHook(): void {
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

export interface OsIdentity {
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
export function serverIdentity(): OsIdentity | null {
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
export function assertTraversable(dir: string, who: OsIdentity): void {
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

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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

export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function sqlState(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** Run a program to completion; reject with its output when it fails. */
export async function run(file: string, args: string[], options: SpawnOptions): Promise<void> {
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

/** Spawn options for initdb, postgres and cp: our environment rules, run as `identity` when given (we are root). */
export function spawnIdentityOptions(identity: OsIdentity | null, cwd: string): SpawnOptions {
  const options: SpawnOptions = { env: childEnv(), cwd, detached: false };
  if (identity !== null) {
    options.uid = identity.uid;
    options.gid = identity.gid;
  }
  return options;
}
