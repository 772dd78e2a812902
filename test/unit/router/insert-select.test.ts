// splitInsertSelect / valueLiteral / insertWithRows: the parts of an INSERT … SELECT the proxy evaluates itself.
import { beforeAll, describe, expect, it } from 'vitest';
import { initParser } from '../../../src/router/parser.js';
import { insertWithRows, splitInsertSelect, valueLiteral } from '../../../src/router/insert-select.js';

beforeAll(() => initParser());

describe('splitInsertSelect', () => {
  it('cuts the query out of the INSERT, with its column list, alias, OVERRIDING, ON CONFLICT and RETURNING', () => {
    const sql =
      '/* c */ INSERT INTO public."T" AS x (a, b) OVERRIDING SYSTEM VALUE SELECT a, \'é\' FROM u JOIN v ON conflict = v.a ' +
      'ON CONFLICT (a) DO NOTHING RETURNING a, $2';
    const parts = splitInsertSelect(sql);
    expect(parts).toMatchObject({
      lead: '/* c */ ',
      head: 'INSERT INTO public."T" AS x (a, b) OVERRIDING SYSTEM VALUE ',
      source: "SELECT a, 'é' FROM u JOIN v ON conflict = v.a",
      tail: ' ON CONFLICT (a) DO NOTHING RETURNING a, $2',
    });
    expect([...(parts?.sourceParams ?? [])]).toEqual([]);
    expect([...(parts?.tailParams ?? [])]).toEqual([2]);
  });

  it('puts the WITH clause in front of the query and keeps RETURNING inside a subquery in it', () => {
    const parts = splitInsertSelect(
      'WITH s AS (SELECT $1::int AS n) INSERT INTO t (a) (SELECT n FROM s WHERE n IN (SELECT 1)) RETURNING *',
    );
    expect(parts).toMatchObject({
      lead: '',
      head: 'INSERT INTO t (a) ',
      source: 'WITH s AS (SELECT $1::int AS n) (SELECT n FROM s WHERE n IN (SELECT 1))',
      tail: ' RETURNING *',
    });
    expect([...(parts?.sourceParams ?? [])]).toEqual([1]);
  });

  it('takes TABLE and a query without a column list', () => {
    expect(splitInsertSelect('INSERT INTO t TABLE src')).toMatchObject({
      head: 'INSERT INTO t ',
      source: 'TABLE src',
      tail: '',
    });
  });

  it('refuses what it cannot evaluate once: VALUES, a WITH clause that writes', () => {
    expect(splitInsertSelect('INSERT INTO t VALUES (1)')).toMatchObject({ source: 'VALUES (1)' });
    expect(
      splitInsertSelect('WITH d AS (DELETE FROM s RETURNING *) INSERT INTO t SELECT * FROM d'),
    ).toBeNull();
    expect(splitInsertSelect('UPDATE t SET a = 1')).toBeNull();
  });
});

describe('valueLiteral and insertWithRows', () => {
  it('types built-in values, leaves text and unknown types untyped, escapes quotes and backslashes', () => {
    expect(valueLiteral('1.5', 1700)).toBe("E'1.5'::pg_catalog.numeric");
    expect(valueLiteral("it's \\ ok", 25)).toBe("E'it''s \\\\ ok'");
    expect(valueLiteral(null, 23)).toBe('NULL');
    expect(valueLiteral('(1,2)', 987654)).toBe("E'(1,2)'");
  });

  it('writes the rows as VALUES, or a query of no rows on shard 0', () => {
    const parts = splitInsertSelect('INSERT INTO t (a, b) SELECT a, b FROM s RETURNING a');
    if (parts === null) throw new Error('not split');
    expect(insertWithRows(parts, ["(E'1', NULL)"], 2)).toBe(
      "INSERT INTO t (a, b) VALUES (E'1', NULL) RETURNING a",
    );
    expect(insertWithRows(parts, [], 2)).toBe(
      '/* shardgate: shard=0 */ INSERT INTO t (a, b) SELECT NULL, NULL WHERE false RETURNING a',
    );
  });
});
