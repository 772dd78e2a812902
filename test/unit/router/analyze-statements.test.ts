// Statement kinds and their details: transaction control (options, savepoints, 2PC gids), SET/RESET and the manual
// routing settings, SHOW/DISCARD, EXPLAIN, COPY, DDL, other utility statements, read-only vs write.
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import type { StatementPlan } from '../../../src/router/plan.js';
import { keyOf, SCHEMA, tablesOf } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

function plan(sql: string): StatementPlan {
  const plans = analyzeQuery(sql, SCHEMA);
  expect(plans).toHaveLength(1);
  return plans[0];
}

describe('transaction control', () => {
  it('reads BEGIN / START TRANSACTION options', () => {
    const p = plan('START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE');
    expect(p.kind).toBe('begin');
    expect(p.transaction).toMatchObject({ isolation: 'serializable', readOnly: true, deferrable: true });
    expect(plan('BEGIN READ WRITE').transaction).toMatchObject({ isolation: null, readOnly: false });
    expect(p.isReadOnly || p.isWrite).toBe(false);
  });

  it('maps END and ABORT, and keeps AND CHAIN in the text', () => {
    expect(plan('END').kind).toBe('commit');
    expect(plan('ABORT').kind).toBe('rollback');
    const chain = plan('COMMIT AND CHAIN');
    expect(chain.transaction?.chain).toBe(true);
    expect(chain.text).toBe('COMMIT AND CHAIN');
    expect(plan('ROLLBACK AND NO CHAIN').transaction?.chain).toBe(false);
  });

  it('reads savepoints', () => {
    expect(plan('SAVEPOINT "sp 1"').transaction).toMatchObject({
      savepointAction: 'savepoint',
      savepoint: 'sp 1',
    });
    expect(plan('RELEASE s1').transaction).toMatchObject({ savepointAction: 'release', savepoint: 's1' });
    const back = plan('ROLLBACK TO SAVEPOINT s1');
    expect(back.kind).toBe('savepoint');
    expect(back.transaction).toMatchObject({ savepointAction: 'rollback_to', savepoint: 's1' });
  });

  it('reads two-phase commit gids', () => {
    expect(plan("PREPARE TRANSACTION 'sg_a_1_0'")).toMatchObject({
      kind: 'prepare_transaction',
      transaction: { gid: 'sg_a_1_0' },
    });
    expect(plan("COMMIT PREPARED 'x'").kind).toBe('commit_prepared');
    expect(plan("ROLLBACK PREPARED 'x'").transaction?.gid).toBe('x');
  });
});

describe('SET / RESET / SHOW / DISCARD', () => {
  it('describes ordinary settings', () => {
    const p = plan("SET search_path TO public, 'Tenant'");
    expect(p.kind).toBe('set');
    expect(p.setting).toEqual({
      action: 'value',
      name: 'search_path',
      isLocal: false,
      value: 'public, Tenant',
    });
    expect(p.setsManualShard).toBeUndefined();
    expect(plan("SET LOCAL statement_timeout = '5s'").setting?.isLocal).toBe(true);
    expect(plan("SET TIME ZONE 'UTC'").setting?.name).toBe('timezone');
    expect(plan('SET client_encoding TO DEFAULT').setting?.action).toBe('default');
    expect(plan('SET TRANSACTION ISOLATION LEVEL READ COMMITTED').setting?.action).toBe('multi');
    expect(plan('RESET work_mem')).toMatchObject({
      kind: 'reset',
      setting: { action: 'reset', name: 'work_mem' },
    });
  });

  it('recognizes the manual shard settings of shardgate and PgDog', () => {
    expect(plan('SET shardgate.shard TO 2').setsManualShard).toBe(2);
    expect(plan("SET pgdog.shard = '1'").setsManualShard).toBe(1);
    expect(plan('SET pgdog.shard TO DEFAULT').setsManualShard).toBeNull();
    expect(plan('RESET shardgate.shard').setsManualShard).toBeNull();
    expect(plan('SET pgdog.shard TO abc').setsManualShard).toBeUndefined();
    expect(plan("SET pgdog.sharding_key TO 'us-east-1'").setsManualShardingKey).toBe('us-east-1');
    expect(plan('RESET ALL')).toMatchObject({
      kind: 'reset',
      setsManualShard: null,
      setsManualShardingKey: null,
    });
  });

  it('handles SHOW and DISCARD', () => {
    expect(plan('SHOW transaction_isolation')).toMatchObject({ kind: 'show', isReadOnly: true });
    expect(plan('DISCARD ALL')).toMatchObject({ kind: 'discard', setsManualShard: null });
    expect(plan('DISCARD PLANS').setsManualShard).toBeUndefined();
  });
});

