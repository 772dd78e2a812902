// Whether a request may go to a replica (read/write split, docs/operations.md "Replicas"): it does when every
// statement of it only reads — a SELECT (or SHOW, FETCH, EXPLAIN without ANALYZE of a write) that is not FOR
// UPDATE/SHARE, writes nothing (no writing CTE, no known writing function such as nextval or pg_advisory_lock) —
// or when it opens a transaction with BEGIN READ ONLY / START TRANSACTION READ ONLY / SET TRANSACTION READ ONLY, or
// with a plain BEGIN in a session whose transactions are READ ONLY by default (`SET default_transaction_read_only`,
// `SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY`, the startup parameter; BEGIN READ WRITE overrides it).
// Functions are judged as PgDog judges them: a call is a read unless shardgate knows the function writes; a user
// function that writes needs `/* pgdog_role: primary */` (else the replica answers 25006). Manual overrides:
// `/* pgdog_role: primary|replica */` in the statement, `SET pgdog.role = 'primary'|'replica'` for the session
// (RESET pgdog.role ends it; in a transaction block as PostgreSQL keeps a setting: read-overrides.ts). Writes go to
// the primary whatever the override says. The one verdict on whether a request may change data (read-your-writes)
// is its intent: 'write' may, 'read-primary' (a SET, SHOW, transaction control or a read kept on the primary) may
// not. Pure, with one bounded cache of plans by SQL text for databases that have no router of their own.
import type { ReadIntent } from '../backend/replica-set.js';
import { Frontend } from '../protocol/codes.js';
import { analyzeQuery } from '../router/analyze.js';
import { PlanCache } from '../router/plan-cache.js';
import type { StatementKind, StatementPlan } from '../router/plan.js';
import type { OverrideEvents, RoleOverride } from './read-overrides.js';

export type { RoleOverride } from './read-overrides.js';

export interface RequestIntent {
  /**
   * Where the request runs and, on the primary, whether it may change data: 'write' when some statement may
   * (dataEffect), so the primary must be caught up with before the session's next reads (read-your-writes);
   * 'read-primary' for SET, SHOW, transaction control and reads kept on the primary.
   */
  intent: ReadIntent;
  /** Read-your-writes positions the request brings (`SET pgdog.min_lsn`, `/* pgdog_min_lsn: … *\/`), by shard. */
  minLsns?: Map<number, bigint>;
}

/** Plans of unsharded databases' statements (no sharding schema), by text. */
const plans = new PlanCache<readonly StatementPlan[] | null>(1000, 16 * 1024 * 1024);

function plansOf(sql: string): readonly StatementPlan[] | null {
  const cached = plans.get(sql);
  if (cached !== undefined) return cached;
  let out: readonly StatementPlan[] | null;
  try {
    out = analyzeQuery(sql, null);
  } catch {
    out = null; // a syntax error: the primary answers it
  }
  plans.set(sql, out);
  return out;
}

const ROLE_HINT = /pgdog_role: *(primary|replica)/;
const MIN_LSN_HINT = /pgdog_min_lsn: *([0-9A-Fa-f/:,]+)/;
/** WAL position functions: a standby refuses them ("recovery is in progress"), so the primary answers them. */
const PRIMARY_ONLY = /pg_current_wal_(?:insert_|flush_)?lsn/i;

/**
 * A read-your-writes position as a client passes it on: `X/Y` (an LSN as PostgreSQL prints it; shard 0) or
 * `shard:X/Y` pairs separated by commas (sharded databases). Null when it is not one.
 */
