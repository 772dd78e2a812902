// Cross-shard safety: statements that would give a different answer when run on several shards and merged get a
// reason; co-located joins, correlated subqueries and mergeable aggregates do not; a single-value key clears it.
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import { SCHEMA } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

function unsafe(sql: string): string | null {
  return analyzeQuery(sql, SCHEMA)[0].crossShardUnsafe;
}

describe('joins', () => {
  it('accepts joins on the sharding columns', () => {
    expect(unsafe('SELECT * FROM users u JOIN orders o ON o.user_id = u.id')).toBeNull();
    expect(unsafe('SELECT * FROM users u LEFT JOIN orders o ON o.user_id = u.id')).toBeNull();
    expect(unsafe('SELECT * FROM users u, orders o WHERE u.id = o.user_id AND o.total > 5')).toBeNull();
    expect(unsafe('SELECT * FROM users u JOIN countries c ON c.code = u.country')).toBeNull();
  });

  it('flags joins of sharded tables not on their sharding columns', () => {
    expect(unsafe('SELECT * FROM users u JOIN orders o ON o.id = u.id')).toBe(
      'sharded tables users and orders are not joined on their sharding columns (users.id, orders.user_id)',
    );
    expect(unsafe('SELECT * FROM users u CROSS JOIN orders o')).toMatch(
      /not joined on their sharding columns/,
    );
    expect(unsafe('SELECT * FROM users a JOIN users b ON a.referrer = b.id')).toMatch(/users and users/);
  });

  it('clears the reason when one key value pins everything', () => {
    expect(
      unsafe('SELECT * FROM users u JOIN orders o ON o.id = u.id WHERE u.id = 1 AND o.user_id = 1'),
    ).toBeNull();
    expect(
      unsafe('SELECT * FROM users u JOIN orders o ON o.id = u.id WHERE u.id = 1 AND o.user_id = 2'),
    ).toMatch(/not joined/);
    expect(unsafe('SELECT * FROM users u JOIN orders o ON o.id = u.id WHERE u.id = ANY($1)')).toMatch(
      /not joined/,
    );
  });

  it('checks UPDATE … FROM, DELETE … USING and MERGE', () => {
    expect(
      unsafe('UPDATE orders o SET total = 0 FROM users u WHERE u.id = o.user_id AND u.banned'),
    ).toBeNull();
    expect(unsafe('UPDATE orders o SET total = 0 FROM users u WHERE u.email = o.email')).toMatch(
      /^UPDATE … FROM: sharded tables orders and users/,
    );
    expect(unsafe('DELETE FROM orders USING users WHERE users.name = orders.note')).toMatch(
      /^DELETE … USING/,
    );
    expect(unsafe('UPDATE orders SET total = 0 FROM countries c WHERE c.code = orders.country')).toBeNull();
    expect(
      unsafe(
        'MERGE INTO orders o USING users u ON o.user_id = u.id WHEN NOT MATCHED THEN INSERT (user_id) VALUES (u.id)',
      ),
    ).toBeNull();
    expect(
      unsafe(
        'MERGE INTO orders o USING countries c ON o.country = c.code WHEN NOT MATCHED THEN INSERT (country) VALUES (c.code)',
      ),
    ).toMatch(/^MERGE … WHEN NOT MATCHED THEN INSERT into sharded table orders/);
    expect(
      unsafe('MERGE INTO orders o USING countries c ON o.country = c.code WHEN MATCHED THEN DELETE'),
    ).toBeNull();
  });
});

