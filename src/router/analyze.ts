// AST → StatementPlan: the statement's kind, the tables it touches, the shard-key sources that pin every sharded
// table reference (literals or $n), INSERT row keys, shard-key moves, SELECT merge information, and why it could not
// be answered correctly on several shards. Pure: the sharding schema is passed in; the work is done by
// scope-builder.ts (names and conditions), cross-shard.ts (key and safety) and select-shape.ts (merge info).
import type { ShardedColumn, ShardingSchema } from '../sharding/schema.js';
import { asNode, flag, int, list, obj, str, stringValue, unwrap, type AstObject } from './ast.js';
import type { CommentHints } from './comment-hints.js';
import { CrossShardCheck } from './cross-shard.js';
import { parseStatements, type ParsedStatement, type SqlSource } from './parser.js';
import type {
  CopyInfo,
  ExecuteArg,
  InsertInfo,
  SelectMergeInfo,
  SettingInfo,
  SqlStatementInfo,
  StatementKind,
  StatementPlan,
  TableRef,
  TransactionInfo,
} from './plan.js';
import { deleteLevel, insertLevel, mergeLevel, updateLevel } from './dml-levels.js';
import { ScopeBuilder } from './scope-builder.js';
import type { Level } from './scope.js';
import { mergePlan, type KeyFacts } from './merge-plan.js';
import { levelShape } from './select-shape.js';
import {
  isNonTransactional,
  NOTIFY_PREVENTS_PREPARE,
  preventsPrepare,
  TEMPORARY_PREVENTS_PREPARE,
} from './transaction-rules.js';
import { analyzeDoBlock, type DoBlockInfo } from './do-block.js';
import { copyOptions, isExplainAnalyze, settingPlan, transactionPlan } from './utility-info.js';

/** Analyzes one parsed statement against the sharding schema (null: nothing is sharded). */
export function analyzeStatement(stmt: ParsedStatement, schema: ShardingSchema | null): StatementPlan {
  return planNode(stmt.node, stmt.nodeType, stmt.text, stmt.hints, stmt.source, schema);
}

/** Parses and analyzes every statement of a query text (throws PgError 42601 on a syntax error). */
export function analyzeQuery(sql: string, schema: ShardingSchema | null): StatementPlan[] {
  return parseStatements(sql).map((s) => analyzeStatement(s, schema));
}

/** DDL and maintenance statements (all shards). */
const DDL_NODE =
  /^(Create|Alter|Drop|Rename|Comment|Grant|Truncate|Index|Vacuum|Reindex|Cluster|RefreshMatView|View|Rule|Define|CompositeType|SecLabel|ReassignOwned|ImportForeignSchema)/;

/** What a statement kind contributes besides the common parts. */
interface KindResult {
  kind: StatementKind;
  isReadOnly: boolean;
  isWrite: boolean;
  /** The write is one a transaction rolls back (default: `isWrite`); false for sequences, advisory locks, … */
  hasTransactionalWrite?: boolean;
  /** Shard key and cross-shard reasons apply (DML, SELECT, COPY). */
  isRouted: boolean;
  select?: SelectMergeInfo | null;
  insert?: InsertInfo | null;
  transaction?: TransactionInfo | null;
  setting?: SettingInfo | null;
  copy?: CopyInfo | null;
  sumsShardedSizes?: number | null;
  needsLiteralValues?: boolean;
  sqlStatement?: SqlStatementInfo | null;
  cursor?: StatementPlan['cursor'];
  inner?: StatementPlan | null;
  /** Overrides of what the statement's node alone says (a DO block: from the statements in its body). */
  isNonTransactional?: boolean;
  preventsPrepare?: string | null;
  opaqueReason?: string | null;
  setsManualShard?: number | null;
  setsManualShardingKey?: string | null;
  /** Reasons found by the kind's own checks (merge step limits); computed only when the key is not a single value. */
  reasons?: () => string[];
}

