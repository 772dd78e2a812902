// Routing for one client session on a sharded database: remembers the plans of the client's prepared statements,
// keeps its manual-routing settings, and turns a batch of frames (one flush point's worth) into a target — one shard,
// or several shards with the merge spec for their replies. Whatever cannot run correctly is refused with a PgError.
import { Frontend } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import type { ShardingSchema } from '../sharding/schema.js';
import { analyzeQuery } from '../router/analyze.js';
import { normalizeLiterals } from '../router/literals.js';
import { parseStatements } from '../router/parser.js';
import type { PlanCache } from '../router/plan-cache.js';
import type {
  CopyInfo,
  CountSource,
  GeneratedFill,
  HavingCondition,
  HavingOperand,
  ShardQuery,
  StatementPlan,
} from '../router/plan.js';
import { decodeBindParams, type BindParams } from '../router/bind-params.js';
import type { ParameterFormat } from '../sharding/shard-of.js';
import type { CatalogFacts } from '../sharding/catalog-facts.js';
import type { GeneratedColumn } from '../sharding/schema.js';
import { SequenceValues } from './sequence-values.js';
import { UniqueIdRequests, type UniqueIdSupport } from './unique-id-request.js';
import { fillGeneratedValues } from '../router/generated-values.js';
import { routeFunctionCall, routeStatement, type Route, type RouteContext } from '../router/route.js';
import { aggregateColumns } from './aggregate-columns.js';
import {
  PASS_THROUGH_SPEC,
  type AggregateColumn,
  type HavingFilter,
  type HavingValue,
  type MergeSpec,
  type SortKey,
} from '../execute/merge-spec.js';
import { Format, TypeOid } from '../execute/value-compare.js';
import { splitInsert } from '../router/rewrite.js';
import { decodeBind, encodeBind, parseParamTypes } from '../protocol/bind.js';
import { settingChange, applySettingChange, type SettingChange } from './session-settings.js';
import {
  DESCRIBE_UNNAMED_STATEMENT,
  rebuildRequest,
  withStatementText,
  type RequestStatement,
  type RewrittenRequest,
  type SplitPart,
} from './request-rewrite.js';

export type BatchTarget = (
  | { readonly kind: 'one'; readonly shard: number }
  | { readonly kind: 'many'; readonly shards: readonly number[]; readonly spec: MergeSpec }
  | {
      readonly kind: 'split';
      readonly shards: readonly number[];
      readonly parts: readonly SplitPart[];
      readonly spec: MergeSpec;
      /** The client's own Parse in this request (to remember its statement name), if any. */
      readonly clientParse: Buffer | null;
    }
  /** COPY … FROM STDIN run on every shard, the client's data rows split by the proxy (`copy.keyColumn`). */
  | {
      readonly kind: 'copyIn';
      readonly shards: readonly number[];
      readonly copy: CopyInfo;
      /** The table's key (`schema.table` or `table`, as PostgreSQL names it) to look its columns up when COPY lists none. */
      readonly table: string | null;
    }
) & {
  /** Transaction control or a session setting (allowed in a failed transaction; runs on every shard). */
  readonly isSessionLevel: boolean;
  /** Changes rows on several shards: outside a transaction it runs in one on each shard, committed only if all succeed. */
  readonly isMultiShardWrite: boolean;
  /** COMMIT, maybe AND CHAIN (a failed transaction must end with ROLLBACK on every shard instead). */
  readonly isCommit: boolean;
  /** Takes row or table locks on several shards (DML, DDL): runs on one shard after another, in shard order. */
  readonly isWrite: boolean;
  /**
   * Some statement of the request may change data on the shards it runs on (DML, DDL, CALL/DO and other statements
   * not known to be read-only): inside a transaction those shards become writers for the commit decision.
   */
  readonly mayWrite: boolean;
  /** Why a transaction that ran the request cannot PREPARE TRANSACTION (temporary objects, NOTIFY, …), or null. */
  readonly preventsPrepare: string | null;
  /**
   * The request's one statement when it is transaction control or a session setting (route kind 'session'): the
   * session keeps the transaction block itself (BEGIN lazily joined by shards, replayed on each). Null otherwise.
   */
  readonly sessionStatement: StatementPlan | null;
  /** One SELECT that changes nothing (PostgreSQL's PORTAL_ONE_SELECT: its snapshot is taken at Bind). */
  readonly isPlainSelect?: boolean;
};

/** What the routing needs per database: the schema and a plan cache shared by all its sessions. */
export interface DatabaseRouting {
  readonly schema: ShardingSchema;
  readonly plans: PlanCache;
  /**
   * Plans of simple-protocol texts with their literals made parameters (router/literals.ts), by that text; null: it
   * does not parse or is not one statement (the raw text is used). Absent: no literal normalization.
   */
  readonly literalPlans?: PlanCache<StatementPlan | null>;
  /** Round-robin shard for reads any shard can answer. */
  nextReadShard(): number;
  /** Values of the sequences of record, for columns the proxy fills (absent: a fresh allocator per session). */
  readonly sequenceValues?: SequenceValues;
  /** PgDog's pgdog.unique_id(): the proxy's generator (absent: calls reach the servers as written). */
  readonly uniqueIds?: UniqueIdSupport;
  /**
   * The database's collation when text does not sort by bytes there (null: it does — "C", "POSIX", "C.UTF-8").
   * Found at start-up (proxy.ts); until a shard has answered it names that it is unknown.
   */
  textCollation: string | null;
}

/** A statement the client prepared: its plans, and its text and parameter types (to rebuild a split INSERT). */
interface PreparedEntry {
  readonly plans: readonly StatementPlan[];
  readonly text: string;
  readonly paramTypes: readonly number[];
}

/** The flags of a request whose rows go to several shards (a split INSERT, COPY … FROM STDIN). */
const MULTI_SHARD_WRITE = {
  isSessionLevel: false,
  isMultiShardWrite: true,
  isCommit: false,
  isWrite: true,
  mayWrite: true,
  preventsPrepare: null,
  sessionStatement: null,
} as const;

