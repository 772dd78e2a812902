// The SQL fuzzer's query generator (test/integration/sql-fuzz.test.ts): random SELECTs over the differential
// suite's schema (users, orders, items, countries, the views, a derived table and a CTE) in the shapes the router
// supports across shards — select lists of columns, expressions, `*` and scalar subqueries correlated on the key;
// WHERE with sharding-key equality, IN lists, = ANY, ranges, no key, AND / OR / NOT mixes, NULL tests, EXISTS / IN
// subqueries; ORDER BY on 1–3 keys of mixed types (ASC / DESC, NULLS FIRST / LAST, by ordinal, alias, expression or a
// column not selected); LIMIT / OFFSET / FETCH (literals or parameters, 0, ALL, NULL, larger than the result);
// DISTINCT and DISTINCT ON; GROUP BY with count, sum, min, max, avg (also DISTINCT, FILTER, under a cast), bool_and /
// bool_or, string_agg / array_agg with an inner ORDER BY, HAVING; co-located joins on the sharding key, joins with the
// omnisharded countries table; UNION / UNION ALL. Deterministic: the same Rng states give the same query; structure
// and values come from two Rngs, so a query has twins with other values.
//
// Each query says what of its answer is determined (`compare`), so that a correct proxy can never fail it:
//   'ordered'   the ORDER BY is total (it ends with a unique key of the rows): rows compared in order;
//   'keys'      the ORDER BY leaves ties: the sort-key columns compared in order, the rows as a multiset when no
//               LIMIT / OFFSET cuts them (else only the key columns are determined);
//   'multiset'  no ORDER BY: rows compared as a multiset;
//   'count'     LIMIT / OFFSET without ORDER BY: only the row count is determined.
// Numerics that are equal but print differently (0 and 0.00) would make ties undetermined: expressions keep one scale
// (coalesce(x, 0.00)), set-operation branches pair columns of one scale.
//
// Generated and refused with 0A000 by design (the test accepts these refusals and prints their share): ORDER BY an
// array_agg result (no PostgreSQL array order in the merge), min / max under a cast (corpus.ts
// `rejected/min-max-under-cast`: the merge would compare the cast values). Left out, each a gap the router refuses with 0A000 (corpus.ts `rejected` entries): window functions,
// INTERSECT / EXCEPT, aggregates inside expressions, HAVING with BETWEEN, IS [NOT] NULL, a boolean GROUP BY expression
// or a timestamptz / boolean comparison, avg() under a cast, string_agg / array_agg without ORDER BY inside, OFFSET
// with aggregates and no GROUP BY, GROUP BY expressions that are not selected, uncorrelated scalar subqueries. Float
// sums and averages of fractional values are left out: their rounding depends on the order the rows are added in,
// which is not the same on one database and across three.
import { shardOf, type Param } from './corpus.js';
import { Rng, type Dataset } from './dataset.js';

export type Compare =
  | { kind: 'ordered' }
  | { kind: 'keys'; positions: number[]; isCut: boolean }
  | { kind: 'multiset' }
  | { kind: 'count' };

export interface FuzzQuery {
  /** The statement, with `$n` where `params` go (inline them for the simple protocol). */
  sql: string;
  params: Param[];
  compare: Compare;
  /** The shape, for the statistics printed at the end. */
  shape: string;
}

type SqlType = 'int8' | 'int4' | 'numeric' | 'text' | 'ts' | 'bool';

interface Expr {
  sql: string;
  type: SqlType;
  /** A column (or view column) of the source, as written. */
  isColumn: boolean;
  /** Few distinct values: fit to GROUP BY / DISTINCT. */
  isLowCard: boolean;
}

interface Source {
  name: string;
  from: string;
  cols: Expr[];
  /** Expressions that together are unique over the source's rows (empty: no unique key). */
  unique: string[];
  /** The sharding-key expressions a WHERE can pin (empty for the omnisharded table). */
  keys: string[];
  /** The alias of the users table, for EXISTS / IN subqueries over orders. */
  usersAlias: string | null;
  /** A WITH clause the statement starts with (no parameters in it). */
  with?: string;
}

const col = (sql: string, type: SqlType, isLowCard = false): Expr => ({
  sql,
  type,
  isColumn: true,
  isLowCard,
});

const usersCols = (a: string): Expr[] => [
  col(`${a}.id`, 'int8'),
  col(`${a}.name`, 'text'),
  col(`${a}.email`, 'text'),
  col(`${a}.created_at`, 'ts'),
  col(`${a}.score`, 'numeric'),
  col(`${a}.is_active`, 'bool', true),
];
const ordersCols = (a: string): Expr[] => [
  col(`${a}.id`, 'int8'),
  col(`${a}.user_id`, 'int8'),
  col(`${a}.amount`, 'numeric'),
  col(`${a}.status`, 'text', true),
  col(`${a}.created_at`, 'ts'),
  col(`${a}.note`, 'text', true),
];
const itemsCols = (a: string): Expr[] => [
  col(`${a}.order_id`, 'int8'),
  col(`${a}.user_id`, 'int8'),
  col(`${a}.sku`, 'text'),
  col(`${a}.qty`, 'int4'),
];
const countryCols = (a: string): Expr[] => [col(`${a}.code`, 'text'), col(`${a}.name`, 'text')];

