// The differential suite's queries: each runs against one plain PostgreSQL (the reference) and through shardgate
// over 3 shards, and is marked with what the proxy must do:
//   'same'            identical columns, command tag and rows, in order (every ORDER BY here is total: it ends
//                     with a unique key, so the reference's order is the only right one);
//   'same-unordered'  identical columns, command tag and rows as a multiset (no ORDER BY);
//   'rejected'        the reference answers, the proxy refuses with SQLSTATE 0A000 (and `reason` names why). When
//                     support lands the test fails, saying so: flip the entry to 'same'.
// Entries marked `binary` run with the extended protocol and binary result formats; their values are compared as
// bytes (hex).
// Writes run inside BEGIN … ROLLBACK on both sides (their `checks` run in the same transaction), so every query
// sees the data as loaded. Queries with parameters use the extended protocol (unnamed statement, or the named
// `prepared` statement, reused with other parameters); the others use the simple protocol. Many queries come in
// both forms: `/simple` is the same query with its parameters written as literals.
import { shardForLiteral } from '../../src/sharding/shard-of.js';
import { USERS_ID } from '../helpers/sharding.js';
import type { Dataset } from './dataset.js';

export type Expect = 'same' | 'same-unordered' | 'rejected';

export type Param = string | number | null | readonly (string | number | null)[];

export interface Check {
  sql: string;
  params?: readonly Param[];
  unordered?: boolean;
}

export interface CorpusQuery {
  /** Unique label: `<category>/<what>`. */
  id: string;
  category: Category;
  sql: string;
  params?: readonly Param[];
  /** Named prepared statement (extended protocol; Parse once per connection, then Bind only). */
  prepared?: string;
  /** Extended protocol with every result column in binary format. */
  binary?: boolean;
  expect: Expect;
  /** For 'rejected': the proxy's 0A000 message must match (so it is refused for the reason we think). */
  reason?: RegExp;
  /** Run inside BEGIN … ROLLBACK on both sides. */
  write?: boolean;
  /** Compared after the write, in the same transaction. */
  checks?: readonly Check[];
}

export const CATEGORIES = [
  'point',
  'in-list',
  'range',
  'order-by',
  'limit',
  'aggregate',
  'join-key',
  'join-fanout',
  'omnisharded',
  'set-operation',
  'catalog',
  'view',
  'write',
  'rejected',
] as const;
export type Category = (typeof CATEGORIES)[number];

/** Shards behind the proxy in the differential suite. */
export const DIFF_SHARDS = 3;

/** The shard of a users.id / orders.user_id / items.user_id value (they hash alike: bigint, PostgreSQL hash). */
export function shardOf(id: string): number {
  return shardForLiteral(USERS_ID, DIFF_SHARDS, id);
}

const U = 'id, name, email, created_at, score, is_active';
const O = 'id, user_id, amount, status, created_at, note';
const I = 'order_id, user_id, sku, qty';

/** A parameter as an SQL literal (for the simple-protocol twin of an extended query). */
function literal(p: Param): string {
  if (p === null) return 'NULL';
  if (typeof p === 'number') return String(p);
  if (typeof p === 'string') return /^-?\d+(\.\d+)?$/.test(p) ? p : `'${p.replace(/'/g, "''")}'`;
  const inner = p.map((e) => (e === null ? 'NULL' : `"${String(e).replace(/(["\\])/g, '\\$1')}"`)).join(',');
  return `'{${inner}}'`;
}

/** `sql` with `$n` replaced by the literals of `params`. */
export function inline(sql: string, params: readonly Param[]): string {
  return sql.replace(/\$(\d+)/g, (_, n: string) => literal(params[Number(n) - 1]));
}

