// What real clients send: psql's backslash-command queries, node-postgres, postgres.js, Prisma, TypeORM, Knex,
// Sequelize and pgbench statements (shapes as those tools generate them), each with the plan the router must make
// under fixtures.ts's schema. Used by corpus.test.ts and by bench/router-micro.ts.
import type { StatementKind } from '../../../src/router/plan.js';

export interface CorpusCase {
  readonly client: string;
  readonly sql: string;
  readonly kind: StatementKind;
  /** Tables as `schema.name` / `name` (checked when given). */
  readonly tables?: readonly string[];
  /** Shard key sources as `$1,7` (null: no key; checked when given). */
  readonly key?: string | null;
  /** Cross-shard reason pattern (null: none; checked when given). */
  readonly unsafe?: RegExp | null;
  readonly catalog?: boolean;
  readonly write?: boolean;
}

export const CORPUS: readonly CorpusCase[] = [
  // psql
  {
    client: 'psql \\dt',
    sql: `SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;`,
    kind: 'select',
    tables: ['pg_catalog.pg_class', 'pg_catalog.pg_namespace', 'pg_catalog.pg_am'],
    key: null,
    catalog: true,
  },
  {
    client: 'psql \\d users',
    sql: `SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;`,
    kind: 'select',
    tables: ['pg_catalog.pg_class', 'pg_catalog.pg_namespace'],
    catalog: true,
  },
  {
    client: 'psql \\d users (columns)',
    sql: `SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = '16385' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;`,
    kind: 'select',
    tables: ['pg_catalog.pg_attribute', 'pg_catalog.pg_attrdef'],
    catalog: true,
  },
  {
    client: 'psql \\l',
    sql: `SELECT d.datname as "Name",
       pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
       pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding"
FROM pg_catalog.pg_database d
ORDER BY 1;`,
    kind: 'select',
    catalog: true,
  },
  {
    client: 'psql \\dn',
    sql: `SELECT n.nspname AS "Name", pg_catalog.pg_get_userbyid(n.nspowner) AS "Owner" FROM pg_catalog.pg_namespace n WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1;`,
    kind: 'select',
    catalog: true,
  },
  { client: 'psql', sql: 'SHOW server_version', kind: 'show' },

  // node-postgres
  {
    client: 'pg',
    sql: 'SELECT * FROM users WHERE id = $1',
    kind: 'select',
    tables: ['users'],
    key: '$1',
    unsafe: null,
  },
  {
    client: 'pg',
    sql: 'INSERT INTO users (id, email) VALUES ($1, $2) RETURNING *',
    kind: 'insert',
    key: '$1',
    write: true,
  },
  { client: 'pg', sql: 'UPDATE users SET email = $2 WHERE id = $1', kind: 'update', key: '$1' },
  { client: 'pg', sql: 'DELETE FROM users WHERE id = $1', kind: 'delete', key: '$1' },
  { client: 'pg', sql: 'SELECT NOW()', kind: 'select', tables: [], key: null, catalog: false },
  { client: 'pg', sql: 'BEGIN', kind: 'begin' },
  { client: 'pg', sql: 'COMMIT', kind: 'commit' },
  { client: 'pg', sql: 'ROLLBACK', kind: 'rollback' },
  {
    client: 'pg',
    sql: 'SELECT * FROM orders WHERE user_id = ANY($1::bigint[]) ORDER BY created_at DESC',
    kind: 'select',
    key: '$1[]',
  },
  { client: 'pg', sql: 'SELECT $1::text AS name', kind: 'select', tables: [], key: null },

  // postgres.js
  {
    client: 'postgres.js array types',
    sql: `select b.oid, b.typarray
      from pg_catalog.pg_type a
      left join pg_catalog.pg_type b on b.oid = a.typelem
      where a.typcategory = 'A'
      group by b.oid, b.typarray
      order by b.oid`,
    kind: 'select',
    tables: ['pg_catalog.pg_type'],
    catalog: true,
  },
  {
    client: 'postgres.js',
    sql: 'select * from users where id in ($1,$2,$3)',
    kind: 'select',
    key: '$1,$2,$3',
  },
  {
    client: 'postgres.js',
    sql: 'insert into orders ("user_id","total") values ($1,$2),($3,$4) returning *',
    kind: 'insert',
    key: '$1,$3',
  },
  { client: 'postgres.js', sql: 'begin isolation level serializable', kind: 'begin' },
  { client: 'postgres.js', sql: 'savepoint s1', kind: 'savepoint' },
  { client: 'postgres.js', sql: 'release savepoint s1', kind: 'savepoint' },
  { client: 'postgres.js', sql: 'rollback to savepoint s1', kind: 'savepoint' },

  // Prisma
  {
    client: 'prisma findUnique',
    sql: 'SELECT "public"."User"."id", "public"."User"."email" FROM "public"."User" WHERE ("public"."User"."id" = $1 AND 1=1) LIMIT $2 OFFSET $3',
    kind: 'select',
    tables: ['public.User'],
    key: '$1',
    unsafe: null,
  },
  {
    client: 'prisma create',
    sql: 'INSERT INTO "public"."User" ("id","email") VALUES ($1,$2) RETURNING "public"."User"."id", "public"."User"."email"',
    kind: 'insert',
    key: '$1',
  },
  {
    client: 'prisma count',
    sql: 'SELECT COUNT(*) AS "_count._all" FROM (SELECT "public"."User"."id" FROM "public"."User" WHERE 1=1 OFFSET $1) AS "sub"',
    kind: 'select',
    key: null,
    // Answered across shards when $1 is 0, as Prisma binds it (route.ts checks it at Bind).
    unsafe: null,
  },
  {
    client: 'prisma upsert',
    sql: 'INSERT INTO "public"."User" ("id","email") VALUES ($1,$2) ON CONFLICT ("id") DO UPDATE SET "email" = $3 WHERE (("public"."User"."id" = $4 AND 1=1)) RETURNING "public"."User"."id"',
    kind: 'insert',
    key: '$1',
  },
  {
    client: 'prisma migrate',
    sql: 'SELECT pg_advisory_lock(72707369)',
    kind: 'select',
    catalog: true,
    write: true,
  },
  {
    client: 'prisma migrate',
    sql: 'SELECT "id", "checksum", "finished_at", "migration_name", "logs", "rolled_back_at", "started_at", "applied_steps_count" FROM "_prisma_migrations" ORDER BY "started_at" ASC',
    kind: 'select',
    tables: ['_prisma_migrations'],
    key: null,
    unsafe: null,
  },
  {
    client: 'prisma migrate',
    sql: `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`,
    kind: 'ddl',
    tables: ['_prisma_migrations'],
  },

  // TypeORM
  { client: 'typeorm', sql: 'SELECT * FROM current_schema()', kind: 'select', tables: [], catalog: true },
  { client: 'typeorm', sql: 'SELECT version();', kind: 'select', catalog: true },
  {
    client: 'typeorm',
    sql: `SELECT * FROM "information_schema"."tables" WHERE "table_schema" = 'public' AND "table_name" = 'migrations'`,
    kind: 'select',
    tables: ['information_schema.tables'],
    catalog: true,
  },
  {
    client: 'typeorm',
    sql: 'SELECT * FROM "migrations" "migrations" ORDER BY "id" DESC',
    kind: 'select',
    tables: ['migrations'],
  },
  {
    client: 'typeorm',
    sql: 'INSERT INTO "migrations"("timestamp", "name") VALUES ($1, $2)',
    kind: 'insert',
    key: null,
  },
  { client: 'typeorm', sql: 'START TRANSACTION', kind: 'begin' },
  {
    client: 'typeorm findOne',
    sql: 'SELECT "User"."id" AS "User_id", "User"."name" AS "User_name" FROM "users" "User" WHERE (("User"."id" = $1)) LIMIT 1',
    kind: 'select',
    key: '$1',
  },
  {
    client: 'typeorm paginated join',
    sql: 'SELECT DISTINCT "distinctAlias"."User_id" AS "ids_User_id" FROM (SELECT "User"."id" AS "User_id", "User"."name" AS "User_name" FROM "users" "User" LEFT JOIN "orders" "order" ON "order"."user_id"="User"."id") "distinctAlias" ORDER BY "User_id" ASC LIMIT 10',
    kind: 'select',
    tables: ['users', 'orders'],
    key: null,
    unsafe: null,
  },
  { client: 'typeorm', sql: 'UPDATE "users" SET "name" = $1 WHERE "id" IN ($2)', kind: 'update', key: '$2' },
  { client: 'typeorm', sql: 'DELETE FROM "users" WHERE "id" IN ($1, $2)', kind: 'delete', key: '$1,$2' },

  // Knex
  { client: 'knex', sql: 'select * from "users" where "id" = $1 limit $2', kind: 'select', key: '$1' },
  {
    client: 'knex migrate',
    sql: 'insert into "knex_migrations" ("batch", "migration_time", "name") values ($1, $2, $3)',
    kind: 'insert',
    tables: ['knex_migrations'],
  },
  {
    client: 'knex migrate',
    sql: 'select max("batch") as "max_batch" from "knex_migrations"',
    kind: 'select',
    unsafe: null,
  },
  {
    client: 'knex migrate',
    sql: 'update "knex_migrations_lock" set "is_locked" = $1 where "is_locked" = $2',
    kind: 'update',
    key: null,
  },
  {
    client: 'knex hasTable',
    sql: 'select * from information_schema.tables where table_name = $1 and table_schema = current_schema()',
    kind: 'select',
    catalog: true,
  },
  {
    client: 'knex',
    sql: 'select count(*) as "count" from "orders"',
    kind: 'select',
    tables: ['orders'],
    key: null,
    unsafe: null,
  },
  {
    client: 'knex migrate',
    sql: 'create table "knex_migrations" ("id" serial primary key, "name" varchar(255), "batch" integer, "migration_time" timestamptz)',
    kind: 'ddl',
  },

  // Sequelize
  {
    client: 'sequelize findByPk',
    sql: 'SELECT "id", "name", "createdAt", "updatedAt" FROM "users" AS "User" WHERE "User"."id" = 9007199254740993;',
    kind: 'select',
    key: '9007199254740993',
  },
  {
    client: 'sequelize create',
    sql: 'INSERT INTO "users" ("id","name","createdAt","updatedAt") VALUES (DEFAULT,$1,$2,$3) RETURNING "id","name","createdAt","updatedAt";',
    kind: 'insert',
    key: null,
    unsafe: /no literal or parameter for sharding column id/,
  },
  {
    client: 'sequelize count',
    sql: `SELECT count(*) AS "count" FROM "orders" AS "Order" WHERE "Order"."user_id" = '42';`,
    kind: 'select',
    key: '42',
  },
  {
    client: 'sequelize showIndex',
    sql: `SELECT i.relname AS name, ix.indisprimary AS primary, ix.indisunique AS unique, ix.indkey AS indkey, array_agg(a.attnum) as column_indexes, array_agg(a.attname) AS column_names, pg_get_indexdef(ix.indexrelid) AS definition FROM pg_class t, pg_class i, pg_index ix, pg_attribute a WHERE t.oid = ix.indrelid AND i.oid = ix.indexrelid AND a.attrelid = t.oid AND t.relkind = 'r' and t.relname = 'users' GROUP BY i.relname, ix.indexrelid, ix.indisprimary, ix.indisunique, ix.indkey ORDER BY i.relname;`,
    kind: 'select',
    tables: ['pg_class', 'pg_index', 'pg_attribute'],
    catalog: true,
  },
  { client: 'sequelize', sql: 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;', kind: 'set' },
  { client: 'sequelize', sql: 'SAVEPOINT "c0b9b1a2-sp-1";', kind: 'savepoint' },
  {
    client: 'sequelize include',
    sql: 'SELECT "User"."id", "orders"."id" AS "orders.id" FROM "users" AS "User" LEFT OUTER JOIN "orders" AS "orders" ON "User"."id" = "orders"."user_id" WHERE "User"."id" = 5;',
    kind: 'select',
    key: '5',
  },

  // pgbench (extended protocol, then simple protocol and initialization)
  {
    client: 'pgbench',
    sql: 'UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;',
    kind: 'update',
    key: '$2',
  },
  {
    client: 'pgbench',
    sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1;',
    kind: 'select',
    key: '$1',
  },
  {
    client: 'pgbench',
    sql: 'UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;',
    kind: 'update',
    tables: ['pgbench_tellers'],
    key: null,
  },
  {
    client: 'pgbench',
    sql: 'UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;',
    kind: 'update',
    key: null,
  },
  {
    client: 'pgbench',
    sql: 'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);',
    kind: 'insert',
    key: '$3',
  },
  {
    client: 'pgbench -M simple',
    sql: 'UPDATE pgbench_accounts SET abalance = abalance + -4153 WHERE aid = 87711;',
    kind: 'update',
    key: '87711',
  },
  { client: 'pgbench -M simple', sql: 'END;', kind: 'commit' },
  {
    client: 'pgbench -i',
    sql: 'drop table if exists pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers',
    kind: 'ddl',
    tables: ['pgbench_accounts', 'pgbench_branches', 'pgbench_history', 'pgbench_tellers'],
  },
  {
    client: 'pgbench -i',
    sql: 'create table pgbench_history(tid int,bid int,aid    int,delta int,mtime timestamp,filler char(22))',
    kind: 'ddl',
    tables: ['pgbench_history'],
  },
  {
    client: 'pgbench -i',
    sql: 'copy pgbench_accounts from stdin with (freeze on)',
    kind: 'copy',
    write: true,
  },
  { client: 'pgbench -i', sql: 'vacuum analyze pgbench_branches', kind: 'ddl' },
  {
    client: 'pgbench -i',
    sql: 'truncate table pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers',
    kind: 'ddl',
  },
  { client: 'pgbench -i', sql: 'alter table pgbench_branches add primary key (bid)', kind: 'ddl' },
  {
    client: 'pgbench',
    sql: 'select count(*) from pgbench_branches',
    kind: 'select',
    tables: ['pgbench_branches'],
    key: null,
  },
  {
    client: 'pgbench partitions',
    sql: `select o.n, p.partstrat, pg_catalog.count(i.inhparent) from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent) where c.relname = 'pgbench_accounts' and o.n is not null group by 1, 2 order by 1 asc limit 1`,
    kind: 'select',
    catalog: true,
  },

  // Transaction control, utility statements, harder DML
  { client: 'txn', sql: 'START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY', kind: 'begin' },
  { client: 'txn', sql: 'ABORT', kind: 'rollback' },
  { client: 'txn', sql: 'COMMIT AND CHAIN', kind: 'commit' },
  { client: '2pc', sql: "PREPARE TRANSACTION 'shardgate_1_42_0'", kind: 'prepare_transaction' },
  { client: '2pc', sql: "COMMIT PREPARED 'shardgate_1_42_0'", kind: 'commit_prepared' },
  { client: '2pc', sql: "ROLLBACK PREPARED 'shardgate_1_42_0'", kind: 'rollback_prepared' },
  { client: 'pool reset', sql: 'RESET ALL', kind: 'reset' },
  { client: 'pool reset', sql: 'DISCARD ALL', kind: 'discard' },
  { client: 'session', sql: "SET search_path TO public, 'tenant_a'", kind: 'set' },
  {
    client: 'explain',
    sql: 'EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM users WHERE id = 1',
    kind: 'explain',
    tables: ['users'],
  },
  {
    client: 'merge',
    sql: `MERGE INTO users u USING (VALUES ($1::bigint, $2::text)) AS v(id, email) ON u.id = v.id
          WHEN MATCHED THEN UPDATE SET email = v.email
          WHEN NOT MATCHED THEN INSERT (id, email) VALUES (v.id, v.email)`,
    kind: 'merge',
    key: '$1',
    unsafe: null,
  },
  {
    client: 'delete using',
    sql: 'DELETE FROM orders o USING users u WHERE o.user_id = u.id AND u.email IS DISTINCT FROM $1',
    kind: 'delete',
    key: null,
    unsafe: null,
  },
  {
    client: 'update from',
    sql: 'UPDATE orders o SET total = 0 FROM users u WHERE o.total = u.id',
    kind: 'update',
    unsafe: /UPDATE … FROM: sharded tables orders and users are not joined on their sharding columns/,
  },
  { client: 'listen', sql: 'LISTEN jobs', kind: 'other' },
  { client: 'notify', sql: "NOTIFY jobs, 'payload'", kind: 'other' },
  {
    client: 'tenant (column-based)',
    sql: 'SELECT * FROM invoices WHERE tenant_id = $1 AND status = $2',
    kind: 'select',
    tables: ['invoices'],
    key: '$1',
  },
  {
    client: 'uuid key',
    sql: "SELECT * FROM devices WHERE serial = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid",
    kind: 'select',
    key: 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
  },
];