/** A FunctionCall message: one shard, which it may write on. */
const FUNCTION_CALL_FLAGS = {
  isSessionLevel: false,
  isMultiShardWrite: false,
  isCommit: false,
  isWrite: true,
  mayWrite: true,
  preventsPrepare: null,
  sessionStatement: null,
} as const;

/** Session-level statements and DDL: the same on every shard, reported once. */
export const BROADCAST_SPEC: MergeSpec = Object.freeze({ ...PASS_THROUGH_SPEC, isBroadcast: true });

function unsupported(message: string, hint?: string): PgError {
  return new PgError('ERROR', SqlState.FeatureNotSupported, message, undefined, hint);
}

function cstringEnd(frame: Buffer, from: number): number {
  const end = frame.indexOf(0, from);
  if (end < 0) throw PgError.protocolViolation('unterminated string in message');
  return end;
}

/** The SQL text of a Parse frame (`nameEnd`: where its statement name ends, if known). */
function parseText(frame: Buffer, nameEnd = cstringEnd(frame, 5)): string {
  return frame.toString('utf8', nameEnd + 1, cstringEnd(frame, nameEnd + 1));
}

/** A request whose statements need different shards (a simple Query with several statements can be run as a script). */
export class MixedShardsError extends PgError {
  constructor(message: string, hint: string) {
    super('ERROR', SqlState.FeatureNotSupported, message, undefined, hint);
  }
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
   * the client's startup settings (`startupSettings`, what a RESET returns to).
   */
  readonly settings: Map<string, string>;
  private readonly startupSettings: ReadonlyMap<string, string>;
  /** SET / RESET / DISCARD ALL in the request being routed, kept once it succeeded (confirmSettings). */
  private pendingSettings: SettingChange[] = [];
  private readonly routing: DatabaseRouting;
  private readonly named = new Map<string, PreparedEntry>();
  private unnamed: PreparedEntry | null = null;
  /**
   * SQL-level prepared statements (PREPARE name AS …): the PREPARE's text, whose plan (from the plan cache: re-made
   * when what the router knows changes, e.g. a table's columns) routes each EXECUTE.
   */
  private readonly sqlPrepared = new Map<string, string>();
  /** SQL-level cursors (DECLARE name CURSOR …) by name: the shard each was declared on. */
  private readonly cursors = new Map<string, number>();
  readonly schema: ShardingSchema;
  private readonly uniqueIds: UniqueIdRequests | null;
  sessionShard: number | null = null;
  sessionShardingKey: string | null = null;

