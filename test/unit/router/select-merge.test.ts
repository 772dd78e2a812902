// SELECT merge information for fan-out: ORDER BY (position, name, direction, NULLS), LIMIT/OFFSET, aggregate
// positions, GROUP BY positions, DISTINCT, set operations, select-list size.
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import type { SelectMergeInfo } from '../../../src/router/plan.js';
import { SCHEMA } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

function merge(sql: string): SelectMergeInfo {
  const p = analyzeQuery(sql, SCHEMA)[0];
  expect(p.select).not.toBeNull();
  return p.select as SelectMergeInfo;
}

describe('ORDER BY', () => {
  it('resolves positions, output names and repeated expressions, with PostgreSQL defaults for NULLS', () => {
    const m = merge(
      'SELECT id, email AS e, lower(name) FROM users ORDER BY 1 DESC, e, lower(name) NULLS FIRST, id DESC NULLS LAST',
    );
    expect(m.orderBy).toEqual([
      {
        position: 1,
        name: 'id',
        descending: true,
        nullsFirst: true,
        hidden: null,
        isByteCollated: false,
        collation: null,
      },
      {
        position: 2,
        name: 'e',
        descending: false,
        nullsFirst: false,
        hidden: null,
        isByteCollated: false,
        collation: null,
      },
      {
        position: 3,
        name: 'lower',
        descending: false,
        nullsFirst: true,
        hidden: null,
        isByteCollated: false,
        collation: null,
      },
      {
        position: 1,
        name: 'id',
        descending: true,
        nullsFirst: false,
        hidden: null,
        isByteCollated: false,
        collation: null,
      },
    ]);
    expect(m.targetCount).toBe(3);
  });

  it('matches a qualified input column to its select-list entry', () => {
    expect(merge('SELECT u.id AS user_id FROM users u ORDER BY u.id').orderBy[0].position).toBe(1);
  });

  it('does not take a column of another table with the same name for a select-list entry', () => {
    // ORDER BY o.id is not the selected u.id: a hidden sort column (was sorted on u.id: wrong order across shards).
    const m = merge(
      'SELECT u.id, o.created_at FROM users u JOIN orders o ON o.user_id = u.id ORDER BY o.id DESC, u.created_at, id',
    );
    expect(m.orderBy.map((o) => [o.position, o.hidden])).toEqual([
      [null, 0],
      [null, 1],
      [1, null],
    ]);
    expect(m.shardQuery?.sql).toBe(
      'SELECT u.id, o.created_at, o.id AS "shardgate.hidden.1", u.created_at AS "shardgate.hidden.2" FROM users AS u ' +
        'JOIN orders AS o ON o.user_id = u.id ORDER BY o.id DESC, u.created_at, id',
    );
  });

  it('orders by name through SELECT * (a hidden column: its position is unknown)', () => {
    const m = merge('SELECT * FROM users ORDER BY created_at DESC, 2');
    expect(m.orderBy).toEqual([
      {
        position: null,
        name: 'created_at',
        descending: true,
        nullsFirst: true,
        hidden: 0,
        isByteCollated: false,
        collation: null,
      },
      {
        position: 2,
        name: null,
        descending: false,
        nullsFirst: false,
        hidden: null,
        isByteCollated: false,
        collation: null,
      },
    ]);
    expect(m.targetCount).toBeNull();
    expect(m.shardQuery).toEqual({
      sql: 'SELECT *, created_at AS "shardgate.hidden.1" FROM users ORDER BY created_at DESC, 2',
      hiddenCount: 1,
      hiddenFormatSources: [null],
    });
  });

  it('marks sort expressions collated "C" (byte order, mergeable whatever the database collation)', () => {
    const m = merge('SELECT name FROM users ORDER BY name COLLATE "C", email COLLATE "en_US", id');
    expect(m.orderBy.map((o) => o.isByteCollated)).toEqual([true, false, false]);
    expect(merge('SELECT name COLLATE "POSIX" AS n FROM users ORDER BY n').orderBy[0].isByteCollated).toBe(
      true,
    );
  });
});

