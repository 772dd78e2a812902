// The names, texts and limits inside the client's messages that the sharded session looks at: the portal and
// statement of a Bind, the portal and row limit of an Execute, the portal or statement a Describe / Close names, the
// SQL text of a Query or Parse. Frames come whole from FrameReader; these read fields, nothing more (the server
// validates the rest). The `checked` readers are the router's: a string without its NUL there is refused before the
// request is routed (PgError 08P01) instead of being read to the end of the frame.
import { PgError } from '../errors/pg-error.js';

/** End of the C string starting at `from` (its NUL). */
function stringEnd(frame: Buffer, from: number): number {
  const end = frame.indexOf(0, from);
  return end < 0 ? frame.length : end;
}

/** The portal a Bind creates ('' = unnamed). */
export function bindPortal(frame: Buffer): string {
  return frame.toString('utf8', 5, stringEnd(frame, 5));
}

/** The prepared statement a Bind uses ('' = unnamed). */
export function bindStatement(frame: Buffer): string {
  const portalEnd = stringEnd(frame, 5);
  return frame.toString('utf8', portalEnd + 1, stringEnd(frame, portalEnd + 1));
}

/** The portal an Execute runs ('' = unnamed). */
export function executePortal(frame: Buffer): string {
  return frame.toString('utf8', 5, stringEnd(frame, 5));
}

/** An Execute's row limit (0 = all rows); read without decoding the portal name. */
export function executeLimit(frame: Buffer): number {
  const end = stringEnd(frame, 5);
  return end + 5 <= frame.length ? frame.readInt32BE(end + 1) : 0;
}

/** 'P' (portal) or 'S' (statement), and the name, of a Describe or Close. */
export function describedTarget(frame: Buffer): { isPortal: boolean; name: string } {
  return { isPortal: frame[5] === 0x50, name: frame.toString('utf8', 6, stringEnd(frame, 6)) };
}

/** End of the C string starting at `from` (its NUL); a string without one is ERROR 08P01, as PostgreSQL's
 * pq_getmsgstring answers it. */
function checkedStringEnd(frame: Buffer, from: number): number {
  const end = frame.indexOf(0, from);
  if (end < 0) throw PgError.malformedMessage('invalid string in message');
  return end;
}

/** A Query's SQL text, checked. */
export function queryText(frame: Buffer): string {
  return frame.toString('utf8', 5, checkedStringEnd(frame, 5));
}

/** The statement a Parse prepares ('' = unnamed), checked. */
export function parseStatement(frame: Buffer): string {
  return frame.toString('utf8', 5, checkedStringEnd(frame, 5));
}

/** A Parse's SQL text, checked. */
export function parseText(frame: Buffer): string {
  const nameEnd = checkedStringEnd(frame, 5);
  return frame.toString('utf8', nameEnd + 1, checkedStringEnd(frame, nameEnd + 1));
}

/** The prepared statement a Bind uses ('' = unnamed), checked (portal and statement name). */
export function checkedBindStatement(frame: Buffer): string {
  const start = checkedBindStatementStart(frame);
  return frame.toString('utf8', start, checkedNameEnd(frame, start));
}

/**
 * Where the statement name of a Bind starts (after the portal name), checked. With checkedNameEnd, for readers that
 * compare the name's bytes before decoding it (frontend/prepared-plans.ts).
 */
export function checkedBindStatementStart(frame: Buffer): number {
  return checkedNameEnd(frame, 5) + 1;
}

/**
 * End of the name (portal, statement) starting at `from` — its NUL — checked as checkedStringEnd is. A loop: names are
 * short, and Buffer#indexOf's call into C++ costs more than reading them (two per Bind on every request).
 */
export function checkedNameEnd(frame: Buffer, from: number): number {
  for (let i = from; i < frame.length; i++) if (frame[i] === 0) return i;
  throw PgError.malformedMessage('invalid string in message');
}

/** Whether `frame[from, end)` holds exactly the UTF-16 code units of `name` as bytes (ASCII names; else false). */
export function isNameAt(frame: Buffer, from: number, end: number, name: string): boolean {
  if (end - from !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x80 || frame[from + i] !== c) return false;
  }
  return true;
}

/** The prepared statement a Close closes ('' = unnamed), checked; null when it closes a portal. */
export function closedStatement(frame: Buffer): string | null {
  if (frame[5] !== 0x53 /* S */) return null;
  return frame.toString('utf8', 6, checkedStringEnd(frame, 6));
}