  constructor(routing: DatabaseRouting, startupSettings: ReadonlyMap<string, string> = new Map()) {
    this.startupSettings = startupSettings;
    this.settings = new Map(startupSettings);
    this.routing = routing;
    this.schema = routing.schema;
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

  private plansFor(sql: string): readonly StatementPlan[] {
    let plans = this.routing.plans.get(sql);
    if (plans === undefined) {
      plans = analyzeQuery(sql, this.routing.schema);
      this.routing.plans.set(sql, plans);
    }
    return plans;
  }

  /**
   * A simple Query pinned to one shard, routed from the plan of its text with the literals made parameters (one
   * plan for every literal: no parse per distinct text). Null when that does not apply — no literals, something the
   * normalizer leaves alone, or a route other than one shard (fan-outs rewrite and merge from the raw text's plan).
   */
  private routeByLiterals(sql: string): { route: Route; plan: StatementPlan } | null {
    const cache = this.routing.literalPlans;
    if (cache === undefined) return null;
    const normalized = normalizeLiterals(sql);
    if (normalized === null) return null;
    let plan = cache.get(normalized.text);
    if (plan === undefined) {
      try {
        const plans = analyzeQuery(normalized.text, this.routing.schema);
        plan = plans.length === 1 ? plans[0] : null;
      } catch {
        plan = null; // e.g. a literal where a parameter may not stand: the raw text is parsed instead
      }
      cache.set(normalized.text, plan);
    }
    // EXECUTE: routed by its prepared statement; a size function: by the relation its literal names.
    if (plan === null || plan.kind === 'execute' || plan.needsLiteralValues) return null;
    const params: BindParams = {
      values: normalized.values.map((v) => Buffer.from(v)),
      formats: normalized.values.map(() => 0),
    };
    try {
      const route = routeStatement(plan, params, this);
      return route.kind === 'one' ? { route, plan } : null;
    } catch {
      return null; // the raw text's plan says why (or routes it otherwise)
    }
  }

  /** Where one statement runs: by its plan, or — EXECUTE — by its prepared statement's plan and arguments. */
  private routePlan(
    plan: StatementPlan,
    params: BindParams | null,
  ): { route: Route; plan: StatementPlan; params: BindParams | null } {
    if (plan.kind === 'execute') return this.routeExecute(plan, params);
    if (plan.cursor !== null) return { route: this.routeCursor(plan, params), plan, params };
    return { route: routeStatement(plan, params, this), plan, params };
  }

  /**
   * SQL-level cursors: DECLARE runs where its query routes — one shard, remembered, as FETCH / MOVE / CLOSE must run
   * there too; a query needing several shards is refused (its rows would come from one shard at a time). A cursor the
   * session did not declare here: any shard answers (34000).
   */
  private routeCursor(plan: StatementPlan, params: BindParams | null): Route {
    const cursor = plan.cursor as NonNullable<StatementPlan['cursor']>;
    const manual = plan.manualShard !== null || plan.manualShardingKey !== null || this.sessionShard !== null;
    if (cursor.action === 'declare') {
      const route =
        plan.inner === null || manual
          ? routeStatement(plan, params, this)
          : routeStatement(plan.inner, params, this);
      if (route.kind !== 'one') {
        throw unsupported(
          `the cursor ${cursor.name ?? ''} would read several shards, and FETCH takes rows from one`,
          'Add the sharding key so the query reads one shard, or use the extended protocol’s row-limited Execute (portals), which shardgate merges across shards.',
        );
      }
      this.cursors.set(cursor.name ?? '', route.shard);
      return route;
    }
    if (cursor.name === null) {
      this.cursors.clear(); // CLOSE ALL: on every shard, reported once
      return {
        kind: 'many',
        shards: Array.from({ length: this.shardCount }, (_, i) => i),
        isReplicated: true,
      };
    }
    const shard = this.cursors.get(cursor.name);
    if (cursor.action === 'close') this.cursors.delete(cursor.name);
    return { kind: 'one', shard: shard ?? this.pickReadShard() };
  }

  /**
   * EXECUTE name(args): routed as the prepared statement with those arguments bound (constants, or the EXECUTE's own
   * parameters); the plan returned is the prepared statement's, so its writes, merge and transaction needs count.
   * What the shards cannot run as the client's EXECUTE — rows split across shards, a merge that needs the statement
   * rewritten — is refused.
   */
  private routeExecute(
    plan: StatementPlan,
    bind: BindParams | null,
  ): { route: Route; plan: StatementPlan; params: BindParams | null } {
    const name = plan.sqlStatement?.name ?? '';
    const text = this.sqlPrepared.get(name);
    const prepared = text === undefined ? null : (this.plansFor(text)[0]?.inner ?? null);
    // Not prepared in this session: any shard answers it as PostgreSQL does (26000).
    if (prepared === null) return { route: { kind: 'one', shard: this.pickReadShard() }, plan, params: null };
    const values: (Buffer | null)[] = [];
    const formats: ParameterFormat[] = [];
    const unknown = new Set<number>();
    (plan.sqlStatement?.args ?? []).forEach((arg, i) => {
      if (arg.kind === 'constant') {
        values.push(arg.value === null ? null : Buffer.from(arg.value, 'utf8'));
        formats.push(0);
      } else if (arg.kind === 'param' && bind !== null && arg.index >= 1 && arg.index <= bind.values.length) {
        values.push(bind.values[arg.index - 1]);
        formats.push(bind.formats[arg.index - 1] ?? 0);
      } else {
        unknown.add(i + 1);
        values.push(null);
        formats.push(0);
      }
    });
    // A routing hint on the EXECUTE wins over the PREPARE's.
    const inner =
      plan.manualShard !== null || plan.manualShardingKey !== null
        ? { ...prepared, manualShard: plan.manualShard, manualShardingKey: plan.manualShardingKey }
        : prepared;
    for (const index of routingParams(inner)) {
      if (unknown.has(index)) {
        throw unsupported(
          `EXECUTE ${name}: argument ${index} decides where the statement runs, but it is an expression shardgate cannot evaluate`,
          'Pass a constant (or a parameter) for it.',
        );
      }
    }
    const params: BindParams = { values, formats };
    const route = routeStatement(inner, params, this);
    if (route.kind === 'split') {
      throw unsupported(
        `EXECUTE ${name} inserts rows that belong to different shards`,
        'Insert one row per EXECUTE, or use a protocol-level prepared statement (Parse/Bind), which shardgate splits.',
      );
    }
    if (route.kind === 'many' && route.isReplicated !== true && inner.select?.shardQuery != null) {
      throw unsupported(
        `EXECUTE ${name} runs on several shards, and merging its rows needs the statement rewritten`,
        'Use a protocol-level prepared statement (Parse/Bind), or send the statement itself.',
      );
    }
    return { route, plan: inner, params };
  }

  /** Where a batch runs. Throws PgError when it cannot run correctly. */
  route(types: readonly number[], frames: readonly Buffer[]): BatchTarget {
    this.dropPendingSettings();
    if (types.length === 1 && types[0] === Frontend.FunctionCall) {
      const route = routeFunctionCall(this) as { kind: 'one'; shard: number };
      // A function may change anything: the shard is a writer of the transaction it runs in.
      return { ...route, ...FUNCTION_CALL_FLAGS };
    }
    let target: Route | null = null;
    let plan: StatementPlan | null = null;
    let params: BindParams | null = null;
    let statements = 0;
    let mayWrite = false;
    let preventsPrepare: string | null = null;
    /** For a split: the statement's text and types, where its Parse and Bind sit in the batch. */
    let source: { text: string; paramTypes: readonly number[]; isQuery: boolean } | null = null;
    let parseIndex = -1;
    let bindIndex = -1;
    const join = (r: Route, p: StatementPlan, bp: BindParams | null): void => {
      statements++;
      if (p.isWrite || (p.kind === 'other' && !p.isReadOnly)) mayWrite = true;
      preventsPrepare ??= p.preventsPrepare;
      if (target !== null && !sameRoute(target, r)) {
        throw new MixedShardsError(
          'statements in one request (up to Sync) go to different shards; send them separately',
          'Sync after each statement, or keep a request to one shard.',
        );
      }
      target = r;
      plan = p;
      params = bp;
    };
    for (let i = 0; i < types.length; i++) {
      const frame = frames[i];
      switch (types[i]) {
        case Frontend.Query: {
          const sql = frame.toString('utf8', 5, cstringEnd(frame, 5));
          source = { text: sql, paramTypes: [], isQuery: true };
          const pinned = this.routeByLiterals(sql);
          if (pinned !== null) {
            this.noteSettings(pinned.plan);
            join(pinned.route, pinned.plan, null);
            break;
          }
          for (const p of this.plansFor(sql)) {
            this.noteSettings(p);
            const r = this.routePlan(p, null);
            join(r.route, r.plan, r.params);
          }
          break;
        }
        case Frontend.Parse: {
          const nameEnd = cstringEnd(frame, 5);
          const sql = parseText(frame, nameEnd);
          const plans = this.plansFor(sql);
          if (plans.length > 1)
            throw PgError.syntaxError('cannot insert multiple commands into a prepared statement');
          const entry: PreparedEntry = { plans, text: sql, paramTypes: parseParamTypes(frame) };
          if (nameEnd === 5) this.unnamed = entry;
          else this.named.set(frame.toString('utf8', 5, nameEnd), entry);
          parseIndex = i;
          break;
        }
        case Frontend.Bind: {
          const entry = this.boundEntry(frame);
          if (entry === null || entry.plans.length === 0) break; // unknown statement: any server answers 26000 itself
          // Planned again from the cache (a hit, unless what the router knows changed since the Parse: a table's
          // columns learnt for this very Bind must be in its plan).
          const plans = this.plansFor(entry.text);
          const bp = decodeBindParams(frame);
          this.noteSettings(plans[0]);
          const r = this.routePlan(plans[0], bp);
          join(r.route, r.plan, r.params);
          source = { text: entry.text, paramTypes: entry.paramTypes, isQuery: false };
          bindIndex = i;
          break;
        }
        case Frontend.FunctionCall:
          mayWrite = true; // behind other messages of the request: it runs where they do, and may write there
          break;
        case Frontend.Close:
          if (frame[5] === 0x53) {
            const nameEnd = cstringEnd(frame, 6);
            if (nameEnd > 6) this.named.delete(frame.toString('utf8', 6, nameEnd));
          }
          break;
      }
    }
    const route = target as Route | null;
    const noFlags = {
      isSessionLevel: false,
      isMultiShardWrite: false,
      isCommit: false,
      isWrite: false,
      mayWrite,
      preventsPrepare,
      sessionStatement: null,
      isPlainSelect: statements === 1 && !mayWrite && (plan as StatementPlan | null)?.kind === 'select',
    };
    if (route === null) return { kind: 'one', shard: this.routing.nextReadShard(), ...noFlags }; // Describe / Sync only
    if (route.kind === 'one') return { ...route, ...noFlags };
    if (route.kind === 'copy_in') {
      if (statements > 1 || source === null || !source.isQuery) {
        throw unsupported(
          'COPY … FROM STDIN on a sharded database must be sent alone, as a simple Query',
          'psql \\copy, pg-copy-streams and COPY in pgbench do so.',
        );
      }
      return {
        kind: 'copyIn',
        shards: route.shards,
        copy: route.copy,
        table: copyTableKey(plan as StatementPlan | null),
        ...MULTI_SHARD_WRITE,
      };
    }
    if (route.kind === 'split') {
      if (statements > 1 || source === null) {
        throw unsupported('a multi-row INSERT split across shards must be the only statement of its request');
      }
      return splitTarget(route.rowShards, source, types, frames, parseIndex, bindIndex);
    }
    const shards = route.kind === 'many' ? route.shards : allShards(this.shardCount);
    if (statements > 1) {
      throw new MixedShardsError(
        'only one statement per request can run on several shards',
        'Send each statement that needs several shards in its own request (Sync after it).',
      );
    }
    const isSessionLevel = route.kind === 'session';
    const shardQuery = (plan as StatementPlan | null)?.select?.shardQuery ?? null;
    if (
      !isSessionLevel &&
      route.kind === 'many' &&
      route.isReplicated !== true &&
      shardQuery !== null &&
      source !== null
    ) {
      // The shards run the plan's rewritten SELECT (hidden columns, HAVING and LIMIT/OFFSET moved to the merge).
      const part = shardRequest(shardQuery, params, source, types, frames, parseIndex, bindIndex);
      return {
        kind: 'split',
        shards,
        parts: shards.map(() => part),
        spec: this.withCollation(
          mergeSpecFor(plan as StatementPlan | null, params, { paramTypes: source.paramTypes }),
        ),
        clientParse: parseIndex >= 0 ? frames[parseIndex] : null,
        ...noFlags,
      };
    }
    const spec =
      isSessionLevel || route.kind !== 'many' || (plan as StatementPlan | null)?.kind === 'ddl'
        ? BROADCAST_SPEC
        : route.isReplicated === true
          ? { ...PASS_THROUGH_SPEC, isReplicated: true, isBroadcast: true }
          : copyOutSpec(
              plan as StatementPlan | null,
              this.withCollation(mergeSpecFor(plan as StatementPlan | null, params, null)),
            );
    const last = plan as StatementPlan | null;
    return {
      kind: 'many',
      shards,
      spec,
      isSessionLevel,
      // Wrapped in a transaction of the proxy's own outside BEGIN (all or nothing): whatever writes, unless
      // PostgreSQL refuses it inside a transaction block.
      isMultiShardWrite:
        last !== null && last.hasTransactionalWrite && !last.isNonTransactional && shards.length >= 2,
      isCommit: last !== null && last.kind === 'commit',
      isWrite: last !== null && last.isWrite,
      mayWrite,
      preventsPrepare,
      isPlainSelect: noFlags.isPlainSelect,
      sessionStatement: isSessionLevel ? last : null,
    };
  }

  /**
   * The routed request succeeded outside a transaction: its SET / RESET / DISCARD ALL now hold for the session (and
   * for the servers it ran on). Returns them, for the caller to record on those servers.
   */
  confirmSettings(): readonly SettingChange[] {
    return this.applySettings(this.takePendingSettings());
  }

  /** The routed request's SET / RESET / DISCARD ALL, taken to be applied later (a transaction block's, at COMMIT). */
  takePendingSettings(): readonly SettingChange[] {
    const changes = this.pendingSettings;
    if (changes.length > 0) this.pendingSettings = [];
    return changes;
  }

  /** Settings that now hold for the session (returned, for the caller to record on its servers). */
  applySettings(changes: readonly SettingChange[]): readonly SettingChange[] {
    for (const c of changes) applySettingChange(this.settings, c, this.startupSettings);
    return changes;
  }

  /** The request failed or ran inside a transaction (whose end may undo it): its settings are not kept. */
  dropPendingSettings(): void {
    // Most requests set nothing: no new array per request on the routing path.
    if (this.pendingSettings.length > 0) this.pendingSettings = [];
  }

  /** A simple Query's statements, each as its own text (parsed again: scripts across shards are rare). */
  scriptStatements(sql: string): ScriptStatements {
    const plans = this.plansFor(sql);
    const texts = parseStatements(sql).map((p) => p.text);
    return {
      texts,
      isRunnable: texts.length > 1 && !plans.some((p) => p.kind === 'copy'),
      hasTransactionControl: plans.some((p) => TRANSACTION_CONTROL.has(p.kind)),
    };
  }

  /** The prepared statement a Bind uses, as this session prepared it (null: unknown here). */
  private boundEntry(frame: Buffer): PreparedEntry | null {
    const portalEnd = cstringEnd(frame, 5);
    const stmtEnd = cstringEnd(frame, portalEnd + 1);
    // The unnamed statement without decoding a name (most Binds).
    if (stmtEnd === portalEnd + 1) return this.unnamed;
    return this.named.get(frame.toString('utf8', portalEnd + 1, stmtEnd)) ?? null;
  }

  /** Whether an extended-protocol request's statements (its Parses, the statements its Binds use) control transactions. */
  hasTransactionControl(types: readonly number[], frames: readonly Buffer[]): boolean {
    for (let i = 0; i < types.length; i++) {
      const frame = frames[i];
      let plans: readonly StatementPlan[] | undefined;
      if (types[i] === Frontend.Parse) plans = this.plansFor(parseText(frame));
      else if (types[i] === Frontend.Bind) plans = this.boundEntry(frame)?.plans;
      if (plans?.some((p) => TRANSACTION_CONTROL.has(p.kind)) === true) return true;
    }
    return false;
  }

  /** A merge that orders or aggregates must know when text does not sort by bytes in this database. */
  private withCollation(spec: MergeSpec): MergeSpec {
    const collation = this.routing.textCollation;
    if (collation === null || (spec.orderBy.length === 0 && spec.aggregates === null)) return spec;
    return { ...spec, textCollation: collation };
  }

  /** The column order of a sharded table, learned from a shard: plans made without it are dropped. */
  learnTableColumns(
    table: string,
    columns: readonly string[],
    generated: readonly GeneratedColumn[] = [],
  ): void {
    const schema = this.routing.schema;
    schema.tableColumns ??= new Map();
    schema.tableColumns.set(table, columns);
    schema.generatedColumns ??= new Map();
    schema.generatedColumns.set(table, generated);
    this.dropPlans();
  }

  /** A column order learned earlier (COPY without a column list uses it too). */
  knownTableColumns(table: string): readonly string[] | undefined {
    return this.routing.schema.tableColumns?.get(table);
  }

  /** DDL may change column order and what relations and functions are: forget what was learned, and its plans. */
  private forgetTableColumns(): void {
    const schema = this.routing.schema;
    const known = schema.tableColumns;
    const facts = schema.catalog;
    const hasColumns = known !== undefined && known.size > 0;
    const hasFacts = facts !== undefined && (facts.relations.size > 0 || facts.functions.size > 0);
    if (!hasColumns && !hasFacts) return;
    known?.clear();
    schema.generatedColumns?.clear();
    facts?.clear();
    this.sequenceValues.clear(); // a sequence may have been dropped and made again: its old values are not ours
    this.dropPlans();
  }

  /** Values of the sequences of record (the columns of sharded tables the proxy fills). */
  get sequenceValues(): SequenceValues {
    return this.routing.sequenceValues ?? (this.ownSequenceValues ??= new SequenceValues());
  }

  private ownSequenceValues: SequenceValues | null = null;

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
    const statement = this.requestStatement(types, frames);
    if (statement === null) throw PgError.internal('no INSERT found to fill with sequence values');
    const table = this.insertTableColumns(statement.text);
    const sql = fillGeneratedValues(statement.text, fills, values, table);
    return withStatementText(types, frames, statement, sql, statement.paramTypes);
  }