describe('LIMIT / OFFSET', () => {
  it('reads literals and parameters; LIMIT ALL is no limit', () => {
    expect(merge('SELECT * FROM users LIMIT 10 OFFSET $1')).toMatchObject({
      limit: { kind: 'literal', value: '10' },
      offset: { kind: 'param', index: 1 },
    });
    expect(merge('SELECT * FROM users LIMIT ALL')).toMatchObject({ limit: null, offset: null });
    expect(merge('SELECT * FROM users FETCH FIRST $2 ROWS ONLY').limit).toEqual({ kind: 'param', index: 2 });
    expect(merge('SELECT * FROM users LIMIT 0').limit).toEqual({ kind: 'literal', value: '0' });
  });
});

describe('aggregates and grouping', () => {
  it('lists mergeable aggregates with their positions', () => {
    const m = merge(
      'SELECT country, count(*), sum(total)::bigint AS s, max(x) FILTER (WHERE y), avg(z), count(DISTINCT id) FROM users GROUP BY 1',
    );
    expect(m.aggregates).toEqual([
      { merge: 'combine', position: 2, fn: 'count', isDistinct: false, countPosition: null },
      { merge: 'combine', position: 3, fn: 'sum', isDistinct: false, countPosition: null },
      { merge: 'combine', position: 4, fn: 'max', isDistinct: false, countPosition: null },
      { merge: 'combine', position: 5, fn: 'avg', isDistinct: false, countPosition: 7 },
      // DISTINCT of the sharding key: no value is on two shards, the counts add up.
      { merge: 'combine', position: 6, fn: 'count', isDistinct: true, countPosition: null },
    ]);
    expect(m).toMatchObject({ hasGroupBy: true, groupByPositions: [1] });
  });

  it('maps GROUP BY expressions to select-list positions', () => {
    expect(merge('SELECT lower(email), count(*) FROM users GROUP BY lower(email)').groupByPositions).toEqual([
      1,
    ]);
    expect(merge('SELECT country AS c, count(*) FROM users GROUP BY country').groupByPositions).toEqual([1]);
  });

  it('reads DISTINCT and DISTINCT ON', () => {
    expect(merge('SELECT DISTINCT country FROM users')).toMatchObject({ distinct: true, distinctOn: false });
    expect(merge('SELECT DISTINCT ON (id) * FROM users')).toMatchObject({ distinct: true, distinctOn: true });
    expect(merge('SELECT country FROM users')).toMatchObject({ distinct: false, hasGroupBy: false });
  });

  it('DISTINCT ON without ORDER BY: the shards order by its expressions, the merge keeps the first of each run', () => {
    const m = merge('SELECT DISTINCT ON (country, id) id, country FROM users');
    expect(m.distinctOnPositions).toEqual([2, 1]);
    expect(m.orderBy.map((o) => [o.position, o.descending])).toEqual([
      [2, false],
      [1, false],
    ]);
    expect(m.shardQuery?.sql).toMatch(/ORDER BY 2, 1$/);
    // With `*` the positions are unknown: still refused (no plan for it).
    expect(merge('SELECT DISTINCT ON (id) * FROM users').distinctOnPositions).toBeNull();
  });

  it('DISTINCT ON ordered by columns not selected: hidden sort columns (was refused); plain DISTINCT still refuses', () => {
    const sql =
      'SELECT DISTINCT ON (country) country, name FROM users ORDER BY country DESC, created_at, id LIMIT 3';
    const p = analyzeQuery(sql, SCHEMA)[0];
    expect(p.crossShardUnsafe).toBeNull();
    const m = p.select as SelectMergeInfo;
    expect(m.distinctOnPositions).toEqual([1]);
    expect(m.orderBy.map((o) => [o.position, o.hidden])).toEqual([
      [1, null],
      [null, 0],
      [null, 1],
    ]);
    expect(m.shardQuery?.sql).toBe(
      'SELECT DISTINCT ON (country) country, name, created_at AS "shardgate.hidden.1", id AS "shardgate.hidden.2" ' +
        'FROM users ORDER BY country DESC, created_at, id LIMIT CAST(NULL AS bigint) + CAST(3 AS bigint)',
    );
    expect(
      analyzeQuery('SELECT DISTINCT country FROM users ORDER BY created_at', SCHEMA)[0].crossShardUnsafe,
    ).toMatch(/^ORDER BY an expression that is not in the select list/);
  });
});

