// AST → StatementPlan: the statement's kind, the tables it touches, the shard-key sources that pin every sharded
// table reference (literals or $n), INSERT row keys, shard-key moves, SELECT merge information, and why it could not
// be answered correctly on several shards. Pure: the sharding schema is passed in; the work is done by
// scope-builder.ts (names and conditions), cross-shard.ts (key and safety) and select-shape.ts (merge info).
import type { ShardedColumn, ShardingSchema } from '../sharding/schema.js';
import { flag, list, obj, str, stringValue, unwrap, type AstObject } from './ast.js';
import type { CommentHints } from './comment-hints.js';
import { CrossShardCheck } from './cross-shard.js';
import { parseStatements, type ParsedStatement, type SqlSource } from './parser.js';
import type {
  CopyInfo,
  InsertInfo,
  SelectMergeInfo,
  SettingInfo,
  StatementKind,
  StatementPlan,
  TableRef,
  TransactionInfo,
} from './plan.js';
import { ScopeBuilder } from './scope-builder.js';
import { levelShape, mergePlan, type KeyFacts } from './select-shape.js';
import { isNonTransactional, NOTIFY_PREVENTS_PREPARE, preventsPrepare } from './transaction-rules.js';
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
  inner?: StatementPlan | null;
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
  const r = byKind(b, check, nodeType, fields, (inner) => {
    const u = unwrap(inner);
    if (u === null) return null;
    const p = planNode(inner, u.type, text, { shard: null, shardingKey: null }, source, schema);
    for (const t of p.tables) b.tables.set(t.schema !== null ? `${t.schema}.${t.name}` : t.name, { ...t });
    b.paramCount = Math.max(b.paramCount, p.paramCount);
    return p;
  });

  const shardKey = r.isRouted ? check.shardKey() : null;
  let crossShardUnsafe: string | null = null;
  if (r.isRouted && check.shardedRefs().length > 0) {
    const only = shardKey?.sources.length === 1 ? shardKey.sources[0] : null;
    const isSingleKey = only !== null && !(only.kind === 'param' && only.isArray);
    const reasons = isSingleKey ? [] : [...(r.reasons?.() ?? []), ...check.reasons()];
    crossShardUnsafe = reasons[0] ?? null;
  }
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
    isNotify: nodeType === 'NotifyStmt' || b.notifies,
    isNonTransactional: isNonTransactional(nodeType, fields),
    preventsPrepare:
      preventsPrepare(nodeType, fields) ??
      (b.notifies ? NOTIFY_PREVENTS_PREPARE : null) ??
      inner?.preventsPrepare ??
      null,
    hasLockingClause: b.hasLocking,
    tables,
    touchesCatalog: catalogish && tables.every((t) => t.isCatalog),
    touchesSharded: tables.some((t) => t.sharding === 'sharded'),
    touchesOmnisharded: tables.some((t) => t.sharding === 'omnisharded'),
    shardKey,
    crossShardUnsafe,
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
    inner,
  };
  if (r.setsManualShard !== undefined) plan.setsManualShard = r.setsManualShard;
  if (r.setsManualShardingKey !== undefined) plan.setsManualShardingKey = r.setsManualShardingKey;
  return plan;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

type InnerPlanner = (node: unknown) => StatementPlan | null;

function byKind(
  b: ScopeBuilder,
  check: CrossShardCheck,
  type: string,
  f: AstObject,
  innerPlan: InnerPlanner,
): KindResult {
  switch (type) {
    case 'SelectStmt':
      return selectStatement(b, check, f);
    case 'InsertStmt': {
      const level = b.insertLevel(f, null, 'top');
      const insert = b.inserts.find((i) => i.level === level)?.info ?? null;
      return { kind: 'insert', isReadOnly: false, isWrite: true, isRouted: true, insert };
    }
    case 'UpdateStmt':
      b.updateLevel(f, null, 'top');
      return { kind: 'update', isReadOnly: false, isWrite: true, isRouted: true };
    case 'DeleteStmt':
      b.deleteLevel(f, null, 'top');
      return { kind: 'delete', isReadOnly: false, isWrite: true, isRouted: true };
    case 'MergeStmt':
      b.mergeLevel(f, null, 'top');
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
      return { kind: 'other', isReadOnly: false, isWrite: false, isRouted: false, inner: innerPlan(f.query) };
    case 'DeclareCursorStmt': {
      const inner = innerPlan(f.query);
      const isWrite = inner?.isWrite ?? false;
      const hasTransactionalWrite = inner?.hasTransactionalWrite ?? false;
      return { kind: 'other', isReadOnly: !isWrite, isWrite, hasTransactionalWrite, isRouted: false, inner };
    }
    case 'FetchStmt':
      return { kind: 'other', isReadOnly: true, isWrite: false, isRouted: false };
    case 'DoStmt':
    case 'CallStmt':
    case 'ExecuteStmt':
      // Unknown effects: treat as a write.
      b.scanExpr(b.newLevel(null, 'top'), f.funccall ?? f.params);
      return { kind: 'other', isReadOnly: false, isWrite: true, isRouted: false };
    default:
      b.collectRelations({ [type]: f });
      if (type === 'CreateTableAsStmt' || DDL_NODE.test(type)) {
        return { kind: 'ddl', isReadOnly: false, isWrite: true, isRouted: false };
      }
      return { kind: 'other', isReadOnly: false, isWrite: false, isRouted: false };
  }
}

function selectStatement(b: ScopeBuilder, check: CrossShardCheck, f: AstObject): KindResult {
  const root = b.selectLevel(f, null, 'top');
  if (obj(f, 'intoClause') !== null) {
    // SELECT … INTO creates a table on every shard.
    return { kind: 'ddl', isReadOnly: false, isWrite: true, isRouted: false };
  }
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
