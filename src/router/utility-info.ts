// Utility statements read from their AST: transaction control (BEGIN options, savepoints, 2PC gids), SET / RESET
// (including the manual-routing settings shardgate.shard / pgdog.shard), COPY options, EXPLAIN's ANALYZE flag and
// the tables a DROP names. Pure functions; no scope analysis is needed for these.
import { asNode, constValue, flag, list, str, stringList, stringValue, type AstObject } from './ast.js';
import type { CopyInfo, SettingInfo, StatementKind, TransactionInfo } from './plan.js';

const MANUAL_SHARD_SETTINGS: ReadonlySet<string> = new Set(['shardgate.shard', 'pgdog.shard']);
const MANUAL_KEY_SETTINGS: ReadonlySet<string> = new Set(['shardgate.sharding_key', 'pgdog.sharding_key']);

const TRANSACTION_KINDS: Readonly<Record<string, [StatementKind, TransactionInfo['savepointAction']]>> = {
  TRANS_STMT_BEGIN: ['begin', null],
  TRANS_STMT_START: ['begin', null],
  TRANS_STMT_COMMIT: ['commit', null],
  TRANS_STMT_ROLLBACK: ['rollback', null],
  TRANS_STMT_SAVEPOINT: ['savepoint', 'savepoint'],
  TRANS_STMT_RELEASE: ['savepoint', 'release'],
  TRANS_STMT_ROLLBACK_TO: ['savepoint', 'rollback_to'],
  TRANS_STMT_PREPARE: ['prepare_transaction', null],
  TRANS_STMT_COMMIT_PREPARED: ['commit_prepared', null],
  TRANS_STMT_ROLLBACK_PREPARED: ['rollback_prepared', null],
};

/** TransactionStmt → kind and details (END is COMMIT, ABORT is ROLLBACK in the tree). */
export function transactionPlan(f: AstObject): { kind: StatementKind; transaction: TransactionInfo } {
  const [kind, savepointAction] = TRANSACTION_KINDS[str(f, 'kind') ?? ''] ?? ['other', null];
  return {
    kind,
    transaction: {
      chain: flag(f, 'chain'),
      savepointAction,
      savepoint: str(f, 'savepoint_name'),
      gid: str(f, 'gid'),
      ...transactionOptions(list(f, 'options')),
    },
  };
}

/** BEGIN / START TRANSACTION / SET TRANSACTION options. */
export function transactionOptions(
  options: readonly unknown[],
): Pick<TransactionInfo, 'isolation' | 'readOnly' | 'deferrable'> {
  let isolation: string | null = null;
  let readOnly: boolean | null = null;
  let deferrable: boolean | null = null;
  for (const o of options) {
    const d = asNode(o, 'DefElem');
    if (d === null) continue;
    const c = asNode(d.arg, 'A_Const');
    const v = c !== null ? constValue(c) : null;
    const text = v !== null && v.kind !== 'null' ? v.value : '';
    switch (str(d, 'defname')) {
      case 'transaction_isolation':
        isolation = text;
        break;
      case 'transaction_read_only':
        readOnly = text !== '0' && text !== 'false';
        break;
      case 'transaction_deferrable':
        deferrable = text !== '0' && text !== 'false';
        break;
    }
  }
  return { isolation, readOnly, deferrable };
}

export interface SettingPlan {
  kind: 'set' | 'reset';
  setting: SettingInfo;
  setsManualShard?: number | null;
  setsManualShardingKey?: string | null;
}

const SET_ACTIONS: Readonly<Record<string, SettingInfo['action']>> = {
  VAR_SET_VALUE: 'value',
  VAR_SET_DEFAULT: 'default',
  VAR_SET_CURRENT: 'current',
  VAR_SET_MULTI: 'multi',
  VAR_RESET: 'reset',
  VAR_RESET_ALL: 'reset_all',
};

/** VariableSetStmt → SET / RESET details, and the manual shard (or key) it sets or clears. */
export function settingPlan(f: AstObject): SettingPlan {
  const action = SET_ACTIONS[str(f, 'kind') ?? ''] ?? 'value';
  const name = str(f, 'name');
  let value: string | null = null;
  if (action === 'value') {
    const parts: string[] = [];
    for (const a of list(f, 'args')) {
      const c = asNode(a, 'A_Const');
      if (c === null) return settingResult(action, name, f, null);
      const v = constValue(c);
      parts.push(v.kind === 'null' ? 'NULL' : v.value);
    }
    value = parts.length > 0 ? parts.join(', ') : null;
  }
  return settingResult(action, name, f, value);
}

