// CommandComplete tags: read one shard's tag, combine the tags of N shards into the client's, build the frame.
// Counted tags ("SELECT n", "INSERT 0 n", "UPDATE n", "DELETE n", "MERGE n", "COPY n", "MOVE n", "FETCH n") add up;
// a row-returning SELECT/FETCH reports the rows the client actually got (after a merged LIMIT/OFFSET); every other tag
// ("CREATE TABLE", "SET", …) must be the same on all shards and is reported once.
import { Backend } from '../protocol/codes.js';
import { MessageWriter } from '../protocol/writer.js';

export interface CommandTag {
  /** The tag as the server sent it. */
  readonly text: string;
  /** "SELECT", "INSERT", … for counted tags; the whole text otherwise. */
  readonly command: string;
  /** INSERT's OID field (always "0" since PostgreSQL 12); null for other tags. */
  readonly oid: string | null;
  /** The count of a counted tag; null otherwise. */
  readonly rows: bigint | null;
}

const COUNTED = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'COPY', 'MOVE', 'FETCH']);
/** Tags whose count is the number of rows sent to the client (CREATE TABLE AS also says "SELECT n", sending none). */
const ROW_RETURNING = new Set(['SELECT', 'FETCH']);
const DIGITS = /^\d+$/;

/** The tag of a CommandComplete frame (type byte, length, NUL-terminated tag). */
export function parseCommandTag(frame: Buffer): CommandTag {
  const nul = frame.indexOf(0, 5);
  return parseCommandTagText(frame.toString('utf8', 5, nul < 0 ? frame.length : nul));
}

export function parseCommandTagText(text: string): CommandTag {
  const parts = text.split(' ');
  const command = parts[0];
  if (COUNTED.has(command)) {
    if (command === 'INSERT') {
      if (parts.length === 3 && DIGITS.test(parts[1]) && DIGITS.test(parts[2])) {
        return { text, command, oid: parts[1], rows: BigInt(parts[2]) };
      }
    } else if (parts.length === 2 && DIGITS.test(parts[1])) {
      return { text, command, oid: null, rows: BigInt(parts[1]) };
    }
  }
  return { text, command: text, oid: null, rows: null };
}

export function formatCommandTag(command: string, rows: bigint, oid: string | null = null): string {
  return command === 'INSERT' ? `INSERT ${oid ?? '0'} ${rows}` : `${command} ${rows}`;
}

/**
 * The tag the client gets for `tags` (one per shard, in shard order), or null when they disagree (different
 * commands, or uncounted tags that differ). `rowsSent`: rows the merger emitted when the statement returned rows
 * (a RowDescription or DataRow was seen), else null — then SELECT/FETCH counts are summed like the others.
 */
export function combineCommandTags(tags: readonly CommandTag[], rowsSent: number | null): string | null {
  if (tags.length === 0) return null;
  const first = tags[0];
  if (first.rows === null) return tags.every((t) => t.text === first.text) ? first.text : null;
  let sum = 0n;
  let isSameOid = true;
  for (const t of tags) {
    if (t.command !== first.command || t.rows === null) return null;
    sum += t.rows;
    isSameOid &&= t.oid === first.oid;
  }
  const rows = ROW_RETURNING.has(first.command) && rowsSent !== null ? BigInt(rowsSent) : sum;
  return formatCommandTag(first.command, rows, isSameOid ? first.oid : '0');
}

/** A CommandComplete frame carrying `tag`. */
export function commandComplete(tag: string): Buffer {
  return new MessageWriter(tag.length + 8).cstring(tag).frame(Backend.CommandComplete);
}
