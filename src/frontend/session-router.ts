// Routing for one client session on a sharded database: turns a batch of frames (one flush point's worth) into a
// target — one shard, several shards with the merge spec for their replies (execute/fanout-merge-spec.ts) and the
// requests they run (request-rewrite.ts), or COPY split by rows — from the statements' plans, the session's manual
// routing settings (SET shardgate.shard / sharding_key) and its SQL-level cursors. Whatever cannot run correctly is
// refused with a PgError; what needs something learnt first, or statements on different shards, is a detour the
// dispatch takes (RouteOutcome). Its jobs, in this file:
// - routing a request (`route`): each statement's route joined into one (JoinedRoutes), the hot paths first — a
//   simple Query by its literals (`routeByLiterals`), a Bind by its key parameter hashed in place (`keyParamRoute`) —,
//   EXECUTE by its prepared statement (`routeExecute`), the target a plan keeps (plan-targets.ts);
// - the session state a routed statement changes (`noteStatement`: DDL, PREPARE / DEALLOCATE, SET, manual routing);
// - what the engine asks about a request's statements: a script's texts and transaction control
//   (`scriptStatements`, `hasTransactionControl`), the statement it runs (`requestStatement`), sequence values
//   written in (`withGeneratedValues`).
// What else it keeps of the session has a module per job, reached through this class: the SQL-level cursors
// (sql-cursors.ts), the prepared statements (prepared-plans.ts), the SETs (session-settings.ts), pgdog.unique_id()
// (unique-id-request.ts), and the shared plans with what the proxy learned about the tables (database-plans.ts).
import { Buffer } from 'node:buffer';
import { Frontend } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { parseText, queryText } from '../protocol/frontend-fields.js';
import { bindValueAt } from '../protocol/bind.js';
import { shardForBindValue, shardForLiteral } from '../sharding/shard-of.js';
import type { GeneratedColumn, ShardingSchema } from '../sharding/schema.js';
import type { CatalogFacts } from '../sharding/catalog-facts.js';
import { literalCount, literalValue, normalizedText } from '../router/literals.js';
import { parseStatements } from '../router/parser.js';
import type { GeneratedFill, StatementPlan } from '../router/plan.js';
import { decodeBindParams, type BindParams } from '../router/bind-params.js';
import { fillGeneratedValues } from '../router/generated-values.js';
import {
  oneRoute,
  routeFunctionCall,
  routeStatement,
  singleKeyParam,
  type Route,
  type RouteContext,
  type RouteNeed,
} from '../router/route.js';
import type { SequenceValues } from './sequence-values.js';
import { UniqueIdRequests, type UniqueIdSupport } from './unique-id-request.js';
import { SessionSettings, type SettingChange } from './session-settings.js';
import { DatabasePlans, type SharedPlanning } from './database-plans.js';
import { PreparedPlans } from './prepared-plans.js';
import { SqlCursors } from './sql-cursors.js';
import {
  withStatementText,
  type RequestStatement,
  type RewrittenRequest,
  type StatementSource,
} from './request-rewrite.js';
import { batchTarget, functionCallTarget, oneShardTarget, type BatchTarget } from './batch-target.js';
import { keepTarget, keptTarget, routeOf } from './plan-targets.js';

/** What the routing needs per database: the schema and plan caches all its sessions share, and more. */
export interface DatabaseRouting extends SharedPlanning {
  /** Round-robin shard for reads any shard can answer. */
  nextReadShard(): number;
  /** PgDog's pgdog.unique_id(): the proxy's generator (absent: calls reach the servers as written). */
  readonly uniqueIds?: UniqueIdSupport;
  /**
   * The database's collation when text does not sort by bytes there (null: it does — "C", "POSIX", "C.UTF-8").
   * Found at start-up (proxy.ts); until a shard has answered it names that it is unknown.
   */
  textCollation: string | null;
}

