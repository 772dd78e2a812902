// Template data dirs: initdb runs once per (binaries, auth method, OS user) and is cached in defaultPgTempRoot();
// each local server's data dir is a copy (~0.1 s instead of ~1 s of initdb). Also where temp dirs go by default.
import process from 'node:process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CONF_FILE } from './local-server.js';
import { liveDirs, run, spawnIdentityOptions, type OsIdentity } from './local-process.js';
import type { PgBinaries } from './pg-binaries.js';
import { SUPERUSER, type AuthMethod } from './pg-server.js';
import { newSuperuserPassword } from './provision.js';

/** Bump when the initdb flags or the template layout change: old templates are then ignored. */
const TEMPLATE_FORMAT = 2;

export interface Template {
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

export async function ensureTemplate(
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
    const password = newSuperuserPassword();
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
