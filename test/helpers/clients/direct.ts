// Connections straight to a test PostgreSQL server (bypassing the proxy), to check what the server itself sees.
import pg from 'pg';
import type { PgServer } from '../../../src/testing/pg-cluster.js';

/** A connected superuser client on `server`'s database `database`; call end() when done. */
export async function superuserClient(server: PgServer, database = 'postgres'): Promise<pg.Client> {
  const client = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.superuser,
    password: server.superuserPassword,
    database,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Client backends of `user` connected to the server right now (the monitoring connection is not counted). */
export async function backendsOf(admin: pg.Client, user: string): Promise<number> {
  const res = await admin.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
    [user],
  );
  return res.rows[0].n;
}
