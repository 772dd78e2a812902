// The rows every ORM seeds and the answers every step expects, computed here once so that the shards and plain
// PostgreSQL are held to the same numbers. Ids are explicit (101..112) and spread over both shards; generated ids
// (serial) start at 1 and never collide with them.
export interface UserRow {
  id: number;
  name: string;
  score: number;
}

export interface OrderRow {
  id: number;
  userId: number;
  amount: number;
}

const NAMES = ['ada', 'bob', 'cy', 'dee', 'eve', 'fay', 'gus', 'hal', 'ivy', 'jo', 'kim', 'lu'];

export const USERS: readonly UserRow[] = NAMES.map((name, i) => ({
  id: 101 + i,
  name,
  score: (i * 37) % 100,
}));

/** Orders: user i has i % 4 orders (0..3), amounts 10..; ids 1001.. in insertion order. */
export const ORDERS: readonly OrderRow[] = USERS.flatMap((u, i) =>
  Array.from({ length: i % 4 }, (_, k) => ({ id: 0, userId: u.id, amount: 10 * (k + 1) + i })),
).map((o, i) => ({ ...o, id: 1001 + i }));

export function userById(id: number): UserRow {
  const u = USERS.find((x) => x.id === id);
  if (u === undefined) throw new Error(`no user ${id}`);
  return u;
}

/** Names of users with score > `min`, by name. */
export function namesWithScoreAbove(min: number): string[] {
  return USERS.filter((u) => u.score > min)
    .map((u) => u.name)
    .sort();
}

export interface UserTotals {
  userId: number;
  total: number;
  count: number;
  max: number;
}

/** Per user with orders: sum, count and max of amounts, by user id; `minTotal` keeps groups with sum > it (HAVING). */
export function orderTotals(minTotal = -Infinity): UserTotals[] {
  const byUser = new Map<number, UserTotals>();
  for (const o of ORDERS) {
    const t = byUser.get(o.userId) ?? { userId: o.userId, total: 0, count: 0, max: -Infinity };
    t.total += o.amount;
    t.count += 1;
    t.max = Math.max(t.max, o.amount);
    byUser.set(o.userId, t);
  }
  return [...byUser.values()].filter((t) => t.total > minTotal).sort((a, b) => a.userId - b.userId);
}

export const ORDER_USER_COUNT = new Set(ORDERS.map((o) => o.userId)).size;
export const AMOUNT_SUM = ORDERS.reduce((s, o) => s + o.amount, 0);
