// StatementPlan: what the router needs to know about one SQL statement, computed once per distinct text (plan
// cache) and combined with Bind parameters later to choose shards. Pure data; no AST in here.
import type { ShardedColumn } from '../sharding/schema.js';

export type StatementKind =
  | 'select'
  | 'insert'
  | 'update'
  | 'delete'
  | 'merge'
  | 'copy'
  | 'ddl'
  | 'begin'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'prepare_transaction'
  | 'commit_prepared'
  | 'rollback_prepared'
  | 'set'
  | 'reset'
  | 'show'
  | 'discard'
  | 'explain'
  /** SQL-level PREPARE name AS …, EXECUTE name(…), DEALLOCATE (the protocol's Parse/Bind have their own path). */
  | 'prepare'
  | 'execute'
  | 'deallocate'
  | 'other';

/** Where a shard key value comes from: a literal in the text, or a Bind parameter (`$n`, 1-based). */
export type KeySource =
  | { readonly kind: 'literal'; readonly value: string }
  /** `isArray`: the parameter is an array (`col = ANY($n)`); each element is a key. */
  | { readonly kind: 'param'; readonly index: number; readonly isArray: boolean };

/** The rows a statement needs live on the union of the shards of `sources` (hashed as `column` says). */
export interface ShardKeyPlan {
  readonly column: ShardedColumn;
  readonly sources: readonly KeySource[];
}

/** A table the statement references. Names are as PostgreSQL stores them: unquoted identifiers folded to lower case. */
export interface TableRef {
  readonly schema: string | null;
  readonly name: string;
  /** The name exactly as written in the SQL text, e.g. `public."Users"`. */
  readonly written: string;
  /** pg_catalog / information_schema / pg_* relations. */
  readonly isCatalog: boolean;
  readonly sharding: 'sharded' | 'omnisharded' | 'none';
  /** The sharding column, when `sharding` is 'sharded'. */
  readonly shardColumn: string | null;
}

/** A LIMIT / OFFSET value: a literal count or a parameter. */
export type CountSource =
  { readonly kind: 'literal'; readonly value: string } | { readonly kind: 'param'; readonly index: number };

export interface OrderByItem {
  /** 1-based position in the select list, when the item is (or names, or repeats) an output column. */
  readonly position: number | null;
  /** Output column name to find in RowDescription when the position is unknown (e.g. `SELECT *`). */
  readonly name: string | null;
  readonly descending: boolean;
  /** PostgreSQL's default: NULLS LAST for ASC, NULLS FIRST for DESC. */
  readonly nullsFirst: boolean;
  /**
   * When the item is not an output column: its 0-based index among the hidden columns the shards return after the
   * select list (see `ShardQuery`); null otherwise, or when the merge does not need it.
   */
  readonly hidden: number | null;
  /** Sorted with `COLLATE "C"` (or POSIX / ucs_basic): byte order whatever the database's collation. */
  readonly isByteCollated: boolean;
  /** The collation an explicit COLLATE clause on the item names, or null. */
  readonly collation: string | null;
}

export type MergeableAggregate = 'count' | 'sum' | 'min' | 'max' | 'avg';

/** Aggregates whose elements the merge puts in order (their ORDER BY inside the call). */
export type OrderedAggregate = 'string_agg' | 'array_agg';

/**
 * One aggregate of the merged rows and how the shards' results make it (`merge`):
 * - 'combine': count/sum/min/max partials combined, avg from its sum and a hidden count. DISTINCT too when no
 *   argument value can be on two shards (the argument is the sharding key: count, sum and avg add up), and
 *   min/max(DISTINCT x), which are min/max(x).
 * - 'whole': every group lies on one shard (grouped by the sharding key): that shard's value is the group's, whatever
 *   the aggregate (DISTINCT, ORDER BY inside, string_agg, bool_and…).
 * - 'values': count/sum/avg(DISTINCT x): the shards also group by x and return it in a hidden column
 *   (`valuePosition`); the proxy keeps each group's distinct values (PostgreSQL's equality) and aggregates them.
 * - 'ordered': string_agg/array_agg with ORDER BY inside: the shards return, per group, hidden arrays of the values
 *   and of each sort key, in that order; the proxy merges them by the keys.
 */