const SOURCES: readonly Source[] = [
  { name: 'users', from: 'users u', cols: usersCols('u'), unique: ['u.id'], keys: ['u.id'], usersAlias: 'u' },
  {
    name: 'orders',
    from: 'orders o',
    cols: ordersCols('o'),
    unique: ['o.id'],
    keys: ['o.user_id'],
    usersAlias: null,
  },
  {
    name: 'items',
    from: 'items i',
    cols: itemsCols('i'),
    unique: ['i.order_id', 'i.sku'],
    keys: ['i.user_id'],
    usersAlias: null,
  },
  {
    name: 'users-join-orders',
    from: 'users u join orders o on o.user_id = u.id',
    cols: [...usersCols('u'), ...ordersCols('o')],
    unique: ['o.id'],
    keys: ['u.id', 'o.user_id'],
    usersAlias: 'u',
  },
  {
    name: 'users-left-join-orders',
    from: 'users u left join orders o on o.user_id = u.id',
    cols: [...usersCols('u'), ...ordersCols('o')],
    unique: ['u.id', 'o.id'],
    keys: ['u.id'],
    usersAlias: 'u',
  },
  {
    name: 'orders-join-items',
    from: 'orders o join items i on i.user_id = o.user_id and i.order_id = o.id',
    cols: [...ordersCols('o'), ...itemsCols('i')],
    unique: ['i.order_id', 'i.sku'],
    keys: ['o.user_id', 'i.user_id'],
    usersAlias: null,
  },
  {
    name: 'users-orders-items',
    from: 'users u join orders o on o.user_id = u.id join items i on i.user_id = o.user_id and i.order_id = o.id',
    cols: [...usersCols('u'), col('o.amount', 'numeric'), col('o.status', 'text', true), ...itemsCols('i')],
    unique: ['i.order_id', 'i.sku'],
    keys: ['u.id', 'i.user_id'],
    usersAlias: 'u',
  },
  {
    name: 'users-join-countries',
    from: 'users u join countries c on c.code = right(u.email, 2)',
    cols: [...usersCols('u'), ...countryCols('c')],
    unique: ['u.id'],
    keys: ['u.id'],
    usersAlias: 'u',
  },
  {
    name: 'users-left-join-countries',
    from: 'users u left join countries c on c.code = right(u.email, 2)',
    cols: [...usersCols('u'), ...countryCols('c')],
    unique: ['u.id'],
    keys: ['u.id'],
    usersAlias: 'u',
  },
  {
    name: 'active-users-view',
    from: 'active_users v',
    cols: [col('v.id', 'int8'), col('v.name', 'text'), col('v.score', 'numeric')],
    unique: ['v.id'],
    keys: [],
    usersAlias: null,
  },
  {
    name: 'user-totals-view',
    from: 'user_totals t',
    cols: [col('t.id', 'int8'), col('t.amount', 'numeric')],
    unique: [],
    keys: [],
    usersAlias: null,
  },
  {
    name: 'derived-orders',
    from: '(select o.id, o.user_id, o.amount, o.status from orders o where o.amount > 0) d',
    cols: [
      col('d.id', 'int8'),
      col('d.user_id', 'int8'),
      col('d.amount', 'numeric'),
      col('d.status', 'text', true),
    ],
    unique: ['d.id'],
    keys: ['d.user_id'],
    usersAlias: null,
  },
  {
    name: 'cte-big-orders',
    with: 'with big as (select user_id, id, amount from orders where amount > 1000)',
    from: 'users u join big b on b.user_id = u.id',
    cols: [...usersCols('u'), col('b.id', 'int8'), col('b.amount', 'numeric')],
    unique: ['b.id'],
    keys: ['u.id', 'b.user_id'],
    usersAlias: 'u',
  },
  {
    name: 'countries',
    from: 'countries c',
    cols: countryCols('c'),
    unique: ['c.code'],
    keys: [],
    usersAlias: null,
  },
];

/** Constants picked from the data, so that predicates select something and keys hit each shard. */
export interface ValuePools {
  /** User ids per shard (with orders and items). */
  idsOn: string[][];
  edgeIds: string[];
  missingIds: string[];
  scores: string[];
  amounts: string[];
  timestamps: string[];
  statuses: string[];
  qtys: string[];
  namePrefixes: string[];
  codes: string[];
}