function settingResult(
  action: SettingInfo['action'],
  name: string | null,
  f: AstObject,
  value: string | null,
): SettingPlan {
  const plan: SettingPlan = {
    kind: action === 'reset' || action === 'reset_all' ? 'reset' : 'set',
    setting: { action, name, isLocal: flag(f, 'is_local'), value },
  };
  const cleared = action === 'reset' || action === 'reset_all' || action === 'default';
  if (action === 'reset_all') {
    plan.setsManualShard = null;
    plan.setsManualShardingKey = null;
  } else if (name !== null && MANUAL_SHARD_SETTINGS.has(name)) {
    if (cleared) plan.setsManualShard = null;
    else if (value !== null && /^\d+$/.test(value)) plan.setsManualShard = Number(value);
  } else if (name !== null && MANUAL_KEY_SETTINGS.has(name)) {
    if (cleared) plan.setsManualShardingKey = null;
    else if (value !== null) plan.setsManualShardingKey = value;
  }
  return plan;
}

/** COPY … WITH (FORMAT x) / legacy BINARY / CSV keywords. */
/** COPY's data options (FORMAT, DELIMITER, QUOTE, ESCAPE, NULL, HEADER) with PostgreSQL's defaults per format. */
export function copyOptions(
  options: readonly unknown[],
): Pick<CopyInfo, 'format' | 'delimiter' | 'quote' | 'escape' | 'nullText' | 'header'> {
  const format = copyFormat(options);
  const given = new Map<string, unknown>();
  for (const o of options) {
    const d = asNode(o, 'DefElem');
    const name = d !== null ? str(d, 'defname') : null;
    if (d !== null && name !== null) given.set(name, d.arg ?? null);
  }
  const text = (name: string, fallback: string): string => {
    const arg = given.get(name);
    return arg === undefined || arg === null ? fallback : (stringValue(arg) ?? fallback);
  };
  const isCsv = format === 'csv';
  const quote = text('quote', '"');
  return {
    format,
    delimiter: text('delimiter', isCsv ? ',' : '\t'),
    quote,
    escape: text('escape', quote),
    nullText: text('null', isCsv ? '' : '\\N'),
    header: given.has('header') && isTrueOption(given.get('header')),
  };
}

/** An option given without a value, or true/on/1/match; the parse tree leaves a literal false as an empty object. */
function isTrueOption(arg: unknown): boolean {
  if (arg === null || arg === undefined) return true;
  const s = stringValue(arg);
  if (s !== null) return !['false', 'off', '0', 'no'].includes(s.toLowerCase());
  const b = asNode(arg, 'Boolean');
  if (b !== null) return b.boolval === true;
  const i = asNode(arg, 'Integer');
  if (i !== null) return typeof i.ival === 'number' && i.ival !== 0;
  return true;
}

export function copyFormat(options: readonly unknown[]): CopyInfo['format'] {
  for (const o of options) {
    const d = asNode(o, 'DefElem');
    if (d !== null && str(d, 'defname') === 'format') {
      const v = (stringValue(d.arg) ?? 'text').toLowerCase();
      if (v === 'csv' || v === 'binary') return v;
    }
  }
  return 'text';
}

/** EXPLAIN (ANALYZE) / EXPLAIN ANALYZE / EXPLAIN (ANALYZE false). */
export function isExplainAnalyze(options: readonly unknown[]): boolean {
  return options.some((o) => {
    const d = asNode(o, 'DefElem');
    if (d === null || str(d, 'defname') !== 'analyze') return false;
    if (d.arg === undefined) return true;
    const s = stringValue(d.arg);
    if (s !== null) return !['false', 'off', '0', 'no'].includes(s.toLowerCase());
    const c = asNode(d.arg, 'A_Const');
    const v = c !== null ? constValue(c) : null;
    return v === null || v.kind === 'null' || !['0', 'false'].includes(v.value);
  });
}

const DROP_TABLE_TYPES: ReadonlySet<string> = new Set([
  'OBJECT_TABLE',
  'OBJECT_VIEW',
  'OBJECT_MATVIEW',
  'OBJECT_FOREIGN_TABLE',
]);

/** DROP TABLE / VIEW names as RangeVar-like objects ({ schemaname?, relname }); empty for other DROPs. */
export function droppedRelations(drop: AstObject): AstObject[] {
  if (!DROP_TABLE_TYPES.has(str(drop, 'removeType') ?? '')) return [];
  const out: AstObject[] = [];
  for (const o of list(drop, 'objects')) {
    const names = stringList(list(asNode(o, 'List'), 'items'));
    if (names.length === 0) continue;
    const relname = names[names.length - 1];
    const schemaname = names.length > 1 ? names[names.length - 2] : undefined;
    out.push(schemaname !== undefined ? { schemaname, relname, location: -1 } : { relname, location: -1 });
  }
  return out;
}