export type AggregateItem =
  CombinedAggregate | WholeAggregate | DistinctValuesAggregate | OrderedAggregateItem;

interface AggregateBase {
  /**
   * 1-based position in the select list; beyond `targetCount` for an aggregate the merge needs as a hidden column
   * (one HAVING or ORDER BY uses but the select list does not have).
   */
  readonly position: number;
  readonly isDistinct: boolean;
}

export interface CombinedAggregate extends AggregateBase {
  readonly merge: 'combine';
  readonly fn: MergeableAggregate;
  /**
   * avg(x) that the shards run as sum(x) at `position` plus a hidden count(x) at this 1-based position; null when
   * the avg cannot be rewritten (then it cannot be merged) and for the other functions.
   */
  readonly countPosition: number | null;
}

export interface WholeAggregate extends AggregateBase {
  readonly merge: 'whole';
  /** The aggregate's name, lower case. */
  readonly fn: string;
}

export interface DistinctValuesAggregate extends AggregateBase {
  readonly merge: 'values';
  readonly fn: 'count' | 'sum' | 'avg';
  /** 1-based position of the hidden column holding one distinct argument value per row (NULL: none). */
  readonly valuePosition: number;
}

export interface OrderedAggregateItem extends AggregateBase {
  readonly merge: 'ordered';
  readonly fn: OrderedAggregate;
  /** 1-based position of the hidden `array_agg(x ORDER BY …)`. */
  readonly valuesPosition: number;
  /** The ORDER BY inside the call: each key's hidden `array_agg(key ORDER BY …)` column, in the same order. */
  readonly keys: readonly OrderedAggregateKey[];
  /** string_agg's delimiter: a constant (null: NULL) or a Bind parameter; null for array_agg. */
  readonly delimiter: DelimiterSource | null;
}

export interface OrderedAggregateKey {
  /** 1-based position of the hidden array of this key's values. */
  readonly position: number;
  readonly descending: boolean;
  readonly nullsFirst: boolean;
  readonly isByteCollated: boolean;
  readonly collation: string | null;
}

export type DelimiterSource =
  | { readonly kind: 'literal'; readonly value: string | null }
  | { readonly kind: 'param'; readonly index: number };

/**
 * The statement the shards run for a fan-out SELECT when it differs from the client's: avg(x) as sum(x) plus a
 * hidden count(x), hidden columns for ORDER BY / HAVING expressions that are not output columns, HAVING removed (the
 * proxy applies it to the merged groups), LIMIT/OFFSET pushed down or removed. Built once per text (plan cache).
 */
export interface ShardQuery {
  readonly sql: string;
  /** Columns the shards return after the client's select list, dropped before rows reach the client. */
  readonly hiddenCount: number;
  /**
   * Per hidden column, the 1-based select-list position whose result format (Bind) it must have — array_agg's
   * elements, which become the client's column — or null: any format (text when the client names one per column).
   */
  readonly hiddenFormatSources: readonly (number | null)[];
}

/** The comparison operators HAVING may use across shards (the merger applies them: execute/having-filter.ts). */
/** A comparison of HAVING the proxy evaluates after merging groups. */
export type CompareOperator = '=' | '<>' | '<' | '<=' | '>' | '>=';

/** One side of a HAVING comparison: a merged column (1-based, shard layout), a constant, or a Bind parameter. */
export type HavingOperand =
  | { readonly kind: 'column'; readonly position: number }
  /**
   * `value`: the constant as SQL text (numbers as written, strings unquoted); null for NULL. `isString`: a quoted
   * literal, whose type PostgreSQL takes from the other side (a number literal is integer or numeric). `castType`:
   * the type name of a cast around it (`$1::int8` → 'int8'), or null.
   */
  | {
      readonly kind: 'literal';
      readonly value: string | null;
      readonly isString: boolean;
      readonly castType: string | null;
    }
  | { readonly kind: 'param'; readonly index: number; readonly castType: string | null };