export function valuePools(ds: Dataset): ValuePools {
  const withItems = new Set(ds.items.map((i) => i.user_id));
  const idsOn: string[][] = [[], [], []];
  for (const u of ds.users) if (withItems.has(u.id)) idsOn[shardOf(u.id)].push(u.id);
  const userIds = new Set(ds.users.map((u) => u.id));
  const missingIds = ['424242424242', '2500000', '-3', '77'].filter((id) => !userIds.has(id));
  const some = <T>(xs: readonly T[], n: number): T[] =>
    xs.filter((_, i) => i % Math.max(1, Math.floor(xs.length / n)) === 0);
  const nonNull = (xs: readonly (string | null)[]): string[] => xs.filter((x): x is string => x !== null);
  return {
    idsOn: idsOn.map((ids) => some(ids, 40)),
    edgeIds: ['0', '1', '-1', '9007199254740993', '9223372036854775807', '-9223372036854775808'].filter(
      (id) => userIds.has(id),
    ),
    missingIds,
    scores: [...some(nonNull(ds.users.map((u) => u.score)), 30), '0', '1.50', '-1.50', '100.00'],
    amounts: [...some(nonNull(ds.orders.map((o) => o.amount)), 30), '0', '9.99', '-9.99'],
    timestamps: [
      ...some(nonNull(ds.users.map((u) => u.created_at)), 10).filter((t) => /^\d{4}-/.test(t)),
      '2000-01-01 00:00:00+00',
      '2020-06-15 12:00:00+02',
    ],
    statuses: ['new', 'paid', 'shipped', 'cancelled', 'refunded', 'réservé', 'none'],
    qtys: ['-5', '0', '1', '7', '50', '95', '100'],
    namePrefixes: ['A', 'a', 'Z', 'Ł', 'Jo', '李', '🙂', 'b', ' '],
    codes: ['fr', 'jp', 'xk', 'de', 'zz', 'us'],
  };
}

interface SelectItem {
  expr: Expr;
  alias: string | null;
  /** An aggregate call (grouped and aggregate queries). */
  isAggregate: boolean;
}

/** One query's construction: the parameters so far and the Rng. */
class Builder {
  readonly params: Param[] = [];
  private aliasCount = 0;
  /**
   * `rng` decides the statement's structure, `vals` the constants and parameter values in it: the same `rng` state
   * with another `vals` gives the same statement with other values (parameters: the very same text).
   */
  constructor(
    readonly rng: Rng,
    readonly vals: Rng,
    readonly pools: ValuePools,
  ) {}

  /** `value` as a parameter ($n) or written in the text (a literal, `literal` as given). */
  value(value: Param, literal: string): string {
    if (this.rng.chance(0.4)) {
      this.params.push(value);
      return `$${this.params.length}`;
    }
    return literal;
  }
  alias(): string {
    this.aliasCount++;
    return `a${this.aliasCount}`;
  }
  key(): string {
    const r = this.vals.next();
    if (r < 0.8) return this.vals.pick(this.vals.pick(this.pools.idsOn));
    if (r < 0.92) return this.vals.pick(this.pools.edgeIds);
    return this.vals.pick(this.pools.missingIds);
  }
}

const quote = (s: string): string => `'${s.replace(/'/g, "''")}'`;

/** A constant of `type` for comparisons with `e` (picked from the data where it matters). */
function constantFor(b: Builder, e: Expr): string {
  const { vals: rng, pools } = b;
  const name = e.sql.slice(e.sql.indexOf('.') + 1);
  switch (e.type) {
    case 'int8': {
      if (name === 'id' || name === 'user_id') {
        const id = b.key();
        return b.value(id, id);
      }
      const n = String(rng.int(1, 9000));
      return b.value(n, n);
    }
    case 'int4': {
      const q = rng.pick(pools.qtys);
      return b.value(q, q);
    }
    case 'numeric': {
      const v = rng.pick(name === 'score' ? pools.scores : pools.amounts);
      return b.value(v, v);
    }
    case 'ts': {
      const t = rng.pick(pools.timestamps);
      return b.value(t, quote(t));
    }
    case 'bool':
      return rng.pick(['true', 'false']);
    case 'text': {
      const t =
        name === 'status'
          ? rng.pick(pools.statuses)
          : name === 'code'
            ? rng.pick(pools.codes)
            : rng.pick(pools.namePrefixes);
      return b.value(t, quote(t));
    }
  }
}

