// pgbench's tables for the sharded benchmarks (pgbench-sharded, instructions): `pgbench -i` on a reference server and on
// each shard, then each shard keeps only the pgbench_accounts rows PostgreSQL's own `PARTITION BY HASH (aid)` assigns
// to it — the rows shardgate routes there for a table sharded by aid.
import { spawnSync } from 'node:child_process';
import pg from 'pg';

export interface PgbenchLogin {
  user: string;
  password: string;
  database: string;
}

async function run(port: number, login: PgbenchLogin, sql: string): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port, ...login });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/** `pgbench -i -s scale` on every server (on 127.0.0.1), then the accounts split over `shardPorts` by hash of aid. */
export async function loadShardedPgbench(
  referencePort: number,
  shardPorts: readonly number[],
  login: PgbenchLogin,
  scale: number,
): Promise<void> {
  for (const port of [referencePort, ...shardPorts]) {
    const r = spawnSync(
      'pgbench',
      [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        login.user,
        '-i',
        '-q',
        '-s',
        String(scale),
        login.database,
      ],
      { env: { ...process.env, PGPASSWORD: login.password }, encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`pgbench -i failed: ${r.stderr}`);
  }
  for (const [shard, port] of shardPorts.entries()) {
    await run(
      port,
      login,
      `create table sg_hash (aid int) partition by hash (aid);
       delete from pgbench_accounts where not satisfies_hash_partition('sg_hash'::regclass, ${shardPorts.length}, ${shard}, aid);
       drop table sg_hash;`,
    );
    await run(port, login, 'vacuum analyze pgbench_accounts');
  }
}
