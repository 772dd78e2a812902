// The query that puts text sort keys in the database's order, and reading its answer: literals that survive any
// quoting setting, a COLLATE clause's collation, and the refusal for a column with a collation of its own.
import { describe, expect, it } from 'vitest';
import { ranksFrom, textRankSql } from '../../../src/engine/text-ranks.js';

describe('textRankSql', () => {
  it('quotes values as E literals and orders in the database collation, or a named one', () => {
    const sql = textRankSql({ values: ["it's", 'back\\slash'], collation: null, columns: [] });
    expect(sql).toContain(`ARRAY[E'it''s',E'back\\\\slash']::text[]`);
    expect(sql).toMatch(/ORDER BY t\.v, t\.o$/);
    const named = textRankSql({
      values: ['a'],
      collation: 'de-x-icu',
      columns: [{ tableOid: 1, column: 2 }],
    });
    expect(named).toMatch(/ORDER BY t\.v COLLATE "de-x-icu", t\.o$/);
    expect(named).toContain('SELECT 0::bigint AS n'); // a COLLATE clause overrides the column's own collation
  });

  it('checks the key columns for a collation of their own', () => {
    const sql = textRankSql({ values: ['a'], collation: null, columns: [{ tableOid: 16385, column: 2 }] });
    expect(sql).toContain('(attrelid, attnum) IN ((16385::oid, 2::int2)) AND attcollation NOT IN (0, 100)');
  });
});

describe('ranksFrom', () => {
  const request = { values: ['b', 'a', 'C'], collation: null, columns: [] };
  it('maps each value to its position in the order the shard returned', () => {
    const ranks = ranksFrom(request, {
      kind: 'ok',
      tag: 'SELECT 3',
      rows: [
        ['2', '0'],
        ['1', '0'],
        ['3', '0'],
      ],
    });
    expect(ranks instanceof Map ? [...ranks] : ranks).toEqual([
      ['a', 0],
      ['b', 1],
      ['C', 2],
    ]);
  });

  it('refuses when a key column has a collation of its own, and passes a shard error on', () => {
    const own = ranksFrom(request, { kind: 'ok', tag: 'SELECT 3', rows: [['1', '1']] });
    expect(own).toMatchObject({ code: '0A000' });
    const failed = ranksFrom(request, {
      kind: 'error',
      code: '42704',
      message: 'no collation',
      frame: Buffer.alloc(0),
    });
    expect(failed).toMatchObject({ message: 'no collation' });
  });
});