/** A derived expression over the source's columns (or a column as it is). */
function expression(b: Builder, src: Source): Expr {
  const { rng } = b;
  const c = rng.pick(src.cols);
  if (rng.chance(0.6)) return c;
  const derived = (sql: string, type: SqlType, isLowCard = false): Expr => ({
    sql,
    type,
    isColumn: false,
    isLowCard,
  });
  switch (c.type) {
    case 'int8':
      return rng.pick([
        derived(`${c.sql} % 7`, 'int8', true),
        derived(`abs(${c.sql} % 1000)`, 'int8'),
        derived(`${c.sql}::text`, 'text'),
      ]);
    case 'int4':
      return rng.pick([
        derived(`${c.sql} + 1`, 'int4'),
        derived(`${c.sql} * 2`, 'int4'),
        derived(`${c.sql} / 10`, 'int4', true),
      ]);
    case 'numeric':
      return rng.pick([
        derived(`${c.sql} * 2`, 'numeric'),
        derived(`-${c.sql}`, 'numeric'),
        derived(`round(${c.sql})`, 'numeric'),
        // 0.00, not 0: 0 and 0.00 are equal but print differently, so ties would not be determined.
        derived(`coalesce(${c.sql}, 0.00)`, 'numeric'),
        derived(`${c.sql} > 0`, 'bool', true),
      ]);
    case 'text':
      return rng.pick([
        derived(`lower(${c.sql})`, 'text'),
        derived(`left(${c.sql}, 1)`, 'text', true),
        derived(`length(${c.sql})`, 'int4', true),
        derived(`coalesce(${c.sql}, '-')`, 'text'),
        derived(`${c.sql} || '!'`, 'text'),
      ]);
    case 'ts':
      return rng.pick([
        derived(`${c.sql} < '2010-01-01 00:00:00+00'`, 'bool', true),
        derived(`extract(year from ${c.sql})`, 'numeric', true),
      ]);
    case 'bool':
      return rng.pick([derived(`not ${c.sql}`, 'bool', true), derived(`${c.sql} is true`, 'bool', true)]);
  }
}

/** One predicate over the source. */
function predicate(b: Builder, src: Source, depth: number): string {
  const { rng } = b;
  const r = rng.next();
  if (depth < 2 && r < 0.2) {
    const op = rng.pick([' and ', ' or ']);
    const n = rng.int(2, 3);
    return `(${Array.from({ length: n }, () => predicate(b, src, depth + 1)).join(op)})`;
  }
  if (depth < 2 && r < 0.25) return `not ${predicate(b, src, depth + 1)}`;
  if (src.keys.length > 0 && r < 0.5) return keyPredicate(b, src);
  if (src.usersAlias !== null && r < 0.57) return subqueryPredicate(b, src.usersAlias);
  const c = rng.pick(src.cols);
  const r2 = rng.next();
  if (r2 < 0.15) return `${c.sql} is ${rng.pick(['', 'not '])}null`;
  if (c.type === 'bool') return rng.pick([c.sql, `not ${c.sql}`, `${c.sql} is not false`]);
  if (c.type === 'text' && r2 < 0.5 && !c.sql.endsWith('status') && !c.sql.endsWith('code')) {
    const p = b.vals.pick(b.pools.namePrefixes);
    return `${c.sql} like ${b.value(`${p}%`, quote(`${p}%`))}`;
  }
  if (r2 < 0.6 && c.type !== 'text') return `${c.sql} between ${constantFor(b, c)} and ${constantFor(b, c)}`;
  const op = rng.pick(['=', '<>', '<', '<=', '>', '>=']);
  return `${c.sql} ${op} ${constantFor(b, c)}`;
}

/** Equality, IN, = ANY or a range on a sharding key. */
function keyPredicate(b: Builder, src: Source): string {
  const { rng } = b;
  const k = rng.pick(src.keys);
  const r = rng.next();
  if (r < 0.45) {
    const id = b.key();
    return rng.chance(0.2) ? `${b.value(id, id)} = ${k}` : `${k} = ${b.value(id, id)}`;
  }
  if (r < 0.7) {
    const ids = Array.from({ length: rng.int(1, 5) }, () => b.key());
    return `${k} ${rng.chance(0.15) ? 'not ' : ''}in (${ids.map((id) => b.value(id, id)).join(', ')})`;
  }
  if (r < 0.85) {
    const ids: (string | null)[] = Array.from({ length: rng.int(0, 5) }, () => b.key());
    if (rng.chance(0.1)) ids.push(null);
    b.params.push(ids);
    return `${k} = any($${b.params.length}${rng.chance(0.5) ? '::bigint[]' : ''})`;
  }
  const lo = b.vals.int(-2_000_000, 1_000_000);
  const hi = lo + b.vals.int(0, 2_000_000);
  return rng.chance(0.5)
    ? `${k} between ${b.value(String(lo), String(lo))} and ${b.value(String(hi), String(hi))}`
    : `${k} ${rng.pick(['<', '>', '>='])} ${b.value(String(lo), String(lo))}`;
}