  /**
   * The statement a request runs: a Query's text, or the statement its Bind binds (parsed in the request or earlier),
   * with where the Parse and Bind sit. Null when it runs none.
   */
  requestStatement(types: readonly number[], frames: readonly Buffer[]): RequestStatement | null {
    let statement: RequestStatement | null = null;
    let parseIndex = -1;
    let paramCount = 0;
    for (let i = 0; i < types.length; i++) {
      const frame = frames[i];
      if (types[i] === Frontend.Query) {
        const text = frame.toString('utf8', 5, cstringEnd(frame, 5));
        statement = { text, paramTypes: [], isQuery: true, parseIndex: -1, bindIndex: -1, paramCount: 0 };
      } else if (types[i] === Frontend.Parse) {
        parseIndex = i;
        const paramTypes = parseParamTypes(frame);
        paramCount = Math.max(paramCount, paramTypes.length);
        statement = {
          text: parseText(frame),
          paramTypes,
          isQuery: false,
          parseIndex,
          bindIndex: -1,
          paramCount,
        };
      } else if (types[i] === Frontend.Bind) {
        const entry = this.boundEntry(frame);
        const parsed = statement as RequestStatement | null; // set by a Parse earlier in the loop
        const text = parseIndex < 0 && entry !== null ? entry.text : parsed?.text;
        const paramTypes = parseIndex < 0 && entry !== null ? entry.paramTypes : (parsed?.paramTypes ?? []);
        if (text === undefined) continue;
        paramCount = Math.max(paramCount, decodeBind(frame).values.length, paramTypes.length);
        statement = { text, paramTypes, isQuery: false, parseIndex, bindIndex: i, paramCount };
      }
    }
    return statement;
  }

