// What the sharded dispatch does when the router cannot route a request yet: it needs something learnt first — a
// table's columns, catalog facts of views and functions (looked up on a shard, then the request is routed again),
// sequence values for an INSERT's missing columns (written into the request), or an INSERT … SELECT's rows
// (insert-run.ts) — or its statements need different shards (run as a script, script-run.ts). Anything else is the
// request's error. The router returns these as detours (RouteOutcome, session-router.ts; `learn` in router/route.ts),
// never as exceptions: a thrown error is the request's.
import { Frontend, TxStatus } from '../protocol/codes.js';
import type { ServerConnection } from '../backend/server-connection.js';
import { runQuery } from '../backend/server-query.js';
import { PgError } from '../errors/pg-error.js';
import type { GeneratedFill } from '../router/plan.js';
import { escapeStringLiteral } from '../router/sql-text.js';
import { NO_EFFECTS } from '../txn/transaction-block.js';
import { lookUpCatalogFacts } from './catalog-lookup.js';
import type { DispatchHost } from './dispatch-host.js';
import type { InsertRun } from './insert-run.js';
import type { ScriptRunner } from './script-run.js';
import type { RouteOutcome } from '../frontend/session-router.js';
import { lookUpTableColumns } from './table-columns.js';

/** The detours routing can give instead of a target (session-router.ts RouteOutcome). */
export type RouteDetour = Extract<RouteOutcome, { kind: 'learn' | 'mixed' }>;

/**
 * Routing the request at the front of the batch (`n` frames: `types` / `frames`) gave `detour`: learn what it needs
 * and route it again, run it as a script, or fail it.
 */
export function takeDetour(
  host: DispatchHost,
  scripts: ScriptRunner,
  inserts: InsertRun,
  detour: RouteDetour,
  n: number,
  types: readonly number[],
  frames: readonly Buffer[],
): void {
  const isSimpleQuery = n === 1 && types[0] === Frontend.Query;
  const inScript = host.request.script !== null;
  if (detour.kind === 'mixed') {
    if (!inScript) {
      if (isSimpleQuery) {
        if (scripts.startQuery(frames[0])) return;
      } else if (!types.includes(Frontend.Query) && host.session.status.txStatus !== TxStatus.Failed) {
        try {
          return scripts.startExtended(types, frames);
        } catch (refusal) {
          return host.end.failRequest(
            refusal instanceof PgError ? refusal : PgError.internal(String(refusal)),
          );
        }
      }
    }
    return host.end.failRequest(detour.error);
  }
  // What a statement of a multi-statement Query needs looked up may be made by an earlier one (CREATE TABLE …;
  // INSERT …): such a Query runs statement by statement, each routed when its turn comes.
  if (isSimpleQuery && !inScript && scripts.startQuery(frames[0])) return;
  const { router } = host;
  const need = detour.need;
  switch (need.kind) {
    case 'sourceRows':
      return inserts.evaluate(need.text, types, frames);
    case 'generatedValues':
      return fillThenRoute(host, need.fills, types, frames);
    case 'tableColumns': {
      const table = need.table;
      return learnThenRoute(host, `the columns of ${table}`, (server) =>
        lookUpTableColumns(server, table, host).then((found) => {
          if (found.kind === 'ok') router.learnTableColumns(table, found.columns, found.generated);
          return found;
        }),
      );
    }
    case 'catalogFacts': {
      const facts = router.catalogFacts;
      if (facts === undefined)
        return host.end.failRequest(PgError.internal('catalog facts are needed to route this statement'));
      return learnThenRoute(
        host,
        `catalog facts of ${[...need.relations, ...need.functions].join(', ')}`,
        (server) =>
          lookUpCatalogFacts(server, need, router.schema, facts, (sql) => router.analyze(sql), host).then(
            (found) => {
              if (found.kind === 'ok') router.dropPlans();
              return found;
            },
          ),
      );
    }
  }
}

/**
 * An INSERT into a sharded table that leaves columns for sequences (its sharding key among them, perhaps): take the
 * values from the sequences of record on shard 0 (SequenceValues: in blocks, shared by the database's sessions),
 * write them into the request, and route that. The fetch runs on the session's shard-0 server outside any block
 * (nextval is not transactional: it does not join the shard).
 */
