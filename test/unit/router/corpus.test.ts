// The client corpus (corpus.ts): every statement real tools send parses, and gets the expected kind, tables,
// shard key and cross-shard verdict.
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import { CORPUS } from './corpus.js';
import { keyOf, SCHEMA, tablesOf } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

describe('client corpus', () => {
  it('has at least 60 statements', () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(60);
  });

  for (const c of CORPUS) {
    it(`${c.client}: ${c.sql.replace(/\s+/g, ' ').slice(0, 90)}`, () => {
      const plans = analyzeQuery(c.sql, SCHEMA);
      expect(plans).toHaveLength(1);
      const p = plans[0];
      expect(p.kind).toBe(c.kind);
      if (c.tables !== undefined) expect(tablesOf(p)).toEqual(c.tables);
      if (c.key !== undefined) expect(keyOf(p)).toBe(c.key);
      if (c.unsafe === null) expect(p.crossShardUnsafe).toBeNull();
      else if (c.unsafe !== undefined) expect(p.crossShardUnsafe).toMatch(c.unsafe);
      if (c.catalog !== undefined) expect(p.touchesCatalog).toBe(c.catalog);
      if (c.write !== undefined) expect(p.isWrite).toBe(c.write);
    });
  }
});