describe('set operations', () => {
  it('reads the operation and its ORDER BY / LIMIT', () => {
    const m = merge(
      'SELECT id, email FROM users UNION ALL SELECT user_id, note FROM orders ORDER BY email LIMIT 3',
    );
    expect(m).toMatchObject({
      setOperation: 'union_all',
      limit: { kind: 'literal', value: '3' },
      orderBy: [{ position: 2, name: 'email' }],
      targetCount: 2,
    });
    expect(merge('SELECT 1 UNION SELECT 2').setOperation).toBe('union');
    expect(merge('SELECT 1 INTERSECT ALL SELECT 2').setOperation).toBe('intersect_all');
    expect(merge('SELECT 1 EXCEPT SELECT 2').setOperation).toBe('except');
  });

  it('takes the output columns from the first branch, VALUES included (column1, column2, …)', () => {
    expect(
      merge("VALUES (1::bigint, 'a') UNION SELECT id, email FROM users ORDER BY column2 DESC"),
    ).toMatchObject({ targetCount: 2, orderBy: [{ position: 2, name: 'column2', descending: true }] });
    expect(
      merge('(SELECT id, email, 1 FROM users UNION SELECT 1, 2, 3) UNION ALL SELECT 4, 5, 6').targetCount,
    ).toBe(3);
  });

  it('pushes OFFSET down as LIMIT limit + offset over the whole set operation', () => {
    expect(
      merge('SELECT id FROM users UNION SELECT user_id FROM orders ORDER BY 1 LIMIT $1 OFFSET $2').shardQuery,
    ).toEqual({
      sql: 'SELECT id FROM users UNION SELECT user_id FROM orders  ORDER BY 1 LIMIT CAST($1 AS bigint) + CAST($2 AS bigint)',
      hiddenCount: 0,
      hiddenFormatSources: [],
    });
    expect(
      merge('SELECT id FROM users UNION ALL SELECT user_id FROM orders ORDER BY 1 LIMIT 3').shardQuery,
    ).toBeNull();
  });
});

describe('the statement the shards run (shardQuery)', () => {
  it('runs avg(x) as sum(x) under the output name, with a hidden count(x) after the select list', () => {
    const m = merge('SELECT status, avg(total), avg(total) AS a FROM orders GROUP BY status ORDER BY 2');
    expect(m.shardQuery).toEqual({
      sql:
        'SELECT status, pg_catalog.sum(total * 1) AS avg, pg_catalog.sum(total * 1) AS a, ' +
        'pg_catalog.count(total) AS "shardgate.hidden.1", pg_catalog.count(total) AS "shardgate.hidden.2" ' +
        'FROM orders GROUP BY status ORDER BY 2',
      hiddenCount: 2,
      hiddenFormatSources: [null, null],
    });
    expect(m.aggregates).toEqual([
      { merge: 'combine', position: 2, fn: 'avg', isDistinct: false, countPosition: 4 },
      { merge: 'combine', position: 3, fn: 'avg', isDistinct: false, countPosition: 5 },
    ]);
  });

  it('keeps FILTER on both halves of an avg', () => {
    expect(merge('SELECT avg(total) FILTER (WHERE total > 0) FROM orders').shardQuery?.sql).toBe(
      'SELECT pg_catalog.sum(total * 1) FILTER (WHERE total > 0) AS avg, ' +
        'pg_catalog.count(total) FILTER (WHERE total > 0) AS "shardgate.hidden.1" FROM orders',
    );
  });

  it('needs no rewrite for plain merges, and pushes OFFSET down or strips LIMIT under GROUP BY', () => {
    expect(merge('SELECT id FROM users ORDER BY id LIMIT 5').shardQuery).toBeNull();
    expect(merge('SELECT count(*), sum(total) FROM orders').shardQuery).toBeNull();
    expect(merge('SELECT id FROM users ORDER BY id LIMIT 5 OFFSET $1').shardQuery?.sql).toBe(
      'SELECT id FROM users ORDER BY id LIMIT CAST(5 AS bigint) + CAST($1 AS bigint)',
    );
    expect(merge('SELECT country, count(*) FROM users GROUP BY 1 ORDER BY 1 LIMIT $1').shardQuery?.sql).toBe(
      'SELECT country, count(*) FROM users GROUP BY 1 ORDER BY 1 LIMIT CAST(NULL AS bigint) + CAST($1 AS bigint)',
    );
  });
});