function unsupported(message: string, hint?: string): PgError {
  return new PgError('ERROR', SqlState.FeatureNotSupported, message, undefined, hint);
}

/**
 * What routing a request gives the dispatch: the target it runs, or a detour the dispatch takes first
 * (route-lookups.ts) — `learn`: something routing needs is not known yet (learnt, then the request is routed again);
 * `mixed`: its statements need different shards (run one by one as a script where that is possible, else `error`).
 */
export type RouteOutcome =
  | BatchTarget
  | { readonly kind: 'learn'; readonly need: RouteNeed }
  | { readonly kind: 'mixed'; readonly error: PgError };

function mixed(message: string, hint: string): RouteOutcome {
  return { kind: 'mixed', error: unsupported(message, hint) };
}

/** The statements of a multi-statement simple Query, to run one after another (see ShardedDispatch's scripts). */
export interface ScriptStatements {
  readonly texts: readonly string[];
  /** False with COPY inside (its data cannot follow a statement of a script): refused. */
  readonly isRunnable: boolean;
  /** BEGIN / COMMIT / ROLLBACK / SAVEPOINT … inside: no implicit transaction around the statements. */
  readonly hasTransactionControl: boolean;
}

const TRANSACTION_CONTROL = new Set<StatementPlan['kind']>([
  'begin',
  'commit',
  'rollback',
  'savepoint',
  'prepare_transaction',
  'commit_prepared',
  'rollback_prepared',
]);

export class SessionRouter implements RouteContext {
  /**
   * Settings this session made with SET outside a transaction, replayed on every server it later uses; they start as
   * the client's startup settings (what a RESET returns to).
   */
  readonly settings: Map<string, string>;
  private readonly sessionSettings: SessionSettings;
  private readonly routing: DatabaseRouting;
  private readonly plans: DatabasePlans;
  private readonly prepared: PreparedPlans;
  /** SQL-level cursors (DECLARE name CURSOR …): the shard each was declared on (sql-cursors.ts). */
  private readonly cursors = new SqlCursors();
  readonly schema: ShardingSchema;
  private readonly uniqueIds: UniqueIdRequests | null;
  sessionShard: number | null = null;
  sessionShardingKey: string | null = null;
  /** The routing request's statements joined (reused: route() allocates nothing to keep them). */
  private readonly joined = new JoinedRoutes();
  /** The plan routeByLiterals routed by (set when it returns a route). */
  private pinnedPlan: StatementPlan | null = null;

  constructor(routing: DatabaseRouting, startupSettings: ReadonlyMap<string, string> = new Map()) {
    this.sessionSettings = new SessionSettings(startupSettings);
    this.settings = this.sessionSettings.current;
    this.routing = routing;
    this.schema = routing.schema;
    this.plans = new DatabasePlans(routing);
    this.prepared = new PreparedPlans((sql) => this.plans.plansFor(sql));
    this.uniqueIds = routing.uniqueIds === undefined ? null : new UniqueIdRequests(routing.uniqueIds);
  }

  /**
   * The request with its pgdog.unique_id() calls replaced by new ids (unique-id-request.ts), to be routed instead;
   * null when it has none. Throws PgError.
   */
  withUniqueIds(
    types: readonly number[],
    frames: readonly Buffer[],
  ): { types: number[]; frames: Buffer[] } | null {
    return this.uniqueIds === null ? null : this.uniqueIds.rewrite(types, frames);
  }

  pickReadShard(): number {
    return this.routing.nextReadShard();
  }

  get shardCount(): number {
    return this.routing.schema.shardCount;
  }

