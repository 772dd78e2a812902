// One pgbench run against a target and what it printed, for every benchmark that drives pgbench (pgbench-compare,
// pgbench-sharded, pgbench-replicas): the command line, the environment (libpq variables of the caller's shell
// dropped, password given, no TLS/GSS negotiation), the parsed results and the complaints when it failed.
import { runCapture } from './procs.js';

export interface PgbenchTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface PgbenchResult {
  tps: number | null;
  processed: number | null;
  failed: number | null;
  latencyMs: number | null;
  exitCode: number | null;
  /** pgbench's complaints (stderr lines, else the last lines it printed), when it failed or reported errors. */
  error?: string;
  /** Everything it printed (stdout, then stderr). */
  out: string;
}

/** libpq's environment for a pgbench run: nothing of the caller's PG* variables, this password, plain TCP. */
export function pgbenchEnv(password: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  env.PGPASSWORD = password;
  env.PGSSLMODE = 'disable';
  env.PGGSSENCMODE = 'disable';
  env.PGAPPNAME = 'pgbench';
  return env;
}

export function parsePgbench(
  stdout: string,
): Pick<PgbenchResult, 'tps' | 'processed' | 'failed' | 'latencyMs'> {
  const num = (re: RegExp): number | null => {
    const m = re.exec(stdout);
    return m ? Number(m[1]) : null;
  };
  return {
    tps: num(/^tps = ([\d.]+) \(without initial connection time\)/m) ?? num(/^tps = ([\d.]+)/m),
    processed: num(/^number of transactions actually processed: (\d+)/m),
    failed: num(/^number of failed transactions: (\d+)/m),
    latencyMs: num(/^latency average = ([\d.]+) ms/m),
  };
}

/** Run `pgbench <args>` against `target` (host, port, user and database added); resolves when it exits. */
export async function runPgbench(
  target: PgbenchTarget,
  args: readonly string[],
  timeoutMs: number,
): Promise<PgbenchResult> {
  const res = await runCapture(
    'pgbench',
    ['-h', target.host, '-p', String(target.port), '-U', target.user, ...args, target.database],
    { env: pgbenchEnv(target.password), timeoutMs },
  );
  const parsed = parsePgbench(res.stdout);
  const run: PgbenchResult = { ...parsed, exitCode: res.code, out: res.stdout + res.stderr };
  if (res.code !== 0 || (parsed.failed ?? 0) > 0 || parsed.tps === null) {
    const printed = (text: string): string[] =>
      text.split('\n').filter((l) => l.trim() !== '' && !/^pgbench \(/.test(l));
    const complaints = printed(res.stderr).slice(0, 6).join('\n');
    const tail = printed(res.stdout).slice(-3).join('\n');
    run.error =
      complaints || tail || `pgbench exited with ${res.signal ?? `code ${res.code}`} and printed no results`;
  }
  return run;
}