describe('hidden sort columns', () => {
  it('appends ORDER BY expressions that are not output columns, once each', () => {
    const m = merge(
      'SELECT name FROM users ORDER BY created_at DESC NULLS FIRST, lower(email), created_at LIMIT 3',
    );
    expect(m.orderBy.map((o) => [o.position, o.hidden])).toEqual([
      [null, 0],
      [null, 1],
      [null, 0],
    ]);
    expect(m.shardQuery).toEqual({
      sql:
        'SELECT name, created_at AS "shardgate.hidden.1", lower(email) AS "shardgate.hidden.2" FROM users ' +
        'ORDER BY created_at DESC NULLS FIRST, lower(email), created_at LIMIT 3',
      hiddenCount: 2,
      hiddenFormatSources: [null, null],
    });
  });

  it('keeps OFFSET pushdown with hidden columns', () => {
    expect(merge('SELECT id FROM users ORDER BY score, id LIMIT $1 OFFSET $2').shardQuery?.sql).toBe(
      'SELECT id, score AS "shardgate.hidden.1" FROM users ORDER BY score, id ' +
        'LIMIT CAST($1 AS bigint) + CAST($2 AS bigint)',
    );
  });

  it('sorts on the expression of an output name that follows *', () => {
    const m = merge('SELECT *, score * 2 AS dbl FROM users ORDER BY dbl');
    expect(m.orderBy[0]).toMatchObject({ position: null, hidden: 0 });
    expect(m.shardQuery?.sql).toBe(
      'SELECT *, score * 2 AS dbl, score * 2 AS "shardgate.hidden.1" FROM users ORDER BY dbl',
    );
  });

  it('under GROUP BY: a hidden aggregate (merged like the others) or a per-group expression', () => {
    const m = merge(
      'SELECT country FROM users GROUP BY country ORDER BY count(*) DESC, avg(age), upper(country)',
    );
    expect(m.orderBy.map((o) => o.hidden)).toEqual([0, 1, 3]);
    expect(m.aggregates).toEqual([
      { merge: 'combine', position: 2, fn: 'count', isDistinct: false, countPosition: null },
      { merge: 'combine', position: 3, fn: 'avg', isDistinct: false, countPosition: 4 },
    ]);
    expect(m.shardQuery?.sql).toBe(
      'SELECT country, count(*) AS "shardgate.hidden.1", pg_catalog.sum(age * 1) AS "shardgate.hidden.2", ' +
        'pg_catalog.count(age) AS "shardgate.hidden.3", upper(country) AS "shardgate.hidden.4" FROM users ' +
        'GROUP BY country ORDER BY count(*) DESC, avg(age), upper(country)',
    );
  });

  it('ignores ORDER BY for aggregates without GROUP BY (one row)', () => {
    const m = merge('SELECT count(*) FROM users ORDER BY max(age)');
    expect(m.orderBy[0].hidden).toBeNull();
    expect(m.shardQuery).toBeNull();
  });
});