  /**
   * A simple Query pinned to one shard, routed from the plan of its text with the literals made parameters (one
   * plan for every literal: no parse per distinct text); the plan is left in `pinnedPlan`. Null when that does not
   * apply — no literals, something the normalizer leaves alone, or a route other than one shard (fan-outs rewrite and
   * merge from the raw text's plan).
   */
  private routeByLiterals(sql: string): Route | null {
    if (!this.plans.hasLiteralPlans) return null;
    const text = normalizedText(sql);
    if (text === null) return null;
    const plan = this.plans.literalPlan(text);
    // EXECUTE: routed by its prepared statement; a size function: by the relation its literal names.
    if (plan == null || plan.kind === 'execute' || plan.needsLiteralValues) return null;
    this.pinnedPlan = plan;
    try {
      // One key literal decides the shard (nearly every such Query): hashed from the literal's text, which is what
      // the text parameter below would carry — only that value made, no parameters, no route.
      const keyIndex = singleKeyParam(plan, this);
      const count = literalCount();
      if (keyIndex > 0 && keyIndex <= count) {
        const column = (plan.shardKey as NonNullable<StatementPlan['shardKey']>).column;
        return oneRoute(shardForLiteral(column, this.shardCount, literalValue(keyIndex - 1)));
      }
      const values: Buffer[] = [];
      for (let k = 0; k < count; k++) values.push(Buffer.from(literalValue(k)));
      const params: BindParams = { values, formats: values.map(() => 0) };
      const route = routeStatement(plan, params, this);
      return route.kind === 'one' ? route : null;
    } catch {
      return null; // the raw text's plan says why (or routes it otherwise)
    }
  }

  /**
   * Where a Bind of `plan` whose shard is that of its key parameter `keyIndex` (router/route.ts singleKeyParam) runs:
   * the key hashed straight from the Bind frame, which is checked as decodeBind checks it. Null when the Bind lacks
   * the parameter (routeStatement reports that, from the decoded Bind).
   */
  private keyParamRoute(plan: StatementPlan, keyIndex: number, frame: Buffer): Route | null {
    const at = bindValueAt(frame, keyIndex - 1);
    if (at === null) return null;
    const column = (plan.shardKey as NonNullable<StatementPlan['shardKey']>).column;
    return oneRoute(shardForBindValue(column, this.shardCount, frame, at.start, at.end, at.format));
  }

  /** Where one statement runs: by its plan, or — EXECUTE — by its prepared statement's plan and arguments. */
  private routePlan(
    plan: StatementPlan,
    params: BindParams | null,
  ): { route: Route; plan: StatementPlan; params: BindParams | null } {
    if (plan.kind === 'execute') return this.routeExecute(plan, params);
    if (plan.cursor !== null) {
      return { route: this.cursors.route(plan, params, this, this.shardCount), plan, params };
    }
    return { route: routeStatement(plan, params, this), plan, params };
  }

  /**
   * EXECUTE name(args): routed as the prepared statement with those arguments bound (prepared-plans.ts); the plan
   * returned is the prepared statement's, so its writes, merge and transaction needs count. What the shards cannot run
   * as the client's EXECUTE — rows split across shards, a merge that needs the statement rewritten — is refused.
   */
  private routeExecute(
    plan: StatementPlan,
    bind: BindParams | null,
  ): { route: Route; plan: StatementPlan; params: BindParams | null } {
    const bound = this.prepared.bindExecute(plan, bind);
    // Not prepared in this session: any shard answers it as PostgreSQL does (26000).
    if (bound === null) return { route: { kind: 'one', shard: this.pickReadShard() }, plan, params: null };
    const name = plan.sqlStatement?.name ?? '';
    const route = routeStatement(bound.plan, bound.params, this);
    if (route.kind === 'split') {
      throw unsupported(
        `EXECUTE ${name} inserts rows that belong to different shards`,
        'Insert one row per EXECUTE, or use a protocol-level prepared statement (Parse/Bind), which shardgate splits.',
      );
    }
    if (route.kind === 'many' && route.isReplicated !== true && bound.plan.select?.shardQuery != null) {
      throw unsupported(
        `EXECUTE ${name} runs on several shards, and merging its rows needs the statement rewritten`,
        'Use a protocol-level prepared statement (Parse/Bind), or send the statement itself.',
      );
    }
    return { route, plan: bound.plan, params: bound.params };
  }