describe('subqueries', () => {
  it('accepts subqueries linked on the sharding column', () => {
    expect(unsafe('SELECT * FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 9)')).toBeNull();
    expect(
      unsafe('SELECT * FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)'),
    ).toBeNull();
    expect(
      unsafe('SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u'),
    ).toBeNull();
    expect(
      unsafe(
        'SELECT * FROM users WHERE id IN (SELECT user_id FROM orders GROUP BY user_id HAVING count(*) > 3)',
      ),
    ).toBeNull();
    expect(unsafe('SELECT * FROM countries WHERE code IN (SELECT code FROM countries)')).toBeNull();
  });

  it('flags subqueries over sharded tables that are not', () => {
    expect(unsafe('SELECT * FROM users WHERE EXISTS (SELECT 1 FROM orders WHERE total > 5)')).toBe(
      'subquery over sharded table orders is not correlated with the outer query on its sharding column',
    );
    expect(unsafe('SELECT * FROM users WHERE id = (SELECT max(user_id) FROM orders)')).toMatch(
      /not correlated/,
    );
    expect(unsafe('SELECT (SELECT count(*) FROM users)')).toMatch(/not correlated/);
    expect(unsafe('SELECT * FROM users WHERE referrer IN (SELECT user_id FROM orders)')).toMatch(
      /not correlated/,
    );
  });

  it('flags aggregation, DISTINCT and LIMIT inside subqueries over sharded rows', () => {
    expect(unsafe('SELECT * FROM (SELECT * FROM users ORDER BY id LIMIT 10) s')).toBe(
      "LIMIT/OFFSET in a subquery over sharded table users needs every shard's rows",
    );
    expect(unsafe('SELECT avg(c) FROM (SELECT count(*) AS c FROM orders GROUP BY total) s')).toMatch(
      /aggregation in a subquery over sharded table orders is not grouped by the sharding column/,
    );
    expect(
      unsafe('SELECT avg(c) FROM (SELECT user_id, count(*) AS c FROM orders GROUP BY user_id) s'),
    ).toBeNull();
    expect(unsafe('SELECT count(*) FROM (SELECT DISTINCT email FROM users) s')).toMatch(
      /^DISTINCT in a subquery/,
    );
    expect(unsafe('SELECT count(*) FROM (SELECT DISTINCT id, email FROM users) s')).toBeNull();
    expect(unsafe('SELECT * FROM (SELECT id FROM users INTERSECT SELECT user_id FROM orders) s')).toMatch(
      /^INTERSECT in a subquery/,
    );
    expect(unsafe('SELECT * FROM (SELECT id, rank() OVER (ORDER BY age) FROM users) s')).toMatch(
      /window function in a subquery/,
    );
  });
});

