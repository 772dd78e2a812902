// What a one-shard session's pooled server holds of session state after the client's own SETs (transaction mode),
// learnt from the server itself rather than parsed from the statements: whether a request may have changed it (a byte
// scan of its Query / Parse texts: a statement starting with SET, RESET, DISCARD, PREPARE or DEALLOCATE, or a
// set_config call), the query that asks the server what holds now (its session-level settings, the role SET ROLE
// chose, the SQL-level prepared statements) once the transaction is over, and that answer as the key → statement map
// session-settings.ts syncs servers with. Asking the server covers what parsing cannot follow cheaply: a SET rolled back
// with its block, SET LOCAL, set_config(…, false) inside a SELECT, SET SESSION CHARACTERISTICS, an error mid-script.
// Pure.
import { Frontend } from '../protocol/codes.js';
import { escapeLiteral, setConfigSql } from './startup-options.js';
import { PREPARED_KEY, isReplayed } from './session-settings.js';

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
    let at = 5;
    if (type === Frontend.Parse) while (at < frame.length && frame[at++] !== 0); // past the statement's name
    const text = frame.toString('utf8', at, frame.length - 1).replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, ' ');
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

const LOWER = 0x20;

/** The word at `i` (ASCII, case-insensitive) is `word` (lower case) and ends there. */
function isWordAt(text: Buffer, i: number, end: number, word: string): boolean {
  const n = word.length;
  if (i + n > end) return false;
  for (let k = 0; k < n; k++) if ((text[i + k] | LOWER) !== word.charCodeAt(k)) return false;
  const after = i + n < end ? text[i + n] | LOWER : 0x20;
  return !((after >= 0x61 && after <= 0x7a) || (after >= 0x30 && after <= 0x39) || after === 0x5f);
}

/** After whitespace and comments from `i`: the index of the statement's first word (or `end`). */
function skipBlank(text: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = text[i];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x0c || c === 0x28) i++;
    else if (c === 0x2d && text[i + 1] === 0x2d) {
      while (i < end && text[i] !== 0x0a) i++;
    } else if (c === 0x2f && text[i + 1] === 0x2a) {
      const close = text.indexOf('*/', i + 2, 'latin1');
      i = close < 0 || close >= end ? end : close + 2;
    } else break;
  }
  return i;
}

/** The statement starting at `i` may change session state by its first word. */
function startsChange(text: Buffer, i: number, end: number): boolean {
  i = skipBlank(text, i, end);
  if (i >= end) return false;
  switch (text[i] | LOWER) {
    case 0x73: // s
      return isWordAt(text, i, end, 'set');
    case 0x72: // r
      return isWordAt(text, i, end, 'reset');
    case 0x64: // d
      return isWordAt(text, i, end, 'discard') || isWordAt(text, i, end, 'deallocate');
    case 0x70: // p
      return isWordAt(text, i, end, 'prepare');
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
    } else if (c === 0x5f && i >= start + 3 && isWordAt(text, i + 1, end, 'config')) {
      // `_config`: is it set_config?
      const before = i > start + 3 ? text[i - 4] | LOWER : 0x20;
      if (
        (text[i - 3] | LOWER) === 0x73 &&
        (text[i - 2] | LOWER) === 0x65 &&
        (text[i - 1] | LOWER) === 0x74 &&
        !((before >= 0x61 && before <= 0x7a) || (before >= 0x30 && before <= 0x39) || before === 0x7f)
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
    const frame = frames[i];
    if (type === Frontend.Query) {
      if (textMayChangeSettings(frame, 5, frame.length - 1)) return true; // the text, before its NUL
    } else if (type === Frontend.Parse) {
      let at = 5;
      while (at < frame.length && frame[at] !== 0) at++; // the statement's name
      let end = ++at;
      while (end < frame.length && frame[end] !== 0) end++;
      if (textMayChangeSettings(frame, at, end)) return true;
    }
  }
  return false;
}