describe('HAVING', () => {
  it('becomes a condition on merged columns; missing aggregates become hidden columns', () => {
    const m = merge(
      "SELECT country, count(*) FROM users GROUP BY country HAVING count(*) > 2 AND (sum(age) <= -1.5 OR NOT country <> 'fr')",
    );
    expect(m.having).toEqual({
      kind: 'and',
      args: [
        {
          kind: 'compare',
          op: '>',
          left: { kind: 'column', position: 2 },
          right: { kind: 'literal', value: '2', isString: false, castType: null },
        },
        {
          kind: 'or',
          args: [
            {
              kind: 'compare',
              op: '<=',
              left: { kind: 'column', position: 3 },
              right: { kind: 'literal', value: '-1.5', isString: false, castType: null },
            },
            {
              kind: 'not',
              arg: {
                kind: 'compare',
                op: '<>',
                left: { kind: 'column', position: 1 },
                right: { kind: 'literal', value: 'fr', isString: true, castType: null },
              },
            },
          ],
        },
      ],
    });
    expect(m.aggregates.map((a) => [a.position, a.fn])).toEqual([
      [2, 'count'],
      [3, 'sum'],
    ]);
    expect(m.shardQuery?.sql).toBe(
      'SELECT country, count(*), sum(age) AS "shardgate.hidden.1" FROM users GROUP BY country',
    );
  });

  it('keeps a HAVING with parameters referenced (always true) so their types stay the same', () => {
    const m = merge(
      'SELECT country FROM users GROUP BY country HAVING avg(age) >= $1::numeric OR $2 < max(age)',
    );
    expect(m.having).toMatchObject({
      kind: 'or',
      args: [
        { left: { kind: 'column', position: 2 }, right: { kind: 'param', index: 1, castType: 'numeric' } },
        { left: { kind: 'param', index: 2, castType: null }, right: { kind: 'column', position: 4 } },
      ],
    });
    expect(m.shardQuery?.sql).toBe(
      'SELECT country, pg_catalog.sum(age * 1) AS "shardgate.hidden.1", pg_catalog.count(age) AS "shardgate.hidden.2", ' +
        'max(age) AS "shardgate.hidden.3" FROM users GROUP BY country HAVING (avg(age) >= CAST($1 AS numeric) OR $2 < max(age)) OR true',
    );
  });

  it('refuses what it cannot evaluate, naming it', () => {
    const problems = (sql: string): string | undefined =>
      analyzeQuery(sql, SCHEMA)[0].crossShardUnsafe ?? undefined;
    expect(problems('SELECT country FROM users GROUP BY country HAVING count(*) IS NOT NULL')).toMatch(
      /^HAVING with IS \[NOT\] NULL cannot be merged across shards/,
    );
    expect(problems('SELECT country FROM users GROUP BY country HAVING count(*) IN (1, 2)')).toMatch(
      /^HAVING with IN/,
    );
    expect(
      problems("SELECT country FROM users GROUP BY country HAVING string_agg(name, ',' ORDER BY name) > 'a'"),
    ).toMatch(/HAVING with aggregate string_agg cannot be merged/);
    expect(problems('SELECT country FROM users GROUP BY country HAVING 1 < 2')).toMatch(/two constants/);
    expect(
      problems('SELECT country FROM users GROUP BY country HAVING count(*) > 1.5::numeric(3,1)'),
    ).toMatch(/a constant cast to numeric/);
    // A boolean GROUP BY expression as the condition: not a comparison of age (not grouped; the shards would refuse
    // its hidden column with 42803 where PostgreSQL answers).
    for (const sql of [
      'SELECT age > 30, count(*) FROM users GROUP BY age > 30 HAVING age > 30',
      'SELECT age > 30, count(*) FROM users GROUP BY 1 HAVING NOT age > 30 OR count(*) > 2',
    ])
      expect(problems(sql)).toMatch(/^HAVING with a boolean GROUP BY expression cannot be merged/);
  });
});