/** EXISTS / IN over orders, correlated on the sharding key (the router keeps them on each shard). */
function subqueryPredicate(b: Builder, u: string): string {
  const { rng } = b;
  const amount = b.vals.pick(b.pools.amounts);
  const cond = `o2.amount ${rng.pick(['>', '<'])} ${b.value(amount, amount)}`;
  return rng.pick([
    `${rng.chance(0.3) ? 'not ' : ''}exists (select 1 from orders o2 where o2.user_id = ${u}.id and ${cond})`,
    `${u}.id in (select o2.user_id from orders o2 where ${cond})`,
  ]);
}

function where(b: Builder, src: Source): string {
  if (!b.rng.chance(0.75)) return '';
  const n = b.rng.int(1, 2);
  return ` where ${Array.from({ length: n }, () => predicate(b, src, 0)).join(' and ')}`;
}

interface OrderItem {
  sql: string;
  /** The 0-based select-list position it sorts on, or null (a hidden column). */
  position: number | null;
  /** Its sort expression, to tell whether the unique key is covered. */
  expr: string;
}

/** `asc` / `desc` with or without NULLS FIRST / LAST. */
function direction(b: Builder): string {
  const dir = b.rng.pick(['', ' asc', ' desc']);
  const nulls = b.rng.pick(['', '', ' nulls first', ' nulls last']);
  return dir + nulls;
}

/** A reference to select item `i` in ORDER BY: its ordinal, alias or expression. */
function refTo(b: Builder, items: readonly SelectItem[], i: number): string {
  const it = items[i];
  const r = b.rng.next();
  if (r < 0.4) return String(i + 1);
  if (r < 0.7 && it.alias !== null) return it.alias;
  return it.expr.sql;
}

/** LIMIT / OFFSET, or nothing. */
function limits(b: Builder, allowOffset: boolean): { sql: string; isCut: boolean } {
  const { rng } = b;
  if (!rng.chance(0.45)) return { sql: '', isCut: false };
  let sql = '';
  const r = b.vals.next();
  const limit = r < 0.1 ? 0 : r < 0.2 ? 100_000 : b.vals.int(1, 40);
  if (rng.chance(0.85)) {
    if (rng.chance(0.08)) sql += ' limit all';
    else if (rng.chance(0.05)) {
      b.params.push(null);
      sql += ` limit $${b.params.length}`;
    } else if (!allowOffset || rng.chance(0.9)) sql += ` limit ${b.value(limit, String(limit))}`;
    else return { sql: ` offset ${b.vals.int(0, 20)} rows fetch first ${limit} rows only`, isCut: true };
  }
  if (allowOffset && rng.chance(0.4)) {
    const offset = b.vals.pick([0, 1, 3, 10, 2000, 100_000]);
    sql += ` offset ${b.value(offset, String(offset))}`;
  }
  return { sql, isCut: sql !== '' && sql !== ' limit all' };
}