  /** The column order of an INSERT's table, when learned (its column list may have to be written out). */
  private insertTableColumns(sql: string): readonly string[] {
    const t = this.plansFor(sql)[0]?.tables[0]; // an INSERT's first table is its target
    if (t === undefined) return [];
    return this.knownTableColumns(t.schema !== null ? `${t.schema}.${t.name}` : t.name) ?? [];
  }

  /** The database's catalog facts (views, temporary tables, functions that may write), learned on first use. */
  get catalogFacts(): CatalogFacts | undefined {
    return this.routing.schema.catalog;
  }

  /** Analyse `sql` against this database's sharding schema (function bodies in catalog lookups). */
  analyze(sql: string): StatementPlan[] {
    return analyzeQuery(sql, this.routing.schema);
  }

  /** What the router knows changed (catalog facts, column order): plans made before are dropped. */
  dropPlans(): void {
    this.routing.plans.clear();
    this.routing.literalPlans?.clear();
  }

  /** SET / RESET of shardgate.shard and shardgate.sharding_key change this session's routing. */
  private noteSettings(plan: StatementPlan): void {
    if (plan.kind === 'ddl') this.forgetTableColumns();
    const sqlName = plan.sqlStatement?.name;
    if (plan.kind === 'prepare' && sqlName != null) this.sqlPrepared.set(sqlName, plan.text);
    else if (plan.kind === 'deallocate') {
      if (sqlName == null) this.sqlPrepared.clear();
      else this.sqlPrepared.delete(sqlName);
    } else if (plan.kind === 'discard' && plan.setsManualShard === null) this.sqlPrepared.clear(); // DISCARD ALL
    const change = settingChange(plan);
    if (change !== null) this.pendingSettings.push(change);
    if (plan.setsManualShard !== undefined) this.sessionShard = plan.setsManualShard;
    if (plan.setsManualShardingKey !== undefined) this.sessionShardingKey = plan.setsManualShardingKey;
    if (plan.kind === 'discard') {
      this.sessionShard = null;
      this.sessionShardingKey = null;
    }
  }
}

