// Routing for one client session on a sharded database: remembers the plans of the client's prepared statements,
// keeps its manual-routing settings, and turns a batch of frames (one flush point's worth) into a target — one shard,
// or several shards with the merge spec for their replies. Whatever cannot run correctly is refused with a PgError.
import { Frontend } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import type { ShardingSchema } from '../sharding/schema.js';
import { analyzeQuery } from '../router/analyze.js';
import type { PlanCache } from '../router/plan-cache.js';
import type { CountSource, StatementPlan } from '../router/plan.js';
import { decodeBindParams, type BindParams } from '../router/bind-params.js';
import { routeStatement, type Route, type RouteContext } from '../router/route.js';
import { PASS_THROUGH_SPEC, type MergeSpec, type SortKey } from '../execute/merge-spec.js';
import {
  parseParamTypes,
  pushDownOffset,
  readBind,
  stripLimit,
  splitBind,
  splitInsert,
  splitParse,
} from '../router/rewrite.js';
import { query } from '../protocol/messages.js';

/** One shard's frames of a split INSERT (`isParseInjected`: its ParseComplete is the proxy's, not the client's). */
export interface SplitPart {
  readonly types: number[];
  readonly frames: Buffer[];
  readonly isParseInjected: boolean;
}

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
) & {
  /** Transaction control or a session setting (allowed in a failed transaction; runs on every shard). */
  readonly isSessionLevel: boolean;
  /** Changes rows on several shards: outside a transaction it runs in one on each shard, committed only if all succeed. */
  readonly isMultiShardWrite: boolean;
  /** A plain COMMIT (a failed transaction must end with ROLLBACK on every shard instead). */
  readonly isCommit: boolean;
  /** Takes row or table locks on several shards (DML, DDL): runs on one shard after another, in shard order. */
  readonly isWrite: boolean;
  /**
   * Some statement of the request may change data on the shards it runs on (DML, DDL, CALL/DO and other statements
   * not known to be read-only): inside a transaction those shards become writers for the commit decision.
   */
  readonly mayWrite: boolean;
};

/** What the routing needs per database: the schema and a plan cache shared by all its sessions. */
export interface DatabaseRouting {
  readonly schema: ShardingSchema;
  readonly plans: PlanCache;
  /** Round-robin shard for reads any shard can answer. */
  nextReadShard(): number;
}

/** A statement the client prepared: its plans, and its text and parameter types (to rebuild a split INSERT). */
interface PreparedEntry {
  readonly plans: readonly StatementPlan[];
  readonly text: string;
  readonly paramTypes: readonly number[];
}

const DML_KINDS = new Set<StatementPlan['kind']>(['insert', 'update', 'delete', 'merge']);

function unsupported(message: string, hint?: string): PgError {
  return new PgError('ERROR', SqlState.FeatureNotSupported, message, undefined, hint);
}

function cstringEnd(frame: Buffer, from: number): number {
  const end = frame.indexOf(0, from);
  if (end < 0) throw PgError.protocolViolation('unterminated string in message');
  return end;
}

export class SessionRouter implements RouteContext {
  private readonly routing: DatabaseRouting;
  private readonly named = new Map<string, PreparedEntry>();
  private unnamed: PreparedEntry | null = null;
  readonly schema: ShardingSchema;
  sessionShard: number | null = null;
  sessionShardingKey: string | null = null;

