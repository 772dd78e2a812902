// The shared plans of a sharded database and what the proxy learns about its tables (frontend/database-plans.ts):
// plans cached by text, learned column order written into the shared schema with the plans made before dropped, DDL
// forgetting what was learned (and only then dropping plans), the literal-normalized cache. No sockets.
import { beforeAll, describe, expect, it } from 'vitest';
import { DatabasePlans, type SharedPlanning } from '../../../src/frontend/database-plans.js';
import { CatalogFacts } from '../../../src/sharding/catalog-facts.js';
import type { ShardingSchema } from '../../../src/sharding/schema.js';
import { initParser } from '../../../src/router/parser.js';
import { PlanCache } from '../../../src/router/plan-cache.js';
import type { StatementPlan } from '../../../src/router/plan.js';
import { SCHEMA } from '../router/fixtures.js';

beforeAll(async () => {
  await initParser();
});

function shared(withLiterals = false): SharedPlanning & { schema: ShardingSchema } {
  return {
    schema: { ...SCHEMA, catalog: new CatalogFacts() },
    plans: new PlanCache(),
    ...(withLiterals ? { literalPlans: new PlanCache<StatementPlan | null>() } : {}),
  };
}

describe('DatabasePlans', () => {
  it('analyses a text once and serves it from the shared cache', () => {
    const caches = shared();
    const plans = new DatabasePlans(caches);
    const first = plans.plansFor('SELECT * FROM users WHERE id = 1');
    expect(first[0].kind).toBe('select');
    expect(new DatabasePlans(caches).plansFor('SELECT * FROM users WHERE id = 1')).toBe(first);
    expect(caches.plans.size).toBe(1);
  });

  it('writes learned column order into the shared schema and drops the plans made without it', () => {
    const caches = shared(true);
    const plans = new DatabasePlans(caches);
    plans.plansFor('INSERT INTO users VALUES (1, 2)');
    plans.literalPlan('SELECT * FROM users WHERE id = $1');
    expect(caches.literalPlans?.size).toBe(1);
    plans.learnTableColumns(
      'users',
      ['id', 'name'],
      [{ column: 'id', sequence: 'users_id_seq', isAlways: false }],
    );
    expect(caches.schema.tableColumns?.get('users')).toEqual(['id', 'name']);
    expect(caches.schema.generatedColumns?.get('users')).toEqual([
      { column: 'id', sequence: 'users_id_seq', isAlways: false },
    ]);
    expect(caches.plans.size).toBe(0);
    expect(caches.literalPlans?.size).toBe(0);
    expect(plans.knownTableColumns('users')).toEqual(['id', 'name']);
    expect(plans.insertTableColumns('INSERT INTO users VALUES (1, 2)')).toEqual(['id', 'name']);
    expect(plans.insertTableColumns('INSERT INTO orders VALUES (1, 2)')).toEqual([]);
  });

  it('forgets what was learned on DDL, dropping plans only when something was known', () => {
    const caches = shared();
    const plans = new DatabasePlans(caches);
    plans.plansFor('SELECT 1');
    plans.forgetLearned(); // nothing learned: the plans stay
    expect(caches.plans.size).toBe(1);
    plans.learnTableColumns('users', ['id'], []);
    plans.plansFor('SELECT 1');
    caches.schema.catalog?.relations.set('v', { relkind: 'v', isTemporary: false, readsSharded: true });
    plans.forgetLearned();
    expect(plans.knownTableColumns('users')).toBeUndefined();
    expect(caches.schema.generatedColumns?.size).toBe(0);
    expect(caches.schema.catalog?.relations.size).toBe(0);
    expect(caches.plans.size).toBe(0);
  });

  it('caches literal-normalized plans: one statement, else null; none without the cache', () => {
    const plans = new DatabasePlans(shared(true));
    expect(plans.hasLiteralPlans).toBe(true);
    expect(plans.literalPlan('SELECT * FROM users WHERE id = $1')?.kind).toBe('select');
    expect(plans.literalPlan('SELECT $1; SELECT $2')).toBeNull();
    expect(plans.literalPlan('SELEC nonsense')).toBeNull();
    const without = new DatabasePlans(shared());
    expect(without.hasLiteralPlans).toBe(false);
    expect(without.literalPlan('SELECT 1')).toBeUndefined();
  });

  it('keeps a session’s own sequence values when the database shares none', () => {
    const plans = new DatabasePlans(shared());
    expect(plans.sequenceValues).toBe(plans.sequenceValues);
    expect(new DatabasePlans(shared()).sequenceValues).not.toBe(plans.sequenceValues);
  });
});