/** The parameters (1-based) that decide where a statement runs or how its rows merge: key values, LIMIT, OFFSET. */
function routingParams(plan: StatementPlan): number[] {
  const out: number[] = [];
  for (const s of plan.shardKey?.sources ?? []) if (s.kind === 'param') out.push(s.index);
  for (const k of plan.insert?.insertKeys ?? []) if (k !== null && k.kind === 'param') out.push(k.index);
  for (const c of [plan.select?.limit, plan.select?.offset])
    if (c != null && c.kind === 'param') out.push(c.index);
  return out;
}

function allShards(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function sameRoute(a: Route, b: Route): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'one' && b.kind === 'one') return a.shard === b.shard;
  if (a.kind === 'many' && b.kind === 'many')
    return a.shards.length === b.shards.length && a.shards.every((s, i) => s === b.shards[i]);
  return true;
}

function countValue(source: CountSource | null, params: BindParams | null): number | null {
  if (source === null) return null;
  let text: string | null = null;
  if (source.kind === 'literal') text = source.value;
  else if (params !== null) {
    const v = params.values[source.index - 1];
    if (v === null || v === undefined) return null; // LIMIT NULL = no limit
    if (params.formats[source.index - 1] === 1) {
      if (v.length === 8) return Number(v.readBigInt64BE(0));
      if (v.length === 4) return v.readInt32BE(0);
      throw unsupported('a binary LIMIT/OFFSET parameter of unexpected size');
    }
    text = v.toString('utf8');
  }
  if (text === null || text.toUpperCase() === 'ALL') return null;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0)
    throw unsupported(`cannot merge a LIMIT/OFFSET of "${text}" across shards`);
  return n;
}

/**
 * How to merge a fan-out statement's replies; refuses the SELECT shapes the merger cannot answer exactly. `rewritten`:
 * the shards run the plan's `shardQuery` (the Parse's declared parameter types come along, for HAVING parameters);
 * null when they run the client's own text.
 */
function mergeSpecFor(
  plan: StatementPlan | null,
  params: BindParams | null,
  rewritten: { paramTypes: readonly number[] } | null,
): MergeSpec {
  const select = plan?.select ?? null;
  if (plan?.sumsShardedSizes != null) {
    // Sizes of a sharded table: each column is the sum of the shards' (bigint, added up exactly as counts are).
    const columns = Array.from({ length: plan.sumsShardedSizes }, (_, column) => ({
      column,
      fn: 'count' as const,
    }));
    return { orderBy: [], limit: null, offset: 0, aggregates: columns };
  }
  if (plan === null || plan.kind !== 'select' || select === null) return PASS_THROUGH_SPEC;
  const hint = 'Add the sharding key so the query runs on one shard, or route it by hand.';
  const shardQuery = rewritten !== null ? select.shardQuery : null;
  const hiddenCount = shardQuery?.hiddenCount ?? 0;
  const offset = countValue(select.offset, params) ?? 0;
  const limit = countValue(select.limit, params);
  /** ORDER BY items as columns of the merged rows (hidden ones after the select list, or counted from the end). */
  const sortKeys = (): SortKey[] =>
    select.orderBy.map((o) => {
      let column: number;
      if (o.position !== null) column = o.position - 1;
      else if (o.hidden !== null && shardQuery !== null)
        column = select.targetCount !== null ? select.targetCount + o.hidden : o.hidden - hiddenCount;
      else {
        throw unsupported(
          'ORDER BY across shards must name output columns (by position or name in the select list)',
          hint,
        );
      }
      const key: SortKey = { column, isDescending: o.descending, isNullsFirst: o.nullsFirst };
      if (o.isByteCollated) key.isByteCollated = true;
      else if (o.collation !== null) key.collation = o.collation;
      return key;
    });
  /** The aggregates (the select list's and hidden ones), each as the plan says it merges (aggregate-columns.ts). */
  const mergeableAggregates = (): AggregateColumn[] =>
    aggregateColumns(select, params, shardQuery !== null, hint);
  /** Aggregates in the client's select list (not hidden ones). */
  const visibleAggregateCount = select.aggregates.filter(
    (a) => select.targetCount === null || a.position <= select.targetCount,
  ).length;
  const having =
    select.having !== null && shardQuery !== null
      ? { having: havingFilter(select.having, params, rewritten?.paramTypes ?? []) }
      : {};
  const hidden = hiddenCount > 0 ? { hiddenCount } : {};
  if (select.setOperation !== null) return setOperationSpec(select, sortKeys(), limit, offset, hint);
  if (select.distinct && !select.distinctOn) {
    // DISTINCT = grouping by every output column: each shard's distinct rows are merged and de-duplicated.
    if (select.hasGroupBy || select.aggregates.length > 0 || select.targetCount === null) {
      throw unsupported(
        'SELECT DISTINCT across shards needs plain output columns (no *, no GROUP BY or aggregates)',
        hint,
      );
    }
    const groupBy = Array.from({ length: select.targetCount }, (_, i) => i);
    return { orderBy: sortKeys(), limit, offset, aggregates: [], groupBy, ...hidden };
  }
  if (select.hasGroupBy) {
    const groupBy = select.groupByPositions.map((p) => p - 1);
    const aggregates = mergeableAggregates();
    if (
      groupBy.length === 0 ||
      select.targetCount === null ||
      select.targetCount !== groupBy.length + visibleAggregateCount
    ) {
      throw unsupported(
        'GROUP BY across shards needs every GROUP BY expression in the select list, and only those and aggregates there',
        hint,
      );
    }
    return { orderBy: sortKeys(), limit, offset, aggregates, groupBy, ...hidden, ...having };
  }
  if (select.aggregates.length > 0) {
    const aggregates = mergeableAggregates();
    if (select.targetCount !== null && visibleAggregateCount !== select.targetCount) {
      throw unsupported(
        'aggregates mixed with plain columns across shards need those columns in a GROUP BY',
        hint,
      );
    }
    if (offset > 0) throw unsupported('OFFSET with aggregates across shards is not supported yet', hint);
    // DISTINCT values: the shards group by them, so each returns its sub-groups, merged into the one row due.
    const grandTotal = select.aggregates.some((a) => a.merge === 'values')
      ? { groupBy: [], isGrandTotal: true }
      : {};
    return { orderBy: [], limit, offset: 0, aggregates, ...hidden, ...having, ...grandTotal };
  }
  if (select.having !== null) {
    throw unsupported('HAVING across shards needs GROUP BY or aggregates in the select list', hint);
  }
  // DISTINCT ON: the merged order keeps the first row of each run of equal keys (a no-op when the keys hold the
  // sharding column: a group then never spans shards). Without mergeable positions only that case got this far.
  const distinctOn =
    select.distinctOn && select.distinctOnPositions !== null
      ? { distinctOn: select.distinctOnPositions.map((p) => p - 1) }
      : {};
  return { orderBy: sortKeys(), limit, offset, aggregates: null, ...hidden, ...distinctOn };
}

