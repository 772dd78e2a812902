// Statement rewrites: splitInsert (per-shard INSERTs, parameters renumbered, Parse/Bind rebuilt), pushDownOffset,
// stripLimit, and shardSelectSql (the SELECT a fan-out's shards run: avg as sum, hidden columns, HAVING moved).
import { parseSync } from 'pgsql-parser';
import { beforeAll, describe, expect, it } from 'vitest';
import { initParser } from '../../../src/router/parser.js';
import {
  aggregateLike,
  pushDownOffset,
  shardSelectSql,
  splitInsert,
  stripLimit,
  type ShardSelectEdit,
} from '../../../src/router/rewrite.js';

beforeAll(async () => {
  await initParser();
});

describe('splitInsert', () => {
  it('groups rows by shard and renumbers parameters per shard', () => {
    const parts = splitInsert(
      'insert into users (id, name) values ($1, $2), ($3, $4), ($5, $6) on conflict (id) do update set name = excluded.name returning id',
      [1, 0, 1],
    );
    expect(parts.map((p) => [p.shard, p.rows])).toEqual([
      [0, [1]],
      [1, [0, 2]],
    ]);
    expect(parts[0].sql).toBe(
      'INSERT INTO users (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id',
    );
    expect(parts[0].paramMap).toEqual([3, 4]);
    expect(parts[1].sql).toMatch(/VALUES \(\$1, \$2\), \(\$3, \$4\)/);
    expect(parts[1].paramMap).toEqual([1, 2, 5, 6]);
  });

  it('keeps literals and parameters used outside VALUES', () => {
    const [a, b] = splitInsert("insert into t (k, v) values (1, 'a'), (2, $1) returning v || $2", [0, 1]);
    expect(a.sql).toBe("INSERT INTO t (k, v) VALUES (1, 'a') RETURNING v || $1");
    expect(a.paramMap).toEqual([2]);
    expect(b.paramMap).toEqual([1, 2]);
  });
});

describe('pushDownOffset', () => {
  it('turns LIMIT l OFFSET o into LIMIT l + o, keeping parameters in place', () => {
    expect(pushDownOffset('select id from t order by id limit $1 offset $2')).toBe(
      'SELECT id FROM t ORDER BY id LIMIT CAST($1 AS bigint) + CAST($2 AS bigint)',
    );
    expect(pushDownOffset('select id from t order by id limit 10 offset 5')).toMatch(
      /LIMIT CAST\(10 AS bigint\) \+ CAST\(5 AS bigint\)$/,
    );
  });

  it('turns a bare OFFSET into LIMIT NULL + o (no limit, parameter kept) and ignores statements without one', () => {
    expect(pushDownOffset('select id from t order by id offset 3')).toBe(
      'SELECT id FROM t ORDER BY id LIMIT CAST(NULL AS bigint) + CAST(3 AS bigint)',
    );
    expect(pushDownOffset('select id from t order by id limit 3')).toBeNull();
  });
});

describe('stripLimit', () => {
  it('removes LIMIT and OFFSET, keeping their parameters referenced', () => {
    expect(stripLimit('select a, count(*) from t group by a limit $1 offset 2')).toBe(
      'SELECT a, count(*) FROM t GROUP BY a LIMIT CAST(CAST(NULL AS bigint) + CAST($1 AS bigint) AS bigint) + CAST(2 AS bigint)',
    );
    expect(stripLimit('select a from t group by a')).toBeNull();
  });
});

describe('shardSelectSql', () => {
  type Fields = Record<string, unknown>;
  const selectOf = (sql: string): Fields =>
    (parseSync(sql) as { stmts: { stmt: { SelectStmt: Fields } }[] }).stmts[0].stmt.SelectStmt;
  const edit = (e: Partial<ShardSelectEdit>): ShardSelectEdit => ({
    avgTargets: [],
    hidden: [],
    having: 'keep',
    limit: 'keep',
    ...e,
  });
  /** The FuncCall fields of select-list entry `i`. */
  const call = (sel: Fields, i: number): Fields =>
    (sel.targetList as { ResTarget: { val: { FuncCall: Fields } } }[])[i].ResTarget.val.FuncCall;

  it('runs avg(x) as sum(x * 1) named avg (or its alias) and appends count(x) as a hidden column', () => {
    const sel = selectOf('select k, avg(x), avg(y) as m from t group by k');
    const sql = shardSelectSql(
      sel,
      edit({
        avgTargets: [1, 2],
        hidden: [aggregateLike(call(sel, 1), 'count'), aggregateLike(call(sel, 2), 'count')],
      }),
    );
    expect(sql).toBe(
      'SELECT k, pg_catalog.sum(x * 1) AS avg, pg_catalog.sum(y * 1) AS m, pg_catalog.count(x) AS "shardgate.hidden.1", ' +
        'pg_catalog.count(y) AS "shardgate.hidden.2" FROM t GROUP BY k',
    );
    // The client's tree is left as it was.
    expect(call(sel, 1).funcname).toMatchObject([{ String: { sval: 'avg' } }]);
  });

  it('removes HAVING, or keeps it always true when it holds parameters', () => {
    const sel = selectOf('select k from t group by k having count(*) > $1 limit 3 offset 1');
    expect(shardSelectSql(sel, edit({ having: 'remove', limit: 'strip' }))).toBe(
      'SELECT k FROM t GROUP BY k LIMIT CAST(CAST(NULL AS bigint) + CAST(3 AS bigint) AS bigint) + CAST(1 AS bigint)',
    );
    expect(shardSelectSql(sel, edit({ having: 'neutralize' }))).toBe(
      'SELECT k FROM t GROUP BY k HAVING count(*) > $1 OR true LIMIT 3 OFFSET 1',
    );
  });

  it('appends hidden sort columns and pushes OFFSET down', () => {
    const sel = selectOf('select name from users order by created_at desc, id limit 10 offset $1');
    const orderBy = (sel.sortClause as { SortBy: { node: unknown } }[]).map((s) => s.SortBy.node);
    expect(shardSelectSql(sel, edit({ hidden: orderBy, limit: 'pushdown' }))).toBe(
      'SELECT name, created_at AS "shardgate.hidden.1", id AS "shardgate.hidden.2" FROM users ' +
        'ORDER BY created_at DESC, id LIMIT CAST(10 AS bigint) + CAST($1 AS bigint)',
    );
  });

  it('throws when the edit does not fit the statement', () => {
    expect(() => shardSelectSql(selectOf('select count(x) from t'), edit({ avgTargets: [1] }))).toThrow(
      /not an avg\(\) call/,
    );
    expect(() => shardSelectSql(selectOf('select x from t'), edit({ limit: 'pushdown' }))).toThrow(/OFFSET/);
  });
});
