// The differential suite's data: a deterministic (seeded) generator for users, orders, items and countries, with
// NULLs, negative and zero values, ids beyond 2^53 (up to the int8 limits), multi-byte and awkward text (quotes,
// backslashes, tabs, emoji, empty strings), duplicate values that only a tiebreaker orders, and timestamps spread
// over decades (plus infinity and a BC date). Every value is the text PostgreSQL would accept as a parameter, so the
// same strings load the reference database and the shards behind the proxy.
import { Rng } from '../helpers/rng.js';

export { Rng };

/** A column value as sent to PostgreSQL in text format; null is SQL NULL. */
export type Text = string | null;

export interface UserRow {
  id: string;
  name: Text;
  email: Text;
  created_at: Text;
  score: Text;
  is_active: Text;
}

export interface OrderRow {
  id: string;
  user_id: string;
  amount: Text;
  status: Text;
  created_at: Text;
  note: Text;
}

export interface ItemRow {
  order_id: string;
  user_id: string;
  sku: string;
  qty: Text;
}

export interface CountryRow {
  code: string;
  name: Text;
}

export interface Dataset {
  users: UserRow[];
  orders: OrderRow[];
  items: ItemRow[];
  countries: CountryRow[];
}

/** One table's rows as parameter arrays, in `columns` order. */
export interface TableRows {
  table: string;
  columns: readonly string[];
  rows: Text[][];
}

/** The schema, one statement per entry (the proxy runs one multi-shard statement per request). */
export const SCHEMA_DDL: readonly string[] = [
  `create table users (id bigint primary key, name text, email text, created_at timestamptz,
     score numeric(10,2), is_active boolean)`,
  `create table orders (id bigint, user_id bigint, amount numeric(12,2), status text, created_at timestamptz,
     note text null, primary key (user_id, id))`,
  'create table items (order_id bigint, user_id bigint, sku text, qty int)',
  'create table countries (code text primary key, name text)',
  // Views the config does not name: the proxy learns from the catalog that they read sharded tables.
  'create view active_users as select id, name, score from users where is_active',
  'create view user_totals as select u.id, o.amount from users u join orders o on o.user_id = u.id',
  'create view big_user_totals as select id, amount from user_totals where amount > 100',
];

export const USER_COLUMNS = ['id', 'name', 'email', 'created_at', 'score', 'is_active'] as const;
export const ORDER_COLUMNS = ['id', 'user_id', 'amount', 'status', 'created_at', 'note'] as const;
export const ITEM_COLUMNS = ['order_id', 'user_id', 'sku', 'qty'] as const;
export const COUNTRY_COLUMNS = ['code', 'name'] as const;

export const COUNTRIES: readonly CountryRow[] = [
  { code: 'ar', name: 'Argentina' },
  { code: 'at', name: 'Österreich' },
  { code: 'br', name: 'Brasil' },
  { code: 'ci', name: 'Côte d’Ivoire' },
  { code: 'cn', name: '中国' },
  { code: 'cz', name: 'Česko' },
  { code: 'de', name: 'Deutschland' },
  { code: 'dk', name: 'Danmark' },
  { code: 'eg', name: 'مصر' },
  { code: 'es', name: 'España' },
  { code: 'fi', name: 'Suomi' },
  { code: 'fr', name: 'France' },
  { code: 'gb', name: 'United Kingdom' },
  { code: 'gr', name: 'Ελλάδα' },
  { code: 'il', name: 'ישראל' },
  { code: 'in', name: 'भारत' },
  { code: 'is', name: 'Ísland' },
  { code: 'jp', name: '日本' },
  { code: 'kr', name: '대한민국' },
  { code: 'mx', name: 'México' },
  { code: 'no', name: 'Norge' },
  { code: 'pl', name: 'Polska' },
  { code: 'ru', name: 'Россия' },
  { code: 'sa', name: 'السعودية' },
  { code: 'se', name: 'Sverige' },
  { code: 'th', name: 'ประเทศไทย' },
  { code: 'tr', name: 'Türkiye' },
  { code: 'ua', name: 'Україна' },
  { code: 'us', name: 'United States' },
  { code: 'vn', name: 'Việt Nam' },
  { code: 'xk', name: null },
];