/**
 * A set operation whose every branch the router found fan-out-safe (cross-shard.ts): UNION ALL concatenates the
 * shards' rows; UNION also removes rows equal across shards (each shard removed its own), as DISTINCT does — grouping
 * by every output column, compared as PostgreSQL compares them. ORDER BY (output columns), then OFFSET and LIMIT,
 * apply to the merged rows; the shards return their first offset + limit rows (select-shape.ts).
 */
function setOperationSpec(
  select: NonNullable<StatementPlan['select']>,
  orderBy: SortKey[],
  limit: number | null,
  offset: number,
  hint: string,
): MergeSpec {
  const name = (select.setOperation ?? '').toUpperCase().replace('_', ' ');
  if (select.setOperation === 'union_all') return { orderBy, limit, offset, aggregates: null };
  if (select.setOperation !== 'union')
    throw unsupported(`${name} across shards needs every shard's rows in one place`, hint);
  if (select.targetCount === null)
    throw unsupported(
      'UNION across shards needs the select list of its first branch written out (no *)',
      hint,
    );
  const groupBy = Array.from({ length: select.targetCount }, (_, i) => i);
  return { orderBy, limit, offset, aggregates: [], groupBy };
}

/** Type OIDs of the casts a HAVING constant may carry (select-shape.ts lists the names). */
const CAST_TYPE_OIDS: Readonly<Record<string, number>> = {
  int2: TypeOid.int2,
  int4: TypeOid.int4,
  int8: TypeOid.int8,
  numeric: TypeOid.numeric,
  float4: TypeOid.float4,
  float8: TypeOid.float8,
  text: TypeOid.text,
  varchar: TypeOid.varchar,
  bpchar: TypeOid.bpchar,
};

const INTEGER_OIDS: ReadonlySet<number> = new Set([TypeOid.int2, TypeOid.int4, TypeOid.int8]);

/** The plan's HAVING with its parameters bound: what the merger evaluates on each merged group. */
function havingFilter(
  condition: HavingCondition,
  params: BindParams | null,
  paramTypes: readonly number[],
): HavingFilter {
  switch (condition.kind) {
    case 'and':
    case 'or':
      return { kind: condition.kind, args: condition.args.map((c) => havingFilter(c, params, paramTypes)) };
    case 'not':
      return { kind: 'not', arg: havingFilter(condition.arg, params, paramTypes) };
    case 'compare':
      return {
        kind: 'compare',
        op: condition.op,
        left: havingValue(condition.left, params, paramTypes),
        right: havingValue(condition.right, params, paramTypes),
      };
  }
}

function havingValue(
  operand: HavingOperand,
  params: BindParams | null,
  paramTypes: readonly number[],
): HavingValue {
  if (operand.kind === 'column') return { kind: 'column', column: operand.position - 1 };
  const castOid = operand.castType !== null ? (CAST_TYPE_OIDS[operand.castType] ?? 0) : 0;
  let value: Buffer | null;
  let format: number = Format.Text;
  let typeOid = castOid;
  if (operand.kind === 'literal') {
    value = operand.value === null ? null : Buffer.from(operand.value, 'utf8');
    // A number literal is integer or numeric (both compare as exact decimals); a quoted one takes the other side's type.
    if (typeOid === 0 && !operand.isString && value !== null) typeOid = TypeOid.numeric;
  } else {
    const i = operand.index - 1;
    if (params === null || i < 0 || i >= params.values.length)
      throw PgError.protocolViolation(`HAVING refers to parameter $${operand.index}, which the Bind lacks`);
    value = params.values[i] ?? null;
    format = params.formats[i] ?? Format.Text;
    // A cast decides the parameter's type; else the type the Parse declared (0: PostgreSQL infers it from the
    // other side of the comparison, as the merger does).
    if (typeOid === 0) typeOid = paramTypes[i] ?? 0;
    if (format === Format.Binary && typeOid === 0)
      throw unsupported('a binary HAVING parameter across shards needs a declared type (in Parse or a cast)');
  }
  // A numeric constant cast to an integer type is rounded, half away from zero (numeric → int).
  if (value !== null && format === Format.Text && INTEGER_OIDS.has(castOid)) {
    value = Buffer.from(roundToInteger(value.toString('latin1')), 'latin1');
  }
  return { kind: 'constant', value, format, typeOid };
}

