// Unit tests for CollationRanks: ORDER BY comparators, with text in a collation that is not byte order compared by
// the rank the database gives its values — or refused (0A000) where the rows cannot wait for ranks.
import { describe, expect, it } from 'vitest';
import { CollationRanks } from '../../../src/execute/collation-ranks.js';
import { sortKey, type SortKey } from '../../../src/execute/merge-spec.js';
import { TypeOid } from '../../../src/execute/value-compare.js';
import type { PgError } from '../../../src/errors/pg-error.js';

const tableText = { typeOid: TypeOid.text, format: 0, tableOid: 16385, column: 2 };
const expressionText = { typeOid: TypeOid.text, format: 0, tableOid: 0, column: 0 };
const int8 = { typeOid: TypeOid.int8, format: 0 };
const b = (s: string): Buffer => Buffer.from(s);

function refusal(run: () => unknown): PgError {
  try {
    run();
  } catch (err) {
    return err as PgError;
  }
  throw new Error('expected a refusal');
}

describe('CollationRanks', () => {
  it('refuses (0A000) a key of a type it cannot order as PostgreSQL does: an array (array_agg), an interval', () => {
    // int8[] in text: '{93,227}' sorts before '{1232}' by bytes, after it in PostgreSQL (element by element).
    for (const typeOid of [1016, 1186]) {
      for (const collation of [null, 'en_US.UTF-8']) {
        const err = refusal(() =>
          new CollationRanks(collation).comparators([sortKey(0)], [{ typeOid, format: 0 }], true),
        );
        expect(err.code).toBe('0A000');
        expect(err.message).toMatch(new RegExp(`type OID ${typeOid}`));
      }
    }
    expect(new CollationRanks(null).comparators([sortKey(0)], [int8])).toHaveLength(1);
  });

  it('compares a table column of collated text by rank once the ranks are given', () => {
    const ranks = new CollationRanks('en_US.UTF-8');
    const [compare] = ranks.comparators([sortKey(0)], [tableText], true);
    expect(ranks.isAwaiting).toBe(true);
    expect(ranks.rankedKeys).toEqual([0]);
    expect(ranks.request(['a', 'B'])).toEqual({
      values: ['a', 'B'],
      collation: null,
      columns: [{ tableOid: 16385, column: 2 }],
    });
    ranks.set(
      new Map([
        ['a', 0],
        ['B', 1],
      ]),
    );
    expect(ranks.isAwaiting).toBe(false);
    expect(compare(b('a'), b('B'))).toBeLessThan(0); // byte order would put 'B' first
    expect(compare(b('B'), b('a'))).toBeGreaterThan(0);
    expect(() => compare(b('zzz'), b('a'))).toThrow(/no rank/);
  });

  it("ranks an expression with a COLLATE clause in that clause's collation (no table column to check)", () => {
    const ranks = new CollationRanks('en_US.UTF-8');
    const key: SortKey = { ...sortKey(0), collation: 'de-x-icu' };
    ranks.comparators([key], [expressionText], true);
    expect(ranks.request(['x'])).toEqual({ values: ['x'], collation: 'de-x-icu', columns: [] });
  });

  it('refuses (0A000) collated text where rows cannot wait for ranks, or an expression without COLLATE', () => {
    expect(refusal(() => new CollationRanks('en_US.UTF-8').comparators([sortKey(0)], [tableText])).code).toBe(
      '0A000',
    );
    const expression = refusal(() =>
      new CollationRanks('en_US.UTF-8').comparators([sortKey(0)], [expressionText], true),
    );
    expect(expression.code).toBe('0A000');
    expect(expression.message).toMatch(/en_US\.UTF-8/);
  });

  it('refuses (0A000) ranked keys in two different collations', () => {
    const ranks = new CollationRanks('en_US.UTF-8');
    const keys: SortKey[] = [sortKey(0), { ...sortKey(1), collation: 'de-x-icu' }];
    const err = refusal(() => ranks.comparators(keys, [tableText, tableText], true));
    expect(err.code).toBe('0A000');
    expect(err.message).toMatch(/different collations/);
  });

  it('needs no ranks for byte order: COLLATE "C", a byte-order database, or a type that is not text', () => {
    const byteKey: SortKey = { ...sortKey(0), isByteCollated: true };
    const cases: [string | null, SortKey, typeof tableText | typeof int8][] = [
      ['en_US.UTF-8', byteKey, tableText],
      [null, sortKey(0), tableText],
      ['en_US.UTF-8', sortKey(0), int8],
    ];
    for (const [collation, key, type] of cases) {
      const ranks = new CollationRanks(collation);
      const [compare] = ranks.comparators([key], [type], true);
      expect(ranks.isAwaiting).toBe(false);
      expect(ranks.rankedKeys).toEqual([]);
      if (type === tableText)
        expect(compare(b('B'), b('a'))).toBeLessThan(0); // bytes: 'B' < 'a'
      else expect(compare(b('10'), b('9'))).toBeGreaterThan(0); // numbers, not bytes
    }
  });
});