describe('manual routing comments', () => {
  it('sets manualShard / manualShardingKey', () => {
    expect(plan('/* pgdog_shard: 1 */ SELECT * FROM users').manualShard).toBe(1);
    expect(plan('/* shardgate: shard=0 */ CREATE INDEX CONCURRENTLY i ON users (email)').manualShard).toBe(0);
    expect(plan('SELECT * FROM users /* pgdog_sharding_key: 77 */').manualShardingKey).toBe('77');
    expect(plan('SELECT 1').manualShard).toBeNull();
  });
});

describe('EXPLAIN, COPY, DDL and other statements', () => {
  it('explains with the inner plan', () => {
    const p = plan('EXPLAIN SELECT * FROM users WHERE id = 5');
    expect(p).toMatchObject({ kind: 'explain', isReadOnly: true, isWrite: false });
    expect(keyOf(p.inner as StatementPlan)).toBe('5');
    expect(tablesOf(p)).toEqual(['users']);
    expect(plan('EXPLAIN ANALYZE DELETE FROM users WHERE id = 5').isWrite).toBe(true);
    expect(plan('EXPLAIN (ANALYZE false) DELETE FROM users WHERE id = 5').isWrite).toBe(false);
    expect(plan('EXPLAIN DELETE FROM users').isWrite).toBe(false);
  });

  it('describes COPY', () => {
    const from = plan('COPY orders (id, user_id, total) FROM STDIN WITH (FORMAT csv, HEADER true)');
    expect(from).toMatchObject({ kind: 'copy', isWrite: true });
    expect(from.copy).toEqual({
      direction: 'from',
      columns: ['id', 'user_id', 'total'],
      keyColumnIndex: 1,
      keyColumn: expect.objectContaining({ table: 'orders', column: 'user_id' }),
      format: 'csv',
      delimiter: ',',
      quote: '"',
      escape: '"',
      nullText: '',
      header: true,
      isServerSide: false,
    });
    expect(
      plan("COPY users FROM STDIN (FORMAT csv, HEADER false, DELIMITER ';', QUOTE '''', NULL 'n/a')").copy,
    ).toMatchObject({
      delimiter: ';',
      quote: "'",
      escape: "'",
      nullText: 'n/a',
      header: false,
    });
    expect(plan('COPY users FROM STDIN').copy).toMatchObject({
      format: 'text',
      delimiter: '\t',
      nullText: '\\N',
      header: false,
      keyColumnIndex: null,
      keyColumn: expect.objectContaining({ table: 'users', column: 'id' }),
    });
    expect(plan('COPY countries FROM STDIN').copy?.keyColumn).toBeNull();
    const to = plan('COPY users TO STDOUT (FORMAT binary)');
    expect(to).toMatchObject({
      isReadOnly: true,
      copy: { direction: 'to', format: 'binary', keyColumnIndex: null },
    });
    expect(plan("COPY users FROM '/tmp/u.csv'").copy?.isServerSide).toBe(true);
    const q = plan('COPY (SELECT id FROM users WHERE id = $1) TO STDOUT');
    expect(keyOf(q)).toBe('$1');
  });

  it('classifies DDL with its tables', () => {
    expect(plan('CREATE INDEX CONCURRENTLY users_email ON users (email)')).toMatchObject({
      kind: 'ddl',
      isWrite: true,
    });
    expect(tablesOf(plan('ALTER TABLE public.orders ADD COLUMN note text'))).toEqual(['public.orders']);
    expect(tablesOf(plan('TRUNCATE users, orders'))).toEqual(['users', 'orders']);
    expect(tablesOf(plan('DROP TABLE IF EXISTS a, s.b'))).toEqual(['a', 's.b']);
    expect(tablesOf(plan('DROP INDEX i'))).toEqual([]);
    expect(plan('CREATE TABLE t2 AS SELECT * FROM users').kind).toBe('ddl');
    expect(plan('SELECT * INTO t3 FROM users')).toMatchObject({ kind: 'ddl', isWrite: true });
    expect(plan('CREATE EXTENSION IF NOT EXISTS pgcrypto').kind).toBe('ddl');
    expect(plan('GRANT SELECT ON users TO app').kind).toBe('ddl');
    expect(plan('VACUUM ANALYZE users').kind).toBe('ddl');
    expect(plan('COMMENT ON TABLE users IS $$x$$').kind).toBe('ddl');
  });

  it('classifies other utility statements', () => {
    expect(plan('LISTEN jobs')).toMatchObject({ kind: 'other', nodeType: 'ListenStmt', isWrite: false });
    expect(plan("NOTIFY jobs, 'x'").nodeType).toBe('NotifyStmt');
    expect(plan('DEALLOCATE ALL')).toMatchObject({ kind: 'deallocate', sqlStatement: { name: null } });
    expect(plan('LOCK TABLE users IN SHARE MODE')).toMatchObject({ kind: 'other', isWrite: false });
    expect(plan("EXECUTE s(1, $1, -2.5, 'x'::text, NULL, 1 + 1)")).toMatchObject({
      kind: 'execute',
      isWrite: true,
      paramCount: 1,
      sqlStatement: {
        name: 's',
        args: [
          { kind: 'constant', value: '1' },
          { kind: 'param', index: 1 },
          { kind: 'constant', value: '-2.5' },
          { kind: 'constant', value: 'x' },
          { kind: 'constant', value: null },
          { kind: 'expression' },
        ],
      },
    });
    expect(plan('DO $$ BEGIN PERFORM 1; END $$').isWrite).toBe(true);
    expect(plan('CALL refresh_stats($1)').paramCount).toBe(1);
    const prep = plan('PREPARE get_user(bigint) AS SELECT * FROM users WHERE id = $1');
    expect(prep).toMatchObject({ kind: 'prepare', sqlStatement: { name: 'get_user' } });
    expect(keyOf(prep.inner as StatementPlan)).toBe('$1');
    const cursor = plan('DECLARE c CURSOR FOR SELECT * FROM orders');
    expect(cursor).toMatchObject({ kind: 'other', isReadOnly: true });
    expect(plan('FETCH 10 FROM c').isReadOnly).toBe(true);
  });
});