/** `12.5` → `13`, `-12.5` → `-13`, `7` → `7`. */
function roundToInteger(text: string): string {
  const m = /^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$/.exec(text);
  if (m === null || (m[2] === '' && (m[3] ?? '') === '')) return text;
  let integer = BigInt(m[2] === '' ? '0' : m[2]);
  if ((m[3] ?? '').charCodeAt(0) >= 0x35) integer += 1n; // first fraction digit ≥ 5
  return integer === 0n ? '0' : `${m[1] === '-' ? '-' : ''}${integer}`;
}

/**
 * The request with its statement replaced by the plan's shard query: Bind's result formats extended to the hidden
 * columns (text) when it lists one per column, and a Describe of the client's statement pointed at the rewritten
 * (unnamed) one, whose RowDescription the merger turns back into the client's (parsed before that Describe when the
 * client's Parse came in an earlier request).
 */
function shardRequest(
  shardQuery: ShardQuery,
  params: BindParams | null,
  source: { text: string; paramTypes: readonly number[]; isQuery: boolean },
  types: readonly number[],
  frames: readonly Buffer[],
  parseIndex: number,
  bindIndex: number,
): SplitPart {
  const paramCount = params === null ? 0 : params.values.length;
  const paramMap = Array.from({ length: paramCount }, (_, i) => i + 1);
  const part = rebuildRequest(shardQuery.sql, paramMap, source, types, frames, parseIndex, bindIndex);
  if (source.isQuery) return part;
  const outTypes = [...part.types];
  const outFrames = [...part.frames];
  // A Describe of the statement before its Bind (no Parse in the request): the rewritten statement is parsed there.
  const parseAt = outTypes.indexOf(Frontend.Parse);
  const describeAt = outTypes.findIndex(
    (t, i) => t === Frontend.Describe && outFrames[i][5] === 0x53 /* S */,
  );
  if (describeAt >= 0 && describeAt < parseAt) {
    const [parseFrame] = outFrames.splice(parseAt, 1);
    outTypes.splice(parseAt, 1);
    outFrames.splice(describeAt, 0, parseFrame);
    outTypes.splice(describeAt, 0, Frontend.Parse);
  }
  for (let i = 0; i < outTypes.length; i++) {
    if (outTypes[i] === Frontend.Bind && shardQuery.hiddenCount > 0)
      outFrames[i] = withHiddenResultFormats(outFrames[i], shardQuery);
    else if (outTypes[i] === Frontend.Describe && outFrames[i][5] === 0x53)
      outFrames[i] = DESCRIBE_UNNAMED_STATEMENT;
  }
  return { ...part, types: outTypes, frames: outFrames };
}

/**
 * A Bind whose per-column result format codes (more than one) get a code for each hidden column: the format of the
 * select-list entry it stands for (array_agg's elements), else text.
 */
function withHiddenResultFormats(frame: Buffer, shardQuery: ShardQuery): Buffer {
  const bind = decodeBind(frame);
  const count = bind.resultFormats.readInt16BE(0);
  if (count <= 1) return frame; // none (all text) or one for every column: hidden columns follow it
  const hiddenCount = shardQuery.hiddenCount;
  const formats = Buffer.alloc(2 + 2 * (count + hiddenCount));
  bind.resultFormats.copy(formats, 0, 0, 2 + 2 * count);
  formats.writeInt16BE(count + hiddenCount, 0);
  shardQuery.hiddenFormatSources.forEach((source, j) => {
    if (source !== null && source <= count)
      formats.writeInt16BE(bind.resultFormats.readInt16BE(2 * source), 2 + 2 * (count + j));
  });
  const paramMap = bind.values.map((_, i) => i + 1);
  return encodeBind({ ...bind, resultFormats: formats }, paramMap);
}

/** The per-shard requests of a multi-row INSERT whose rows belong to several shards. */
function splitTarget(
  rowShards: readonly number[],
  source: { text: string; paramTypes: readonly number[]; isQuery: boolean },
  types: readonly number[],
  frames: readonly Buffer[],
  parseIndex: number,
  bindIndex: number,
): BatchTarget {
  for (let i = 0; i < types.length; i++) {
    if (types[i] === Frontend.Describe && frames[i][5] === 0x53) {
      throw unsupported(
        'a multi-row INSERT split across shards cannot be described as a statement in the same request',
        'Describe the portal instead, or send the Describe separately.',
      );
    }
  }
  const pieces = splitInsert(source.text, rowShards);
  const shards = pieces.map((p) => p.shard);
  const local = new Map(shards.map((s, i) => [s, i]));
  const parts = pieces.map((piece) =>
    rebuildRequest(piece.sql, piece.paramMap, source, types, frames, parseIndex, bindIndex),
  );
  return {
    kind: 'split',
    shards,
    parts,
    spec: { ...PASS_THROUGH_SPEC, rowShards: rowShards.map((s) => local.get(s) as number) },
    clientParse: parseIndex >= 0 ? frames[parseIndex] : null,
    ...MULTI_SHARD_WRITE,
  };
}

/**
 * The request with its statement replaced by `sql` (parameters picked from the original by `paramMap`): a Query, or
 * an unnamed Parse + Bind in place of the client's (a Parse is added before the Bind when the client's came earlier).
 */

/** `schema.table` or `table` of a COPY's table (the key of `tableColumns`). */
function copyTableKey(plan: StatementPlan | null): string | null {
  const t = plan?.tables[0];
  if (t === undefined) return null;
  return t.schema !== null ? `${t.schema}.${t.name}` : t.name;
}

/** COPY … TO with HEADER: the merged stream carries the header line once. */
function copyOutSpec(plan: StatementPlan | null, spec: MergeSpec): MergeSpec {
  return plan?.kind === 'copy' && plan.copy?.direction === 'to' && plan.copy.header
    ? { ...spec, copyOutHeader: true }
    : spec;
}