describe('DISTINCT and ordered aggregates', () => {
  const unsafe = (sql: string): string | null => analyzeQuery(sql, SCHEMA)[0].crossShardUnsafe;

  it("TypeORM's count of the sharding key: the shards' counts add up, no rewrite", () => {
    const m = merge('SELECT COUNT(DISTINCT("User"."id")) AS "cnt" FROM "users" "User" WHERE "User".age > $1');
    expect(m.aggregates).toEqual([
      { merge: 'combine', position: 1, fn: 'count', isDistinct: true, countPosition: null },
    ]);
    expect(m.shardQuery).toBeNull();
    // Through a LEFT JOIN of a co-located table, and a key of the joined table.
    const joined = merge(
      'SELECT count(DISTINCT u.id), count(DISTINCT o.user_id) FROM users u LEFT JOIN orders o ON o.user_id = u.id',
    );
    expect(joined.aggregates.map((a) => a.merge)).toEqual(['combine', 'combine']);
  });

  it('avg(DISTINCT key) runs as sum(DISTINCT key) and a hidden count(DISTINCT key)', () => {
    const m = merge('SELECT avg(DISTINCT id), sum(DISTINCT id) FROM users');
    expect(m.shardQuery?.sql).toBe(
      'SELECT pg_catalog.sum(DISTINCT id * 1) AS avg, sum(DISTINCT id), pg_catalog.count(DISTINCT id) AS "shardgate.hidden.1" FROM users',
    );
    expect(m.aggregates[0]).toEqual({
      merge: 'combine',
      position: 1,
      fn: 'avg',
      isDistinct: true,
      countPosition: 3,
    });
  });

  it('other columns: the shards group by the value (a hidden column), a placeholder keeps the type and name', () => {
    const m = merge(
      'SELECT count(DISTINCT country), sum(DISTINCT age) FILTER (WHERE age > 0), count(*) FROM users LIMIT 1',
    );
    expect(m.shardQuery).toEqual({
      sql:
        'SELECT count(country) FILTER (WHERE false), sum(age) FILTER (WHERE false), count(*), ' +
        'country AS "shardgate.hidden.1", CASE WHEN age > 0 THEN age END AS "shardgate.hidden.2" FROM users ' +
        'GROUP BY 4, 5 LIMIT CAST(NULL AS bigint) + CAST(1 AS bigint)',
      hiddenCount: 2,
      hiddenFormatSources: [null, null],
    });
    expect(m.aggregates).toEqual([
      { merge: 'values', position: 1, fn: 'count', isDistinct: true, valuePosition: 4 },
      { merge: 'values', position: 2, fn: 'sum', isDistinct: true, valuePosition: 5 },
      { merge: 'combine', position: 3, fn: 'count', isDistinct: false, countPosition: null },
    ]);
  });

  it('a DISTINCT of the key merges from values too when another DISTINCT splits the shards into sub-groups', () => {
    const m = merge('SELECT country, count(DISTINCT id), count(DISTINCT age) FROM users GROUP BY country');
    expect(m.aggregates.map((a) => a.merge)).toEqual(['values', 'values']);
    expect(m.shardQuery?.sql).toBe(
      'SELECT country, count(id) FILTER (WHERE false), count(age) FILTER (WHERE false), id AS "shardgate.hidden.1", ' +
        'age AS "shardgate.hidden.2" FROM users GROUP BY country, 4, 5',
    );
  });

  it('HAVING and ORDER BY on DISTINCT aggregates outside the select list: hidden placeholders and values', () => {
    const m = merge(
      'SELECT country FROM users GROUP BY country HAVING count(DISTINCT age) > 2 ORDER BY sum(DISTINCT age) DESC',
    );
    expect(m.aggregates).toEqual([
      { merge: 'values', position: 2, fn: 'sum', isDistinct: true, valuePosition: 3 },
      { merge: 'values', position: 4, fn: 'count', isDistinct: true, valuePosition: 3 },
    ]);
    expect(m.having).toMatchObject({ kind: 'compare', left: { kind: 'column', position: 4 } });
    expect(m.shardQuery?.sql).toContain('GROUP BY country, 3');
  });

  it('bool_and / every merge as the min of the shards’ results, bool_or as the max (was refused)', () => {
    const p = analyzeQuery(
      'SELECT country, bool_and(active), bool_or(active), every(age > 3) FROM users GROUP BY country ORDER BY bool_or(age < 9)',
      SCHEMA,
    )[0];
    expect(p.crossShardUnsafe).toBeNull();
    const m = p.select as SelectMergeInfo;
    expect(m.aggregates.map((a) => [a.merge, a.fn, a.position])).toEqual([
      ['combine', 'min', 2],
      ['combine', 'max', 3],
      ['combine', 'min', 4],
      ['combine', 'max', 5],
    ]);
    expect(m.orderBy[0].hidden).toBe(0);
  });

  it('refuses min/max/bool_and under a cast (the merge would compare the cast values: "-1.50" < "-9.00" as text)', () => {
    const unsafe = (sql: string): string | null => analyzeQuery(sql, SCHEMA)[0].crossShardUnsafe;
    expect(unsafe('SELECT min(age)::text FROM users')).toBe(
      'min() under a cast cannot be merged across shards: the cast values would be compared, not the values',
    );
    expect(unsafe('SELECT country, max(id)::text, bool_or(active)::int FROM users GROUP BY country')).toMatch(
      /^max\(\) under a cast/,
    );
    // Counts and sums under a cast still merge; grouped by the key, the shard's value is taken whole.
    expect(unsafe('SELECT count(*)::int, sum(age)::numeric FROM users')).toBeNull();
    expect(unsafe('SELECT id, min(age)::text FROM users GROUP BY id')).toBeNull();
    const m = merge(
      'SELECT id, min(age)::text, avg(age)::numeric(10,2), count(*) FROM users GROUP BY id LIMIT 3',
    );
    expect(m.aggregates.map((a) => [a.merge, a.fn])).toEqual([
      ['whole', 'min'],
      ['whole', 'avg'],
      ['combine', 'count'],
    ]);
  });

  it('grouped by the sharding key: every group is on one shard, any aggregate is taken whole', () => {
    const m = merge(
      "SELECT user_id, count(DISTINCT status), string_agg(note, ',' ORDER BY id), bool_and(paid), count(*) FROM orders GROUP BY user_id",
    );
    expect(m.aggregates.map((a) => [a.merge, a.fn])).toEqual([
      ['whole', 'count'],
      ['whole', 'string_agg'],
      ['combine', 'min'],
      ['combine', 'count'],
    ]);
    expect(m.shardQuery).toBeNull();
  });

  it('string_agg / array_agg with ORDER BY: hidden ordered arrays; array_agg’s values take its result format', () => {
    const m = merge(
      'SELECT country, string_agg(name, \'; \' ORDER BY age DESC NULLS LAST, id), array_agg(id ORDER BY name COLLATE "C") FILTER (WHERE age > $1) FROM users GROUP BY country',
    );
    expect(m.shardQuery).toEqual({
      sql:
        "SELECT country, string_agg(name, '; ') FILTER (WHERE false), array_agg(id) FILTER (WHERE false), " +
        'pg_catalog.array_agg(name ORDER BY age DESC NULLS LAST, id) AS "shardgate.hidden.1", ' +
        'pg_catalog.array_agg(age ORDER BY age DESC NULLS LAST, id) AS "shardgate.hidden.2", ' +
        'pg_catalog.array_agg(id ORDER BY age DESC NULLS LAST, id) AS "shardgate.hidden.3", ' +
        'pg_catalog.array_agg(id ORDER BY name COLLATE "C") FILTER (WHERE age > $1) AS "shardgate.hidden.4", ' +
        'pg_catalog.array_agg(name COLLATE "C" ORDER BY name COLLATE "C") FILTER (WHERE age > $1) AS "shardgate.hidden.5" ' +
        'FROM users GROUP BY country',
      hiddenCount: 5,
      hiddenFormatSources: [null, null, null, 3, null],
    });
    expect(m.aggregates[0]).toEqual({
      merge: 'ordered',
      position: 2,
      fn: 'string_agg',
      isDistinct: false,
      valuesPosition: 4,
      keys: [
        { position: 5, descending: true, nullsFirst: false, isByteCollated: false, collation: null },
        { position: 6, descending: false, nullsFirst: false, isByteCollated: false, collation: null },
      ],
      delimiter: { kind: 'literal', value: '; ' },
    });
    expect(m.aggregates[1]).toMatchObject({
      merge: 'ordered',
      fn: 'array_agg',
      valuesPosition: 7,
      keys: [{ position: 8, isByteCollated: true, collation: 'C' }],
      delimiter: null,
    });
    expect(merge('SELECT string_agg(name, $1 ORDER BY id) FROM users').aggregates[0]).toMatchObject({
      delimiter: { kind: 'param', index: 1 },
    });
  });

  it('refuses what it cannot merge, naming it', () => {
    expect(unsafe("SELECT string_agg(name, ',') FROM users")).toMatch(/string_agg without ORDER BY inside/);
    expect(unsafe('SELECT string_agg(name, name ORDER BY id) FROM users')).toMatch(/constant delimiter/);
    expect(unsafe("SELECT string_agg(name, ',' ORDER BY id)::varchar FROM users")).toMatch(/under a cast/);
    expect(unsafe('SELECT array_agg(DISTINCT name) FROM users')).toMatch(/array_agg\(DISTINCT …\)/);
    expect(unsafe('SELECT sum(DISTINCT age)::int FROM users')).toMatch(/sum\(DISTINCT …\) under a cast/);
    expect(unsafe('SELECT count(DISTINCT age)::int FROM users')).toBeNull();
    expect(unsafe('SELECT *, count(DISTINCT age) FROM users GROUP BY id')).toBeNull(); // grouped by the key
  });
});