describe('read-only vs write', () => {
  it('marks locking reads, write functions and data-modifying CTEs', () => {
    const locked = plan('SELECT * FROM users WHERE id = 1 FOR UPDATE SKIP LOCKED');
    expect(locked).toMatchObject({ isReadOnly: false, isWrite: false, hasLockingClause: true });
    expect(plan("SELECT nextval('users_id_seq')")).toMatchObject({ isReadOnly: false, isWrite: true });
    expect(plan("SELECT pg_catalog.setval('s', 1)").isWrite).toBe(true);
    const cte = plan(
      'WITH moved AS (DELETE FROM orders WHERE user_id = $1 RETURNING *) SELECT count(*) FROM moved',
    );
    expect(cte).toMatchObject({ kind: 'select', isWrite: true, isReadOnly: false });
    expect(keyOf(cte)).toBe('$1');
    expect(plan('SELECT * FROM users').isReadOnly).toBe(true);
  });

  it('marks RETURNING and counts parameters', () => {
    expect(plan('DELETE FROM users WHERE id = $2 RETURNING id').hasReturning).toBe(true);
    expect(plan('DELETE FROM users WHERE id = $2').hasReturning).toBe(false);
    expect(plan('SELECT $3::int, $1').paramCount).toBe(3);
  });
});

describe('tables', () => {
  it('lists each table once with its sharding', () => {
    const p = plan(
      'SELECT * FROM users u JOIN orders o ON o.user_id = u.id JOIN countries c ON c.code = u.country JOIN users u2 ON u2.id = u.id',
    );
    expect(tablesOf(p)).toEqual(['users', 'orders', 'countries']);
    expect(p.tables.map((t) => t.sharding)).toEqual(['sharded', 'sharded', 'omnisharded']);
    expect(p.tables[1].shardColumn).toBe('user_id');
    expect(p).toMatchObject({ touchesSharded: true, touchesOmnisharded: true, touchesCatalog: false });
  });

  it('keeps the name as written and as stored', () => {
    const p = plan('SELECT * FROM public."User" AS u, "Users", Orders');
    expect(p.tables.map((t) => [t.schema, t.name, t.written, t.sharding])).toEqual([
      ['public', 'User', 'public."User"', 'sharded'],
      [null, 'Users', '"Users"', 'none'],
      [null, 'orders', 'Orders', 'sharded'],
    ]);
  });

  it('does not list CTE names as tables', () => {
    expect(tablesOf(plan('WITH x AS (SELECT 1 AS a) SELECT * FROM x'))).toEqual([]);
    expect(
      tablesOf(
        plan('WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r'),
      ),
    ).toEqual([]);
  });

  it('finds catalog-only statements', () => {
    expect(plan('SELECT current_setting($1)').touchesCatalog).toBe(true);
    expect(plan('SELECT current_user, current_schema').touchesCatalog).toBe(true);
    expect(plan('SELECT * FROM pg_stat_activity').touchesCatalog).toBe(true);
    expect(plan('SELECT 1').touchesCatalog).toBe(false);
    expect(plan('SELECT version(), count(*) FROM users').touchesCatalog).toBe(false);
  });
});