/** A plain SELECT (no aggregates): columns and expressions, maybe DISTINCT, ORDER BY, LIMIT / OFFSET. */
function plainSelect(b: Builder, src: Source): FuzzQuery {
  const { rng } = b;
  const isDistinct = rng.chance(0.15);
  // `SELECT *` of one table: every ORDER BY item is then a hidden column.
  const isStar = !isDistinct && !/ join |\(/.test(src.from) && rng.chance(0.08);
  const n = isStar ? 0 : rng.int(1, 4);
  const items: SelectItem[] = [];
  for (let i = 0; i < n; i++) {
    const e = isDistinct && rng.chance(0.7) ? lowCard(b, src) : expression(b, src);
    items.push({ expr: e, alias: rng.chance(0.4) ? b.alias() : null, isAggregate: false });
  }
  // A scalar subquery correlated on the sharding key (it runs on each row's shard).
  if (!isStar && src.usersAlias !== null && rng.chance(0.1)) {
    const sub = `(select count(*) from orders o3 where o3.user_id = ${src.usersAlias}.id)`;
    items.push({
      expr: { sql: sub, type: 'int8', isColumn: false, isLowCard: false },
      alias: b.alias(),
      isAggregate: false,
    });
  }
  const w = where(b, src);
  const order: OrderItem[] = [];
  if (rng.chance(0.75)) {
    const k = rng.int(1, 3);
    for (let j = 0; j < k; j++) {
      if ((!isDistinct && rng.chance(0.25)) || isStar) {
        const e = expression(b, src);
        order.push({ sql: e.sql + direction(b), position: null, expr: e.sql });
      } else {
        const i = rng.int(0, items.length - 1);
        order.push({ sql: refTo(b, items, i) + direction(b), position: i, expr: items[i].expr.sql });
      }
    }
  }
  const lim = limits(b, true);
  // Ties: made total by the source's unique key (hidden when not selected), or left for the 'keys' comparison.
  let isTotal = isDistinct
    ? order.length > 0 && items.every((_, i) => order.some((o) => o.position === i))
    : src.unique.length > 0 && src.unique.every((u) => order.some((o) => o.expr === u));
  const hasHidden = order.some((o) => o.position === null);
  if (order.length > 0 && !isTotal && (rng.chance(0.6) || (hasHidden && lim.isCut))) {
    if (isDistinct) {
      items.forEach((it, i) => {
        if (!order.some((o) => o.position === i))
          order.push({ sql: String(i + 1), position: i, expr: it.expr.sql });
      });
      isTotal = true;
    } else if (src.unique.length > 0) {
      for (const u of src.unique)
        if (!order.some((o) => o.expr === u)) order.push({ sql: u + direction(b), position: null, expr: u });
      isTotal = true;
    }
  }
  const select = `select ${isDistinct ? 'distinct ' : ''}${isStar ? '*' : items.map(itemSql).join(', ')}`;
  const sql = `${select} from ${src.from}${w}${orderSql(order)}${lim.sql}`;
  const shape = `${src.name}/plain${isDistinct ? '-distinct' : ''}${order.length > 0 ? '-ordered' : ''}${lim.sql !== '' ? '-limit' : ''}`;
  return { sql, params: b.params, compare: compareFor(order, isTotal, lim.isCut), shape };
}

function compareFor(order: readonly OrderItem[], isTotal: boolean, isCut: boolean): Compare {
  if (order.length === 0) return isCut ? { kind: 'count' } : { kind: 'multiset' };
  if (isTotal) return { kind: 'ordered' };
  if (order.every((o) => o.position !== null))
    return { kind: 'keys', positions: order.map((o) => o.position as number), isCut };
  return isCut ? { kind: 'count' } : { kind: 'multiset' };
}

const itemSql = (it: SelectItem): string =>
  it.alias !== null ? `${it.expr.sql} as ${it.alias}` : it.expr.sql;
const orderSql = (order: readonly OrderItem[]): string =>
  order.length === 0 ? '' : ` order by ${order.map((o) => o.sql).join(', ')}`;

/** A low-cardinality expression of the source (for GROUP BY and DISTINCT), or any column when it has none. */
function lowCard(b: Builder, src: Source): Expr {
  for (let tries = 0; tries < 6; tries++) {
    const e = expression(b, src);
    if (e.isLowCard) return e;
  }
  return b.rng.pick(src.cols);
}

/** An aggregate call over the source's columns. */
function aggregate(b: Builder, src: Source): Expr {
  const { rng } = b;
  const agg = (sql: string, type: SqlType): Expr => ({ sql, type, isColumn: false, isLowCard: false });
  const numeric = src.cols.filter((c) => c.type === 'numeric' || c.type === 'int4' || c.type === 'int8');
  const ordered = src.cols.filter((c) => c.type !== 'bool');
  const bools = src.cols.filter((c) => c.type === 'bool');
  const c = rng.pick(src.cols);
  const filter = (): string => (rng.chance(0.1) ? ` filter (where ${predicate(b, src, 1)})` : '');
  const r = rng.next();
  if (r < 0.15) return agg(`count(*)${filter()}`, 'int8');
  if (r < 0.25) return agg(`count(${rng.chance(0.3) ? 'distinct ' : ''}${c.sql})${filter()}`, 'int8');
  // Aggregates under a cast (the merge combines the cast values).
  if (r < 0.3) {
    const x = rng.pick(numeric.length > 0 && rng.chance(0.7) ? numeric : ordered);
    return rng.pick([
      agg(`count(${x.sql})::int`, 'int4'),
      agg(`${rng.pick(['min', 'max'])}(${x.sql})::text`, 'text'),
      ...(x.type === 'int4' || x.type === 'int8' ? [agg(`sum(${x.sql})::numeric`, 'numeric')] : []),
      ...(x.type === 'numeric' ? [agg(`max(${x.sql})::float8`, 'numeric')] : []),
    ]);
  }
  if (r < 0.45 && numeric.length > 0) {
    const x = rng.pick(numeric);
    const fn = rng.pick(['sum', 'avg']);
    const type: SqlType = fn === 'avg' || x.type !== 'int4' ? 'numeric' : 'int8';
    return agg(`${fn}(${rng.chance(0.15) ? 'distinct ' : ''}${x.sql})${filter()}`, type);
  }
  if (r < 0.7 && ordered.length > 0) {
    const x = rng.pick(ordered);
    return agg(`${rng.pick(['min', 'max'])}(${x.sql})${filter()}`, x.type);
  }
  if (r < 0.75 && bools.length > 0)
    return agg(`${rng.pick(['bool_and', 'bool_or'])}(${rng.pick(bools).sql})`, 'bool');
  if (r < 0.78 && src.cols.some((x) => x.type === 'int4'))
    return agg(`avg(${src.cols.find((x) => x.type === 'int4')?.sql ?? ''}::float8)`, 'numeric');
  // Ordered aggregates: the inner ORDER BY made total by the unique key, so the result is determined.
  if (src.unique.length === 0) return agg('count(*)', 'int8');
  const inner = [rng.pick(src.cols).sql + direction(b), ...src.unique.map((u) => u + direction(b))].join(
    ', ',
  );
  const texts = src.cols.filter((x) => x.type === 'text');
  if (rng.chance(0.5) && texts.length > 0) {
    const delim = b.vals.pick([', ', '|', '']);
    return agg(
      `string_agg(${rng.pick(texts).sql}, ${b.value(delim, quote(delim))} order by ${inner})`,
      'text',
    );
  }
  return agg(`array_agg(${c.sql} order by ${inner})`, 'text');
}

/** Aggregates without GROUP BY: one row. */
function aggregateSelect(b: Builder, src: Source): FuzzQuery {
  const n = b.rng.int(1, 4);
  const items: SelectItem[] = Array.from({ length: n }, () => ({
    expr: aggregate(b, src),
    alias: b.rng.chance(0.3) ? b.alias() : null,
    isAggregate: true,
  }));
  const w = where(b, src);
  const lim = b.rng.chance(0.15) ? limits(b, false) : { sql: '', isCut: false };
  const sql = `select ${items.map(itemSql).join(', ')} from ${src.from}${w}${lim.sql}`;
  return { sql, params: b.params, compare: { kind: 'ordered' }, shape: `${src.name}/aggregate` };
}

/** GROUP BY 1–2 expressions with aggregates, HAVING, ORDER BY over groups and aggregates, LIMIT / OFFSET. */
function groupedSelect(b: Builder, src: Source): FuzzQuery {
  const { rng } = b;
  const groups: Expr[] = [];
  const g = rng.int(1, 2);
  for (let i = 0; i < g; i++) {
    const e = rng.chance(0.15) && src.keys.length > 0 ? col(rng.pick(src.keys), 'int8') : lowCard(b, src);
    if (!groups.some((x) => x.sql === e.sql)) groups.push(e);
  }
  const aggs = Array.from({ length: rng.int(1, 3) }, () => aggregate(b, src));
  const items: SelectItem[] = [
    ...groups.map((e) => ({ expr: e, alias: rng.chance(0.3) ? b.alias() : null, isAggregate: false })),
    ...aggs.map((e) => ({ expr: e, alias: rng.chance(0.3) ? b.alias() : null, isAggregate: true })),
  ];
  // Shuffle the select list (groups and aggregates in any order).
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [items[i], items[j]] = [items[j], items[i]];
  }
  const groupBy = groups
    .map((e) => {
      const i = items.findIndex((it) => it.expr === e);
      return rng.chance(0.5) ? String(i + 1) : e.sql;
    })
    .join(', ');
  const w = where(b, src);
  let having = '';
  if (rng.chance(0.3)) {
    const conds = Array.from({ length: rng.int(1, 2) }, () => havingCondition(b, src, groups));
    having = ` having ${conds.join(rng.pick([' and ', ' or ']))}`;
  }
  const order: OrderItem[] = [];
  if (rng.chance(0.7)) {
    const k = rng.int(1, 3);
    for (let j = 0; j < k; j++) {
      if (rng.chance(0.15)) {
        const e = rng.chance(0.5) ? 'count(*)' : rng.pick(groups).sql;
        order.push({ sql: e + direction(b), position: null, expr: e });
      } else {
        const i = rng.int(0, items.length - 1);
        order.push({ sql: refTo(b, items, i) + direction(b), position: i, expr: items[i].expr.sql });
      }
    }
  }
  const lim = limits(b, true);
  let isTotal = order.length > 0 && groups.every((e) => order.some((o) => o.expr === e.sql));
  if (order.length > 0 && !isTotal && (rng.chance(0.6) || lim.isCut)) {
    for (const e of groups)
      if (!order.some((o) => o.expr === e.sql)) {
        const i = items.findIndex((it) => it.expr === e);
        order.push({ sql: refTo(b, items, i) + direction(b), position: i, expr: e.sql });
      }
    isTotal = true;
  }
  const sql =
    `select ${items.map(itemSql).join(', ')} from ${src.from}${w} group by ${groupBy}${having}` +
    `${orderSql(order)}${lim.sql}`;
  const shape = `${src.name}/group${having !== '' ? '-having' : ''}${order.length > 0 ? '-ordered' : ''}${lim.sql !== '' ? '-limit' : ''}`;
  return { sql, params: b.params, compare: compareFor(order, isTotal, lim.isCut), shape };
}

