// The admin console's command language: a fixed list of commands, case-insensitive, extra spaces and a trailing
// semicolon allowed; several separated by ";" run in order. Pure: text in, commands (or the unknown text) out.

export const ADMIN_COMMANDS = [
  'SHOW POOLS',
  'SHOW CLIENTS',
  'SHOW SERVERS',
  'SHOW DATABASES',
  'SHOW STATS',
  'SHOW CONFIG',
  'SHOW TRANSACTIONS',
  'SHOW VERSION',
  'RELOAD',
  'PAUSE',
  'RESUME',
  'SHUTDOWN',
] as const;

export type AdminCommand = (typeof ADMIN_COMMANDS)[number];

export type ParsedStatement = { kind: 'command'; command: AdminCommand } | { kind: 'unknown'; text: string };

const BY_TEXT: ReadonlyMap<string, AdminCommand> = new Map(ADMIN_COMMANDS.map((c) => [c, c]));

/** The statements of one simple Query, in order; empty statements are dropped (all empty → []). */
export function parseAdminQuery(sql: string): ParsedStatement[] {
  const out: ParsedStatement[] = [];
  for (const part of sql.split(';')) {
    const text = part.trim();
    if (text === '') continue;
    const normalized = text.replace(/\s+/g, ' ').toUpperCase();
    const command = BY_TEXT.get(normalized);
    out.push(command === undefined ? { kind: 'unknown', text } : { kind: 'command', command });
  }
  return out;
}