  /** One statement's route joined to the request's (EXECUTE and cursors through routePlan; the rest directly). */
  private joinStatement(plan: StatementPlan, params: BindParams | null): RouteOutcome | null {
    if (plan.kind === 'execute' || plan.cursor !== null) {
      const r = this.routePlan(plan, params);
      return this.joined.join(r.route, r.plan, r.params);
    }
    return this.joined.join(routeOf(plan, params, this), plan, params);
  }

  /**
   * Where a batch runs, or the detour it takes first (RouteOutcome: learn something, or run its statements as a
   * script). Throws PgError when it cannot run correctly.
   */
  route(types: readonly number[], frames: readonly Buffer[]): RouteOutcome {
    this.dropPendingSettings();
    if (types.length === 1 && types[0] === Frontend.FunctionCall) {
      const route = routeFunctionCall(this) as { kind: 'one'; shard: number };
      // A function may change anything: the shard is a writer of the transaction it runs in.
      return functionCallTarget(route.shard);
    }
    const joined = this.joined.reset();
    /** For a split: the statement's text and types, where its Parse and Bind sit in the batch. */
    let source: StatementSource | null = null;
    /** A Query's text (always the request's last message): its source, made only for a request on several shards. */
    let querySql: string | null = null;
    let parseIndex = -1;
    let bindIndex = -1;
    for (let i = 0; i < types.length; i++) {
      const frame = frames[i];
      switch (types[i]) {
        case Frontend.Query: {
          const sql = queryText(frame);
          querySql = sql;
          const pinned = this.routeByLiterals(sql);
          if (pinned !== null) {
            const plan = this.pinnedPlan as StatementPlan;
            this.noteStatement(plan);
            const detour = joined.join(pinned, plan, null);
            if (detour !== null) return detour;
            break;
          }
          for (const p of this.plans.plansFor(sql)) {
            this.noteStatement(p);
            const detour = this.joinStatement(p, null);
            if (detour !== null) return detour;
          }
          break;
        }
        case Frontend.Parse:
          this.prepared.noteParse(frame);
          parseIndex = i;
          break;
        case Frontend.Bind: {
          const entry = this.prepared.bound(frame);
          if (entry === null || entry.plans.length === 0) break; // unknown statement: any server answers 26000 itself
          // Planned again from the cache (a hit, unless what the router knows changed since the Parse: a table's
          // columns learnt for this very Bind must be in its plan).
          const plan = this.plans.plansFor(entry.text)[0];
          this.noteStatement(plan);
          // One key parameter decides the shard (nearly every Bind): no BindParams, no route made (a one-shard target
          // needs neither); else the Bind decoded and routed by the plan.
          const keyIndex = singleKeyParam(plan, this);
          const keyRoute = keyIndex > 0 ? this.keyParamRoute(plan, keyIndex, frame) : null;
          const detour =
            keyRoute !== null
              ? joined.join(keyRoute, plan, null)
              : this.joinStatement(plan, decodeBindParams(frame));
          if (detour !== null) return detour;
          source = entry;
          querySql = null;
          bindIndex = i;
          break;
        }
        case Frontend.FunctionCall:
          joined.mayWrite = true; // behind other messages of the request: it runs where they do, and may write there
          break;
        case Frontend.Close:
          this.prepared.noteClose(frame);
          break;
      }
    }
    const route = joined.target;
    const { mayWrite, preventsPrepare, statements } = joined;
    // Describe / Sync only: any shard.
    if (route === null) return oneShardTarget(this.routing.nextReadShard(), mayWrite, preventsPrepare);
    if (route.kind === 'one') return oneShardTarget(route.shard, mayWrite, preventsPrepare);
    if (route.kind !== 'copy_in' && route.kind !== 'split' && statements > 1) {
      return mixed(
        'only one statement per request can run on several shards',
        'Send each statement that needs several shards in its own request (Sync after it).',
      );
    }
    const plan = joined.plan;
    const collation = this.routing.textCollation;
    // One statement whose target depends on its text alone: the target its plan keeps (plan-targets.ts).
    const kept = statements === 1 && plan !== null ? keptTarget(plan, route, mayWrite, collation) : null;
    if (kept !== null) return kept;
    if (querySql !== null) source = { text: querySql, paramTypes: [], isQuery: true };
    const routed = {
      route,
      plan,
      params: joined.params,
      statements,
      mayWrite,
      preventsPrepare,
      source,
      parseIndex,
      bindIndex,
    };
    const target = batchTarget(routed, types, frames, {
      shardCount: this.shardCount,
      textCollation: collation,
    });
    if (statements === 1 && plan !== null) keepTarget(plan, route, target, mayWrite, collation);
    return target;
  }

