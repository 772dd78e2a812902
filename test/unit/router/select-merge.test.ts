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
      { position: 1, name: 'id', descending: true, nullsFirst: true },
      { position: 2, name: 'e', descending: false, nullsFirst: false },
      { position: 3, name: 'lower', descending: false, nullsFirst: true },
      { position: 1, name: 'id', descending: true, nullsFirst: false },
    ]);
    expect(m.targetCount).toBe(3);
  });

  it('matches a qualified input column to its select-list entry', () => {
    expect(merge('SELECT u.id AS user_id FROM users u ORDER BY u.id').orderBy[0].position).toBe(1);
  });

  it('orders by name through SELECT *', () => {
    const m = merge('SELECT * FROM users ORDER BY created_at DESC, 2');
    expect(m.orderBy).toEqual([
      { position: null, name: 'created_at', descending: true, nullsFirst: true },
      { position: 2, name: null, descending: false, nullsFirst: false },
    ]);
    expect(m.targetCount).toBeNull();
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
      { position: 2, fn: 'count', isDistinct: false },
      { position: 3, fn: 'sum', isDistinct: false },
      { position: 4, fn: 'max', isDistinct: false },
      { position: 5, fn: 'avg', isDistinct: false },
      { position: 6, fn: 'count', isDistinct: true },
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
});