/** A HAVING predicate the proxy evaluates on merged groups (comparisons joined by AND / OR / NOT). */
export type HavingCondition =
  | { readonly kind: 'and' | 'or'; readonly args: readonly HavingCondition[] }
  | { readonly kind: 'not'; readonly arg: HavingCondition }
  | {
      readonly kind: 'compare';
      readonly op: CompareOperator;
      readonly left: HavingOperand;
      readonly right: HavingOperand;
    };

/** What a fan-out SELECT's merge step needs (top level of the statement only). */
export interface SelectMergeInfo {
  readonly orderBy: readonly OrderByItem[];
  readonly limit: CountSource | null;
  readonly offset: CountSource | null;
  readonly aggregates: readonly AggregateItem[];
  readonly hasGroupBy: boolean;
  /** 1-based select-list positions of the GROUP BY expressions (when all are in the select list). */
  readonly groupByPositions: readonly number[];
  readonly distinct: boolean;
  readonly distinctOn: boolean;
  /**
   * DISTINCT ON mergeable across shards: the 1-based output positions of its expressions, which lead the ORDER BY (the
   * merge keeps the first row of each run of equal keys). Null when not (no ORDER BY, not output columns, `*`).
   */
  readonly distinctOnPositions: readonly number[] | null;
  readonly setOperation:
    'union' | 'union_all' | 'intersect' | 'intersect_all' | 'except' | 'except_all' | null;
  /** Number of select-list entries, or null when a `*` makes it unknown before RowDescription. */
  readonly targetCount: number | null;
  /** HAVING, applied by the proxy after the groups are merged (null: none, or left to the shards). */
  readonly having: HavingCondition | null;
  /** What the shards run instead of the client's text when the merge needs it (null: the client's own text). */
  readonly shardQuery: ShardQuery | null;
}

export interface InsertInfo {
  /** Column list as written (normalized names), or null when omitted. */
  readonly columns: readonly string[] | null;
  /** 0-based position of the sharding column in `columns`, or null. */
  readonly keyColumnIndex: number | null;
  /** Number of VALUES rows (0 for INSERT … SELECT / DEFAULT VALUES). */
  readonly rowCount: number;
  /**
   * Per VALUES row, the source of its shard key (null entry: not a literal or parameter, e.g. DEFAULT or an
   * expression). Null as a whole when the keys cannot be known; `insertKeysReason` says why.
   */
  readonly insertKeys: readonly (KeySource | null)[] | null;
  readonly insertKeysReason: string | null;
  /**
   * The rows come from a query (INSERT … SELECT / TABLE, not a VALUES list): when the query cannot run where the rows
   * go (its key does not flow from a co-located table's key), the proxy evaluates it and inserts its rows
   * (engine/insert-source.ts).
   */
  readonly hasSelectSource: boolean;
  /**
   * INSERT … SELECT with a column list leaving out columns a sequence fills: each shard's own sequence would give the
   * same values on several shards, so the proxy evaluates the query and fills them from the sequence of record.
   */
  readonly leavesGenerated: boolean;
  readonly onConflict: 'nothing' | 'update' | null;
  /**
   * No column list, and the sharded table's column order is not known yet: the table (its `tableColumns` key) whose
   * columns the session must look up before this INSERT can be routed. Null otherwise.
   */
  readonly columnsLookup: string | null;
  /**
   * Columns of a sharded table whose value a sequence would generate (left out of the column list, or DEFAULT in some
   * rows): the proxy supplies them from the sequence of record before routing (generated-values.ts). Empty: none.
   */
  readonly generated: readonly GeneratedFill[];
}

