// What a one-shard session's pooled server holds of session state after the client's own SETs (transaction mode),
// learnt from the server itself rather than parsed from the statements: whether a request may have changed it (a byte
// scan of its Query / Parse texts: a statement starting with SET, RESET, DISCARD, PREPARE or DEALLOCATE, or a
// set_config call), the query that asks the server what holds now (its session-level settings, the role SET ROLE
// chose, the SQL-level prepared statements) once the transaction is over, and that answer as the key → statement map
// session-settings.ts syncs servers with. Asking the server covers what parsing cannot follow cheaply: a SET rolled back
// with its block, SET LOCAL, set_config(…, false) inside a SELECT, SET SESSION CHARACTERISTICS, an error mid-script.
// Pure.
import type { Buffer } from 'node:buffer';
import { Frontend } from '../protocol/codes.js';
import { escapeLiteral, setConfigSql } from './startup-options.js';
import { PREPARED_KEY, isReplayed } from './session-settings.js';
import { isIdentifierByte, isKeywordAt, skipBlank, textEnd, textStart } from './statement-bytes.js';

/**
 * The session-level state of a server: settings whose source is the session (SET, set_config(…, false)), the role
 * (SET ROLE: pg_settings leaves it out), the custom settings (`app.tenant`: placeholders, which pg_settings does not
 * list either) the session was seen to set, and SQL-level prepared statements. One Query, rows of (key, value).
 */
export function settingsTruthSql(customNames: ReadonlySet<string>): string {
  let sql =
    "SELECT name, setting FROM pg_catalog.pg_settings WHERE source = 'session' " +
    "UNION ALL SELECT 'role', current_setting('role') WHERE current_setting('role') <> 'none' " +
    "UNION ALL SELECT ' ' || name, statement FROM pg_catalog.pg_prepared_statements WHERE from_sql";
  if (customNames.size > 0) {
    const names = [...customNames].map(escapeLiteral).join(', ');
    sql += ` UNION ALL SELECT n, v FROM (SELECT n, current_setting(n, true) AS v FROM unnest(ARRAY[${names}]) AS n) s WHERE v <> ''`;
  }
  return sql;
}

const CUSTOM_SET = /(?:^|;)\s*(?:set|reset)\s+(?:session\s+)?("?[a-z_][\w$]*"?\s*\.\s*"?[a-z_][\w$]*"?)/gi;
const SET_CONFIG = /set_config\s*\(\s*(?:e?'((?:[^']|'')*)')/gi;

/**
 * The custom settings (a dotted name: placeholders such as `app.tenant`) SET, RESET or set_config'd by the Query and
 * Parse texts among the frames, lower case. Run only on requests mayChangeSettings flagged.
 */
export function customSettingNames(
  types: readonly number[],
  frames: readonly Buffer[],
  into: Set<string>,
): void {
  for (let i = 0; i < types.length; i++) {
    const type = types[i];
    if (type !== Frontend.Query && type !== Frontend.Parse) continue;
    const frame = frames[i];
    const start = textStart(type, frame);
    const end = start < 0 ? -1 : textEnd(type, frame, start);
    if (end < 0) continue;
    const text = frame.toString('utf8', start, end).replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, ' ');
    for (const m of text.matchAll(CUSTOM_SET)) into.add(m[1].replace(/["\s]/g, '').toLowerCase());
    for (const m of text.matchAll(SET_CONFIG)) {
      const name = m[1].replace(/''/g, "'").toLowerCase();
      if (name.includes('.')) into.add(name);
    }
  }
}

/** The server's answer as key → statement (what settingsSyncSql compares and replays). */
export function settingsFromRows(rows: readonly (readonly (string | null)[])[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of rows) {
    if (key === null || value === null) continue;
    if (key.startsWith(' '))
      out.set(PREPARED_KEY + key.slice(1), value); // the PREPARE statement's text
    else {
      const name = key.toLowerCase(); // pg_settings spells some names in mixed case (DateStyle)
      if (isReplayed(name)) out.set(name, setConfigSql(name, value));
    }
  }
  return out;
}

/** The statement starting at `i` may change session state by its first word (a `(` before it is skipped too). */
function startsChange(text: Buffer, i: number, end: number): boolean {
  i = skipBlank(text, i, end);
  while (i < end && text[i] === 0x28) i = skipBlank(text, i + 1, end);
  if (i >= end) return false;
  switch (text[i] | 0x20) {
    case 0x73: // s
      return isKeywordAt(text, i, end, 'set');
    case 0x72: // r
      return isKeywordAt(text, i, end, 'reset');
    case 0x64: // d
      return isKeywordAt(text, i, end, 'discard') || isKeywordAt(text, i, end, 'deallocate');
    case 0x70: // p
      return isKeywordAt(text, i, end, 'prepare');
    default:
      return false;
  }
}

/**
 * Whether SQL text (bytes `start`..`end` of a frame) may change the session state: a statement (the first, or one after
 * a `;`) starting with SET, RESET, DISCARD, PREPARE or DEALLOCATE, or a set_config call anywhere. May say yes for
 * text that changes nothing (a `;` inside a literal, SET LOCAL, a set_config(…, true)): the server is then asked for
 * nothing new. Never says no for one that does, except through functions that SET inside them.
 * Written by hand: it runs on every Query and Parse of a one-shard session's request, one pass, no allocation.
 */
export function textMayChangeSettings(text: Buffer, start: number, end: number): boolean {
  if (startsChange(text, start, end)) return true;
  for (let i = start; i < end; i++) {
    const c = text[i];
    if (c === 0x3b) {
      if (startsChange(text, i + 1, end)) return true;
    } else if (c === 0x5f && i >= start + 3 && isKeywordAt(text, i + 1, end, 'config')) {
      // `_config`: is it set_config (a word of its own)?
      if (
        (text[i - 3] | 0x20) === 0x73 &&
        (text[i - 2] | 0x20) === 0x65 &&
        (text[i - 1] | 0x20) === 0x74 &&
        !(i > start + 3 && isIdentifierByte(text[i - 4]))
      )
        return true;
    }
  }
  return false;
}

/** Whether any Query or Parse among a request's frames may change the session state (textMayChangeSettings). */
export function mayChangeSettings(
  types: readonly number[],
  frames: readonly Buffer[],
  count: number,
): boolean {
  for (let i = 0; i < count; i++) {
    const type = types[i];
    if (type !== Frontend.Query && type !== Frontend.Parse) continue;
    const frame = frames[i];
    const start = textStart(type, frame);
    const end = start < 0 ? -1 : textEnd(type, frame, start);
    if (end >= 0 && textMayChangeSettings(frame, start, end)) return true;
  }
  return false;
}