  /**
   * The routed request succeeded outside a transaction: its SET / RESET / DISCARD ALL now hold for the session (and
   * for the servers it ran on). Returns them, for the caller to record on those servers.
   */
  confirmSettings(): readonly SettingChange[] {
    return this.sessionSettings.apply(this.sessionSettings.takePending());
  }

  /** The routed request's SET / RESET / DISCARD ALL, taken to be applied later (a transaction block's, at COMMIT). */
  takePendingSettings(): readonly SettingChange[] {
    return this.sessionSettings.takePending();
  }

  /** Settings that now hold for the session (returned, for the caller to record on its servers). */
  applySettings(changes: readonly SettingChange[]): readonly SettingChange[] {
    return this.sessionSettings.apply(changes);
  }

  /** The request failed or ran inside a transaction (whose end may undo it): its settings are not kept. */
  dropPendingSettings(): void {
    this.sessionSettings.dropPending();
  }

  /** A simple Query's statements, each as its own text (parsed again: scripts across shards are rare). */
  scriptStatements(sql: string): ScriptStatements {
    const plans = this.plans.plansFor(sql);
    const texts = parseStatements(sql).map((p) => p.text);
    return {
      texts,
      isRunnable: texts.length > 1 && !plans.some((p) => p.kind === 'copy'),
      hasTransactionControl: plans.some((p) => TRANSACTION_CONTROL.has(p.kind)),
    };
  }

  /** Whether an extended-protocol request's statements (its Parses, the statements its Binds use) control transactions. */
  hasTransactionControl(types: readonly number[], frames: readonly Buffer[]): boolean {
    for (let i = 0; i < types.length; i++) {
      const frame = frames[i];
      let plans: readonly StatementPlan[] | undefined;
      if (types[i] === Frontend.Parse) plans = this.plans.plansFor(parseText(frame));
      else if (types[i] === Frontend.Bind) plans = this.prepared.bound(frame)?.plans;
      if (plans?.some((p) => TRANSACTION_CONTROL.has(p.kind)) === true) return true;
    }
    return false;
  }

  /** The column order of a sharded table, learned from a shard: plans made without it are dropped. */
  learnTableColumns(
    table: string,
    columns: readonly string[],
    generated: readonly GeneratedColumn[] = [],
  ): void {
    this.plans.learnTableColumns(table, columns, generated);
  }

  /** A column order learned earlier (COPY without a column list uses it too). */
  knownTableColumns(table: string): readonly string[] | undefined {
    return this.plans.knownTableColumns(table);
  }

  /** Values of the sequences of record (the columns of sharded tables the proxy fills). */
  get sequenceValues(): SequenceValues {
    return this.plans.sequenceValues;
  }

