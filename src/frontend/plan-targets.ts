// The route and the target a cached plan keeps when they depend on nothing but the statement's text: no Bind value
// decides its shards or its merge (a key parameter, LIMIT / OFFSET / HAVING / string_agg delimiter parameters, an
// OFFSET $n that must be 0), no shard is picked round-robin for it (omnisharded tables, catalogs, reads any shard
// answers), and the session does not route by hand (SET shardgate.shard / sharding_key). Kept per plan object in a
// WeakMap, so a plan dropped from the cache (DDL, columns or catalog facts learnt) takes its route and target with it;
// shared by the database's sessions, frozen; checked against the shard count and the text collation on each use. A
// request whose one statement has them is routed by two map lookups instead of the route, the target and its merge
// spec being made again (frontend/batch-target.ts, execute/fanout-merge-spec.ts). Pure: no I/O.
import { routeStatement, type Route, type RouteContext } from '../router/route.js';
import type { BindParams } from '../router/bind-params.js';
import type { StatementPlan } from '../router/plan.js';
import { checkOnce } from '../execute/merge-spec.js';
import type { BatchTarget } from './batch-target.js';

/** What a plan keeps: its route, and the target of a request whose only statement it is, once made. */
interface Kept {
  readonly route: Route;
  readonly shardCount: number;
  target: BatchTarget | null;
  /** What the kept target was made with: the request's write flag and the database's text collation. */
  targetMayWrite: boolean;
  targetCollation: string | null;
}

/** Per plan: what it keeps, or null when its route depends on more than its text (looked at once). */
const KEPT = new WeakMap<StatementPlan, Kept | null>();

/**
 * Whether where `plan` runs, or how its rows merge, may depend on the Bind values (or on the session's prepared
 * statements and cursors). Conservative: any parameter of a statement that is not a plain SELECT counts.
 */
export function mayDependOnValues(plan: StatementPlan): boolean {
  if (plan.kind === 'execute' || plan.cursor !== null) return true; // the session's PREPAREs and cursors route it
  if (plan.paramCount === 0) return false;
  if (plan.kind !== 'select' || plan.inner !== null || plan.shardKey !== null) return true;
  if (plan.zeroOffsetParams.length > 0) return true;
  const select = plan.select;
  if (select === null) return true;
  return (
    select.limit?.kind === 'param' ||
    select.offset?.kind === 'param' ||
    select.having !== null ||
    select.aggregates.some((a) => a.merge === 'ordered' && a.delimiter?.kind === 'param')
  );
}

/** Where `plan` runs with `params` (router/route.ts): the route it keeps when it has one, made on its first use. */
export function routeOf(plan: StatementPlan, params: BindParams | null, ctx: RouteContext): Route {
  if (ctx.sessionShard !== null || ctx.sessionShardingKey !== null || mayDependOnValues(plan))
    return routeStatement(plan, params, ctx);
  const kept = KEPT.get(plan);
  if (kept === null) return routeStatement(plan, params, ctx);
  if (kept !== undefined && kept.shardCount === ctx.schema.shardCount) return kept.route;
  return firstRoute(plan, params, ctx);
}

/** A plan's first route: kept unless a shard was picked round-robin for it (that must be picked again every time). */
function firstRoute(plan: StatementPlan, params: BindParams | null, ctx: RouteContext): Route {
  let isRoundRobin = false;
  const probe: RouteContext = {
    schema: ctx.schema,
    sessionShard: null,
    sessionShardingKey: null,
    pickReadShard: () => {
      isRoundRobin = true;
      return ctx.pickReadShard();
    },
  };
  const route = routeStatement(plan, params, probe);
  const isFixed =
    !isRoundRobin && (route.kind === 'one' || route.kind === 'many' || route.kind === 'session');
  if (!isFixed) {
    if (route.kind !== 'learn') KEPT.set(plan, null); // learnt: routed again once known (with a new plan)
    return route;
  }
  if (route.kind === 'many') Object.freeze(route.shards);
  Object.freeze(route);
  KEPT.set(plan, {
    route,
    shardCount: ctx.schema.shardCount,
    target: null,
    targetMayWrite: false,
    targetCollation: null,
  });
  return route;
}

/**
 * The target `plan` keeps for a request whose only statement it is, routed to `route` (what routeOf gave), or null.
 * `mayWrite`: the request's (a FunctionCall behind the statement makes it a writer); `collation`: the database's.
 */
export function keptTarget(
  plan: StatementPlan,
  route: Route,
  mayWrite: boolean,
  collation: string | null,
): BatchTarget | null {
  const kept = KEPT.get(plan);
  if (kept == null || kept.route !== route || kept.target === null) return null;
  return kept.targetMayWrite === mayWrite && kept.targetCollation === collation ? kept.target : null;
}

/**
 * `target`, made for a request whose only statement is `plan`, routed to `route`: kept (frozen) when the route is the
 * one `plan` keeps and the target is the same for every request of that statement — several shards with a merge
 * spec or a session-level statement, not a rewritten or split statement, whose requests depend on the frames.
 */
export function keepTarget(
  plan: StatementPlan,
  route: Route,
  target: BatchTarget,
  mayWrite: boolean,
  collation: string | null,
): void {
  const kept = KEPT.get(plan);
  // A statement the shards run rewritten: its requests are built from the client's frames (a 'split' target).
  if (kept == null || kept.route !== route || target.kind !== 'many' || plan.select?.shardQuery != null)
    return;
  // One target per plan: the first made (a rare request with a FunctionCall behind the statement differs in its write
  // flag and is not kept over it), until the database's collation turns out other than the kept one's.
  if (kept.target !== null && kept.targetCollation === collation) return;
  Object.freeze(target.shards);
  deepFreeze(target.spec);
  if (!checkOnce(target.spec)) return; // a spec the merger refuses: each request fails with the merger's error
  kept.target = Object.freeze(target);
  kept.targetMayWrite = mayWrite;
  kept.targetCollation = collation;
}

/** Freezes `value` and what it holds (plain objects and arrays; byte buffers, which cannot be frozen, are left). */
function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return;
  for (const v of Object.values(value)) deepFreeze(v);
  Object.freeze(value);
}