  constructor(routing: DatabaseRouting) {
    this.routing = routing;
    this.schema = routing.schema;
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

  /** Where a batch runs. Throws PgError when it cannot run correctly. */
  route(types: readonly number[], frames: readonly Buffer[]): BatchTarget {
    let target: Route | null = null;
    let plan: StatementPlan | null = null;
    let params: BindParams | null = null;
    let statements = 0;
    let mayWrite = false;
    /** For a split: the statement's text and types, where its Parse and Bind sit in the batch. */
    let source: { text: string; paramTypes: readonly number[]; isQuery: boolean } | null = null;
    let parseIndex = -1;
    let bindIndex = -1;
    const join = (r: Route, p: StatementPlan, bp: BindParams | null): void => {
      statements++;
      if (p.isWrite || (p.kind === 'other' && !p.isReadOnly)) mayWrite = true;
      if (target !== null && !sameRoute(target, r)) {
        throw unsupported(
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
          for (const p of this.plansFor(sql)) {
            this.noteSettings(p);
            join(routeStatement(p, null, this), p, null);
          }
          source = { text: sql, paramTypes: [], isQuery: true };
          break;
        }
        case Frontend.Parse: {
          const nameEnd = cstringEnd(frame, 5);
          const sql = frame.toString('utf8', nameEnd + 1, cstringEnd(frame, nameEnd + 1));
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
          const portalEnd = cstringEnd(frame, 5);
          const stmtEnd = cstringEnd(frame, portalEnd + 1);
          const entry =
            stmtEnd === portalEnd + 1
              ? this.unnamed
              : (this.named.get(frame.toString('utf8', portalEnd + 1, stmtEnd)) ?? null);
          if (entry === null || entry.plans.length === 0) break; // unknown statement: any server answers 26000 itself
          const plans = entry.plans;
          const bp = decodeBindParams(frame);
          this.noteSettings(plans[0]);
          join(routeStatement(plans[0], bp, this), plans[0], bp);
          source = { text: entry.text, paramTypes: entry.paramTypes, isQuery: false };
          bindIndex = i;
          break;
        }
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
    };
    if (route === null) return { kind: 'one', shard: this.routing.nextReadShard(), ...noFlags }; // Describe / Sync only
    if (route.kind === 'one') return { ...route, ...noFlags };
    if (route.kind === 'split') {
      if (statements > 1 || source === null) {
        throw unsupported('a multi-row INSERT split across shards must be the only statement of its request');
      }
      return splitTarget(route.rowShards, source, types, frames, parseIndex, bindIndex);
    }
    const shards = route.kind === 'many' ? route.shards : allShards(this.shardCount);
    if (statements > 1) {
      throw unsupported(
        'only one statement per request can run on several shards',
        'Send each statement that needs several shards in its own request (Sync after it).',
      );
    }
    const isSessionLevel = route.kind === 'session';
    const select = (plan as StatementPlan | null)?.select ?? null;
    const isGrouped =
      select !== null &&
      (select.hasGroupBy || select.distinct) &&
      (select.limit !== null || select.offset !== null);
    if (
      !isSessionLevel &&
      route.kind === 'many' &&
      select !== null &&
      (select.offset !== null || isGrouped) &&
      source !== null
    ) {
      // OFFSET: every shard returns its first limit + offset rows; the merge skips the offset. GROUP BY: every shard
      // returns all its partial groups; LIMIT/OFFSET apply to the merged groups.
      const rewritten = isGrouped ? stripLimit(source.text) : pushDownOffset(source.text);
      if (rewritten === null)
        throw unsupported('this OFFSET form cannot run across shards (FETCH … WITH TIES)');
      const paramCount = params === null ? 0 : (params as BindParams).values.length;
      const paramMap = Array.from({ length: paramCount }, (_, i) => i + 1);
      const part = rebuildRequest(rewritten, paramMap, source, types, frames, parseIndex, bindIndex);
      return {
        kind: 'split',
        shards,
        parts: shards.map(() => part),
        spec: mergeSpecFor(plan as StatementPlan | null, params),
        clientParse: parseIndex >= 0 ? frames[parseIndex] : null,
        ...noFlags,
      };
    }
    const spec =
      isSessionLevel || route.kind !== 'many'
        ? PASS_THROUGH_SPEC
        : route.isReplicated === true
          ? { ...PASS_THROUGH_SPEC, isReplicated: true }
          : mergeSpecFor(plan as StatementPlan | null, params);
    const last = plan as StatementPlan | null;
    return {
      kind: 'many',
      shards,
      spec,
      isSessionLevel,
      isMultiShardWrite: last !== null && DML_KINDS.has(last.kind),
      isCommit: last !== null && last.kind === 'commit' && last.transaction?.chain !== true,
      isWrite: last !== null && last.isWrite,
      mayWrite,
    };
  }

  /** SET / RESET of shardgate.shard and shardgate.sharding_key change this session's routing. */
  private noteSettings(plan: StatementPlan): void {
    if (plan.setsManualShard !== undefined) this.sessionShard = plan.setsManualShard;
    if (plan.setsManualShardingKey !== undefined) this.sessionShardingKey = plan.setsManualShardingKey;
    if (plan.kind === 'discard') {
      this.sessionShard = null;
      this.sessionShardingKey = null;
    }
  }
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

/** How to merge a fan-out statement's replies; refuses the SELECT shapes the merger cannot answer exactly. */
function mergeSpecFor(plan: StatementPlan | null, params: BindParams | null): MergeSpec {
  const select = plan?.select ?? null;
  if (plan === null || plan.kind !== 'select' || select === null) return PASS_THROUGH_SPEC;
  const hint = 'Add the sharding key so the query runs on one shard, or route it by hand.';
  if (select.setOperation !== null)
    throw unsupported(
      `${select.setOperation.toUpperCase().replace('_', ' ')} across shards is not supported yet`,
      hint,
    );
  if (select.distinctOn) throw unsupported('SELECT DISTINCT ON across shards is not supported yet', hint);
  const offset = countValue(select.offset, params) ?? 0;
  const limit = countValue(select.limit, params);
  /** ORDER BY items as output columns of the merged rows. */
  const sortKeys = (): SortKey[] =>
    select.orderBy.map((o) => {
      if (o.position === null) {
        throw unsupported(
          'ORDER BY across shards must name output columns (by position or name in the select list)',
          hint,
        );
      }
      return { column: o.position - 1, isDescending: o.descending, isNullsFirst: o.nullsFirst };
    });
  /** The select list's aggregates, when each one can be combined from per-shard results. */
  const mergeableAggregates = (): { column: number; fn: 'count' | 'sum' | 'min' | 'max' }[] =>
    select.aggregates.map((a) => {
      if (a.isDistinct) throw unsupported(`${a.fn}(DISTINCT …) across shards is not supported yet`, hint);
      if (a.fn === 'avg')
        throw unsupported('avg() across shards is not supported yet; use sum() and count()', hint);
      return { column: a.position - 1, fn: a.fn };
    });
  if (select.distinct) {
    // DISTINCT = grouping by every output column: each shard's distinct rows are merged and de-duplicated.
    if (select.hasGroupBy || select.aggregates.length > 0 || select.targetCount === null) {
      throw unsupported(
        'SELECT DISTINCT across shards needs plain output columns (no *, no GROUP BY or aggregates)',
        hint,
      );
    }
    const groupBy = Array.from({ length: select.targetCount }, (_, i) => i);
    return { orderBy: sortKeys(), limit, offset, aggregates: [], groupBy };
  }
  if (select.hasGroupBy) {
    const groupBy = select.groupByPositions.map((p) => p - 1);
    const aggregates = mergeableAggregates();
    if (
      groupBy.length === 0 ||
      select.targetCount === null ||
      select.targetCount !== groupBy.length + aggregates.length
    ) {
      throw unsupported(
        'GROUP BY across shards needs every GROUP BY expression in the select list, and only those and aggregates there',
        hint,
      );
    }
    return { orderBy: sortKeys(), limit, offset, aggregates, groupBy };
  }
  if (select.aggregates.length > 0) {
    const aggregates = mergeableAggregates();
    if (select.targetCount !== null && aggregates.length !== select.targetCount) {
      throw unsupported(
        'aggregates mixed with plain columns across shards need those columns in a GROUP BY',
        hint,
      );
    }
    if (offset > 0) throw unsupported('OFFSET with aggregates across shards is not supported yet', hint);
    return { orderBy: [], limit, offset: 0, aggregates };
  }
  return { orderBy: sortKeys(), limit, offset, aggregates: null };
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
    isSessionLevel: false,
    isMultiShardWrite: true,
    isCommit: false,
    isWrite: true,
    mayWrite: true,
  };
}

/**
 * The request with its statement replaced by `sql` (parameters picked from the original by `paramMap`): a Query, or
 * an unnamed Parse + Bind in place of the client's (a Parse is added before the Bind when the client's came earlier).
 */
function rebuildRequest(
  sql: string,
  paramMap: readonly number[],
  source: { text: string; paramTypes: readonly number[]; isQuery: boolean },
  types: readonly number[],
  frames: readonly Buffer[],
  parseIndex: number,
  bindIndex: number,
): SplitPart {
  if (source.isQuery) return { types: [Frontend.Query], frames: [query(sql)], isParseInjected: false };
  const bind = bindIndex >= 0 ? readBind(frames[bindIndex]) : null;
  const outTypes: number[] = [];
  const outFrames: Buffer[] = [];
  const newParse = splitParse(sql, source.paramTypes, paramMap);
  for (let i = 0; i < types.length; i++) {
    if (i === parseIndex) {
      outTypes.push(Frontend.Parse);
      outFrames.push(newParse);
    } else if (i === bindIndex && bind !== null) {
      if (parseIndex < 0) {
        outTypes.push(Frontend.Parse);
        outFrames.push(newParse);
      }
      outTypes.push(Frontend.Bind);
      outFrames.push(splitBind(bind, paramMap));
    } else {
      outTypes.push(types[i]);
      outFrames.push(frames[i]);
    }
  }
  return { types: outTypes, frames: outFrames, isParseInjected: parseIndex < 0 };
}