function fillThenRoute(
  host: DispatchHost,
  fills: readonly GeneratedFill[],
  types: readonly number[],
  frames: readonly Buffer[],
): void {
  const { router } = host;
  const what = 'sequence values';
  if (host.learnedFor === what) {
    host.learnedFor = null;
    return host.end.failRequest(PgError.internal('an INSERT filled with sequence values still needs them'));
  }
  host.servers.acquire(
    [0],
    host,
    () => {
      host.request.move({ kind: 'lookup', what });
      const server = host.servers.at(0);
      const fetch = async (sequence: string, count: number): Promise<string[]> => {
        const outcome = await runQuery(
          server,
          `SELECT pg_catalog.nextval(${escapeStringLiteral(sequence)}::pg_catalog.regclass) ` +
            `FROM pg_catalog.generate_series(1, ${count})`,
          host,
        );
        if (outcome.kind === 'ok') return outcome.rows.map((r) => r[0] ?? '');
        // The server's own error (e.g. 42501: no USAGE on the sequence), passed on as it sent it.
        throw outcome.kind === 'error'
          ? PgError.fromServer(outcome.frame)
          : PgError.serverConnectionLost(0, outcome.reason);
      };
      void (async () => {
        const values: string[][] = [];
        for (const fill of fills)
          values.push(await router.sequenceValues.take(fill.sequence, fill.rows.length, fetch));
        return values;
      })().then(
        (values) => {
          host.request.end('lookup');
          if (host.session.status.state !== 'ready') return;
          host.servers.takeBack();
          const rebuilt = router.withGeneratedValues(types, frames, fills, values);
          if (rebuilt.clientParse !== null) host.session.statements?.remember(rebuilt.clientParse);
          host.batch.takeFirst(host.requestLength);
          host.batch.unshift(rebuilt.types, rebuilt.frames);
          host.learnedFor = what;
          host.end.requestDone(); // routes the rewritten request
        },
        (err: unknown) => {
          host.request.end('lookup');
          if (host.session.status.state !== 'ready') return;
          host.servers.takeBack();
          host.end.failRequest(err instanceof PgError ? err : PgError.internal(String(err)));
        },
      );
    },
    (err) => host.end.failRequest(err),
  );
}

/**
 * What the router must know before it can route the request at the front of the batch (a table's column order,
 * catalog facts of views and functions): `lookup` learns it on a shard, then the request is routed again. Inside a
 * transaction block the lookup runs on a shard it reached (the names may be the block's own creations); else on
 * any shard, which the lookup does not bring into the block. `what` names the lookup: needed again for the same
 * request right after it was learnt, the request fails instead of looping (a request must never hang).
 */
function learnThenRoute(
  host: DispatchHost,
  what: string,
  lookup: (
    server: ServerConnection,
  ) => Promise<{ kind: 'ok' } | { kind: 'error'; error: PgError } | { kind: 'lost'; reason: string }>,
): void {
  if (host.learnedFor === what) {
    host.learnedFor = null;
    return host.end.failRequest(PgError.internal(`${what} were looked up, and routing still needs them`));
  }
  const joined = host.block.joinedShards();
  const held = host.servers.byShard.findIndex((s) => s !== null);
  const shard = joined.length > 0 ? joined[0] : held >= 0 ? held : 0;
  host.hold.acquire(
    [shard],
    NO_EFFECTS,
    () => {
      const server = host.servers.at(shard);
      host.request.move({ kind: 'lookup', what });
      void lookup(server).then((found) => {
        host.request.end('lookup');
        if (host.session.status.state !== 'ready') return;
        host.servers.takeBack();
        if (found.kind === 'lost')
          return host.session.ending.fatal(PgError.serverConnectionLost(server.address.shard, found.reason));
        if (found.kind === 'error') return host.end.failRequest(found.error);
        host.learnedFor = what;
        host.end.requestDone(); // routes the waiting request again, now with what it needed known
      });
    },
    false,
  );
}