/** The queries, with keys picked from `ds` so that each shard, big and negative keys, and misses are covered. */
export function buildCorpus(ds: Dataset): CorpusQuery[] {
  const out: CorpusQuery[] = [];
  const add = (q: CorpusQuery): void => {
    out.push(q);
  };
  type Opts = Partial<Omit<CorpusQuery, 'id' | 'category' | 'sql' | 'expect'>>;
  const same = (category: Category, id: string, sql: string, opts: Opts = {}): void =>
    add({ id: `${category}/${id}`, category, sql, expect: 'same', ...opts });
  const unordered = (category: Category, id: string, sql: string, opts: Opts = {}): void =>
    add({ id: `${category}/${id}`, category, sql, expect: 'same-unordered', ...opts });
  const rejected = (id: string, sql: string, reason: RegExp, opts: Opts = {}): void =>
    add({ id: `rejected/${id}`, category: 'rejected', sql, expect: 'rejected', reason, ...opts });
  /** The extended query and its simple-protocol twin (parameters inlined). */
  const both = (
    kind: 'same' | 'same-unordered',
    category: Category,
    id: string,
    sql: string,
    params: readonly Param[],
    opts: Opts = {},
  ): void => {
    add({ id: `${category}/${id}`, category, sql, params, expect: kind, ...opts });
    const { params: _p, prepared: _n, ...rest } = opts;
    add({ id: `${category}/${id}/simple`, category, sql: inline(sql, params), expect: kind, ...rest });
  };

  // ---- keys picked from the data ----
  const withOrders = new Set(ds.orders.map((o) => o.user_id));
  const withItems = new Set(ds.items.map((i) => i.user_id));
  const userIds = new Set(ds.users.map((u) => u.id));
  const usersOn = (shard: number): string[] =>
    ds.users
      .filter((u) => shardOf(u.id) === shard && withOrders.has(u.id) && withItems.has(u.id))
      .map((u) => u.id);
  const on = [usersOn(0), usersOn(1), usersOn(2)];
  const noOrders = ds.users.find((u) => !withOrders.has(u.id))?.id ?? '0';
  const big =
    ds.users.find((u) => BigInt(u.id) > 2n ** 53n && withOrders.has(u.id))?.id ?? '9007199254740993';
  const negative = ds.users.find((u) => BigInt(u.id) < 0n && withOrders.has(u.id))?.id ?? '-1';
  let missing = 424_242_424_242n;
  while (userIds.has(missing.toString())) missing++;
  const miss = missing.toString();
  const spread = [on[0][0], on[1][0], on[2][0]];
  const spreadBig = ['9223372036854775807', '-9223372036854775808', '9007199254740993', on[1][1]];
  for (const id of [...spread, ...spreadBig, noOrders, big, negative]) {
    if (!userIds.has(id)) throw new Error(`corpus: user ${id} is not in the dataset`);
  }
  if (new Set(spread.map(shardOf)).size !== 3) throw new Error('corpus: spread keys must cover the 3 shards');
  const [sameA, sameB] = [on[1][2], on[1][3]]; // two users on one shard
  /** New user ids for inserts, one per shard, absent from the data. */
  const fresh: string[] = [];
  for (let id = 8_000_000n; fresh.length < 6; id++) {
    const s = String(id);
    if (!userIds.has(s) && shardOf(s) === fresh.length % 3) fresh.push(s);
  }

  // ================= point lookups =================
  for (let s = 0; s < 3; s++) {
    both('same', 'point', `users-shard${s}`, `select ${U} from users where id = $1`, [on[s][0]], {
      prepared: 'p_user',
    });
  }
  for (const id of ['9007199254740993', '9223372036854775807', '-9223372036854775808', '-1', '0']) {
    both('same', 'point', `users-edge${id}`, `select ${U} from users where id = $1`, [id], {
      prepared: 'p_user',
    });
  }
  both('same', 'point', 'users-missing', `select ${U} from users where id = $1`, [miss], {
    prepared: 'p_user',
  });
  same('point', 'quoted-literal', `select ${U} from users where id = '${on[2][1]}'`);
  same('point', 'cast-literal', `select ${U} from users where id = ${on[0][1]}::bigint`);
  same('point', 'reversed-param', `select ${U} from users where $1 = id`, { params: [on[1][4]] });
  same('point', 'cast-param', `select ${U} from users where id = $1::bigint`, { params: [big] });
  same('point', 'key-and-filter', `select id, name from users where id = $1 and name is not null`, {
    params: [negative],
  });
  same('point', 'star', `select * from users where id = $1`, { params: [on[2][2]] });
  for (let s = 0; s < 3; s++) {
    both(
      'same',
      'point',
      `orders-of-user-shard${s}`,
      `select ${O} from orders where user_id = $1 order by id`,
      [on[s][2]],
    );
  }
  const someOrder = ds.orders.find((o) => o.user_id === on[0][3]);
  same('point', 'order-by-pk', `select ${O} from orders where user_id = $1 and id = $2`, {
    params: [on[0][3], someOrder?.id ?? '1'],
  });
  both('same', 'point', 'items-of-user', `select ${I} from items where user_id = $1 order by order_id, sku`, [
    big,
  ]);

  // ================= IN lists and = ANY =================
  unordered('in-list', 'literal-3-shards', `select ${U} from users where id in (${spread.join(', ')})`);
  same(
    'in-list',
    'literal-ordered',
    `select id, name from users where id in (${spreadBig.join(', ')}) order by id`,
  );
  unordered('in-list', 'params-3-shards', `select id, email from users where id in ($1, $2, $3)`, {
    params: spread,
  });
  unordered('in-list', 'literal-one-shard', `select ${U} from users where id in (${sameA}, ${sameB})`);
  same('in-list', 'any-bigint-array', `select id, score from users where id = any($1) order by id`, {
    params: [[...spread, miss]],
    prepared: 'p_any',
  });
  same('in-list', 'any-big-ids', `select id, score from users where id = any($1) order by id`, {
    params: [spreadBig],
    prepared: 'p_any',
  });
  same('in-list', 'any-one-element', `select id, score from users where id = any($1) order by id`, {
    params: [[on[2][5]]],
    prepared: 'p_any',
  });
  same('in-list', 'any-empty-array', `select id, score from users where id = any($1) order by id`, {
    params: [[]],
    prepared: 'p_any',
  });
  same('in-list', 'any-with-null', `select id, score from users where id = any($1) order by id`, {
    params: [[on[0][6], null, on[1][6]]],
    prepared: 'p_any',
  });
  same(
    'in-list',
    'any-array-literal',
    `select id, score from users where id = any('{${spread.join(',')}}'::bigint[]) order by id`,
  );
  same(
    'in-list',
    'orders-in',
    `select ${O} from orders where user_id in (${spread.join(', ')}, ${big}) order by user_id, id`,
  );
  unordered('in-list', 'items-any', `select ${I} from items where user_id = any($1::bigint[])`, {
    params: [[on[0][7], on[1][7], on[2][7]]],
  });
  unordered(
    'in-list',
    'in-subquery-on-key',
    `select id from users where id in (select user_id from orders where amount > 9900)`,
  );
  same('in-list', 'not-in-count', `select count(*) from users where id not in (${spread.join(', ')})`);
  unordered(
    'in-list',
    'or-of-keys',
    `select id, name from users where id = ${spread[0]} or id = ${spread[2]}`,
  );

  // ================= range scans without the key (fan-out) =================
  unordered('range', 'score-high', `select ${U} from users where score > 99000000`);
  unordered('range', 'score-between', `select ${U} from users where score between -100 and 100`);
  unordered('range', 'name-like', `select id, name from users where name like 'Ada%'`);
  unordered('range', 'name-null', `select id, email from users where name is null`);
  unordered('range', 'name-empty', `select id, name, email from users where name = ''`);
  unordered(
    'range',
    'created-before-2000',
    `select id, created_at from users where created_at < '2000-01-01'`,
  );
  unordered('range', 'active-null', `select id from users where is_active is null`);
  unordered('range', 'id-range', `select id, name from users where id between -1000 and 1000`);
  unordered(
    'range',
    'id-beyond-2^53',
    `select id, score from users where id > 9007199254740992 or id < -9007199254740992`,
  );
  unordered('range', 'email-suffix', `select id, email from users where email like '%.jp'`);
  unordered('range', 'non-ascii-regex', `select id, name from users where name ~ '[^ -~]'`);
  unordered(
    'range',
    'octets',
    `select id, length(name) as chars, octet_length(name) as bytes from users where name like '%🙂%'`,
  );
  unordered('range', 'star-by-score', `select * from users where score = $1`, { params: ['1.50'] });
  unordered('range', 'orders-refunds', `select ${O} from orders where amount < 0 and status = 'refunded'`);
  unordered(
    'range',
    'orders-notes-since',
    `select ${O} from orders where note is not null and created_at >= $1`,
    {
      params: ['2025-01-01 00:00:00+00'],
    },
  );
  unordered('range', 'orders-star-status', `select * from orders where status = 'réservé'`);
  unordered('range', 'items-negative-qty', `select ${I} from items where qty < 0`);
  unordered(
    'range',
    'computed-columns',
    `select id, score * 2 as dbl, -score as neg, score::text || ' pts' as label from users where score < -99000000`,
  );
  unordered('range', 'items-null-qty', `select ${I} from items where qty is null`);
  unordered(
    'range',
    'orders-amount-param',
    `select user_id, id, amount from orders where amount between $1 and $2`,
    {
      params: ['-9.99', '9.99'],
      prepared: 'p_amount_range',
    },
  );
  unordered(
    'range',
    'orders-amount-param-2',
    `select user_id, id, amount from orders where amount between $1 and $2`,
    {
      params: ['9990', '10000'],
      prepared: 'p_amount_range',
    },
  );

  // ================= ORDER BY (merged across shards) =================
  same('order-by', 'users-dump-by-id', `select ${U} from users order by id`);
  same('order-by', 'id-desc', `select id, name from users order by id desc`);
  same('order-by', 'name-asc', `select id, name from users order by name, id`);
  same('order-by', 'name-desc', `select id, name from users order by name desc, id desc`);
  same('order-by', 'name-nulls-first', `select id, name from users order by name nulls first, id`);
  same('order-by', 'name-desc-nulls-last', `select id, name from users order by name desc nulls last, id`);
  same('order-by', 'score-asc', `select id, score from users order by score, id`);
  same('order-by', 'score-desc-nulls-last', `select id, score from users order by score desc nulls last, id`);
  same('order-by', 'created-asc', `select id, created_at from users order by created_at, id`);
  same(
    'order-by',
    'created-desc-nulls-first',
    `select id, created_at from users order by created_at desc nulls first, id`,
  );
  same('order-by', 'bool-asc', `select is_active, id from users order by is_active, id`);
  same(
    'order-by',
    'bool-desc-nulls-last',
    `select is_active, id from users order by is_active desc nulls last, id desc`,
  );
  same('order-by', 'by-position', `select email, id from users order by 1, 2`);
  same('order-by', 'by-alias-expr', `select id, lower(name) as lname from users order by lname, id`);
  same('order-by', 'alias-of-key', `select id as uid, name from users order by uid desc`);
  same('order-by', 'qualified', `select u.id, u.name from users u order by u.id`);
  same('order-by', 'id-as-text', `select id::text as t from users order by t`);
  same(
    'order-by',
    'text-two-keys',
    `select name, email, id from users where name is not null order by name, email nulls first, id`,
  );
  same('order-by', 'with-filter', `select id, name from users where score > 0 order by id`);
  same('order-by', 'orders-dump', `select ${O} from orders order by user_id, id`);
  same(
    'order-by',
    'orders-multi',
    `select status, amount, user_id, id from orders order by status nulls first, amount desc, user_id, id`,
  );
  same(
    'order-by',
    'orders-created-desc',
    `select created_at, user_id, id from orders order by created_at desc, user_id, id`,
  );
  same('order-by', 'items-dump', `select ${I} from items order by user_id, order_id, sku`);
  same(
    'order-by',
    'items-qty-desc',
    `select sku, qty, user_id, order_id from items order by qty desc nulls last, sku, user_id, order_id`,
  );
  same('order-by', 'param-filter', `select id, score from users where score < $1 order by score desc, id`, {
    params: ['-90000000'],
    prepared: 'p_score_below',
  });
  same('order-by', 'param-filter-2', `select id, score from users where score < $1 order by score desc, id`, {
    params: ['-99000000'],
    prepared: 'p_score_below',
  });

  // ================= LIMIT with ORDER BY =================
  same('limit', 'id-10', `select id, name from users order by id limit 10`);
  same('limit', 'id-desc-10', `select id, name from users order by id desc limit 10`);
  same('limit', 'score-25', `select id, score from users order by score desc nulls last, id limit 25`);
  same('limit', 'created-7', `select id, created_at from users order by created_at nulls first, id limit 7`);
  for (const n of [0, 5, 100]) {
    same('limit', `param-${n}`, `select id from users order by id limit $1`, {
      params: [n],
      prepared: 'p_limit',
    });
  }
  same('limit', 'param-null', `select id from users order by id limit $1`, {
    params: [null],
    prepared: 'p_limit',
  });
  same('limit', 'zero', `select id from users order by id limit 0`);
  same('limit', 'more-than-rows', `select id from users order by id limit 100000`);
  same('limit', 'all', `select id from users order by id desc limit all`);
  same('limit', 'fetch-first', `select id, name from users order by name, id fetch first 5 rows only`);
  same('limit', 'offset-zero', `select id from users order by id limit 5 offset 0`);
  // OFFSET across shards: each shard returns its first limit + offset rows, the merge skips the offset.
  same('limit', 'offset-literal', `select id from users order by id limit 10 offset 5`);
  for (const n of [3, 0, 2495, 5000]) {
    same('limit', `offset-param-${n}`, `select id, name from users order by id limit 10 offset $1`, {
      params: [n],
      prepared: 'p_offset',
    });
  }
  both(
    'same',
    'limit',
    'offset-and-limit-params',
    `select id, score from users order by score desc nulls last, id limit $1 offset $2`,
    [7, 20],
  );
  same('limit', 'offset-without-limit', `select name, id from users order by name desc, id offset 2480`);
  same('limit', 'offset-beyond-rows', `select id from users order by id offset 100000`);
  same(
    'limit',
    'offset-join',
    `select u.id, o.id as order_id from users u join orders o on o.user_id = u.id order by u.id, order_id limit 15 offset 100`,
  );
  same(
    'limit',
    'offset-fetch',
    `select id from users order by id desc offset 10 rows fetch next 5 rows only`,
  );
  same(
    'limit',
    'orders-amount-20',
    `select ${O} from orders where amount > 1000 order by amount desc, user_id, id limit 20`,
  );
  same('limit', 'name-desc-15', `select name, id from users order by name desc nulls last, id limit 15`);
  both(
    'same',
    'limit',
    'status-param',
    `select user_id, id, amount from orders where status = $1 order by amount nulls first, user_id, id limit $2`,
    ['réservé', 12],
  );

  // ================= aggregates without GROUP BY =================
  same('aggregate', 'count-users', `select count(*) from users`);
  same('aggregate', 'count-orders', `select count(*) from orders`);
  same('aggregate', 'count-items', `select count(*) from items`);
  same(
    'aggregate',
    'count-columns',
    `select count(name), count(email), count(score), count(created_at) from users`,
  );
  same('aggregate', 'score-sum-min-max', `select sum(score), min(score), max(score) from users`);
  same('aggregate', 'amount-all', `select sum(amount), min(amount), max(amount), count(amount) from orders`);
  same('aggregate', 'users-created-min-max', `select min(created_at), max(created_at) from users`);
  same('aggregate', 'orders-created-min-max', `select min(created_at), max(created_at) from orders`);
  same('aggregate', 'text-min-max', `select min(name), max(name) from users`);
  same('aggregate', 'bigint-min-max-sum', `select min(id), max(id), sum(id) from users`);
  same('aggregate', 'int-sum', `select sum(qty), min(qty), max(qty), count(*) from items`);
  both('same', 'aggregate', 'count-by-key', `select count(*) from users where id = $1`, [on[2][3]]);
  both('same', 'aggregate', 'count-param-filter', `select count(*) from users where score > $1`, [
    '50000000',
  ]);
  same(
    'aggregate',
    'sum-no-rows',
    `select sum(amount), max(note), count(*) from orders where status = 'nonexistent'`,
  );
  same(
    'aggregate',
    'count-filter',
    `select count(*) filter (where status = 'paid') as paid, count(*) as n from orders`,
  );
  same('aggregate', 'max-text-filtered', `select max(email) as m from users where email like '%.fr'`);
  same('aggregate', 'count-cast', `select count(*)::int as n from users`);
  same('aggregate', 'count-1-nulls', `select count(1) from items where qty is null`);
  same('aggregate', 'min-sku', `select min(sku), max(sku) from items`);
  same('aggregate', 'any-array-sum', `select count(*), sum(amount) from orders where user_id = any($1)`, {
    params: [spread],
    prepared: 'p_sum_of',
  });
  same('aggregate', 'any-array-sum-2', `select count(*), sum(amount) from orders where user_id = any($1)`, {
    params: [[sameA, sameB]],
    prepared: 'p_sum_of',
  });
  same(
    'aggregate',
    'join-count',
    `select count(*), sum(i.qty) from orders o join items i on i.user_id = o.user_id and i.order_id = o.id`,
  );
  same(
    'aggregate',
    'exists-count',
    `select count(*) from users u where exists (select 1 from orders o where o.user_id = u.id)`,
  );
  same(
    'aggregate',
    'not-exists-count',
    `select count(*) from users u where not exists (select 1 from orders o where o.user_id = u.id)`,
  );

  // ================= joins on the sharding key, pinned to one shard =================
  for (let s = 0; s < 3; s++) {
    same(
      'join-key',
      `user-orders-shard${s}`,
      `select u.id, u.name, o.id as order_id, o.amount from users u join orders o on o.user_id = u.id where u.id = $1 order by order_id`,
      { params: [on[s][8]], prepared: 'p_user_orders' },
    );
  }
  same(
    'join-key',
    'user-orders-literal',
    `select u.id, u.name, o.id as order_id, o.amount from users u join orders o on o.user_id = u.id where u.id = ${big} order by order_id`,
  );
  same(
    'join-key',
    'filter-on-orders-side',
    `select u.email, o.id, o.status from users u join orders o on o.user_id = u.id where o.user_id = $1 order by o.id`,
    { params: [negative] },
  );
  both(
    'same',
    'join-key',
    'three-way',
    `select u.id, o.id as order_id, i.sku, i.qty from users u join orders o on o.user_id = u.id join items i on i.user_id = o.user_id and i.order_id = o.id where u.id = $1 order by order_id, i.sku`,
    [on[0][9]],
  );
  same(
    'join-key',
    'left-join-no-orders',
    `select u.id, o.id as order_id from users u left join orders o on o.user_id = u.id where u.id = $1`,
    { params: [noOrders] },
  );
  same(
    'join-key',
    'group-by-on-one-shard',
    `select o.status, count(*) from orders o where o.user_id = $1 group by o.status order by 1 nulls first`,
    { params: [on[1][9]] },
  );
  same('join-key', 'avg-on-one-shard', `select avg(amount) from orders where user_id = $1`, {
    params: [on[2][9]],
  });
  same(
    'join-key',
    'distinct-on-one-shard',
    `select distinct status from orders where user_id = $1 order by 1`,
    {
      params: [on[0][10]],
    },
  );
  same('join-key', 'offset-on-one-shard', `select id from orders where user_id = $1 order by id offset 1`, {
    params: [on[1][10]],
  });
  same(
    'join-key',
    'group-by-in-list-one-shard',
    `select user_id, count(*), avg(amount) from orders where user_id in (${sameA}, ${sameB}) group by user_id order by user_id`,
  );
  same(
    'join-key',
    'correlated-scalar-subquery',
    `select id, (select count(*) from orders o where o.user_id = u.id) as n from users u where u.id = $1`,
    { params: [on[2][10]] },
  );

  // ================= joins on the sharding key, fan-out (co-located) =================
  same(
    'join-fanout',
    'users-orders-ordered',
    `select u.id, o.id as order_id, o.amount from users u join orders o on o.user_id = u.id where o.amount > 9000 order by u.id, order_id`,
  );
  unordered(
    'join-fanout',
    'users-orders-unordered',
    `select u.id, u.name, o.status from users u join orders o on o.user_id = u.id where u.score < -95000000`,
  );
  unordered(
    'join-fanout',
    'three-way',
    `select u.id, o.id as order_id, i.sku from users u join orders o on o.user_id = u.id join items i on i.user_id = o.user_id and i.order_id = o.id where i.qty > 95`,
  );
  same(
    'join-fanout',
    'using-user-id',
    `select o.user_id, o.id, i.sku, i.qty from orders o join items i using (user_id) where i.order_id = o.id and i.qty < 0 order by o.user_id, o.id, i.sku`,
  );
  same(
    'join-fanout',
    'left-join-orphans',
    `select o.user_id, o.id, u.name from orders o left join users u on u.id = o.user_id where o.user_id > 1999999 order by o.user_id, o.id`,
  );
  same(
    'join-fanout',
    'count-sum-join',
    `select count(*), sum(o.amount) from users u join orders o on o.user_id = u.id where u.is_active`,
  );
  unordered(
    'join-fanout',
    'join-extra-condition',
    `select u.id, o.id from users u join orders o on u.id = o.user_id and o.status = 'paid' where u.score > 95000000`,
  );
  unordered(
    'join-fanout',
    'exists',
    `select id from users u where exists (select 1 from orders o where o.user_id = u.id and o.amount < -9900)`,
  );
  unordered(
    'join-fanout',
    'comma-join',
    `select u.id, o.id from users u, orders o where o.user_id = u.id and o.amount = 9.99`,
  );
  same(
    'join-fanout',
    'derived-table',
    `select t.id from (select id from users where score > 99000000) t order by t.id`,
  );
  same(
    'join-fanout',
    'cte',
    `with big as (select user_id, id from orders where amount > 9900) select u.id, big.id as order_id from users u join big on big.user_id = u.id order by u.id, order_id`,
  );
  same(
    'join-fanout',
    'any-param-join',
    `select u.id, o.id as order_id from users u join orders o on o.user_id = u.id where u.id = any($1) order by u.id, order_id`,
    { params: [spread] },
  );

  // ================= omnisharded table (countries) =================
  same('omnisharded', 'all-ordered', `select code, name from countries order by code`);
  unordered('omnisharded', 'star', `select * from countries`);
  same('omnisharded', 'count', `select count(*) from countries`);
  same('omnisharded', 'point', `select name from countries where code = 'jp'`);
  same('omnisharded', 'null-name', `select code from countries where name is null`);
  same('omnisharded', 'by-name', `select name, code from countries order by name nulls first, code`);
  same(
    'omnisharded',
    'group-by',
    `select length(name) as len, count(*) from countries group by 1 order by 1 nulls first`,
  );
  same(
    'omnisharded',
    'distinct-avg',
    `select distinct left(name, 1) as initial from countries order by 1 nulls last`,
  );
  same('omnisharded', 'avg', `select avg(octet_length(name)) from countries`);
  for (const code of ['fr', 'xk', 'none']) {
    same('omnisharded', `prepared-${code}`, `select name from countries where code = $1`, {
      params: [code],
      prepared: 'p_country',
    });
  }
  same(
    'omnisharded',
    'join-with-key',
    `select u.id, c.name from users u join countries c on c.code = right(u.email, 2) where u.id = $1`,
    { params: [on[0][11]] },
  );
  same(
    'omnisharded',
    'join-fanout-ordered',
    `select u.id, c.code, c.name from users u join countries c on c.code = right(u.email, 2) where u.score > 90000000 order by u.id`,
  );
  same(
    'omnisharded',
    'left-join-in-list',
    `select u.id, c.name from users u left join countries c on c.code = right(u.email, 2) where u.id in (${spreadBig.join(', ')}) order by u.id`,
  );
  same(
    'omnisharded',
    'join-count',
    `select count(*) from users u join countries c on c.code = right(u.email, 2)`,
  );
  unordered(
    'omnisharded',
    'in-subquery',
    `select id from users where right(email, 2) in (select code from countries where name like 'S%')`,
  );

  // ================= set operations (UNION ALL concatenated, UNION de-duplicated by the proxy) =================
  both(
    'same-unordered',
    'set-operation',
    'union-all',
    `select id, name from users where score > $1 union all select user_id, note from orders where amount > $2`,
    ['99000000', '9900'],
  );
  both(
    'same',
    'set-operation',
    'union-all-order-limit',
    `select id, score as value from users where score > $1 union all select user_id, amount from orders where amount > $2 order by value desc, id limit $3`,
    ['99000000', '9900', 10],
  );
  for (const [i, params] of [
    ['9000', '-99000000', 5, 7],
    ['9990', '-99900000', 4, 0],
    ['9900', '-99500000', null, 3],
  ].entries()) {
    both(
      'same',
      'set-operation',
      `union-all-offset-${i}`,
      `select user_id, amount from orders where amount > $1 union all select id, score from users where score < $2 order by 2, 1 limit $3 offset $4`,
      params,
      { prepared: 'p_union_offset' },
    );
  }
  both(
    'same-unordered',
    'set-operation',
    'union-distinct',
    `select status, note from orders where amount > $1 union select status, note from orders where amount < $2`,
    ['5000', '-5000'],
  );
  same(
    'set-operation',
    'union-distinct-nulls',
    `select note from orders union select name from users where name like 'A%' order by 1 nulls first`,
  );
  both(
    'same',
    'set-operation',
    'union-distinct-numeric',
    `select score from users where score between $1 and $2 union select amount from orders where amount between $1 and $2 order by 1`,
    ['-10', '10'],
  );
  both(
    'same',
    'set-operation',
    'union-distinct-offset',
    `select status from orders where amount > $1 union select status from orders where amount < $2 order by 1 nulls first limit $3 offset $4`,
    ['0', '0', 3, 2],
  );
  same(
    'set-operation',
    'union-distinct-desc-limit',
    `select user_id, status from orders where amount > 9000 union select user_id, status from orders where amount < -9000 order by 2 desc nulls last, 1 limit 15`,
  );
  same(
    'set-operation',
    'union-omnisharded',
    `select name from countries union select name from users where name like 'Z%' order by 1 nulls last`,
  );
  same(
    'set-operation',
    'union-values-first',
    `values (0::bigint, 'none') union select id, email from users where score > 99000000 order by 1, 2`,
  );
  unordered(
    'set-operation',
    'union-constant',
    `select status from orders where amount > 9000 union select 'none'`,
  );
  same(
    'set-operation',
    'union-all-three-branches',
    `select user_id from orders where amount > 9950 union all select user_id from items where qty = 100 union all select id from users where score > 99500000 order by 1`,
  );
  unordered(
    'set-operation',
    'union-scores-amounts',
    `select id from users where score > 99000000 union select user_id from orders where amount > 9990`,
  );
  same(
    'set-operation',
    'union-subquery-on-key',
    `select count(*) from (select user_id from orders union select id from users) s`,
  );
  both(
    'same',
    'set-operation',
    'union-all-pinned',
    `select id, name from users where id = $1 union all select user_id, note from orders where user_id = $1 order by 1, 2 nulls first`,
    [on[0][5]],
  );
  same(
    'set-operation',
    'intersect-pinned',
    `select user_id from orders where user_id = $1 intersect select user_id from items where user_id = $1`,
    { params: [on[1][2]] },
  );

  // ================= a subquery with OFFSET 0 (Prisma's count() and aggregate() shape) =================
  same(
    'aggregate',
    'count-over-offset-0',
    `select count(*) as "_count$_all" from (select id from users where 1=1 offset 0) as sub`,
  );
  same(
    'aggregate',
    'count-over-offset-param',
    `select count(*) from (select id from users offset $1) as sub`,
    {
      params: [0],
    },
  );
  same(
    'aggregate',
    'sum-max-over-offset-param',
    `select sum(amount), max(amount), count(amount) from (select amount from orders where 1=1 offset $1) as sub`,
    { params: [0] },
  );
  rejected(
    'count-over-offset-5',
    `select count(*) from (select id from users offset $1) as sub`,
    /OFFSET \$1 in a subquery over sharded rows/,
    { params: [5] },
  );

  // ================= views over sharded tables (not in the config: learnt from the catalog) =================
  same('view', 'count', `select count(*) from active_users`);
  same('view', 'ordered-limit', `select id, name from active_users order by id limit 7`);
  same('view', 'sum-over-join', `select sum(amount) from user_totals`);
  same('view', 'view-of-view', `select count(*), sum(amount) from big_user_totals`);
  same('view', 'grouped', `select id, count(*) from user_totals group by id order by id limit 10`);
  both('same', 'view', 'by-key', `select id, name from active_users where id = $1`, [on[0][1]]);
  rejected(
    'insert-into-view',
    `insert into active_users (id, name) values (999999001, 'v')`,
    /cannot tell which shard this INSERT belongs to/,
    { write: true },
  );
  rejected(
    'materialized-view-of-sharded',
    `create materialized view mv_users as select id from users`,
    /cannot copy rows of a sharded table/,
    { write: true },
  );

  // ================= catalog and one-row queries =================
  same('catalog', 'pg-tables-count', `select count(*) from pg_tables where schemaname = 'public'`);
  same(
    'catalog',
    'pg-tables-names',
    `select tablename from pg_tables where schemaname = 'public' order by tablename`,
  );
  same(
    'catalog',
    'information-schema',
    `select column_name, data_type, is_nullable from information_schema.columns where table_name = 'orders' order by ordinal_position`,
  );
  same(
    'catalog',
    'pg-indexes',
    `select indexname from pg_indexes where schemaname = 'public' order by indexname`,
  );
  same(
    'catalog',
    'pg-class',
    `select relname, relkind from pg_class where relname in ('users', 'orders', 'items', 'countries') order by relname`,
  );
  same('catalog', 'version', `select version()`);
  same('catalog', 'current-db-user', `select current_database(), current_user`);
  same('catalog', 'select-1', `select 1 as one`);
  same('catalog', 'param-arith', `select $1::int + 1 as n`, { params: [41] });
  same('catalog', 'param-text', `select 'héllo ' || $1 as greeting`, { params: ['wörld 🌍'] });
  same('catalog', 'show', `show server_version`);
  same('catalog', 'timezone', `select current_setting('TimeZone')`);
  same(
    'catalog',
    'int8-limits',
    `select '9223372036854775807'::bigint as max, (-9223372036854775807 - 1)::bigint as min`,
  );
  same('catalog', 'null-and-empty', `select null::text as nothing, ''::text as empty`);
  same('catalog', 'numeric-format', `select pg_typeof(1.5), 2.5::numeric(10,2) as n`);
  same('catalog', 'generate-series', `select generate_series(1, 5) as n`);
  same('catalog', 'prepared-no-params', `select count(*) from pg_tables where schemaname = 'public'`, {
    prepared: 'p_catalog',
  });

  // ================= writes (BEGIN … ROLLBACK on both sides) =================
  const w = (id: string, sql: string, opts: Opts = {}, kind: Expect = 'same'): void =>
    add({ id: `write/${id}`, category: 'write', sql, expect: kind, write: true, ...opts });
  w('update-by-key', `update users set score = score + 1 where id = $1`, {
    params: [on[0][12]],
    checks: [{ sql: `select id, score from users where id = $1`, params: [on[0][12]] }],
  });
  w(
    'update-by-key/simple',
    `update users set name = 'renamed' where id = ${on[1][12]} and name is not null`,
    {
      checks: [{ sql: `select id, name from users where id = ${on[1][12]}` }],
    },
  );
  w('update-fanout', `update users set name = coalesce(name, '') || '!' where score < -90000000`, {
    checks: [{ sql: `select count(*) from users where name like '%!'` }],
  });
  w('delete-fanout', `delete from items where qty < 0`, {
    checks: [{ sql: `select count(*), sum(qty) from items` }],
  });
  w('delete-by-key', `delete from orders where user_id = $1`, {
    params: [on[2][12]],
    checks: [
      { sql: `select count(*) from orders where user_id = $1`, params: [on[2][12]] },
      { sql: 'select count(*) from orders' },
    ],
  });
  w('update-any-array', `update orders set status = 'archived' where user_id = any($1)`, {
    params: [spread],
    checks: [
      {
        sql: `select user_id, id, status from orders where user_id = any($1) order by user_id, id`,
        params: [spread],
      },
    ],
  });
  const newUser = [fresh[0], 'Neue Nutzerin ✨', 'neu@mail.de', '2024-02-29 12:00:00+01', '-0.01', 'true'];
  w('insert-one', `insert into users (${U}) values ($1, $2, $3, $4, $5, $6)`, {
    params: newUser,
    checks: [
      { sql: `select ${U} from users where id = $1`, params: [fresh[0]] },
      { sql: 'select count(*) from users' },
    ],
  });
  w(
    'insert-one/simple',
    inline(`insert into users (${U}) values ($1, $2, $3, $4, $5, $6)`, [fresh[1], ...newUser.slice(1)]),
    {
      checks: [{ sql: `select ${U} from users where id = ${fresh[1]}` }],
    },
  );
  const countriesThrice = Array.from({ length: 3 }, () => ({
    sql: 'select code, name from countries order by code',
  }));
  w('insert-omnisharded', `insert into countries (code, name) values ('zz', 'Zedland')`, {
    checks: countriesThrice,
  });
  w('update-omnisharded', `update countries set name = upper(name) where code < 'f'`, {
    checks: countriesThrice,
  });
  w('delete-omnisharded', `delete from countries where name is null`, { checks: countriesThrice });
  w('delete-missing-returning', `delete from users where id = $1 returning *`, { params: [miss] });
  w(
    'update-fanout-returning',
    `update orders set note = 'checked' where amount > 9900 returning user_id, id, note`,
    {},
    'same-unordered',
  );
  w(
    'delete-by-key-returning',
    `delete from items where user_id = $1 returning order_id, sku`,
    { params: [on[1][13]] },
    'same-unordered',
  );
  w(
    'insert-returning',
    `insert into orders (${O}) values ($1, $2, $3, $4, $5, $6) returning id, user_id, amount, created_at`,
    {
      params: ['77777777', big, '-12.30', 'new', '2030-01-01 00:00:00.000001+00', 'ünïcödé'],
    },
  );
  w(
    'insert-two-rows-one-shard',
    `insert into orders (id, user_id, amount) values ($1, $2, 1.00), ($3, $2, 2.00)`,
    {
      params: ['88888881', on[0][13], '88888882'],
      checks: [{ sql: `select ${O} from orders where user_id = $1 order by id`, params: [on[0][13]] }],
    },
  );
  // Multi-row INSERTs whose rows belong to several shards are split into one INSERT per shard.
  const spanning = `insert into users (id, name, score) values ($1, 'a', 1), ($2, 'b', 2), ($3, 'c', 3)`;
  const freshChecks = [
    { sql: `select ${U} from users where id = any($1) order by id`, params: [fresh.slice(3)] },
    { sql: 'select count(*), sum(score) from users' },
  ];
  w('multi-row-insert-spanning-shards', inline(spanning, fresh.slice(3)), { checks: freshChecks });
  w('multi-row-insert-spanning-shards/extended', spanning, { params: fresh.slice(3), checks: freshChecks });
  w('multi-row-insert-spanning-shards/prepared', spanning, {
    params: fresh.slice(3),
    prepared: 'p_insert3',
    checks: freshChecks,
  });
  w(
    'multi-row-insert-spanning-shards/returning',
    `insert into orders (id, user_id, amount) values (1, $1, 1.5), (2, $2, 2.5), (3, $3, null), (4, $1, -4) returning user_id, id, amount`,
    {
      params: fresh.slice(3),
      checks: [
        {
          sql: `select ${O} from orders where user_id = any($1) order by user_id, id`,
          params: [fresh.slice(3)],
        },
      ],
    },
  );
  w(
    'multi-row-insert-spanning-shards/items',
    `insert into items (order_id, user_id, sku, qty) values (1, ${fresh[3]}, 'x', 1), (2, ${fresh[4]}, 'y', null), (3, ${fresh[5]}, 'z', 3)`,
    {
      checks: [
        { sql: `select ${I} from items where sku in ('x', 'y', 'z') order by user_id, order_id, sku` },
      ],
    },
  );
  w('update-fanout-bool', `update users set is_active = not is_active where is_active is not null`, {
    checks: [
      {
        sql: `select count(*) filter (where is_active) as t, count(*) filter (where not is_active) as f from users`,
      },
    ],
  });
  w('delete-fanout-no-match', `delete from orders where amount > 100000`);
  w(
    'upsert-update',
    `insert into users (id, name) values ($1, 'dup') on conflict (id) do update set name = excluded.name`,
    {
      params: [on[2][13]],
      checks: [{ sql: `select ${U} from users where id = $1`, params: [on[2][13]] }],
    },
  );
  w('upsert-nothing', `insert into users (id, name) values ($1, 'dup') on conflict do nothing`, {
    params: [on[0][14]],
  });
  w('two-shards-in-one-transaction', `update users set score = 0 where id = $1`, {
    params: [on[1][14]],
    checks: [
      { sql: `update users set score = 0 where id = ${on[2][14]}` },
      { sql: `select id, score from users where id in (${on[1][14]}, ${on[2][14]}) order by id` },
    ],
  });
  // A write to a sharded table that reads the omnisharded one: runs where the key says.
  w(
    'update-sharded-from-omnisharded',
    `update users set name = c.name from countries c where c.code = right(users.email, 2) and users.id = $1`,
    { params: [on[1][15]], checks: [{ sql: `select ${U} from users where id = $1`, params: [on[1][15]] }] },
  );
  w(
    'update-sharded-from-omnisharded-fanout',
    `update users set email = upper(c.code) from countries c where c.code = right(users.email, 2) and users.score > 95000000`,
    { checks: [{ sql: `select id, email from users where email ~ '^[A-Z]{2}$' order by id` }] },
  );

  // ================= avg() across shards (sum + hidden count, divided in the proxy) =================
  same('aggregate', 'avg-int', `select avg(qty) from items`);
  same('aggregate', 'avg-bigint-beyond-int8', `select avg(id) from users`);
  same(
    'aggregate',
    'avg-numeric-with-others',
    `select count(*), sum(amount), avg(amount), min(amount), max(amount) from orders`,
  );
  same('aggregate', 'avg-float8', `select avg(qty::float8) as q, avg(qty * 0.25::float8) from items`);
  same('aggregate', 'avg-real', `select avg(qty::real), avg(qty * 0.5::real) as half from items`);
  same('aggregate', 'avg-no-rows', `select avg(amount), count(*) from orders where status = 'nonexistent'`);
  same('aggregate', 'avg-only-nulls', `select avg(qty), count(*) from items where qty is null`);
  same(
    'aggregate',
    'avg-filter-clause',
    `select avg(amount) filter (where status = 'paid') as paid_avg, avg(amount) from orders`,
  );
  same(
    'aggregate',
    'avg-group-by',
    `select status, avg(amount), count(*) from orders group by status order by status nulls first`,
  );
  same(
    'aggregate',
    'avg-group-by-order-by-avg-limit',
    `select status, avg(amount) as a from orders group by status order by a desc nulls last, status limit 3`,
  );
  both(
    'same',
    'aggregate',
    'avg-group-by-param-limit',
    `select user_id % 7 as b, avg(amount), avg(id) from orders group by 1 order by 1 limit $1`,
    [5],
  );
  same(
    'aggregate',
    'avg-float8-group-by',
    `select sku like 'SKU%' as k, avg(qty::float8), avg(qty) from items group by 1 order by 1`,
  );
  same(
    'aggregate',
    'avg-join-group-by',
    `select u.is_active, avg(o.amount) from users u join orders o on o.user_id = u.id group by u.is_active order by 1 nulls first`,
  );

  // ================= HAVING across shards (applied to the merged groups) =================
  same(
    'aggregate',
    'having-count',
    `select status, count(*) from orders group by status having count(*) > 740 order by status nulls first`,
  );
  both(
    'same',
    'aggregate',
    'having-sum-and-count-params',
    `select status, sum(amount) from orders group by status having sum(amount) > $1 and count(*) >= $2 order by 1 nulls first`,
    ['1250000', 740],
  );
  same(
    'aggregate',
    'having-avg-by-key',
    `select user_id, avg(amount) from orders group by user_id having avg(amount) > 9000 order by user_id`,
  );
  same(
    'aggregate',
    'having-hidden-aggregates',
    `select status, count(*) from orders group by status having avg(amount) < 1760 or max(amount) > 9998 order by status nulls first`,
  );
  same(
    'aggregate',
    'having-not-or',
    `select status, min(amount), max(amount) from orders group by status having not (min(amount) > -9960 or status = 'new') order by 1 nulls first`,
  );
  both(
    'same-unordered',
    'aggregate',
    'having-group-column-param',
    `select status, count(*) from orders group by status having status <> 'paid' and count(*) > $1`,
    [100],
  );
  for (const n of [200, 280]) {
    same(
      'aggregate',
      `having-prepared-${n}`,
      `select user_id % 10 as b, count(*) from orders group by 1 having count(*) > $1 order by 1`,
      { params: [n], prepared: 'p_having' },
    );
  }
  same('aggregate', 'having-without-group-by', `select count(*), avg(qty) from items having count(*) > 5`);
  same(
    'aggregate',
    'having-without-group-by-no-row',
    `select count(*), sum(qty) from items having count(*) > 1000000`,
  );
  both(
    'same',
    'aggregate',
    'having-limit-offset-params',
    `select status, count(*) from orders group by status having count(*) > $1 order by 2 desc, 1 limit $2 offset $3`,
    [100, 2, 1],
  );
  same(
    'aggregate',
    'having-text-comparison',
    `select status, count(*) from orders group by status having status >= 'p' order by 1`,
  );
  same(
    'aggregate',
    'having-float8',
    `select sku like 'SKU%' as k, count(*) from items group by 1 having avg(qty::float8) > 40.5 order by 1`,
  );
  same(
    'aggregate',
    'having-literal-forms',
    `select status, count(*) from orders group by status having count(*) > 7e2 and count(*) <> 735.5::int and avg(amount) > 1.7e3 order by 1 nulls first`,
  );
  same(
    'aggregate',
    'having-null-comparison',
    `select status, count(*) from orders group by status having not (status = null or max(note) < '') or count(*) > 740 order by 1 nulls first`,
  );

  // ================= ORDER BY columns not in the select list (hidden sort columns) =================
  same(
    'order-by',
    'hidden-desc-nulls-first-limit',
    `select name from users order by created_at desc nulls first, id limit 20`,
  );
  both(
    'same',
    'limit',
    'hidden-limit-offset-params',
    `select id, name from users order by score desc nulls first, id limit $1 offset $2`,
    [10, 15],
  );
  same(
    'limit',
    'hidden-star-offset',
    `select * from orders order by amount desc nulls last, user_id, id limit 10 offset 5`,
  );
  same('order-by', 'hidden-text', `select id from users order by email nulls first, id limit 50`);
  same(
    'order-by',
    'hidden-expression',
    `select id from users order by lower(name) desc nulls first, id limit 25`,
  );
  same(
    'order-by',
    'hidden-star-alias-after-star',
    `select *, score * 2 as dbl from users order by dbl nulls first, id limit 10`,
  );
  same(
    'order-by',
    'hidden-join',
    `select u.name, o.amount from users u join orders o on o.user_id = u.id order by o.created_at desc nulls last, o.user_id, o.id limit 30`,
  );
  // A hidden column named like a selected one of another table (o.created_at, o.id vs u.created_at, u.id).
  same(
    'order-by',
    'hidden-same-name-other-table',
    `select u.id, u.created_at from users u join orders o on o.user_id = u.id order by o.created_at desc nulls last, o.id limit 30`,
  );
  same(
    'order-by',
    'hidden-numeric-desc-nulls-first',
    `select user_id, id from orders order by amount desc nulls first, user_id, id limit 40`,
  );
  same(
    'limit',
    'hidden-timestamp-offset',
    `select id from orders order by created_at nulls first, user_id, id offset 4700`,
  );
  for (const bound of ['-90000000', '-99000000']) {
    same(
      'order-by',
      `hidden-prepared${bound}`,
      `select id from users where score < $1 order by created_at, id`,
      { params: [bound], prepared: 'p_hidden_sort' },
    );
  }
  same(
    'order-by',
    'hidden-group-by-aggregate',
    `select status from orders group by status order by count(*) desc, status nulls first`,
  );
  same(
    'order-by',
    'hidden-group-by-avg',
    `select status, count(*) from orders group by status order by avg(amount), status nulls first`,
  );
  same(
    'order-by',
    'hidden-group-by-having-limit',
    `select status from orders group by status having count(*) > 100 order by sum(amount) desc, status limit 4`,
  );

  // ================= rejected today: must fail with 0A000 through the proxy =================
  rejected('offset-with-aggregate', `select count(*) from users offset 1`, /OFFSET/);
  // GROUP BY across shards: partial groups merged in the proxy, then ORDER BY / LIMIT / OFFSET on the merged groups.
  unordered('aggregate', 'group-by', `select status, count(*) from orders group by status`);
  same(
    'aggregate',
    'group-by-ordered-sums',
    `select status, count(*), sum(amount), min(id), max(id) from orders group by status order by status nulls first`,
  );
  unordered(
    'aggregate',
    'group-by-sharding-key',
    `select user_id, count(*), sum(amount) from orders group by user_id`,
  );
  same(
    'aggregate',
    'group-by-order-by-count-limit',
    `select user_id, count(*) from orders group by user_id order by 2 desc, 1 limit 5`,
  );
  both(
    'same',
    'aggregate',
    'group-by-limit-offset-params',
    `select status, count(*) from orders group by 1 order by 1 nulls first limit $1 offset $2`,
    [2, 1],
  );
  rejected('group-by-expression-not-selected', `select count(*) from orders group by status`, /GROUP BY/);
  // HAVING across shards: the shards return every partial group, the proxy applies HAVING to the merged groups.
  unordered('aggregate', 'group-by-having', `select status from orders group by status having count(*) > 10`);
  // avg across shards: the shards run sum(x) and a hidden count(x); the proxy divides as numeric_div does.
  same('aggregate', 'avg', `select avg(score) from users`);
  both('same', 'aggregate', 'avg-filtered', `select avg(amount) from orders where status = $1`, ['paid']);
  same('aggregate', 'avg-join', `select avg(o.amount) from users u join orders o on o.user_id = u.id`);
  unordered('aggregate', 'distinct', `select distinct status from orders`);
  same('aggregate', 'distinct-ordered-limit', `select distinct user_id from orders order by 1 desc limit 7`);
  both(
    'same',
    'aggregate',
    'distinct-two-columns-offset',
    `select distinct status, user_id from orders order by 2, 1 nulls first limit $1 offset $2`,
    [5, 3],
  );
  // ---- count/sum/avg(DISTINCT …) and ordered aggregates; most also with binary results (`/binary`) ----
  /** The query with text results, and again with binary results (extended protocol). */
  const textAndBinary = (
    kind: 'same' | 'same-unordered',
    category: Category,
    id: string,
    sql: string,
    opts: Opts = {},
  ): void => {
    add({ id: `${category}/${id}`, category, sql, expect: kind, ...opts });
    add({ id: `${category}/${id}/binary`, category, sql, expect: kind, ...opts, binary: true });
  };
  // The sharding key: no value is on two shards, the shards' counts and sums add up.
  textAndBinary('same', 'aggregate', 'count-distinct-key', `select count(distinct id) from users`);
  textAndBinary(
    'same',
    'aggregate',
    'typeorm-find-and-count',
    `SELECT COUNT(DISTINCT("User"."id")) AS "cnt" FROM "users" "User"`,
  );
  both(
    'same',
    'aggregate',
    'typeorm-find-and-count-where',
    `SELECT COUNT(DISTINCT("User"."id")) AS "cnt" FROM "users" "User" WHERE "User"."is_active" = $1`,
    ['true'],
  );
  both(
    'same',
    'aggregate',
    'typeorm-find-and-count-left-join',
    `SELECT COUNT(DISTINCT("User"."id")) AS "cnt" FROM "users" "User" LEFT JOIN "orders" "User__orders" ` +
      `ON "User__orders"."user_id"="User"."id" WHERE "User__orders"."status" = $1 OR "User__orders"."id" IS NULL`,
    ['paid'],
  );
  textAndBinary(
    'same',
    'aggregate',
    'distinct-key-sum-avg',
    `select count(distinct user_id), sum(distinct user_id), avg(distinct user_id) from orders`,
  );
  same(
    'aggregate',
    'distinct-key-outer-join-nulls',
    `select count(distinct o.user_id), count(distinct u.id), count(*) from users u left join orders o on o.user_id = u.id`,
  );
  same(
    'aggregate',
    'distinct-key-filter',
    `select count(distinct user_id) filter (where amount > 100), avg(distinct user_id) filter (where status = 'paid') from orders`,
  );
  // Other columns: the shards also group by the value, the proxy keeps each value once (PostgreSQL's equality).
  textAndBinary('same', 'aggregate', 'count-distinct', `select count(distinct status) from orders`);
  textAndBinary(
    'same',
    'aggregate',
    'distinct-numeric',
    `select count(distinct amount), sum(distinct amount), avg(distinct amount) from orders`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'distinct-int',
    `select count(distinct qty), sum(distinct qty), avg(distinct qty), count(*), sum(qty) from items`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'distinct-float8',
    `select count(distinct score::float8), sum(distinct score::float8), avg(distinct score::float8) from users`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'distinct-float4',
    `select sum(distinct (score / 7)::float4), avg(distinct (score / 7)::float4) from users`,
  );
  // 12.30 and 12.3000 are one value: counted once however each shard wrote it.
  textAndBinary(
    'same',
    'aggregate',
    'distinct-numeric-scales',
    `select count(distinct case when id % 2 = 0 then amount else amount::numeric(20,4) end), count(distinct amount) from orders`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'distinct-text-nulls',
    `select count(distinct name), count(distinct lower(name)), count(name), count(*) from users`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'distinct-mixed-with-key-and-partials',
    `select status, count(*), count(distinct user_id), sum(amount), avg(amount), count(distinct amount), ` +
      `max(distinct amount) from orders group by status order by status nulls first`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'distinct-filter',
    `select count(distinct status) filter (where amount > 0), sum(distinct amount) filter (where status = 'paid'), ` +
      `count(distinct amount) from orders`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'distinct-no-rows',
    `select count(distinct status), sum(distinct amount), avg(distinct qty), count(*) from orders o ` +
      `join items i on i.user_id = o.user_id and i.order_id = o.id where o.amount > 1e12`,
  );
  both(
    'same',
    'aggregate',
    'distinct-param-limit',
    `select count(distinct status), count(distinct amount)::int from orders where amount > $1 limit $2`,
    ['10', 1],
  );
  same(
    'aggregate',
    'distinct-having',
    `select status, count(distinct user_id) from orders group by status having count(distinct amount) > 100 ` +
      `order by status nulls first`,
  );
  both(
    'same',
    'aggregate',
    'distinct-order-by-hidden-limit',
    `select status from orders group by status order by count(distinct amount) desc, ` +
      `sum(distinct amount) nulls first, status nulls first limit $1`,
    [3],
  );
  textAndBinary(
    'same',
    'aggregate',
    'distinct-group-by-key',
    `select user_id, count(distinct status), sum(distinct amount), avg(distinct amount) from orders ` +
      `group by user_id order by user_id limit 40`,
  );
  unordered(
    'aggregate',
    'distinct-join-group-by',
    `select u.is_active, count(distinct o.status), count(distinct u.name) from users u join orders o on o.user_id = u.id group by u.is_active`,
  );
  // string_agg / array_agg with ORDER BY inside: the shards return ordered arrays, the proxy merges them by the keys.
  textAndBinary(
    'same',
    'aggregate',
    'string-agg-ordered',
    `select string_agg(name, ', ' order by id) from users where id between -100000000 and 100000000`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'string-agg-group-by-desc-nulls',
    `select status, string_agg(note, ' | ' order by note desc nulls first, user_id, id) from orders ` +
      `group by status order by status nulls first`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'array-agg-awkward-text',
    `select array_agg(name order by created_at nulls first, id), array_agg(email order by id desc) from users where id < 0`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'array-agg-numeric-group-by',
    `select status, array_agg(amount order by amount desc nulls first, user_id, id), count(*) from orders ` +
      `where amount < 0 group by status order by status nulls first`,
  );
  textAndBinary(
    'same',
    'aggregate',
    'array-agg-filter-and-distinct',
    `select array_agg(qty order by user_id, order_id, sku) filter (where qty > 90), count(distinct sku) from items`,
  );
  both(
    'same',
    'aggregate',
    'string-agg-param-delimiter',
    `select string_agg(sku, $1 order by sku, user_id, order_id) from items where qty = $2`,
    [' ; ', 7],
  );
  same(
    'aggregate',
    'string-agg-group-by-key',
    `select user_id, string_agg(status, ',' order by id) from orders group by user_id order by user_id limit 25`,
  );
  same(
    'aggregate',
    'ordered-aggregates-no-rows',
    `select string_agg(name, ',' order by id), array_agg(id order by id) from users where id = 424242424242`,
  );
  rejected('string-agg-unordered', `select string_agg(status, ',') from orders`, /without ORDER BY inside/);
  rejected('array-agg-distinct', `select array_agg(distinct status) from orders`, /array_agg\(DISTINCT/);
  // Grouped by the key of an outer join's nullable side: the NULL group has rows on every shard (refused at run time).
  rejected(
    'group-by-outer-join-null-key',
    `select o.user_id, count(distinct o.status) from users u left join orders o on o.user_id = u.id group by o.user_id`,
    /rows on several shards/,
  );
  same(
    'aggregate',
    'group-by-outer-join-key-combined',
    `select o.user_id, count(*), count(o.status) from users u left join orders o on o.user_id = u.id ` +
      `group by o.user_id order by o.user_id nulls first limit 20`,
  );
  same(
    'aggregate',
    'distinct-on',
    `select distinct on (status) status, user_id, id from orders order by status, user_id, id`,
  );
  both(
    'same',
    'aggregate',
    'distinct-on-desc-limit-offset',
    `select distinct on (user_id) user_id, status, id from orders order by user_id desc, id limit $1 offset $2`,
    [7, 3],
  );
  same(
    'aggregate',
    'distinct-on-two-keys-nulls',
    `select distinct on (status, user_id) status, user_id, id from orders order by user_id nulls first, status, id desc`,
  );
  // ORDER BY columns that are not selected: hidden sort columns (DISTINCT ON compares its own expressions only).
  both(
    'same',
    'aggregate',
    'distinct-on-hidden-order-by',
    `select distinct on (status) status, amount from orders order by status nulls first, created_at desc nulls last, user_id, id limit $1`,
    [4],
  );
  // DISTINCT ON without ORDER BY: any row of each group is right, so only the keys are compared.
  unordered('aggregate', 'distinct-on-without-order-by', `select distinct on (status) status from orders`);
  both(
    'same-unordered',
    'aggregate',
    'distinct-on-without-order-by-param',
    `select distinct on (user_id, status) user_id, status from orders where user_id > $1`,
    [0],
  );
  rejected(
    'join-orders-items-on-order-id',
    `select o.id, i.sku from orders o join items i on i.order_id = o.id`,
    /not joined on their sharding columns/,
  );
  rejected(
    'join-users-orders-on-id',
    `select u.id, o.amount from users u join orders o on o.id = u.id`,
    /not joined on their sharding columns/,
  );
  rejected(
    'join-users-items-wrong-column',
    `select count(*) from users u join items i on i.order_id = u.id`,
    /not joined on their sharding columns/,
  );
  rejected('update-sharding-key', `update users set id = id + 1000000000 where id = $1`, /sharding key/, {
    write: true,
    params: [on[0][16]],
  });
  rejected(
    'update-sharding-key-orders',
    `update orders set user_id = $1 where user_id = $2`,
    /sharding key/,
    {
      write: true,
      params: [on[1][16], on[0][16]],
    },
  );
  rejected(
    'update-sharding-key-fanout',
    `update items set user_id = user_id + 0 where qty = 0`,
    /sharding key/,
    {
      write: true,
    },
  );
  // Limitations found while writing this suite (not in the plan's list, but refused rather than answered wrongly).
  // ORDER BY columns not in the select list: the shards return them as hidden columns, the merge sorts on them.
  same('order-by', 'star-order-by', `select * from users order by id`);
  same('order-by', 'order-by-not-selected', `select id from users order by score, id`);
  rejected('intersect', `select user_id from orders intersect select user_id from items`, /^INTERSECT needs/);
  rejected('except', `select user_id from orders except select id from users`, /^EXCEPT needs/);
  rejected(
    'union-all-omnisharded',
    `select name from users where name like 'Z%' union all select name from countries`,
    /a branch of UNION ALL reads no sharded table/,
  );
  rejected(
    'union-all-constant',
    `select id from users where score > 99000000 union all select 0`,
    /a branch of UNION ALL reads no sharded table/,
  );
  rejected(
    'union-omnisharded-function',
    `select name from users where name like 'Z%' union select upper(name) from countries`,
    /calls a function/,
  );
  rejected(
    'union-in-subquery',
    `select count(*) from (select status from orders union select status from orders) s`,
    /UNION in a subquery over sharded table orders does not include the sharding column/,
  );
  rejected(
    'union-inside-union-all',
    `select status from orders where amount > 0 union all (select status from orders where amount < 0 union select note from orders)`,
    /UNION in a set-operation branch/,
  );
  rejected(
    'union-branch-aggregate',
    `select count(*) from users union all select count(*) from orders`,
    /aggregation in a set-operation branch/,
  );
  rejected(
    'union-star',
    `select * from users where score > 99000000 union select * from users where score < -99000000`,
    /no \*/,
  );
  // INSERT … SELECT: the proxy evaluates the query (rows to their shards), or runs it on each shard when co-located.
  w(
    'insert-select-colocated',
    `insert into orders (id, user_id, amount, status) select id + 100000000, user_id, amount, 'copy' from orders where amount > 9000`,
    {
      checks: [
        { sql: `select count(*), sum(amount), min(id), max(id) from orders where status = 'copy'` },
        {
          sql: `select user_id, count(*) from orders where status = 'copy' group by user_id order by user_id limit 20`,
        },
      ],
    },
  );
  w(
    'insert-select-into-omnisharded',
    `insert into countries (code, name) select 'u' || right(id::text, 1), name from users where id = $1`,
    {
      params: [on[0][15]],
      checks: [{ sql: `select code, name from countries where code like 'u%' order by code` }],
    },
  );
  w(
    'insert-select-rekeyed',
    `insert into users (id, name, score) select id + 500000000, name, score from users order by id limit 5 returning id, name`,
    {
      checks: [{ sql: `select id, name, score from users where id > 500000000 order by id` }],
    },
  );
  rejected(
    'update-omnisharded-from-sharded',
    `update countries set name = u.name from users u where u.id = $1 and countries.code = 'fr'`,
    /copied to every shard, cannot read the sharded tables/,
    { write: true, params: [on[1][15]] },
  );
  rejected(
    'delete-omnisharded-by-sharded-subquery',
    `delete from countries where code in (select right(email, 2) from users where id = $1)`,
    /copied to every shard, cannot read the sharded tables/,
    { write: true, params: [on[2][15]] },
  );
  rejected('unmergeable-aggregate', `select bit_and(qty) from items`, /bit_and/);
  // bool_and / every: the min of the shards' results (false < true); bool_or: the max. NULLs ignored, all NULL → NULL.
  textAndBinary(
    'same',
    'aggregate',
    'bool-and-or',
    `select bool_and(is_active), bool_or(is_active), every(score > 0), bool_or(score > 99999999) from users`,
  );
  same(
    'aggregate',
    'bool-and-or-group-by-having-order',
    `select left(name, 1) as initial, bool_and(is_active), bool_or(is_active), count(*) from users ` +
      `group by 1 having count(*) > 10 order by bool_or(score > 50000000) nulls first, 1 nulls first`,
  );
  rejected(
    'aggregate-in-expression',
    `select max(amount) - min(amount) from orders`,
    /aggregate inside an expression/,
  );
  rejected('window-function', `select id, row_number() over (order by id) from users`, /window function/);
  rejected(
    'uncorrelated-scalar-subquery',
    `select id, (select max(amount) from orders) as top from users where id = $1`,
    /not correlated/,
    { params: [on[2][16]] },
  );

  same('aggregate', 'avg-distinct', `select avg(distinct qty) from items`);
  rejected('avg-under-cast', `select avg(amount)::numeric(10,2) from orders`, /avg\(\) under a cast/);
  // Grouped by the sharding key, aggregates under a cast are each group's one shard's values, taken whole.
  same(
    'aggregate',
    'cast-aggregates-group-by-key',
    `select user_id, min(amount)::text, avg(amount)::numeric(10,2), count(*)::int from orders group by user_id order by user_id limit 20`,
  );
  // min/max of cast values: the merge would compare the texts ('-1.50' < '-9.00'); was answered wrongly.
  rejected(
    'min-max-under-cast',
    `select min(score)::text, max(amount)::text from users u join orders o on o.user_id = u.id`,
    /min\(\) under a cast cannot be merged across shards/,
  );
  rejected(
    'having-between',
    `select status, count(*) from orders group by status having count(*) between 10 and 1000`,
    /HAVING with BETWEEN/,
  );
  rejected(
    'having-aggregate-expression',
    `select status from orders group by status having sum(amount) / count(*) > 5`,
    /HAVING with an expression of aggregates/,
  );
  rejected(
    'having-unmergeable-aggregate',
    `select status from orders group by status having bool_and(amount > 0)`,
    /bool_and/,
  );
  rejected(
    'order-by-aggregate-expression',
    `select status from orders group by status order by sum(amount) / count(*), status`,
    /ORDER BY an expression that is not in the select list/,
  );

  const ids = new Set<string>();
  for (const q of out) {
    if (ids.has(q.id)) throw new Error(`corpus: duplicate id ${q.id}`);
    ids.add(q.id);
  }
  return out;
}