/** One column of an INSERT the proxy fills from a sequence. */
export interface GeneratedFill {
  readonly column: string;
  /** The sequence of record (text of a regclass literal). */
  readonly sequence: string;
  /** GENERATED ALWAYS AS IDENTITY: the statement needs OVERRIDING SYSTEM VALUE. */
  readonly isAlways: boolean;
  /** Not in the statement's columns: added, with a value in every row. */
  readonly isAppended: boolean;
  /** 0-based VALUES rows that get a value (every row when appended; else those giving DEFAULT). */
  readonly rows: readonly number[];
}

export interface TransactionInfo {
  /** COMMIT / ROLLBACK AND CHAIN. */
  readonly chain: boolean;
  readonly savepointAction: 'savepoint' | 'release' | 'rollback_to' | null;
  readonly savepoint: string | null;
  /** PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED global id. */
  readonly gid: string | null;
  readonly isolation: string | null;
  readonly readOnly: boolean | null;
  readonly deferrable: boolean | null;
}

export interface SettingInfo {
  /** 'value' SET x = v; 'default' SET x TO DEFAULT; 'reset' RESET x; 'reset_all'; 'multi' SET TRANSACTION …; 'current' SET x FROM CURRENT. */
  readonly action: 'value' | 'default' | 'reset' | 'reset_all' | 'multi' | 'current';
  /** Parameter name as PostgreSQL stores it (lower case unless quoted), e.g. 'search_path', 'timezone'. */
  readonly name: string | null;
  readonly isLocal: boolean;
  /** The value list as text, items joined with ', ', or null when not constant. */
  readonly value: string | null;
}

export interface CopyInfo {
  readonly direction: 'from' | 'to';
  readonly columns: readonly string[] | null;
  /** 0-based position of the sharding column in `columns`, or null. */
  readonly keyColumnIndex: number | null;
  readonly format: 'text' | 'csv' | 'binary';
  /** COPY … FROM/TO a server file or PROGRAM, rather than STDIN/STDOUT. */
  readonly isServerSide: boolean;
  /** The table's sharding column (null: not a sharded table). */
  readonly keyColumn: ShardedColumn | null;
  /** Text/CSV options with PostgreSQL's defaults filled in (one byte each, except nullText). */
  readonly delimiter: string;
  readonly quote: string;
  readonly escape: string;
  readonly nullText: string;
  readonly header: boolean;
}

/** An EXECUTE argument: a constant (its text; null for NULL), a parameter of the EXECUTE itself, or anything else. */
export type ExecuteArg =
  | { readonly kind: 'constant'; readonly value: string | null }
  | { readonly kind: 'param'; readonly index: number }
  | { readonly kind: 'expression' };

/** SQL-level PREPARE / EXECUTE / DEALLOCATE. */
export interface SqlStatementInfo {
  /** The prepared statement's name (null: DEALLOCATE ALL). */
  readonly name: string | null;
  /** EXECUTE's arguments, in order (empty for PREPARE / DEALLOCATE). */
  readonly args: readonly ExecuteArg[];
}

