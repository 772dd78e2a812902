// Pieces of SQL text the proxy writes itself (statements of its own, replays): identifiers and string literals,
// quoted so that any name or value stays one token whatever it holds.

/** `name` as a quoted identifier (case and keywords kept: a quoted name is always a name). */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `value` as an E'…' string literal: safe whatever standard_conforming_strings says. */
export function escapeStringLiteral(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
