// Users and databases on a running server (local, Docker or external): connect as its superuser, create or reset
// the requested roles, create the missing databases.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { AuthMethod, PgServer } from './pg-server.js';

export interface ProvisionOptions {
  /** Store new passwords for this method (md5 or SCRAM hash); undefined: the server's password_encryption. */
  authMethod?: AuthMethod;
  /** Re-store the superuser's password for `authMethod` (needed for md5 after initdb). Default true. */
  isSuperuserRehashed?: boolean;
  users?: { name: string; password: string }[];
  databases?: string[];
}

/** A random password for a new server's superuser. */
export function newSuperuserPassword(): string {
  return randomBytes(12).toString('hex');
}

/** A connected client to the `postgres` database; errors after connecting surface on the next query. */
export async function connectClient(server: PgServer, user: string, password: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user,
    password,
    database: 'postgres',
    connectionTimeoutMillis: 2_000,
  });
  client.on('error', () => {
    // the server went away under us; the next query reports it
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

/**
 * Make the requested users (LOGIN SUPERUSER, with passwords stored for `authMethod`) and databases (owned by
 * the first user) exist on `server`. Existing users get their password reset; existing databases are kept.
 */
export async function provisionServer(server: PgServer, opts: ProvisionOptions): Promise<void> {
  const users = opts.users ?? [];
  const databases = opts.databases ?? [];
  const client = await connectClient(server, server.superuser, server.superuserPassword);
  try {
    if (opts.authMethod === 'md5' || opts.authMethod === 'scram-sha-256') {
      await client.query(`SET password_encryption = ${client.escapeLiteral(opts.authMethod)}`);
    }
    if (opts.authMethod === 'md5' && (opts.isSuperuserRehashed ?? true)) {
      // initdb stored the superuser's password as SCRAM; md5 auth needs an md5 hash.
      await client.query(
        `ALTER ROLE ${client.escapeIdentifier(server.superuser)} PASSWORD ${client.escapeLiteral(server.superuserPassword)}`,
      );
    }
    for (const user of users) {
      const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user.name]);
      const verb = exists.rowCount === 0 ? 'CREATE' : 'ALTER';
      await client.query(
        `${verb} ROLE ${client.escapeIdentifier(user.name)} LOGIN SUPERUSER PASSWORD ${client.escapeLiteral(user.password)}`,
      );
    }
    const owner = users[0]?.name ?? server.superuser;
    for (const db of databases) {
      const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (exists.rowCount === 0) {
        await client.query(
          `CREATE DATABASE ${client.escapeIdentifier(db)} OWNER ${client.escapeIdentifier(owner)}`,
        );
      }
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}