describe('top-level merge limits', () => {
  it('accepts what the merge step can combine', () => {
    expect(unsafe('SELECT count(*), sum(total), min(total), max(total), avg(total) FROM orders')).toBeNull();
    expect(unsafe('SELECT country, count(*) FROM users GROUP BY country ORDER BY 2 DESC LIMIT 5')).toBeNull();
    expect(unsafe('SELECT DISTINCT country FROM users')).toBeNull();
    expect(unsafe('SELECT * FROM users ORDER BY created_at')).toBeNull();
    expect(unsafe('SELECT id FROM users UNION SELECT user_id FROM orders')).toBeNull();
    // HAVING is applied after the merge; ORDER BY expressions outside the select list become hidden columns.
    expect(unsafe('SELECT country FROM users GROUP BY country HAVING count(*) > 2')).toBeNull();
    expect(unsafe('SELECT id FROM users ORDER BY created_at')).toBeNull();
    expect(unsafe('SELECT country FROM users GROUP BY country ORDER BY avg(age) DESC')).toBeNull();
  });

  it('flags what it cannot', () => {
    expect(unsafe('SELECT array_agg(id) FROM users')).toBe(
      'aggregate array_agg without ORDER BY inside cannot be merged across shards (add ORDER BY inside the call to fix the order of its elements)',
    );
    expect(unsafe("SELECT string_agg(DISTINCT country, ',') FROM users")).toBe(
      'aggregate string_agg(DISTINCT …) cannot be merged across shards',
    );
    expect(unsafe('SELECT bit_and(age) FROM users')).toBe('aggregate bit_and cannot be merged across shards');
    expect(unsafe('SELECT sum(total) / count(*) FROM orders')).toBe(
      'an aggregate inside an expression cannot be merged across shards',
    );
    expect(unsafe('SELECT count(*) FROM users GROUP BY country')).toMatch(
      /^GROUP BY an expression that is not/,
    );
    expect(unsafe('SELECT country FROM users GROUP BY country HAVING count(*) BETWEEN 1 AND 2')).toMatch(
      /^HAVING with BETWEEN cannot be merged/,
    );
    expect(unsafe('SELECT avg(age)::int FROM users')).toMatch(/^avg\(\) under a cast/);
    expect(unsafe('SELECT id, rank() OVER (ORDER BY age) FROM users')).toMatch(
      /^window function over sharded/,
    );
    expect(unsafe('SELECT DISTINCT ON (country) * FROM users ORDER BY country')).toMatch(
      /^DISTINCT ON across shards needs an ORDER BY/,
    );
    expect(unsafe('SELECT DISTINCT id FROM users ORDER BY created_at')).toMatch(
      /^ORDER BY an expression that is not/,
    );
    expect(unsafe('SELECT country FROM users GROUP BY country ORDER BY max(age) - min(age)')).toMatch(
      /^ORDER BY an expression that is not in the select list cannot be merged across shards under GROUP BY/,
    );
    expect(unsafe('SELECT id FROM users ORDER BY id LIMIT 2 + 3')).toMatch(
      /^LIMIT\/OFFSET with an expression/,
    );
    expect(unsafe('SELECT id FROM users ORDER BY id FETCH FIRST 3 ROWS WITH TIES')).toMatch(/WITH TIES/);
    expect(unsafe('SELECT id FROM users EXCEPT SELECT user_id FROM orders')).toMatch(
      /^EXCEPT needs every shard/,
    );
  });

  it('accepts anything grouped or partitioned by the sharding column', () => {
    expect(unsafe('SELECT id, array_agg(tag) FROM users GROUP BY id HAVING count(*) > 1')).toBeNull();
    expect(unsafe("SELECT user_id, string_agg(note, ',') FROM orders GROUP BY user_id")).toBeNull();
    expect(unsafe('SELECT id, rank() OVER (PARTITION BY id ORDER BY age) FROM users')).toBeNull();
    expect(unsafe('SELECT DISTINCT ON (user_id) * FROM orders ORDER BY user_id, created_at DESC')).toBeNull();
  });

  it('gives no reason for a single key or for statements on non-sharded tables', () => {
    expect(unsafe('SELECT array_agg(total) FROM orders WHERE user_id = $1')).toBeNull();
    expect(unsafe('SELECT array_agg(total) FROM orders WHERE user_id IN (1, 2)')).toMatch(/array_agg/);
    expect(unsafe('SELECT array_agg(code) FROM countries')).toBeNull();
    expect(unsafe("SELECT string_agg(relname, ',') FROM pg_class")).toBeNull();
  });
});

