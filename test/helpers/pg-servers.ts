// PostgreSQL servers for integration and fault tests: throwaway local servers (startPgCluster), or the
// already-running servers listed in SHARDGATE_TEST_PG=host:port,host:port (then stop() leaves them running).
import {
  provisionServer,
  startPgCluster,
  type PgCluster,
  type PgServer,
} from '../../src/testing/pg-cluster.js';
import type { StartClusterOptions } from '../../src/testing/pg-cluster.js';

export type TestServerOptions = Omit<StartClusterOptions, 'count'>;

function parseHostPort(entry: string): { host: string; port: number } {
  const match = /^\s*(\[[^\]]+\]|[^:\s]+):(\d+)\s*$/.exec(entry);
  if (match === null) throw new Error(`SHARDGATE_TEST_PG: expected host:port, got '${entry}'`);
  const port = Number(match[2]);
  if (port < 1 || port > 65_535) throw new Error(`SHARDGATE_TEST_PG: bad port in '${entry}'`);
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

async function externalServers(list: string, n: number, opts: TestServerOptions): Promise<PgCluster> {
  const entries = list
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length < n) {
    throw new Error(`SHARDGATE_TEST_PG lists ${entries.length} server(s), this test needs ${n}`);
  }
  const superuser = process.env.SHARDGATE_TEST_PG_USER ?? 'postgres';
  const superuserPassword = process.env.SHARDGATE_TEST_PG_PASSWORD ?? 'postgres';
  const servers: PgServer[] = entries.slice(0, n).map((entry) => ({
    ...parseHostPort(entry),
    dataDir: null,
    pid: null,
    superuser,
    superuserPassword,
  }));
  // pg_hba.conf of these servers is theirs: authMethod only picks how the new users' passwords are hashed,
  // and the superuser is left alone.
  await Promise.all(
    servers.map((s) =>
      provisionServer(s, {
        authMethod: opts.authMethod,
        isSuperuserRehashed: false,
        users: opts.users,
        databases: opts.databases,
      }),
    ),
  );
  return {
    servers,
    stop: async () => undefined,
    restart: async () => {
      throw new Error('restart() is not supported for servers given in SHARDGATE_TEST_PG');
    },
  };
}

/** `n` PostgreSQL servers with the requested users and databases; always call stop() (afterAll). */
export async function testServers(n: number, opts: TestServerOptions = {}): Promise<PgCluster> {
  const list = process.env.SHARDGATE_TEST_PG;
  if (list !== undefined && list.trim() !== '') return externalServers(list, n, opts);
  return startPgCluster({ ...opts, count: n });
}
