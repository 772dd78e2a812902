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
}

export type MergeableAggregate = 'count' | 'sum' | 'min' | 'max' | 'avg';

export interface AggregateItem {
  /** 1-based position in the select list. */
  readonly position: number;
  readonly fn: MergeableAggregate;
  readonly isDistinct: boolean;
}

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
  readonly setOperation:
    'union' | 'union_all' | 'intersect' | 'intersect_all' | 'except' | 'except_all' | null;
  /** Number of select-list entries, or null when a `*` makes it unknown before RowDescription. */
  readonly targetCount: number | null;
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
  readonly onConflict: 'nothing' | 'update' | null;
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
  /** EXPLAIN's statement, PREPARE's statement, DECLARE CURSOR's query. */
  readonly inner: StatementPlan | null;
}
