// A streaming replica of a local test server: `pg_basebackup -R -X stream` from the running primary (as the OS user
// the servers run as), which writes standby.signal and primary_conninfo; the copy then starts like any local server.
// The template's pg_hba.conf (initdb's) lets the superuser connect for replication, and PostgreSQL's defaults give
// wal_level = replica and max_wal_senders = 10, so the primary needs nothing more.
import fs from 'node:fs';
import path from 'node:path';
import { run, spawnIdentityOptions, type OsIdentity } from './local-process.js';
import type { PgBinaries } from './pg-binaries.js';
import type { PgServer } from './pg-server.js';

/** libpq conninfo value quoting: single quotes, backslash-escaped. */
function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * Fill `dataDir` (which must not exist yet) with a base backup of `primary` set up to stream from it. The
 * password goes in the conninfo (our children get no PG* environment), and pg_basebackup -R copies it into
 * primary_conninfo.
 */
export async function baseBackup(
  bins: PgBinaries,
  identity: OsIdentity | null,
  primary: PgServer,
  dataDir: string,
): Promise<void> {
  const tool = path.join(bins.bindir, 'pg_basebackup');
  try {
    fs.accessSync(tool, fs.constants.X_OK);
  } catch {
    throw new Error(`no pg_basebackup next to the server binaries in ${bins.bindir}: cannot make a replica`);
  }
  const conninfo = [
    `host=${conninfoValue(primary.host)}`,
    `port=${primary.port}`,
    `user=${conninfoValue(primary.superuser)}`,
    `password=${conninfoValue(primary.superuserPassword)}`,
    `application_name=${conninfoValue(path.basename(dataDir))}`,
  ].join(' ');
  await run(
    tool,
    ['-d', conninfo, '-D', dataDir, '-R', '-X', 'stream', '-c', 'fast', '--no-sync'],
    spawnIdentityOptions(identity, path.dirname(dataDir)),
  );
}
