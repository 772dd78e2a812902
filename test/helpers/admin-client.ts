// A node-postgres client connected to a proxy's admin database (user and password `admin` unless given); a socket
// error after the test is done with it is swallowed, so a proxy stopped first does not fail the run.
import pg from 'pg';

export async function adminClient(port: number, password = 'admin', user = 'admin'): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'admin' });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}