export function parseMinLsns(text: string): Map<number, bigint> | null {
  const out = new Map<number, bigint>();
  for (const part of text.trim().split(',')) {
    const m = /^(?:(\d+):)?([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(part.trim());
    if (m === null) return null;
    const lsn = (BigInt(`0x${m[2]}`) << 32n) | BigInt(`0x${m[3]}`);
    const shard = m[1] === undefined ? 0 : Number(m[1]);
    const known = out.get(shard);
    out.set(shard, known === undefined || lsn > known ? lsn : known);
  }
  return out.size > 0 ? out : null;
}

/**
 * What a SET / RESET of pgdog.min_lsn in `p` asks: positions, null (RESET, SET … TO DEFAULT, or a value that is no
 * position); undefined: `p` is no such statement.
 */
function setsMinLsn(p: StatementPlan): Map<number, bigint> | null | undefined {
  const s = p.setting;
  if (s === null || s.name !== 'pgdog.min_lsn') return undefined;
  if (s.action !== 'value' || s.value === null) return null;
  return parseMinLsns(s.value.replace(/^'|'$/g, ''));
}

/** The role a `/* pgdog_role: … *\/` comment asks for, if any. */
export function roleHint(sql: string): RoleOverride {
  if (!sql.includes('pgdog_role')) return null;
  const m = ROLE_HINT.exec(sql);
  return m === null ? null : (m[1] as 'primary' | 'replica');
}

/** A statement that only reads: a replica may run it. */
export function isReadOnlyStatement(p: StatementPlan): boolean {
  if (p.isWrite || p.hasLockingClause || p.isNotify) return false;
  return (
    p.isReadOnly && (p.kind === 'select' || p.kind === 'show' || p.kind === 'explain' || p.kind === 'other')
  );
}

/** Kinds that change no data whatever they name: no user function runs in them. */
const NEVER_WRITES: ReadonlySet<StatementKind> = new Set<StatementKind>([
  'set',
  'reset',
  'show',
  'discard',
  'begin',
  'commit',
  'rollback',
  'savepoint',
  'prepare',
  'deallocate',
]);

/**
 * What statement `p` may do to data where it runs (read-your-writes): 'write' by the router's rule for a
 * transaction's writers (SessionRouter: it writes, or it is a statement the proxy cannot see into); 'never' for the
 * kinds that change nothing whatever they name; 'unless-primary' for the rest (reads), which count as writes when
 * the request is sent to the primary on purpose — `pgdog_role: primary`, `SET pgdog.role = 'primary'`: how a read
 * calling a function that writes is routed.
 */
export function dataEffect(p: StatementPlan): 'write' | 'never' | 'unless-primary' {
  if (NEVER_WRITES.has(p.kind)) return 'never';
  return p.isWrite || (p.kind === 'other' && !p.isReadOnly) ? 'write' : 'unless-primary';
}

/** PostgreSQL's parse_bool for the values a client sets a boolean to (null: not a boolean). */
function parseBool(value: string): boolean | null {
  const v = value.replace(/^'|'$/g, '').trim().toLowerCase();
  if (/^(on|t|tr|tru|true|y|ye|yes|1)$/.test(v)) return true;
  if (/^(off?|f|fa|fal|fals|false|n|no|0)$/.test(v)) return false;
  return null;
}

/**
 * What statement `p` makes of the session's default access mode (`isDefaultReadOnly`): SET (not LOCAL) of
 * default_transaction_read_only, SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY / READ WRITE; its RESET, SET …
 * TO DEFAULT, RESET ALL and DISCARD ALL return it to off (the server's default: a startup value is not known here,
 * and the servers' ParameterStatus corrects the session's copy once the request ran).
 */
export function defaultReadOnlyAfter(p: StatementPlan, isDefaultReadOnly: boolean): boolean {
  if (p.kind === 'discard' && p.setsManualShard === null) return false;
  const s = p.setting;
  if (s === null || s.isLocal) return isDefaultReadOnly;
  if (s.action === 'reset_all') return false;
  if (s.action === 'multi' && s.name === 'SESSION CHARACTERISTICS') {
    if (/\bread\s+only\b/i.test(p.text)) return true;
    if (/\bread\s+write\b/i.test(p.text)) return false;
    return isDefaultReadOnly;
  }
  if (s.name !== 'default_transaction_read_only') return isDefaultReadOnly;
  if (s.action === 'reset' || s.action === 'default') return false;
  if (s.action === 'value' && s.value !== null) return parseBool(s.value) ?? isDefaultReadOnly;
  return isDefaultReadOnly;
}

/** What `p` makes of pgdog.role: SET of it, RESET of it (null), RESET ALL / DISCARD ALL (null); undefined: nothing. */
function setsRole(p: StatementPlan): RoleOverride | undefined {
  if (p.kind === 'discard' && p.setsManualShard === null) return null; // DISCARD ALL
  const s = p.setting;
  if (s?.action === 'reset_all') return null;
  if (s === null || s.name !== 'pgdog.role') return undefined;
  if (s.action === 'value' && s.value !== null) {
    const v = s.value.replace(/^'|'$/g, '').toLowerCase();
    if (v === 'primary' || v === 'replica') return v;
  }
  return null;
}

/**
 * What the statements `texts` (one simple Query, or the Parse texts of an extended request) need, given the
 * session's override and default access mode (`isDefaultReadOnly`: a plain BEGIN opens a READ ONLY transaction).
 * `overrides`: the session's (read-overrides.ts), told the request's transaction control and its SETs of pgdog.role
 * and pgdog.min_lsn in order, whose override then routes the request; or a fixed override, which the request's own
 * SETs change for it alone (its SET pgdog.min_lsn positions are then returned in `minLsns`). `texts` empty (Bind of a
 * statement prepared earlier, whose text is unknown): a write.
 */
export function classifyTexts(
  texts: readonly string[],
  overrides: OverrideEvents | RoleOverride,
  isDefaultReadOnly = false,
): RequestIntent {
  if (texts.length === 0) return { intent: 'write' };
  const events = typeof overrides === 'string' || overrides === null ? null : overrides;
  let isDefaultRo = isDefaultReadOnly;
  let isRead = true;
  let isReadOnlyTx = false;
  let hint: RoleOverride = null;
  let newRole: RoleOverride | undefined;
  let minLsns: Map<number, bigint> | null = null;
  let isWrite = false;
  let hasRead = false;
  for (const sql of texts) {
    hint ??= roleHint(sql);
    if (sql.includes('pgdog_min_lsn')) minLsns = parseMinLsns(MIN_LSN_HINT.exec(sql)?.[1] ?? '') ?? minLsns;
    if (sql.includes('_lsn') && PRIMARY_ONLY.test(sql)) isRead = false;
    const ps = plansOf(sql);
    if (ps === null) return { intent: 'write' };
    for (const p of ps) {
      const effect = dataEffect(p);
      if (effect === 'write') isWrite = true;
      else if (effect === 'unless-primary') hasRead = true;
      const role = setsRole(p);
      if (role !== undefined) {
        if (events === null) newRole = role;
        else events.setRole(role, p.setting?.isLocal === true);
        if (p.setting?.name === 'pgdog.role') continue; // RESET ALL, DISCARD ALL: as any other statement
      }
      const lsns = setsMinLsn(p);
      if (lsns !== undefined) {
        if (events === null) minLsns = lsns ?? minLsns;
        else if (lsns !== null || p.setting?.action !== 'value')
          events.setPositions(lsns, p.setting?.isLocal === true);
        continue;
      }
      if (p.kind === 'begin') {
        events?.begin();
        if (p.transaction?.readOnly ?? isDefaultRo) isReadOnlyTx = true;
        else isRead = false;
        continue;
      }
      if (p.kind === 'set' && p.setting?.action === 'multi' && p.setting.name === 'TRANSACTION') {
        // SET TRANSACTION's modes are not in its plan; its text holds nothing but them.
        if (/\bread\s+only\b/i.test(p.text)) isReadOnlyTx = true;
        else if (/\bread\s+write\b/i.test(p.text)) isReadOnlyTx = isRead = false;
        continue;
      }
      const isDefaultRoAfter = defaultReadOnlyAfter(p, isDefaultRo);
      if (isDefaultRoAfter !== isDefaultRo) {
        isDefaultRo = isDefaultRoAfter;
        isRead = false; // the SET runs where writes run; the servers report the new default to the session
        continue;
      }
      if (p.kind === 'commit' || p.kind === 'rollback' || p.kind === 'prepare_transaction') {
        events?.end(p.kind !== 'rollback', p.transaction?.chain === true);
        if (p.kind !== 'prepare_transaction') continue;
      }
      if (!isReadOnlyStatement(p)) isRead = false;
    }
  }
  const sessionRole = events === null ? (overrides as RoleOverride) : events.role;
  const override = hint ?? (newRole === undefined ? sessionRole : newRole);
  const onPrimary: ReadIntent = isWrite || (hasRead && override === 'primary') ? 'write' : 'read-primary';
  const out: RequestIntent = { intent: onPrimary };
  if (minLsns !== null) out.minLsns = minLsns;
  if (!isRead && !isReadOnlyTx) return out;
  out.intent = override === 'primary' ? onPrimary : override === 'replica' ? 'replica' : 'read';
  return out;
}

/**
 * Whether a transaction block whose characteristics are `texts` (its BEGIN / START TRANSACTION and SET TRANSACTION
 * statements, in order) is READ ONLY and may run on a hot standby: the last access mode given is READ ONLY (none
 * given: the session's default, `isDefaultReadOnly`), and the isolation level is not SERIALIZABLE (a standby refuses
 * it: "cannot use serializable mode in a hot standby").
 */
export function isReadOnlyBlock(texts: readonly string[], isDefaultReadOnly = false): boolean {
  let isReadOnly = isDefaultReadOnly;
  let isSerializable = false;
  for (const sql of texts) {
    for (const p of plansOf(sql) ?? []) {
      if (p.kind === 'begin') {
        if (p.transaction?.readOnly != null) isReadOnly = p.transaction.readOnly;
        if (p.transaction?.isolation != null) isSerializable = /serializable/i.test(p.transaction.isolation);
      } else if (p.kind === 'set' && p.setting?.action === 'multi' && p.setting.name === 'TRANSACTION') {
        // SET TRANSACTION's modes are not in its plan; its text holds nothing but them.
        if (/\bread\s+only\b/i.test(p.text)) isReadOnly = true;
        else if (/\bread\s+write\b/i.test(p.text)) isReadOnly = false;
        if (/\bserializable\b/i.test(p.text)) isSerializable = true;
        else if (/\bisolation\s+level\b/i.test(p.text)) isSerializable = false;
      }
    }
  }
  return isReadOnly && !isSerializable;
}

/**
 * The SQL texts of a request's frames: each Query's text, each Parse's text, and for a Bind of a named statement
 * the text `statementText` knows (null: unknown, which makes the request a write).
 */
export function requestTexts(
  types: readonly number[],
  frames: readonly Buffer[],
  statementText: (name: string) => string | null,
): string[] | null {
  const out: string[] = [];
  let hasParse = false;
  for (let i = 0; i < types.length; i++) {
    const f = frames[i];
    if (types[i] === Frontend.Query) {
      out.push(f.toString('utf8', 5, f.length - 1));
    } else if (types[i] === Frontend.Parse) {
      hasParse = true;
      const nameEnd = f.indexOf(0, 5);
      out.push(f.toString('utf8', nameEnd + 1, f.indexOf(0, nameEnd + 1)));
    } else if (types[i] === Frontend.Bind) {
      const portalEnd = f.indexOf(0, 5);
      const stmtEnd = f.indexOf(0, portalEnd + 1);
      if (stmtEnd === portalEnd + 1) {
        if (hasParse) continue; // the unnamed statement parsed earlier in this request
        return null;
      }
      const text = statementText(f.toString('utf8', portalEnd + 1, stmtEnd));
      if (text === null) return null;
      out.push(text);
    } else if (types[i] === Frontend.FunctionCall) {
      return null;
    }
  }
  return out;
}
