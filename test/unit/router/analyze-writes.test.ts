// INSERT row keys (per VALUES row, by column position), ON CONFLICT, RETURNING, and updates that move a row's
// sharding key (UPDATE SET, ON CONFLICT DO UPDATE SET, MERGE UPDATE SET).
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';
import type { InsertInfo, StatementPlan } from '../../../src/router/plan.js';
import { keyOf, SCHEMA, source } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

function plan(sql: string): StatementPlan {
  return analyzeQuery(sql, SCHEMA)[0];
}

function insert(sql: string): InsertInfo {
  const p = plan(sql);
  expect(p.insert).not.toBeNull();
  return p.insert as InsertInfo;
}

function rowKeys(info: InsertInfo): (string | null)[] | null {
  return info.insertKeys === null ? null : info.insertKeys.map((k) => (k === null ? null : source(k)));
}

describe('INSERT row keys', () => {
  it('reads the sharding column of each VALUES row by its position in the column list', () => {
    const info = insert(
      "INSERT INTO orders (total, user_id) VALUES (1, $1), (2, '9007199254740993'), ($3, $2::bigint)",
    );
    expect(info).toMatchObject({
      columns: ['total', 'user_id'],
      keyColumnIndex: 1,
      rowCount: 3,
      insertKeysReason: null,
    });
    expect(rowKeys(info)).toEqual(['$1', '9007199254740993', '$2']);
    expect(keyOf(plan('INSERT INTO orders (user_id) VALUES (5), (5), ($1)'))).toBe('5,$1');
  });

  it('keeps a null entry for a row without a literal or parameter key', () => {
    const info = insert('INSERT INTO users (id, email) VALUES ($1, $2), (DEFAULT, $3), (1 + 1, $4)');
    expect(rowKeys(info)).toEqual(['$1', null, null]);
    expect(info.insertKeysReason).toBe('a VALUES row has no literal or parameter for sharding column id');
    expect(plan('INSERT INTO users (id, email) VALUES ($1, $2), (DEFAULT, $3)').shardKey).toBeNull();
  });

  it('says why the keys are unknown', () => {
    expect(insert('INSERT INTO users VALUES ($1, $2)')).toMatchObject({
      columns: null,
      insertKeys: null,
      insertKeysReason:
        'INSERT INTO users without a column list: the position of sharding column id is unknown',
      columnsLookup: 'users',
    });
    expect(insert('INSERT INTO users (email) VALUES ($1)').insertKeysReason).toMatch(
      /not in the INSERT column list/,
    );
    expect(insert('INSERT INTO users DEFAULT VALUES')).toMatchObject({ rowCount: 1, insertKeys: null });
    expect(insert('INSERT INTO users (id) SELECT id FROM staging').insertKeysReason).toMatch(
      /^INSERT … SELECT/,
    );
    expect(insert('INSERT INTO countries (code) VALUES ($1)').insertKeysReason).toBe(
      'table countries is not sharded',
    );
  });

  it('finds the key of INSERT … SELECT with a constant', () => {
    expect(keyOf(plan('INSERT INTO users (id, email) SELECT $1, email FROM staging WHERE sid = $2'))).toBe(
      '$1',
    );
  });

  it('uses column-based entries for the target table', () => {
    const p = plan('INSERT INTO invoices (tenant_id, n) VALUES ($1, $2)');
    expect(p.tables[0].sharding).toBe('sharded');
    expect(keyOf(p)).toBe('$1');
  });

  it('reads ON CONFLICT and RETURNING', () => {
    expect(insert('INSERT INTO users (id) VALUES ($1) ON CONFLICT DO NOTHING').onConflict).toBe('nothing');
    const p = plan(
      'INSERT INTO users (id, n) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = users.n + 1 RETURNING n',
    );
    expect(p.insert?.onConflict).toBe('update');
    expect(p.hasReturning).toBe(true);
    expect(p.movesShardKey).toBe(false);
    expect(insert('INSERT INTO users (id) VALUES ($1)').onConflict).toBeNull();
  });
});

describe('shard key moves', () => {
  it('accepts assignments that cannot change the key', () => {
    expect(
      plan('INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET id = excluded.id')
        .movesShardKey,
    ).toBe(false);
    expect(
      plan('INSERT INTO users AS u (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET id = u.id').movesShardKey,
    ).toBe(false);
    expect(plan('UPDATE users SET id = id, name = $2 WHERE id = $1').movesShardKey).toBe(false);
    expect(plan('UPDATE users SET email = $2, id = $1 WHERE id = $1').movesShardKey).toBe(false);
    expect(plan('UPDATE users SET id = 5 WHERE id = 5').movesShardKey).toBe(false);
    expect(plan('UPDATE orders SET id = $2 WHERE user_id = $1').movesShardKey).toBe(false);
  });

  it('flags assignments that may change it', () => {
    expect(
      plan('INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET id = $2').movesShardKey,
    ).toBe(true);
    expect(plan('UPDATE users SET id = $2 WHERE id = $1').movesShardKey).toBe(true);
    expect(plan('UPDATE users SET id = id + 1 WHERE id = 1').movesShardKey).toBe(true);
    expect(plan('UPDATE users SET id = 5 WHERE id IN (5, 6)').movesShardKey).toBe(true);
    expect(plan('UPDATE users SET (id, email) = ($1, $2) WHERE id = $3').movesShardKey).toBe(true);
    expect(plan('UPDATE orders o SET user_id = u.id FROM users u WHERE u.id = o.user_id').movesShardKey).toBe(
      true,
    );
    expect(
      plan('MERGE INTO users t USING staging s ON t.id = s.id WHEN MATCHED THEN UPDATE SET id = s.other')
        .movesShardKey,
    ).toBe(true);
  });

  it('pins UPDATE and DELETE by their WHERE clause', () => {
    expect(keyOf(plan('UPDATE users SET email = $1 WHERE id = $2 AND version = $3'))).toBe('$2');
    expect(keyOf(plan('DELETE FROM orders WHERE user_id IN ($1, $2) RETURNING id'))).toBe('$1,$2');
    expect(keyOf(plan('UPDATE users SET email = $1'))).toBeNull();
  });
});