export interface StatementPlan {
  readonly kind: StatementKind;
  /** AST node type, e.g. 'SelectStmt', 'CreateStmt', 'NotifyStmt'. */
  readonly nodeType: string;
  /** The statement as written (see ParsedStatement.text). */
  readonly text: string;
  /** Reads only (may go to a replica). */
  readonly isReadOnly: boolean;
  /** Changes data or schema (a 2PC writer when it runs on several shards). */
  readonly isWrite: boolean;
  /**
   * It changes what a transaction rolls back (rows, schema, large objects, notifications) — not only sequences or
   * locks: on several shards outside BEGIN it runs inside a transaction of the proxy's own, committed on all or none.
   */
  readonly hasTransactionalWrite: boolean;
  /** It calls server-side large-object functions (a large object lives on one shard). */
  readonly usesLargeObjects: boolean;
  /** It calls a function taking a backend pid (pg_terminate_backend, …): a pid names a process of one shard. */
  readonly usesBackendPid: boolean;
  /**
   * `SELECT pg_total_relation_size('t'), …` with no FROM, every column a size function of a sharded table: the number
   * of columns, each summed across shards (exact: a sharded table's size is the sum of its shards'); null otherwise.
   */
  readonly sumsShardedSizes: number | null;
  /**
   * Where it runs depends on a constant the literal normalization would turn into a parameter (a size function's
   * relation name): simple Queries of it are routed by their own text.
   */
  readonly needsLiteralValues: boolean;
  /** NOTIFY, or a pg_notify() call: delivered once, from one shard. */
  readonly isNotify: boolean;
  /** PostgreSQL refuses it inside a transaction block (VACUUM, CREATE INDEX CONCURRENTLY, …): never wrapped in one. */
  readonly isNonTransactional: boolean;
  /**
   * Relations and functions it uses whose catalog facts (sharding/catalog-facts.ts) are not known yet: the session
   * looks them up on a shard before the statement can be routed. Empty when nothing is unknown (or nothing is
   * looked up: no catalog facts in the schema).
   */
  readonly unknownRelations: readonly string[];
  readonly unknownFunctions: readonly string[];
  /** Why shardgate cannot tell what the statement does (a DO block with dynamic SQL, …), or null. */
  readonly opaqueReason: string | null;
  /** Why a transaction that ran it cannot PREPARE TRANSACTION (temporary objects, NOTIFY, …), or null. */
  readonly preventsPrepare: string | null;
  /** SELECT … FOR UPDATE / SHARE. */
  readonly hasLockingClause: boolean;
  readonly tables: readonly TableRef[];
  /** Only system catalogs / system functions are involved (any one shard can answer). */
  readonly touchesCatalog: boolean;
  readonly touchesSharded: boolean;
  readonly touchesOmnisharded: boolean;
  /**
   * The shard key for a statement on sharded tables: every sharded table reference is pinned by these sources.
   * Null = no usable key (all shards), or no sharded table involved (see `touchesSharded`).
   */
  readonly shardKey: ShardKeyPlan | null;
  /**
   * Why the statement cannot be answered correctly when it runs on several shards (null = it can). Cleared when the
   * key is a single value; if several key values land on one shard at Bind time, the router may ignore it.
   */
  readonly crossShardUnsafe: string | null;
  /**
   * Parameters that must be bound to 0 for the statement to be answered across shards (a subquery's `OFFSET $n`);
   * empty when none. Checked with the same rule as `crossShardUnsafe`.
   */
  readonly zeroOffsetParams: readonly number[];
  /** Highest `$n` used. */
  readonly paramCount: number;
  /** `/* shardgate: shard=N *\/` or `/* pgdog_shard: N *\/`. */
  readonly manualShard: number | null;
  /** `/* shardgate: sharding_key=V *\/` or `/* pgdog_sharding_key: V *\/`. */
  readonly manualShardingKey: string | null;
  /** SET shardgate.shard / pgdog.shard: the new session value (null: cleared by RESET/DISCARD); undefined: untouched. */
  readonly setsManualShard?: number | null;
  /** SET shardgate.sharding_key / pgdog.sharding_key, same convention. */
  readonly setsManualShardingKey?: string | null;
  /** UPDATE (or INSERT … ON CONFLICT DO UPDATE) may change a row's sharding column to another value. */
  readonly movesShardKey: boolean;
  readonly hasReturning: boolean;
  readonly select: SelectMergeInfo | null;
  readonly insert: InsertInfo | null;
  readonly transaction: TransactionInfo | null;
  readonly setting: SettingInfo | null;
  readonly copy: CopyInfo | null;
  /** SQL-level PREPARE / EXECUTE / DEALLOCATE (null otherwise). */
  readonly sqlStatement: SqlStatementInfo | null;
  /** SQL-level cursors: DECLARE, FETCH / MOVE, CLOSE of `name` (null name: CLOSE ALL); null for anything else. */
  readonly cursor: { readonly action: 'declare' | 'fetch' | 'close'; readonly name: string | null } | null;
  /** EXPLAIN's statement, PREPARE's statement, DECLARE CURSOR's query. */
  readonly inner: StatementPlan | null;
}
