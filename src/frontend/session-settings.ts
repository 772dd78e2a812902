// The session state a sharded session keeps and replays on every server it uses (transaction mode: each server it is
// handed; session mode: shards reached later): its SETs, and its SQL-level prepared statements (PREPARE name AS …),
// as a map of key → statement. What a statement changes in that map (settingChange / applySettingChange), and the
// SQL that brings a server's copy in line with the session's (settingsSyncSql: RESET or DEALLOCATE what the server has
// extra, SET or PREPARE what it lacks), and the session's own copy (SessionSettings: the changes a request makes are
// pending until it succeeds outside a transaction, or the transaction commits). The client's startup settings
// (session-params.ts) are the session's base: what RESET, RESET ALL and DISCARD ALL return a setting to, as PostgreSQL
// returns it to the startup packet's value. Pure.
import { quoteIdentifier } from '../router/sql-text.js';
import type { StatementPlan } from '../router/plan.js';

/**
 * A change to the session state: a setting set by SET or a statement prepared by PREPARE (`text`: the statement),
 * removed (null: RESET, SET … TO DEFAULT, DEALLOCATE), or a whole kind cleared (ALL, ALL_SETTINGS, ALL_PREPARED).
 */
export interface SettingChange {
  readonly name: string;
  readonly text: string | null;
}

/** DISCARD ALL: every setting and prepared statement. */
const ALL = '*';
/** RESET ALL: every setting (prepared statements stay). */
const ALL_SETTINGS = '*settings';
/** DEALLOCATE ALL: every prepared statement (settings stay). */
const ALL_PREPARED = '*prepared';
/** Keys of SQL-level prepared statements: a space never appears in a setting's name. */
export const PREPARED_KEY = 'prepared statement ';

/**
 * Parameters the session keeps in step itself from ParameterStatus (session-params.ts), and shardgate's own routing
 * settings: not replayed as statements.
 */
const NOT_REPLAYED = new Set([
  'client_encoding',
  'datestyle',
  'timezone',
  'intervalstyle',
  'application_name',
  'standard_conforming_strings',
  'default_transaction_read_only',
  'shardgate.shard',
  'shardgate.sharding_key',
]);

/** Whether a setting (lower-case name) is replayed as a statement (not kept in step from ParameterStatus). */
export function isReplayed(name: string): boolean {
  return !NOT_REPLAYED.has(name);
}

/** What `plan` changes in the session state that is replayed on servers, or null. */
export function settingChange(plan: StatementPlan): SettingChange | null {
  if (plan.kind === 'discard' && plan.setsManualShard === null) return { name: ALL, text: null }; // DISCARD ALL
  if (plan.kind === 'prepare' && plan.sqlStatement?.name != null)
    return { name: PREPARED_KEY + plan.sqlStatement.name, text: plan.text };
  if (plan.kind === 'deallocate') {
    const name = plan.sqlStatement?.name ?? null;
    return { name: name === null ? ALL_PREPARED : PREPARED_KEY + name, text: null };
  }
  const s = plan.setting;
  if (s === null || s.isLocal || (plan.kind !== 'set' && plan.kind !== 'reset')) return null;
  if (s.action === 'reset_all') return { name: ALL_SETTINGS, text: null };
  if (s.name === null || NOT_REPLAYED.has(s.name) || s.action === 'multi') return null;
  return { name: s.name, text: s.action === 'value' || s.action === 'current' ? plan.text : null };
}

const NO_BASE: ReadonlyMap<string, string> = new Map();

/**
 * Apply a change to a key → statement map: what a server is known to hold, or the session's, whose `base` (its startup
 * settings) is what a reset returns to.
 */
export function applySettingChange(
  settings: Map<string, string>,
  change: SettingChange,
  base: ReadonlyMap<string, string> = NO_BASE,
): void {
  if (change.name === ALL) settings.clear();
  else if (change.name === ALL_SETTINGS || change.name === ALL_PREPARED) {
    const isPrepared = change.name === ALL_PREPARED;
    for (const key of [...settings.keys()])
      if (key.startsWith(PREPARED_KEY) === isPrepared) settings.delete(key);
  } else if (change.text === null) {
    const reset = base.get(change.name);
    if (reset === undefined) settings.delete(change.name);
    else settings.set(change.name, reset);
    return;
  } else {
    settings.set(change.name, change.text);
    return;
  }
  if (change.name !== ALL_PREPARED) for (const [key, text] of base) settings.set(key, text);
}

/**
 * A session's settings and prepared-statement texts (key → statement), starting as its startup settings, and the
 * changes of the request being routed, kept only once that request succeeded.
 */
export class SessionSettings {
  /** What holds for the session now, replayed on every server it later uses. */
  readonly current: Map<string, string>;
  private readonly startup: ReadonlyMap<string, string>;
  /** SET / RESET / DISCARD ALL / PREPARE / DEALLOCATE in the request being routed. */
  private pending: SettingChange[] = [];

  constructor(startup: ReadonlyMap<string, string>) {
    this.startup = startup;
    this.current = new Map(startup);
  }

  /** A statement of the request being routed: what it changes is pending. */
  note(plan: StatementPlan): void {
    const change = settingChange(plan);
    if (change !== null) this.pending.push(change);
  }

  /** The request's changes, taken to be applied later (or not at all). */
  takePending(): readonly SettingChange[] {
    const changes = this.pending;
    if (changes.length > 0) this.pending = [];
    return changes;
  }

  /** Changes that now hold for the session (returned, for the caller to record on its servers). */
  apply(changes: readonly SettingChange[]): readonly SettingChange[] {
    for (const c of changes) applySettingChange(this.current, c, this.startup);
    return changes;
  }

  /** The request failed, or ran where its end may undo it: its changes are not kept. */
  dropPending(): void {
    // Most requests set nothing: no new array per request on the routing path.
    if (this.pending.length > 0) this.pending = [];
  }
}

/** The statements that bring a server's state (`have`) to the session's (`want`); '' when they match. */
export function settingsSyncSql(
  want: ReadonlyMap<string, string>,
  have: ReadonlyMap<string, string>,
): string {
  if (want.size === 0 && have.size === 0) return ''; // most sessions SET nothing: no iterators per checkout
  let sql = '';
  for (const [key, text] of have) {
    const wanted = want.get(key);
    if (wanted === text) continue;
    if (key.startsWith(PREPARED_KEY)) {
      // A name can be prepared again only once the server's statement of that name is gone.
      sql += `DEALLOCATE ${quoteIdentifier(key.slice(PREPARED_KEY.length))};`;
    } else if (wanted === undefined) sql += `RESET ${settingName(key)};`;
  }
  // A newline before ';': the client's statement may end in a -- comment.
  for (const [key, text] of want) if (have.get(key) !== text) sql += `${text}\n;`;
  return sql;
}

function settingName(name: string): string {
  return /^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$/.test(name) ? name : quoteIdentifier(name);
}
