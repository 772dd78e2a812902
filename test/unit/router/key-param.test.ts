// singleKeyParam (router/route.ts): a statement whose shard is that of one key parameter, routed on the hot path by
// hashing that parameter straight from the Bind frame or the literal (frontend/session-router.ts), must route exactly
// as routeStatement routes it, whatever is bound — checked over the client corpus and more — and anything unusual
// (an array key, several keys, writes, EXPLAIN, cursors, hand routing, one shard) must take routeStatement.
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeQuery } from '../../../src/router/analyze.js';
import type { BindParams } from '../../../src/router/bind-params.js';
import { initParser } from '../../../src/router/parser.js';
import type { StatementPlan } from '../../../src/router/plan.js';
import { oneRoute, routeStatement, singleKeyParam, type RouteContext } from '../../../src/router/route.js';
import type { ShardingSchema } from '../../../src/sharding/schema.js';
import { shardForParameter } from '../../../src/sharding/shard-of.js';
import { CORPUS } from './corpus.js';
import { SCHEMA } from './fixtures.js';

beforeAll(async () => {
  await initParser();
});

function ctx(schema: ShardingSchema, over: Partial<RouteContext> = {}): RouteContext {
  return {
    schema,
    sessionShard: null,
    sessionShardingKey: null,
    pickReadShard: () => {
      throw new Error('a keyed statement never picks a shard round-robin');
    },
    ...over,
  };
}

const KEYS: Record<string, string[]> = {
  bigint: ['0', '1', '-7', '42', '9007199254740993', ' 12', '+5'],
  integer: ['0', '1', '-7', '42', '2147483647', '-2147483648', ' 12'],
  uuid: ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'A0EEBC999C0B4EF8BB6D6BB9BD380A12'],
  text: ['', 'abc', 'Zürich'],
};

function planOf(sql: string): StatementPlan | null {
  try {
    const plans = analyzeQuery(sql, SCHEMA);
    return plans.length === 1 ? plans[0] : null;
  } catch {
    return null;
  }
}

const MORE = [
  'SELECT abalance FROM pgbench_accounts WHERE aid = $1',
  'SELECT * FROM users WHERE id = $1 FOR UPDATE',
  'SELECT id FROM users WHERE name = $1 AND id = $2 ORDER BY id LIMIT $3 OFFSET $4',
  'SELECT o.* FROM orders o JOIN users u ON u.id = o.user_id WHERE u.id = $1',
  'SELECT * FROM devices WHERE serial = $1',
  'SELECT count(*) FROM users WHERE id = $1 HAVING count(*) > $2',
];
const NOT_KEYED = [
  'SELECT id FROM users WHERE id = ANY($1)',
  'SELECT id FROM users WHERE id = $1 OR id = $2',
  'SELECT id FROM users WHERE id = 7',
  'UPDATE users SET name = $1 WHERE id = $2',
  'DELETE FROM users WHERE id = $1',
  'INSERT INTO users (id, name) VALUES ($1, $2)',
  'EXPLAIN SELECT id FROM users WHERE id = $1',
  'DECLARE c CURSOR FOR SELECT id FROM users WHERE id = $1',
  '/* shardgate: shard=1 */ SELECT id FROM users WHERE id = $1',
  'SELECT id FROM countries WHERE id = $1',
];

describe('singleKeyParam', () => {
  it('routes as routeStatement does for every value bound, over the corpus and more', () => {
    let keyed = 0;
    for (const schema of [SCHEMA, { ...SCHEMA, shardCount: 3 }, { ...SCHEMA, shardCount: 16 }]) {
      for (const sql of [...CORPUS.map((c) => c.sql), ...MORE]) {
        const plan = planOf(sql);
        if (plan === null) continue;
        const index = singleKeyParam(plan, ctx(schema));
        if (index === 0) continue;
        keyed++;
        const column = (plan.shardKey as NonNullable<StatementPlan['shardKey']>).column;
        const count = Math.max(plan.paramCount, index);
        for (const key of KEYS[column.keyType]) {
          for (const other of ['1', '0', null]) {
            const values = Array.from({ length: count }, (_, i) =>
              i === index - 1 ? Buffer.from(key) : other === null ? null : Buffer.from(other),
            );
            const params: BindParams = { values, formats: values.map(() => 0) };
            const expected = oneRoute(shardForParameter(column, schema.shardCount, Buffer.from(key), 0));
            expect(routeStatement(plan, params, ctx(schema)), `${sql} / ${key}`).toBe(expected);
          }
        }
      }
    }
    expect(keyed).toBeGreaterThan(20);
  });

  it('leaves everything else to routeStatement', () => {
    for (const sql of NOT_KEYED) {
      const plan = planOf(sql);
      expect(plan, sql).not.toBeNull();
      expect(singleKeyParam(plan as StatementPlan, ctx(SCHEMA)), sql).toBe(0);
    }
    const plan = planOf(MORE[0]) as StatementPlan;
    expect(singleKeyParam(plan, ctx(SCHEMA))).toBe(1);
    expect(singleKeyParam(plan, ctx(SCHEMA, { sessionShard: 1 }))).toBe(0);
    expect(singleKeyParam(plan, ctx(SCHEMA, { sessionShardingKey: '7' }))).toBe(0);
    expect(singleKeyParam(plan, ctx({ ...SCHEMA, shardCount: 1 }))).toBe(0);
  });
});
