// What a routed request runs, as the dispatch takes it: the BatchTarget — one shard, several shards with the merge
// spec for their replies (execute/fanout-merge-spec.ts) and, when the shards run a rewritten statement, their
// requests (request-rewrite.ts), or COPY … FROM STDIN split by rows — with the flags the transaction handling reads
// (session level, multi-shard write, COMMIT, may write, what prevents PREPARE). SessionRouter decides where each
// statement runs; this builds the target from that decision. Pure: no I/O.
import { Frontend } from '../protocol/codes.js';
import { PgError } from '../errors/pg-error.js';
import type { BindParams } from '../router/bind-params.js';
import type { CopyInfo, StatementPlan } from '../router/plan.js';
import type { Route } from '../router/route.js';
import { BROADCAST_SPEC, PASS_THROUGH_SPEC, type MergeSpec } from '../execute/merge-spec.js';
import { copyOutSpec, mergeSpecFor, withTextCollation } from '../execute/fanout-merge-spec.js';
import {
  shardQueryRequest,
  splitInsertRequests,
  type SplitPart,
  type StatementSource,
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

/** The flags of a request whose rows go to several shards (a split INSERT, COPY … FROM STDIN). */
export const MULTI_SHARD_WRITE = {
  isSessionLevel: false,
  isMultiShardWrite: true,
  isCommit: false,
  isWrite: true,
  mayWrite: true,
  preventsPrepare: null,
  sessionStatement: null,
} as const;

/** A FunctionCall message's target: one shard, which the function may write on. */
export function functionCallTarget(shard: number): BatchTarget {
  return {
    kind: 'one',
    shard,
    isSessionLevel: false,
    isMultiShardWrite: false,
    isCommit: false,
    isWrite: true,
    mayWrite: true,
    preventsPrepare: null,
    sessionStatement: null,
  };
}

/** A request that runs on one shard (`mayWrite`, `preventsPrepare`: as its statements say). */
export function oneShardTarget(
  shard: number,
  mayWrite: boolean,
  preventsPrepare: string | null,
): BatchTarget {
  if (preventsPrepare !== null) return makeOneShardTarget(shard, mayWrite, preventsPrepare);
  // Targets are read-only: the common ones (no reason against PREPARE) are made once per shard and write flag.
  const at = shard * 2 + (mayWrite ? 1 : 0);
  return (ONE_SHARD_TARGETS[at] ??= Object.freeze(makeOneShardTarget(shard, mayWrite, null)));
}

const ONE_SHARD_TARGETS: BatchTarget[] = [];

function makeOneShardTarget(shard: number, mayWrite: boolean, preventsPrepare: string | null): BatchTarget {
  return {
    kind: 'one',
    shard,
    isSessionLevel: false,
    isMultiShardWrite: false,
    isCommit: false,
    isWrite: false,
    mayWrite,
    preventsPrepare,
    sessionStatement: null,
  };
}

/** A request SessionRouter routed to more than one shard (or to COPY's split), statement by statement. */
export interface RoutedRequest {
  /** Where its statements run (all the same). */
  readonly route: Exclude<Route, { kind: 'one' | 'learn' }>;
  /** Its last statement's plan, and that statement's Bind parameters. */
  readonly plan: StatementPlan | null;
  readonly params: BindParams | null;
  /** How many statements it holds: COPY and a split INSERT must be the only one. */
  readonly statements: number;
  /** Some statement may change data (see BatchTarget.mayWrite). */
  readonly mayWrite: boolean;
  readonly preventsPrepare: string | null;
  /** The statement a split or rewrite replaces, with where its Parse and Bind sit (-1: none). */
  readonly source: StatementSource | null;
  readonly parseIndex: number;
  readonly bindIndex: number;
}

/** What the target depends on of the database: its shard count and text collation (null: text sorts by bytes). */
export interface TargetDatabase {
  readonly shardCount: number;
  readonly textCollation: string | null;
}

function unsupported(message: string, hint?: string): PgError {
  return PgError.featureNotSupported(message, hint);
}

/** The target of a routed request (`types` / `frames`: the request). Refuses (0A000) what cannot run as sent. */
export function batchTarget(
  routed: RoutedRequest,
  types: readonly number[],
  frames: readonly Buffer[],
  database: TargetDatabase,
): BatchTarget {
  const { route, plan, params, statements, mayWrite, preventsPrepare, source, parseIndex, bindIndex } =
    routed;
  const noFlags = {
    isSessionLevel: false,
    isMultiShardWrite: false,
    isCommit: false,
    isWrite: false,
    mayWrite,
    preventsPrepare,
    sessionStatement: null,
    isPlainSelect: statements === 1 && !mayWrite && plan?.kind === 'select',
  };
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
      table: copyTableKey(plan),
      ...MULTI_SHARD_WRITE,
    };
  }
  if (route.kind === 'split') {
    if (statements > 1 || source === null) {
      throw unsupported('a multi-row INSERT split across shards must be the only statement of its request');
    }
    return splitTarget(route.rowShards, source, types, frames, parseIndex, bindIndex);
  }
  const shards = route.kind === 'many' ? route.shards : allShards(database.shardCount);
  const isSessionLevel = route.kind === 'session';
  const shardQuery = plan?.select?.shardQuery ?? null;
  if (
    !isSessionLevel &&
    route.kind === 'many' &&
    route.isReplicated !== true &&
    shardQuery !== null &&
    source !== null
  ) {
    // The shards run the plan's rewritten SELECT (hidden columns, HAVING and LIMIT/OFFSET moved to the merge).
    const paramCount = params?.values.length ?? 0;
    const part = shardQueryRequest(shardQuery, paramCount, source, types, frames, parseIndex, bindIndex);
    return {
      kind: 'split',
      shards,
      parts: shards.map(() => part),
      spec: withTextCollation(
        mergeSpecFor(plan, params, { paramTypes: source.paramTypes }),
        database.textCollation,
      ),
      clientParse: parseIndex >= 0 ? frames[parseIndex] : null,
      ...noFlags,
    };
  }
  const spec =
    isSessionLevel || route.kind !== 'many' || plan?.kind === 'ddl'
      ? BROADCAST_SPEC
      : route.isReplicated === true
        ? { ...PASS_THROUGH_SPEC, isReplicated: true, isBroadcast: true }
        : copyOutSpec(plan, withTextCollation(mergeSpecFor(plan, params, null), database.textCollation));
  return {
    kind: 'many',
    shards,
    spec,
    isSessionLevel,
    // Wrapped in a transaction of the proxy's own outside BEGIN (all or nothing): whatever writes, unless
    // PostgreSQL refuses it inside a transaction block.
    isMultiShardWrite:
      plan !== null && plan.hasTransactionalWrite && !plan.isNonTransactional && shards.length >= 2,
    isCommit: plan !== null && plan.kind === 'commit',
    isWrite: plan !== null && plan.isWrite,
    mayWrite,
    preventsPrepare,
    sessionStatement: isSessionLevel ? plan : null,
    isPlainSelect: noFlags.isPlainSelect,
  };
}

function allShards(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** The per-shard requests of a multi-row INSERT whose rows belong to several shards. */
function splitTarget(
  rowShards: readonly number[],
  source: StatementSource,
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
  const { shards, parts } = splitInsertRequests(rowShards, source, types, frames, parseIndex, bindIndex);
  const local = new Map(shards.map((s, i) => [s, i]));
  return {
    kind: 'split',
    shards,
    parts,
    spec: { ...PASS_THROUGH_SPEC, rowShards: rowShards.map((s) => local.get(s) as number) },
    clientParse: parseIndex >= 0 ? frames[parseIndex] : null,
    ...MULTI_SHARD_WRITE,
  };
}

/** `schema.table` or `table` of a COPY's table (the key of `tableColumns`). */
function copyTableKey(plan: StatementPlan | null): string | null {
  const t = plan?.tables[0];
  if (t === undefined) return null;
  return t.schema !== null ? `${t.schema}.${t.name}` : t.name;
}