describe('set operations across shards', () => {
  it('accepts UNION / UNION ALL whose every branch is fan-out-safe and reads sharded rows', () => {
    expect(unsafe('SELECT id FROM users UNION ALL SELECT user_id FROM orders')).toBeNull();
    expect(unsafe('SELECT id FROM users UNION ALL SELECT user_id FROM orders ORDER BY 1 LIMIT 3')).toBeNull();
    expect(unsafe('SELECT email FROM users UNION SELECT note FROM orders ORDER BY 1 OFFSET $1')).toBeNull();
    // One key: one shard answers, the copied-only branch runs once.
    expect(unsafe('SELECT a FROM (SELECT 1 AS a) x UNION ALL SELECT id FROM users WHERE id = 5')).toBeNull();
    // Branches grouped by the sharding key (groups never span shards); nested UNION ALL; a top UNION under it.
    expect(
      unsafe('SELECT user_id, count(*) FROM orders GROUP BY user_id UNION ALL SELECT id, 1 FROM users'),
    ).toBeNull();
    expect(unsafe('(SELECT id FROM users UNION ALL SELECT user_id FROM orders) UNION ALL SELECT 1')).toMatch(
      /reads no sharded table/,
    );
    expect(
      unsafe('(SELECT email FROM users UNION ALL SELECT note FROM orders) UNION SELECT email FROM users'),
    ).toBeNull();
  });

  it('a top-level UNION (deduplicated by the proxy) allows DISTINCT and nested UNIONs in its branches', () => {
    expect(unsafe('SELECT DISTINCT email FROM users UNION SELECT note FROM orders')).toBeNull();
    expect(
      unsafe('SELECT email FROM users UNION (SELECT note FROM orders UNION SELECT email FROM users)'),
    ).toBeNull();
    expect(unsafe('SELECT DISTINCT email FROM users UNION ALL SELECT note FROM orders')).toBe(
      'DISTINCT in a set-operation branch over sharded table users does not include the sharding column',
    );
    expect(
      unsafe('SELECT email FROM users UNION ALL (SELECT note FROM orders UNION SELECT email FROM users)'),
    ).toBe(
      'UNION in a set-operation branch over sharded table orders, users does not include the sharding column',
    );
  });

  it('flags branches that are not fan-out-safe, as subqueries', () => {
    expect(unsafe('SELECT count(*) FROM users UNION ALL SELECT count(*) FROM orders')).toBe(
      'aggregation in a set-operation branch over sharded table users is not grouped by the sharding column',
    );
    expect(unsafe('(SELECT email FROM users ORDER BY 1 LIMIT 3) UNION ALL SELECT note FROM orders')).toBe(
      "LIMIT/OFFSET in a set-operation branch over sharded table users needs every shard's rows",
    );
    expect(unsafe('SELECT id, rank() OVER (ORDER BY age) FROM users UNION SELECT 1, 1 FROM orders')).toMatch(
      /^window function in a set-operation branch/,
    );
  });

  it('refuses copied-only branches that every shard would return, unless a top UNION removes the repeats', () => {
    expect(unsafe('SELECT id FROM users UNION ALL SELECT 1')).toBe(
      'a branch of UNION ALL reads no sharded table (only tables copied to every shard, or none): across shards ' +
        'its rows would be returned once per shard',
    );
    expect(unsafe('SELECT email FROM users UNION ALL SELECT name FROM countries')).toMatch(
      /^a branch of UNION ALL reads no sharded table/,
    );
    expect(unsafe('SELECT id FROM users UNION ALL VALUES (1), (2)')).toMatch(/reads no sharded table/);
    expect(unsafe('SELECT email FROM users UNION SELECT name FROM countries')).toBeNull();
    expect(unsafe("SELECT email FROM users UNION SELECT 'none'")).toBeNull();
    expect(unsafe('SELECT email FROM users UNION SELECT now()::text')).toBe(
      'a branch of UNION that reads no sharded table calls a function, so each shard may return different rows for it',
    );
    expect(unsafe('SELECT email FROM users UNION (SELECT name FROM countries LIMIT 1)')).toMatch(
      /uses LIMIT\/OFFSET/,
    );
    expect(
      unsafe('SELECT email, 1 FROM users UNION SELECT DISTINCT ON (name) name, 2 FROM countries'),
    ).toMatch(/uses DISTINCT ON/);
    expect(unsafe("SELECT created_at FROM users UNION SELECT 'now'::timestamptz")).toMatch(/reads the clock/);
    expect(unsafe('SELECT email FROM users UNION SELECT ctid::text FROM countries')).toMatch(
      /system column ctid/,
    );
    // In a subquery nothing removes the repeats.
    expect(unsafe('WITH x AS (SELECT id FROM users UNION SELECT 0) SELECT * FROM x')).toMatch(
      /^a branch of UNION in a subquery reads no sharded table/,
    );
    // One shard answers (single key): the branch runs once.
    expect(unsafe('SELECT id FROM users WHERE id = 1 UNION ALL SELECT 1')).toBeNull();
    expect(unsafe('SELECT id FROM users WHERE id IN (1, 2) UNION ALL SELECT 1')).toMatch(
      /reads no sharded table/,
    );
  });

  it('refuses INTERSECT and EXCEPT across shards, at the top or nested', () => {
    expect(unsafe('SELECT id FROM users INTERSECT SELECT user_id FROM orders')).toBe(
      "INTERSECT needs every shard's rows in one place",
    );
    expect(unsafe('SELECT id FROM users EXCEPT ALL SELECT user_id FROM orders')).toMatch(/^EXCEPT needs/);
    expect(
      unsafe('SELECT id FROM users UNION ALL (SELECT id FROM users INTERSECT SELECT user_id FROM orders)'),
    ).toMatch(/^INTERSECT in a set-operation branch/);
    // Pinned to one key: one shard answers.
    expect(
      unsafe('SELECT id FROM users WHERE id = 3 INTERSECT SELECT user_id FROM orders WHERE user_id = 3'),
    ).toBeNull();
  });

  it('a UNION in a subquery: each shard removes only its own duplicates', () => {
    expect(unsafe('SELECT count(*) FROM (SELECT status FROM orders UNION SELECT status FROM orders) s')).toBe(
      'UNION in a subquery over sharded table orders does not include the sharding column',
    );
    // An output column that is every branch's sharding key: equal rows come from one shard.
    expect(
      unsafe('SELECT count(*) FROM (SELECT user_id FROM orders UNION SELECT id FROM users) s'),
    ).toBeNull();
    expect(
      unsafe('SELECT count(*) FROM (SELECT user_id, status FROM orders UNION SELECT id, email FROM users) s'),
    ).toBeNull();
    expect(
      unsafe('SELECT count(*) FROM (SELECT status, user_id FROM orders UNION SELECT id, email FROM users) s'),
    ).toMatch(/^UNION in a subquery/);
    expect(
      unsafe('SELECT count(*) FROM (SELECT status FROM orders UNION ALL SELECT email FROM users) s'),
    ).toBeNull();
    expect(unsafe('SELECT * FROM (SELECT id FROM users UNION ALL SELECT 0) s')).toMatch(
      /^a branch of UNION ALL in a subquery reads no sharded table/,
    );
  });
});

