// Which statements PostgreSQL refuses inside a transaction block (the proxy never wraps them), and which make
// PREPARE TRANSACTION impossible (temporary objects, LISTEN / NOTIFY, cursors WITH HOLD): read from the parsed AST.
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import { SCHEMA } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

const plan = (sql: string) => analyzeQuery(sql, SCHEMA)[0];

describe('statements PostgreSQL refuses inside a transaction block', () => {
  it.each([
    'VACUUM users',
    'VACUUM',
    'CREATE INDEX CONCURRENTLY i ON users (name)',
    'DROP INDEX CONCURRENTLY i',
    'REINDEX INDEX CONCURRENTLY i',
    'REINDEX DATABASE app',
    'CLUSTER',
    'CREATE DATABASE d',
    'DROP DATABASE d',
    'ALTER SYSTEM SET work_mem = 1',
    'CREATE TABLESPACE t LOCATION $$/x$$',
    'ALTER DATABASE d SET TABLESPACE t',
  ])('%s', (sql) => {
    expect(plan(sql).isNonTransactional).toBe(true);
  });

  it.each([
    'ANALYZE users',
    'CREATE INDEX i ON users (name)',
    'DROP INDEX i',
    'REINDEX INDEX i',
    'CLUSTER users USING i',
    'CREATE TABLE t (a int)',
    'TRUNCATE users',
    'ALTER DATABASE d SET work_mem = 1',
    'INSERT INTO users (id) VALUES (1)',
  ])('not: %s', (sql) => {
    expect(plan(sql).isNonTransactional).toBe(false);
  });
});

describe('statements after which PREPARE TRANSACTION is refused', () => {
  it.each([
    ['CREATE TEMP TABLE t (a int)', 'temporary'],
    ['CREATE TEMPORARY TABLE t AS SELECT 1', 'temporary'],
    ['CREATE TEMP VIEW v AS SELECT 1', 'temporary'],
    ['CREATE TEMP SEQUENCE s', 'temporary'],
    ['INSERT INTO pg_temp.t VALUES (1)', 'temporary'],
    ['SELECT * FROM pg_temp_3.t', 'temporary'],
    ['DISCARD TEMP', 'temporary'],
    ['NOTIFY c', 'NOTIFY'],
    ['LISTEN c', 'LISTEN'],
    ['UNLISTEN *', 'LISTEN'],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', 'WITH HOLD'],
    ['EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1', 'temporary'],
  ])('%s', (sql, why) => {
    expect(plan(sql).preventsPrepare).toContain(why);
  });

  it.each([
    'CREATE TABLE t (a int)',
    'CREATE UNLOGGED TABLE t (a int)',
    'DECLARE c CURSOR FOR SELECT 1',
    "SELECT 'pg_temp'",
    'INSERT INTO users (id) VALUES (1)',
  ])('not: %s', (sql) => {
    expect(plan(sql).preventsPrepare).toBeNull();
  });
});

describe('writes a transaction rolls back, large objects and notifications', () => {
  it.each([
    ['INSERT INTO users (id) VALUES (1)', true],
    ['CREATE TABLE t (a int)', true],
    ['WITH d AS (DELETE FROM users RETURNING id) SELECT count(*) FROM d', true],
    ['SELECT lo_create(0)', true],
    ["SELECT pg_notify('c', 'x')", true],
    ['EXPLAIN ANALYZE DELETE FROM users', true],
    ["SELECT nextval('s')", false],
    ['SELECT pg_advisory_lock(1)', false],
    ['EXPLAIN DELETE FROM users', false],
    ['SELECT 1', false],
  ])('%s: %s', (sql, expected) => {
    expect(plan(sql).hasTransactionalWrite).toBe(expected);
  });

  it('finds large-object calls and notifications', () => {
    expect(plan('SELECT loread(lo_open(1, 262144), 10)').usesLargeObjects).toBe(true);
    expect(plan("SELECT pg_notify('c', 'x')").usesLargeObjects).toBe(false);
    expect(plan("SELECT pg_notify('c', 'x')").isNotify).toBe(true);
    expect(plan("NOTIFY c, 'x'").isNotify).toBe(true);
    expect(plan("SELECT pg_notify('c', 'x')").preventsPrepare).toContain('NOTIFY');
    expect(plan('SELECT 1').isNotify).toBe(false);
  });
});

describe('DO blocks, read with the PL/pgSQL parser', () => {
  it('finds the tables its statements and expressions use, constant EXECUTEs included', () => {
    const p = plan(`DO $$
      DECLARE n int := (SELECT count(*) FROM countries);
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN CREATE TYPE mood AS ENUM ('ok'); END IF;
        EXECUTE 'INSERT INTO audit VALUES (''x'')';
        n := n + (SELECT count(*) FROM users);
      END $$`);
    expect(p.opaqueReason).toBeNull();
    expect(p.touchesSharded).toBe(true);
    expect(p.tables.map((t) => t.name).sort()).toEqual(['audit', 'countries', 'pg_type', 'users']);
  });

  it('DDL and copied tables only: not sharded; COMMIT inside: not run in a transaction of the proxy', () => {
    const ddl = plan("DO $$ BEGIN CREATE TABLE t (a int); INSERT INTO countries VALUES ('x'); END $$");
    expect([ddl.touchesSharded, ddl.opaqueReason, ddl.isNonTransactional]).toEqual([false, null, false]);
    expect(plan('DO $$ BEGIN CREATE TABLE t (a int); COMMIT; END $$').isNonTransactional).toBe(true);
    expect(plan('DO $$ BEGIN CREATE TEMP TABLE t (a int); END $$').preventsPrepare).toContain('temporary');
  });

  it('says why it cannot see into a block: dynamic SQL, another language, a body that does not parse', () => {
    expect(plan("DO $$ BEGIN EXECUTE format('DROP TABLE %I', 't'); END $$").opaqueReason).toContain(
      'run time',
    );
    expect(plan("DO LANGUAGE plperl 'print 1'").opaqueReason).toContain('plperl');
    expect(plan('DO $$ BEGIN SELECT 1 INTO STRICT nope FROM t; END $$').opaqueReason).toContain('parse');
  });
});

describe('size functions of sharded tables', () => {
  it('SELECT of size functions alone, each of a sharded table: summed across shards', () => {
    expect(
      plan("SELECT pg_total_relation_size('users'), pg_relation_size('users'::regclass)").sumsShardedSizes,
    ).toBe(2);
    expect(plan("SELECT pg_total_relation_size('countries')").sumsShardedSizes).toBeNull();
    expect(plan("SELECT pg_size_pretty(pg_total_relation_size('users'))").sumsShardedSizes).toBeNull();
    expect(plan("SELECT pg_total_relation_size('users'), 1").sumsShardedSizes).toBeNull();
  });

  it('a parameter for the relation: routed by the text, not by the literal-normalized plan', () => {
    expect(plan('SELECT pg_total_relation_size($1)').needsLiteralValues).toBe(true);
    expect(plan('SELECT 1').needsLiteralValues).toBe(false);
  });
});
