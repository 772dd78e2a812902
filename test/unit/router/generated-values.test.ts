// Values a sequence would generate, written into an INSERT into a sharded table: which columns the analysis finds
// (left out, or DEFAULT in some rows; DEFAULT VALUES), and the rewritten statement (columns added or the list written
// out, DEFAULT replaced, OVERRIDING SYSTEM VALUE for GENERATED ALWAYS, the client's parameters kept).
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { fillGeneratedValues } from '../../../src/router/generated-values.js';
import { initParser } from '../../../src/router/parser.js';
import type { GeneratedFill } from '../../../src/router/plan.js';
import type { ShardingSchema } from '../../../src/sharding/schema.js';
import { SCHEMA } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

/** The fixtures' schema, with users(id serial-like, name, email) and orders.id filled by sequences. */
const schema: ShardingSchema = {
  ...SCHEMA,
  tableColumns: new Map([
    ['users', ['id', 'name', 'email']],
    ['orders', ['id', 'user_id', 'total']],
  ]),
  generatedColumns: new Map([
    ['users', [{ column: 'id', sequence: 'users_id_seq', isAlways: false }]],
    ['orders', [{ column: 'id', sequence: 'orders_id_seq', isAlways: true }]],
  ]),
};

const fills = (sql: string): readonly GeneratedFill[] => analyzeQuery(sql, schema)[0].insert?.generated ?? [];

describe('columns a sequence fills', () => {
  it('a left-out column in every row; DEFAULT in some rows; DEFAULT VALUES', () => {
    expect(fills("INSERT INTO users (name) VALUES ('a'), ($1)")).toEqual([
      { column: 'id', sequence: 'users_id_seq', isAlways: false, isAppended: true, rows: [0, 1] },
    ]);
    expect(fills("INSERT INTO users (id, name) VALUES (DEFAULT, 'a'), (7, 'b'), (DEFAULT, 'c')")).toEqual([
      { column: 'id', sequence: 'users_id_seq', isAlways: false, isAppended: false, rows: [0, 2] },
    ]);
    expect(fills("INSERT INTO users VALUES (DEFAULT, 'a')")[0]).toMatchObject({
      isAppended: false,
      rows: [0],
    });
    expect(fills('INSERT INTO users DEFAULT VALUES')[0]).toMatchObject({ isAppended: true, rows: [0] });
    expect(fills("INSERT INTO users (id, name) VALUES (1, 'a')")).toEqual([]);
    // A non-key column filled by a sequence (orders are sharded by user_id): filled too, so it is unique across shards.
    expect(fills('INSERT INTO orders (user_id, total) VALUES (1, 2)')).toEqual([
      { column: 'id', sequence: 'orders_id_seq', isAlways: true, isAppended: true, rows: [0] },
    ]);
  });

  it('the sharding key filled by a sequence is routed after the fill, not refused', () => {
    const plan = analyzeQuery("INSERT INTO users (name) VALUES ('a')", schema)[0];
    expect(plan.insert?.insertKeys).toBeNull();
    expect(plan.insert?.insertKeysReason).toContain('sequence');
  });
});

describe('fillGeneratedValues', () => {
  const fill = (column: string, rows: number[], isAppended: boolean, isAlways = false): GeneratedFill => ({
    column,
    sequence: 's',
    isAlways,
    isAppended,
    rows,
  });

  it('adds a left-out column with a value per row, keeping parameters and RETURNING', () => {
    expect(
      fillGeneratedValues(
        "INSERT INTO users (name) VALUES ($1), ('b') RETURNING *",
        [fill('id', [0, 1], true)],
        [['101', '9007199254740993']],
        [],
      ),
    ).toBe("INSERT INTO users (name, id) VALUES ($1, 101), ('b', 9007199254740993) RETURNING *");
  });

  it('replaces DEFAULT, writes the column list out when there was none, and overrides GENERATED ALWAYS', () => {
    expect(
      fillGeneratedValues(
        "INSERT INTO users VALUES (DEFAULT, 'a')",
        [fill('id', [0], false, true)],
        [['5']],
        ['id', 'name', 'email'],
      ),
    ).toBe("INSERT INTO users (id, name) OVERRIDING SYSTEM VALUE VALUES (5, 'a')");
    expect(
      fillGeneratedValues('INSERT INTO users DEFAULT VALUES', [fill('id', [0], true)], [['0']], []),
    ).toBe('INSERT INTO users (id) VALUES (0)');
  });
});