describe('writes with unknown row keys', () => {
  it('flags INSERTs whose rows cannot be placed', () => {
    // No column list: not unsafe, but the session must learn the column order first (columnsLookup).
    expect(unsafe('INSERT INTO users VALUES (1, $1)')).toBeNull();
    expect(analyzeQuery('INSERT INTO users VALUES (1, $1)', SCHEMA)[0].insert?.columnsLookup).toBe('users');
    // Once the order is known, the key is found by position.
    const known = { ...SCHEMA, tableColumns: new Map([['users', ['name', 'id']]]) };
    const [p] = analyzeQuery("INSERT INTO users VALUES ('a', 7), ('b', $1)", known);
    expect(p.insert?.columnsLookup).toBeNull();
    expect(p.insert?.insertKeys).toEqual([
      { kind: 'literal', value: '7' },
      { kind: 'param', index: 1, isArray: false },
    ]);
    expect(unsafe('INSERT INTO users (email) VALUES ($1)')).toMatch(
      /sharding column id is not in the INSERT column list/,
    );
    expect(unsafe('INSERT INTO users DEFAULT VALUES')).toMatch(/DEFAULT VALUES/);
    expect(unsafe("INSERT INTO users (id) VALUES (nextval('s'))")).toMatch(/no literal or parameter/);
    expect(unsafe('INSERT INTO users (id) SELECT id FROM staging')).toMatch(/^INSERT … SELECT/);
    expect(unsafe('INSERT INTO countries (code) VALUES ($1)')).toBeNull();
  });

  it('accepts INSERT … SELECT between co-located sharded tables, or with a constant key', () => {
    expect(unsafe('INSERT INTO orders (user_id, total) SELECT id, 0 FROM users WHERE active')).toBeNull();
    expect(unsafe('INSERT INTO orders (user_id, total) SELECT $1, sum(x) FROM staging')).toBeNull();
    expect(unsafe('INSERT INTO countries (code) SELECT country FROM users')).toMatch(
      /^INSERT … SELECT from sharded table users into non-sharded table countries/,
    );
  });

  it('accepts multi-row VALUES with known keys (the router splits them)', () => {
    expect(unsafe('INSERT INTO users (id, email) VALUES (1, $1), (2, $2)')).toBeNull();
  });
});