function planNode(
  node: unknown,
  nodeType: string,
  text: string,
  hints: CommentHints,
  source: SqlSource,
  schema: ShardingSchema | null,
): StatementPlan {
  const b = new ScopeBuilder(schema, source);
  const check = new CrossShardCheck(b);
  const fields = unwrap(node)?.fields ?? {};
  /** The tables of a statement nested in this one count as this one's. */
  const adopt = (p: StatementPlan): void => {
    for (const t of p.tables) b.tables.set(t.schema !== null ? `${t.schema}.${t.name}` : t.name, { ...t });
    for (const name of p.unknownRelations) b.statementTables.unknownRelations.add(name);
    for (const name of p.unknownFunctions) b.unknownFunctions.add(name);
  };
  const r = byKind(
    b,
    check,
    nodeType,
    fields,
    (inner) => {
      const u = unwrap(inner);
      if (u === null) return null;
      const p = planNode(inner, u.type, text, { shard: null, shardingKey: null }, source, schema);
      adopt(p);
      b.paramCount = Math.max(b.paramCount, p.paramCount);
      return p;
    },
    (language) => {
      const block = analyzeDoBlock(text, language, (sql) => analyzeQuery(sql, schema));
      block.plans.forEach(adopt);
      return block;
    },
  );

  const shardKey = r.isRouted ? check.shardKey() : null;
  let crossShardUnsafe: string | null = null;
  let zeroOffsetParams: number[] = [];
  if (r.isRouted && check.shardedRefs().length > 0) {
    const only = shardKey?.sources.length === 1 ? shardKey.sources[0] : null;
    const isSingleKey = only !== null && !(only.kind === 'param' && only.isArray);
    const reasons = isSingleKey ? [] : [...(r.reasons?.() ?? []), ...check.reasons()];
    crossShardUnsafe = reasons[0] ?? null;
    if (!isSingleKey) zeroOffsetParams = check.zeroOffsetParams;
  }
  const readsRows = nodeType === 'CreateTableAsStmt' || (nodeType === 'SelectStmt' && r.kind === 'ddl');
  // The builder is discarded: its table records become the plan's.
  const tables: TableRef[] = Array.from(b.tables.values());
  const inner = r.inner ?? null;
  const catalogish = b.systemCalls > 0 || tables.some((t) => t.isCatalog) || inner?.touchesCatalog === true;
  const plan: Mutable<StatementPlan> = {
    kind: r.kind,
    nodeType,
    text,
    isReadOnly: r.isReadOnly,
    isWrite: r.isWrite,
    hasTransactionalWrite: r.hasTransactionalWrite ?? r.isWrite,
    usesLargeObjects: b.largeObjectCalls > 0 || inner?.usesLargeObjects === true,
    usesBackendPid: b.backendPidCalls > 0 || inner?.usesBackendPid === true,
    isNotify: nodeType === 'NotifyStmt' || b.notifies,
    isNonTransactional: r.isNonTransactional ?? isNonTransactional(nodeType, fields),
    // DDL defines names rather than using them; CREATE TABLE … AS / SELECT … INTO also read what they copy.
    unknownRelations: r.kind !== 'ddl' || readsRows ? [...b.statementTables.unknownRelations] : [],
    unknownFunctions: r.kind !== 'ddl' || readsRows ? [...b.unknownFunctions] : [],
    opaqueReason: r.opaqueReason ?? b.opaqueCall,
    preventsPrepare:
      r.preventsPrepare ??
      preventsPrepare(nodeType, fields) ??
      (b.notifies ? NOTIFY_PREVENTS_PREPARE : null) ??
      (b.statementTables.usesTemporary ? TEMPORARY_PREVENTS_PREPARE : null) ??
      inner?.preventsPrepare ??
      null,
    hasLockingClause: b.hasLocking,
    tables,
    touchesCatalog: catalogish && tables.every((t) => t.isCatalog),
    touchesSharded: tables.some((t) => t.sharding === 'sharded'),
    touchesOmnisharded: tables.some((t) => t.sharding === 'omnisharded'),
    shardKey,
    crossShardUnsafe,
    zeroOffsetParams,
    paramCount: b.paramCount,
    manualShard: hints.shard,
    manualShardingKey: hints.shardingKey,
    movesShardKey: r.isRouted && check.movesShardKey(),
    hasReturning: b.hasReturning,
    select: r.select ?? null,
    insert: r.insert ?? null,
    transaction: r.transaction ?? null,
    setting: r.setting ?? null,
    copy: r.copy ?? null,
    sqlStatement: r.sqlStatement ?? null,
    cursor: r.cursor ?? null,
    sumsShardedSizes: r.sumsShardedSizes ?? null,
    needsLiteralValues: r.needsLiteralValues ?? false,
    inner,
  };
  if (r.setsManualShard !== undefined) plan.setsManualShard = r.setsManualShard;
  if (r.setsManualShardingKey !== undefined) plan.setsManualShardingKey = r.setsManualShardingKey;
  return plan;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

type InnerPlanner = (node: unknown) => StatementPlan | null;
/** A DO block's body (its tables become the statement's). */
type DoBlockReader = (language: string | null) => DoBlockInfo;

function byKind(
  b: ScopeBuilder,
  check: CrossShardCheck,
  type: string,
  f: AstObject,
  innerPlan: InnerPlanner,
  readDoBlock: DoBlockReader,
): KindResult {
  switch (type) {
    case 'SelectStmt':
      return selectStatement(b, check, f);
    case 'InsertStmt': {
      const level = insertLevel(b, f, null, 'top');
      const insert = b.inserts.find((i) => i.level === level)?.info ?? null;
      return { kind: 'insert', isReadOnly: false, isWrite: true, isRouted: true, insert };
    }
    case 'UpdateStmt':
      updateLevel(b, f, null, 'top');
      return { kind: 'update', isReadOnly: false, isWrite: true, isRouted: true };
    case 'DeleteStmt':
      deleteLevel(b, f, null, 'top');
      return { kind: 'delete', isReadOnly: false, isWrite: true, isRouted: true };
    case 'MergeStmt':
      mergeLevel(b, f, null, 'top');
      return { kind: 'merge', isReadOnly: false, isWrite: true, isRouted: true };
    case 'CopyStmt':
      return copyStatement(b, f);
    case 'TransactionStmt': {
      const t = transactionPlan(f);
      return { kind: t.kind, transaction: t.transaction, isReadOnly: false, isWrite: false, isRouted: false };
    }
    case 'VariableSetStmt': {
      const s = settingPlan(f);
      return {
        kind: s.kind,
        setting: s.setting,
        setsManualShard: s.setsManualShard,
        setsManualShardingKey: s.setsManualShardingKey,
        isReadOnly: false,
        isWrite: false,
        isRouted: false,
      };
    }
    case 'VariableShowStmt':
      return { kind: 'show', isReadOnly: true, isWrite: false, isRouted: false };
    case 'DiscardStmt': {
      const clears = str(f, 'target') === 'DISCARD_ALL' ? null : undefined;
      return {
        kind: 'discard',
        isReadOnly: false,
        isWrite: false,
        isRouted: false,
        setsManualShard: clears,
        setsManualShardingKey: clears,
      };
    }
    case 'ExplainStmt': {
      const inner = innerPlan(f.query);
      const isAnalyze = isExplainAnalyze(list(f, 'options'));
      const isWrite = inner !== null && isAnalyze && inner.isWrite;
      const hasTransactionalWrite = isWrite && inner.hasTransactionalWrite;
      return {
        kind: 'explain',
        isReadOnly: !isWrite,
        isWrite,
        hasTransactionalWrite,
        isRouted: false,
        inner,
      };
    }
    case 'PrepareStmt':
      // A session-level statement (kept per session and replayed on the servers it uses, like SET).
      return {
        kind: 'prepare',
        isReadOnly: false,
        isWrite: false,
        isRouted: false,
        inner: innerPlan(f.query),
        sqlStatement: { name: str(f, 'name') ?? '', args: [] },
      };
    case 'DeallocateStmt':
      return {
        kind: 'deallocate',
        isReadOnly: false,
        isWrite: false,
        isRouted: false,
        sqlStatement: { name: flag(f, 'isall') ? null : (str(f, 'name') ?? ''), args: [] },
      };
    case 'ExecuteStmt':
      // Routed by the prepared statement's plan and these arguments (SessionRouter); a write until then.
      b.scanExpr(b.newLevel(null, 'top'), f.params);
      return {
        kind: 'execute',
        isReadOnly: false,
        isWrite: true,
        isRouted: false,
        sqlStatement: { name: str(f, 'name') ?? '', args: list(f, 'params').map(executeArg) },
      };
    case 'DeclareCursorStmt': {
      const inner = innerPlan(f.query);
      const isWrite = inner?.isWrite ?? false;
      const hasTransactionalWrite = inner?.hasTransactionalWrite ?? false;
      const cursor = { action: 'declare' as const, name: str(f, 'portalname') ?? '' };
      return {
        kind: 'other',
        isReadOnly: !isWrite,
        isWrite,
        hasTransactionalWrite,
        isRouted: false,
        inner,
        cursor,
      };
    }
    case 'FetchStmt':
      return {
        kind: 'other',
        isReadOnly: true,
        isWrite: false,
        isRouted: false,
        cursor: { action: 'fetch', name: str(f, 'portalname') ?? '' },
      };
    case 'ClosePortalStmt':
      return {
        kind: 'other',
        isReadOnly: true,
        isWrite: false,
        isRouted: false,
        cursor: { action: 'close', name: str(f, 'portalname') },
      };
    case 'DoStmt': {
      const language = list(f, 'args')
        .map((a) => obj(a as AstObject, 'DefElem'))
        .find((d) => str(d, 'defname') === 'language');
      const block = readDoBlock(stringValue(language?.arg) ?? null);
      // Runs on every shard as one write (when it may: route.ts); COMMIT inside means it cannot run in a block.
      return {
        kind: 'other',
        isReadOnly: false,
        isWrite: true,
        isRouted: false,
        isNonTransactional: block.hasTransactionControl,
        preventsPrepare: block.plans.find((p) => p.preventsPrepare !== null)?.preventsPrepare ?? null,
        opaqueReason: block.opaque ?? block.plans.find((p) => p.opaqueReason !== null)?.opaqueReason ?? null,
      };
    }
    case 'CallStmt':
      // Unknown effects: treat as a write.
      b.scanExpr(b.newLevel(null, 'top'), f.funccall ?? f.params);
      return { kind: 'other', isReadOnly: false, isWrite: true, isRouted: false };
    default:
      b.statementTables.collectRelations({ [type]: f });
      if (type === 'CreateTableAsStmt' || DDL_NODE.test(type)) {
        return { kind: 'ddl', isReadOnly: false, isWrite: true, isRouted: false };
      }
      return { kind: 'other', isReadOnly: false, isWrite: false, isRouted: false };
  }
}

/** An EXECUTE argument as the router can use it: a constant's text, a `$n`, or an expression it cannot evaluate. */
function executeArg(node: unknown): ExecuteArg {
  let u = unwrap(node);
  if (u?.type === 'TypeCast') u = unwrap(u.fields.arg); // '5'::bigint: the constant's text
  if (u === null) return { kind: 'expression' };
  if (u.type === 'ParamRef') return { kind: 'param', index: int(u.fields, 'number') };
  if (u.type !== 'A_Const') return { kind: 'expression' };
  if (flag(u.fields, 'isnull')) return { kind: 'constant', value: null };
  const c = u.fields;
  const ival = obj(c, 'ival');
  if (ival !== null) return { kind: 'constant', value: String(int(ival, 'ival')) };
  const fval = str(obj(c, 'fval'), 'fval');
  if (fval !== null) return { kind: 'constant', value: fval };
  const sval = obj(c, 'sval');
  if (sval !== null) return { kind: 'constant', value: str(sval, 'sval') ?? '' };
  const boolval = obj(c, 'boolval');
  if (boolval !== null) return { kind: 'constant', value: flag(boolval, 'boolval') ? 'true' : 'false' };
  return { kind: 'expression' };
}

/** Functions giving a relation's size on disk: across shards a sharded table's size is the sum of its shards'. */
const SIZE_FUNCTIONS: ReadonlySet<string> = new Set([
  'pg_relation_size',
  'pg_total_relation_size',
  'pg_table_size',
  'pg_indexes_size',
]);

/**
 * The columns of `SELECT size_fn('sharded_table') [, …]` (no FROM, nothing else in the select list, the relation given
 * as a constant, optionally cast to regclass); null for any other shape.
 */
function shardedSizeColumns(f: AstObject, isSharded: (name: string) => boolean): number | 'parameter' | null {
  const isSetOperation = (str(f, 'op') ?? 'SETOP_NONE') !== 'SETOP_NONE';
  if (isSetOperation || list(f, 'fromClause').length > 0 || obj(f, 'whereClause') !== null) return null;
  const targets = list(f, 'targetList');
  if (targets.length === 0) return null;
  for (const t of targets) {
    const call = asNode(obj(asNode(t, 'ResTarget'), 'val'), 'FuncCall');
    const names = call === null ? [] : list(call, 'funcname').map((n) => stringValue(n) ?? '');
    const name = names[names.length - 1] ?? '';
    if (call === null || !SIZE_FUNCTIONS.has(name) || (names.length > 1 && names[0] !== 'pg_catalog'))
      return null;
    let arg = unwrap(list(call, 'args')[0]);
    if (arg?.type === 'TypeCast') arg = unwrap(arg.fields.arg);
    if (arg?.type === 'ParamRef') return 'parameter';
    const relation = arg?.type === 'A_Const' ? str(obj(arg.fields, 'sval'), 'sval') : null;
    if (relation === null || !isSharded(relation)) return null;
  }
  return targets.length;
}

function selectStatement(b: ScopeBuilder, check: CrossShardCheck, f: AstObject): KindResult {
  const root = b.selectLevel(f, null, 'top');
  if (obj(f, 'intoClause') !== null) {
    // SELECT … INTO creates a table on every shard.
    return { kind: 'ddl', isReadOnly: false, isWrite: true, isRouted: false };
  }
  const sizes = shardedSizeColumns(f, (name) => b.statementTables.isShardedName(name));
  if (sizes === 'parameter') return { ...mergeableSelect(b, check, f, root), needsLiteralValues: true };
  if (sizes !== null) {
    return { kind: 'select', isReadOnly: true, isWrite: false, isRouted: false, sumsShardedSizes: sizes };
  }
  return mergeableSelect(b, check, f, root);
}

/** A SELECT routed by its tables: its merge plan and why it could not be answered across shards (lazily). */
function mergeableSelect(b: ScopeBuilder, check: CrossShardCheck, f: AstObject, root: Level): KindResult {
  // What the scope model knows of the sharding key decides how DISTINCT aggregates merge (select-shape.ts).
  const keys: KeyFacts = {
    isShardKey: (expr) => check.groupedByKey(root, [expr]),
    isGroupedByKey: root.branches.length === 0 && check.groupedByKey(root, levelShape(f).groupBy),
  };
  const merge = mergePlan(f, keys);
  const reasons = (): string[] => {
    if (!check.hasShardedRows(root)) return [];
    const groupBy = root.branches.length === 0 ? levelShape(f).groupBy : [];
    const shape = root.branches.length === 0 ? levelShape(f) : null;
    const distinctOn = shape?.distinctOn ?? [];
    // DISTINCT ON over the sharding key keeps each group on one shard; otherwise the merge must be able to do it.
    const distinctOnProblem =
      distinctOn.length > 0 &&
      merge.info.distinctOnPositions === null &&
      !check.groupedByKey(root, distinctOn)
        ? [
            'DISTINCT ON across shards needs an ORDER BY that starts with its expressions, all of them output columns',
          ]
        : [];
    return [
      ...merge.orderingProblems,
      ...(check.groupedByKey(root, groupBy) ? [] : merge.groupingProblems),
      ...distinctOnProblem,
      ...check.topLevelReasons(root),
    ];
  };
  return {
    kind: 'select',
    isReadOnly: !b.writes && !b.hasLocking,
    isWrite: b.writes,
    hasTransactionalWrite: b.transactionalWrites,
    isRouted: true,
    select: merge.info,
    reasons,
  };
}

function copyStatement(b: ScopeBuilder, f: AstObject): KindResult {
  const isFrom = flag(f, 'is_from');
  const columns = list(f, 'attlist').map((n) => stringValue(n) ?? '');
  let keyColumnIndex: number | null = null;
  let keyColumn: ShardedColumn | null = null;
  const rel = obj(f, 'relation');
  if (rel !== null) {
    const root = b.newLevel(null, 'dml');
    const ref = b.addRangeVar(root, rel);
    // Binding the listed columns finds column-based sharding.
    for (const c of columns) b.resolve(root, [{ String: { sval: c } }]);
    keyColumn = ref.shardedBy;
    const i = ref.shardedBy !== null ? columns.indexOf(ref.shardedBy.column) : -1;
    keyColumnIndex = i >= 0 ? i : null;
  } else {
    b.statementLevel(f.query, null, 'top');
  }
  const isWrite = isFrom || b.writes;
  return {
    kind: 'copy',
    isReadOnly: !isWrite,
    isWrite,
    hasTransactionalWrite: isFrom || b.transactionalWrites,
    isRouted: true,
    copy: {
      direction: isFrom ? 'from' : 'to',
      columns: columns.length > 0 ? columns : null,
      keyColumnIndex,
      keyColumn,
      ...copyOptions(list(f, 'options')),
      isServerSide: str(f, 'filename') !== null || flag(f, 'is_program'),
    },
  };
}