/** A HAVING comparison: an aggregate against a constant, or a group expression. */
function havingCondition(b: Builder, src: Source, groups: readonly Expr[]): string {
  const { rng } = b;
  const op = rng.pick(['>', '>=', '<', '<>', '=']);
  const r = rng.next();
  if (r < 0.4) {
    const n = b.vals.int(0, 300);
    return `count(*) ${op} ${b.value(n, String(n))}`;
  }
  if (r < 0.7) {
    const numeric = src.cols.filter((c) => c.type === 'numeric' || c.type === 'int4');
    if (numeric.length > 0) {
      const x = rng.pick(numeric);
      return `${rng.pick(['sum', 'min', 'max', 'avg'])}(${x.sql}) ${op} ${constantFor(b, x)}`;
    }
  }
  // A GROUP BY expression compared with a constant. Left out (refused with 0A000): IS [NOT] NULL, a boolean GROUP BY
  // expression as the condition (`HAVING x > 0` grouped by `x > 0`) — having-condition.ts —, and comparisons of
  // types other than numbers and text (timestamptz, bool: having-filter.ts).
  const e = rng.pick(groups);
  if (e.type === 'bool' || e.type === 'ts') return `count(*) ${op} 1`;
  return `(${e.sql}) ${op} ${constantFor(b, e)}`;
}