  /**
   * The request `types` / `frames` — whose INSERT leaves `fills` for sequences — with `values` (per fill, one per row)
   * written into its statement: a Query with the new text, or an unnamed Parse + the client's Bind (a Describe of the
   * statement pointed at the new one). `clientParse`: the client's own Parse in the request, to remember by name.
   */
  withGeneratedValues(
    types: readonly number[],
    frames: readonly Buffer[],
    fills: readonly GeneratedFill[],
    values: readonly (readonly string[])[],
  ): RewrittenRequest {
    const statement = this.prepared.requestStatement(types, frames);
    if (statement === null) throw PgError.internal('no INSERT found to fill with sequence values');
    const table = this.plans.insertTableColumns(statement.text);
    const sql = fillGeneratedValues(statement.text, fills, values, table);
    return withStatementText(types, frames, statement, sql, statement.paramTypes);
  }

  /**
   * The statement a request runs: a Query's text, or the statement its Bind binds (parsed in the request or earlier),
   * with where the Parse and Bind sit. Null when it runs none.
   */
  requestStatement(types: readonly number[], frames: readonly Buffer[]): RequestStatement | null {
    return this.prepared.requestStatement(types, frames);
  }

  /** The database's catalog facts (views, temporary tables, functions that may write), learned on first use. */
  get catalogFacts(): CatalogFacts | undefined {
    return this.plans.catalogFacts;
  }

  /** Analyse `sql` against this database's sharding schema (function bodies in catalog lookups). */
  analyze(sql: string): StatementPlan[] {
    return this.plans.analyze(sql);
  }

  /** What the router knows changed (catalog facts, column order): plans made before are dropped. */
  dropPlans(): void {
    this.plans.dropPlans();
  }

  /**
   * A statement of the request being routed: DDL forgets what was learned of the tables (and the plans made with it),
   * PREPARE / DEALLOCATE change the SQL-level prepared statements, SET / RESET / DISCARD the settings (pending), and
   * SET / RESET of shardgate.shard and shardgate.sharding_key this session's routing.
   */
  private noteStatement(plan: StatementPlan): void {
    if (plan.kind === 'ddl') this.plans.forgetLearned();
    this.prepared.noteStatement(plan);
    this.sessionSettings.note(plan);
    if (plan.setsManualShard !== undefined) this.sessionShard = plan.setsManualShard;
    if (plan.setsManualShardingKey !== undefined) this.sessionShardingKey = plan.setsManualShardingKey;
    if (plan.kind === 'discard') {
      this.sessionShard = null;
      this.sessionShardingKey = null;
    }
  }
}

/** What a request's statements routed to so far: one route for all of them, or a detour. */
class JoinedRoutes {
  target: Exclude<Route, { kind: 'learn' }> | null = null;
  plan: StatementPlan | null = null;
  params: BindParams | null = null;
  statements = 0;
  mayWrite = false;
  preventsPrepare: string | null = null;

  reset(): this {
    this.target = null;
    this.plan = null;
    this.params = null;
    this.statements = 0;
    this.mayWrite = false;
    this.preventsPrepare = null;
    return this;
  }

  /** One statement's route joins the request's; a detour (learn first, mixed shards) ends the routing. */
  join(r: Route, p: StatementPlan, bp: BindParams | null): RouteOutcome | null {
    if (r.kind === 'learn') return r;
    this.statements++;
    if (p.isWrite || (p.kind === 'other' && !p.isReadOnly)) this.mayWrite = true;
    this.preventsPrepare ??= p.preventsPrepare;
    if (this.target !== null && !sameRoute(this.target, r)) {
      return mixed(
        'statements in one request (up to Sync) go to different shards; send them separately',
        'Sync after each statement, or keep a request to one shard.',
      );
    }
    this.target = r;
    this.plan = p;
    this.params = bp;
    return null;
  }
}

function sameRoute(a: Route, b: Route): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'one' && b.kind === 'one') return a.shard === b.shard;
  if (a.kind === 'many' && b.kind === 'many')
    return a.shards.length === b.shards.length && a.shards.every((s, i) => s === b.shards[i]);
  return true;
}
