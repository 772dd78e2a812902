// Statement rewrites: splitInsert (per-shard INSERTs, parameters renumbered, Parse/Bind rebuilt) and pushDownOffset.
import { beforeAll, describe, expect, it } from 'vitest';
import { initParser } from '../../../src/router/parser.js';
import {
  parseParamTypes,
  pushDownOffset,
  readBind,
  splitBind,
  splitInsert,
  splitParse,
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

  it('rebuilds Parse and Bind for a shard from the originals', () => {
    const parse = splitParse('select $1, $2', [23, 25, 20], [3, 1]);
    expect(parseParamTypes(parse)).toEqual([20, 23]);
    const bind = readBind(
      Buffer.concat([
        Buffer.from([0x42, 0, 0, 0, 0]),
        Buffer.from('p\0s\0'),
        Buffer.from([0, 1, 0, 0]), // one format code: text
        Buffer.from([0, 3]),
        Buffer.from([0, 0, 0, 1]),
        Buffer.from('a'),
        Buffer.from([0xff, 0xff, 0xff, 0xff]),
        Buffer.from([0, 0, 0, 1]),
        Buffer.from('c'),
        Buffer.from([0, 0]),
      ]),
    );
    const rebuilt = readBind(splitBind(bind, [3, 2]));
    expect(rebuilt.portal).toBe('p');
    expect(rebuilt.values.map((v) => v?.toString() ?? null)).toEqual(['c', null]);
    expect(rebuilt.formats).toEqual([0, 0]);
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
