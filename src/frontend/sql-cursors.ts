// SQL-level cursors of one sharded session (DECLARE name CURSOR … / FETCH / MOVE / CLOSE): the shard each cursor the
// session declared lives on. DECLARE runs where its query routes — one shard, remembered, as FETCH / MOVE / CLOSE must
// run there too; a query needing several shards is refused (its rows would come from one shard at a time). A cursor
// the session did not declare here goes to any shard, which answers 34000 as PostgreSQL does; CLOSE ALL runs on every
// shard. The session router asks it for each statement with a cursor (session-router.ts).
import { PgError } from '../errors/pg-error.js';
import type { BindParams } from '../router/bind-params.js';
import type { StatementPlan } from '../router/plan.js';
import { routeStatement, type Route, type RouteContext } from '../router/route.js';

export class SqlCursors {
  /** The shard each declared cursor lives on, by name. */
  private readonly byName = new Map<string, number>();

  /** Where `plan` — a statement with a cursor (`plan.cursor`) — runs, for a session of `shardCount` shards. */
  route(plan: StatementPlan, params: BindParams | null, context: RouteContext, shardCount: number): Route {
    const cursor = plan.cursor as NonNullable<StatementPlan['cursor']>;
    const manual =
      plan.manualShard !== null || plan.manualShardingKey !== null || context.sessionShard !== null;
    if (cursor.action === 'declare') {
      const route =
        plan.inner === null || manual
          ? routeStatement(plan, params, context)
          : routeStatement(plan.inner, params, context);
      if (route.kind === 'learn') return route;
      if (route.kind !== 'one') {
        throw PgError.featureNotSupported(
          `the cursor ${cursor.name ?? ''} would read several shards, and FETCH takes rows from one`,
          'Add the sharding key so the query reads one shard, or use the extended protocol’s row-limited Execute (portals), which shardgate merges across shards.',
        );
      }
      this.byName.set(cursor.name ?? '', route.shard);
      return route;
    }
    if (cursor.name === null) {
      this.byName.clear(); // CLOSE ALL: on every shard, reported once
      return { kind: 'many', shards: Array.from({ length: shardCount }, (_, i) => i), isReplicated: true };
    }
    const shard = this.byName.get(cursor.name);
    if (cursor.action === 'close') this.byName.delete(cursor.name);
    return { kind: 'one', shard: shard ?? context.pickReadShard() };
  }
}