/** Email country suffixes: the known codes plus two no country row matches. */
const EMAIL_CC = [...COUNTRIES.map((c) => c.code), 'zz', 'qq'];

const NAMES = [
  'Ada',
  'ada',
  'ADA',
  'Zoë',
  'José',
  'Łukasz',
  'Søren',
  '李小龍',
  '山田太郎',
  'Мария',
  'Ελένη',
  'Nguyễn Văn An',
  'Åsa',
  'Émile',
  "O'Brien",
  'back\\slash',
  'tab\there',
  '🙂 Smile',
  'Ωmega',
  'zed',
  '  padded',
  '',
  'Bob',
  'bob',
];

const STATUSES = ['new', 'paid', 'shipped', 'cancelled', 'refunded', 'réservé'];
const NOTES = [
  'gift wrap',
  'à livrer après 18h',
  'leave at door',
  '请放在门口',
  'zerbrechlich ⚠',
  "it's fine",
  '',
];

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** A timestamptz literal between 1990 and 2030 with microseconds, written in one of several UTC offsets. */
function timestamp(rng: Rng): string {
  const base = Date.UTC(1990, 0, 1);
  const span = Date.UTC(2030, 0, 1) - base;
  const ms = base + Math.floor(rng.next() * span);
  const offsetMin = rng.pick([0, 0, 60, -480, 330, 540, -210]);
  const local = new Date(ms + offsetMin * 60_000);
  const micros = rng.chance(0.2) ? '' : `.${pad(local.getUTCMilliseconds(), 3)}${pad(rng.int(0, 999), 3)}`;
  const sign = offsetMin < 0 ? '-' : '+';
  const abs = Math.abs(offsetMin);
  return (
    `${local.getUTCFullYear()}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())} ` +
    `${pad(local.getUTCHours())}:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}${micros}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

/** A numeric with 2 decimals, |value| < 10^digits, as text (e.g. "-1234.50", "0.07"). */
function decimal(rng: Rng, digits: number): string {
  const cents = BigInt(Math.floor(rng.next() * 10 ** (digits + 2)));
  const negative = rng.chance(0.3);
  const whole = cents / 100n;
  const frac = cents % 100n;
  return `${negative && cents !== 0n ? '-' : ''}${whole}.${String(frac).padStart(2, '0')}`;
}

/** Ids at the edges of int8 and of exact doubles. */
export const EDGE_USER_IDS: readonly string[] = [
  '0',
  '1',
  '-1',
  '9007199254740992', // 2^53
  '9007199254740993', // 2^53 + 1: not a double
  '-9007199254740993',
  '9223372036854775807', // int8 max
  '-9223372036854775808', // int8 min
  '1234567890123456789',
];

export const SEED = 20_240_611;
export const USER_COUNT = 2_500;

/** The dataset for `seed` (same seed, same rows). */
export function generateDataset(seed = SEED): Dataset {
  const rng = new Rng(seed);
  const ids = new Set<string>(EDGE_USER_IDS);
  while (ids.size < USER_COUNT) {
    const r = rng.next();
    if (r < 0.6) ids.add(String(rng.int(-1_000_000, 1_000_000)));
    else if (r < 0.8) ids.add(String(rng.int(1, 5_000)));
    else ids.add(rng.int64().toString());
  }

  const users: UserRow[] = [...ids].map((id, i) => {
    const name = rng.chance(0.05) ? null : rng.pick(NAMES) + (rng.chance(0.5) ? ` ${rng.int(1, 40)}` : '');
    const cc = rng.pick(EMAIL_CC);
    const email = rng.chance(0.05)
      ? null
      : `${(name ?? 'anon').trim().toLowerCase() || 'x'}.${id}@mail.${cc}`;
    let created: Text = rng.chance(0.05) ? null : timestamp(rng);
    if (i === 3) created = 'infinity';
    if (i === 4) created = '-infinity';
    if (i === 5) created = '0044-03-15 12:00:00+00 BC';
    const score = rng.chance(0.1)
      ? null
      : rng.chance(0.15)
        ? rng.pick(['0.00', '1.50', '-1.50', '100.00'])
        : decimal(rng, 8);
    const isActive = rng.chance(0.1) ? null : rng.chance(0.6) ? 'true' : 'false';
    return { id, name, email, created_at: created, score, is_active: isActive };
  });

  const orders: OrderRow[] = [];
  const items: ItemRow[] = [];
  let nextOrderId = 1;
  const addOrder = (userId: string): void => {
    const id = rng.chance(0.03)
      ? (9_007_199_254_740_000n + BigInt(nextOrderId)).toString()
      : String(nextOrderId);
    nextOrderId++;
    const order: OrderRow = {
      id,
      user_id: userId,
      amount: rng.chance(0.04)
        ? null
        : rng.chance(0.1)
          ? rng.pick(['0.00', '9.99', '-9.99'])
          : decimal(rng, 4),
      status: rng.chance(0.05) ? null : rng.pick(STATUSES),
      created_at: rng.chance(0.05) ? null : timestamp(rng),
      note: rng.chance(0.7) ? null : rng.pick(NOTES),
    };
    orders.push(order);
    const nItems = rng.int(0, 2);
    for (let k = 0; k < nItems; k++) {
      items.push({
        order_id: id,
        user_id: userId,
        sku: `${rng.pick(['SKU', 'ÄÖÜ', 'sku', '品'])}-${k}-${rng.int(0, 999)}`,
        qty: rng.chance(0.05) ? null : String(rng.int(-5, 100)),
      });
    }
  };
  for (const u of users) {
    if (rng.chance(0.25)) continue; // users without orders
    const n = rng.int(1, 4);
    for (let k = 0; k < n; k++) addOrder(u.id);
  }
  // Orders of users that do not exist (no foreign keys): joins must drop them, LEFT JOINs from orders keep them.
  for (let k = 0; k < 100; k++) addOrder(String(rng.int(2_000_000, 3_000_000)));

  return { users, orders, items, countries: [...COUNTRIES] };
}

/** The dataset as parameter arrays per table, in load order. */
export function tableRows(ds: Dataset): TableRows[] {
  return [
    { table: 'users', columns: USER_COLUMNS, rows: ds.users.map((r) => USER_COLUMNS.map((c) => r[c])) },
    { table: 'orders', columns: ORDER_COLUMNS, rows: ds.orders.map((r) => ORDER_COLUMNS.map((c) => r[c])) },
    { table: 'items', columns: ITEM_COLUMNS, rows: ds.items.map((r) => ITEM_COLUMNS.map((c) => r[c])) },
    {
      table: 'countries',
      columns: COUNTRY_COLUMNS,
      rows: ds.countries.map((r) => COUNTRY_COLUMNS.map((c) => r[c])),
    },
  ];
}

/** `insert into t (cols) values ($1, …)`: one row. */
export function insertSql(table: string, columns: readonly string[]): string {
  return `insert into ${table} (${columns.join(', ')}) values (${columns.map((_, i) => `$${i + 1}`).join(', ')})`;
}

/** A multi-row parameterized INSERT of `rowCount` rows and the flattened parameters. */
export function multiRowInsert(t: TableRows, rows: Text[][]): { sql: string; params: Text[] } {
  const w = t.columns.length;
  const values = rows.map((_, r) => `(${t.columns.map((_, c) => `$${r * w + c + 1}`).join(', ')})`);
  return {
    sql: `insert into ${t.table} (${t.columns.join(', ')}) values ${values.join(', ')}`,
    params: rows.flat(),
  };
}