/** DISTINCT ON (a low-cardinality expression), ordered by it and then totally. */
function distinctOnSelect(b: Builder, src: Source): FuzzQuery {
  const { rng } = b;
  const on = lowCard(b, src);
  const items: SelectItem[] = [{ expr: on, alias: null, isAggregate: false }];
  for (let i = rng.int(0, 2); i > 0; i--)
    items.push({ expr: expression(b, src), alias: null, isAggregate: false });
  const w = where(b, src);
  const dir = direction(b);
  const rest = src.unique.map((u) => u + direction(b));
  const order = [
    `${rng.chance(0.5) ? '1' : on.sql}${dir}`,
    ...(rng.chance(0.3) ? [rng.pick(src.cols).sql + direction(b)] : []),
    ...rest,
  ];
  const lim = limits(b, true);
  const sql = `select distinct on (${on.sql}) ${items.map(itemSql).join(', ')} from ${src.from}${w} order by ${order.join(', ')}${lim.sql}`;
  return { sql, params: b.params, compare: { kind: 'ordered' }, shape: `${src.name}/distinct-on` };
}

/** Set-operation branches: a sharded table's key and a numeric or text column (numerics all of scale 2). */
const BRANCHES: Record<'numeric' | 'text', readonly { source: string; select: string }[]> = {
  numeric: [
    { source: 'users', select: 'u.id, u.score' },
    { source: 'orders', select: 'o.user_id, o.amount' },
  ],
  text: [
    { source: 'users', select: 'u.id, u.name' },
    { source: 'orders', select: 'o.user_id, o.status' },
    { source: 'items', select: 'i.user_id, i.sku' },
  ],
};

/** UNION / UNION ALL of 2–3 branches over sharded tables, ORDER BY output positions, LIMIT / OFFSET. */
function setOperationSelect(b: Builder): FuzzQuery {
  const { rng } = b;
  const kind = rng.pick(['numeric', 'text'] as const);
  const op = rng.pick([' union ', ' union all ']);
  const branches = Array.from({ length: rng.int(2, 3) }, () => {
    const br = rng.pick(BRANCHES[kind]);
    const src = SOURCES.find((x) => x.name === br.source) as Source;
    return `select ${br.select} from ${src.from}${where(b, src)}`;
  });
  const order: OrderItem[] = [];
  if (rng.chance(0.8)) {
    const first = rng.int(0, 1);
    order.push({ sql: `${first + 1}${direction(b)}`, position: first, expr: String(first + 1) });
    if (rng.chance(0.7)) order.push({ sql: `${2 - first}${direction(b)}`, position: 1 - first, expr: '' });
  }
  const lim = limits(b, true);
  // Both output columns sorted: rows that tie are the same row.
  const isTotal = order.length === 2;
  const sql = `${branches.join(op)}${orderSql(order)}${lim.sql}`;
  return { sql, params: b.params, compare: compareFor(order, isTotal, lim.isCut), shape: `set/${op.trim()}` };
}

/**
 * A random SELECT, deterministic in the Rngs' states: `rng` picks its structure, `vals` its constants and parameter
 * values (the same `rng` with another `vals`: the same statement with other values).
 */
export function generateQuery(rng: Rng, vals: Rng, pools: ValuePools): FuzzQuery {
  const b = new Builder(rng, vals, pools);
  const r = rng.next();
  if (r < 0.06) return setOperationSelect(b);
  const src = rng.pick(SOURCES);
  const q =
    r < 0.45
      ? plainSelect(b, src)
      : r < 0.62
        ? aggregateSelect(b, src)
        : r < 0.92
          ? groupedSelect(b, src)
          : src.unique.length > 0
            ? distinctOnSelect(b, src)
            : plainSelect(b, src);
  return src.with === undefined ? q : { ...q, sql: `${src.with} ${q.sql}` };
}
