// The admin console's command language: a fixed list of commands, case-insensitive, extra spaces and a trailing
// semicolon allowed; several separated by ";" run in order; BAN, UNBAN and HEALTHCHECK take an optional pool id (as
// PgDog). Pure: text in, commands (or the unknown text) out.

export const ADMIN_COMMANDS = [
  'SHOW POOLS',
  'SHOW CLIENTS',
  'SHOW SERVERS',
  'SHOW DATABASES',
  'SHOW STATS',
  'SHOW CONFIG',
  'SHOW TRANSACTIONS',
  'SHOW VERSION',
  'SHOW BANS',
  'SHOW REPLICATION',
  'BAN',
  'UNBAN',
  'HEALTHCHECK',
  'RECOVER',
  'RELOAD',
  'PAUSE',
  'RESUME',
  'SHUTDOWN',
] as const;

export type AdminCommand = (typeof ADMIN_COMMANDS)[number];

/** `poolId`: BAN / UNBAN / HEALTHCHECK of one pool (SHOW POOLS' id); absent: every pool. */
export type ParsedStatement =
  { kind: 'command'; command: AdminCommand; poolId?: number } | { kind: 'unknown'; text: string };

/** The commands that take an optional pool id. */
const WITH_POOL_ID = /^(BAN|UNBAN|HEALTHCHECK) (\d{1,15})$/;

const BY_TEXT: ReadonlyMap<string, AdminCommand> = new Map(ADMIN_COMMANDS.map((c) => [c, c]));

/** The statements of one simple Query, in order; empty statements are dropped (all empty → []). */
export function parseAdminQuery(sql: string): ParsedStatement[] {
  const out: ParsedStatement[] = [];
  for (const part of sql.split(';')) {
    const text = part.trim();
    if (text === '') continue;
    const normalized = text.replace(/\s+/g, ' ').toUpperCase();
    const command = BY_TEXT.get(normalized);
    const withId = WITH_POOL_ID.exec(normalized);
    if (withId !== null) {
      out.push({ kind: 'command', command: withId[1] as AdminCommand, poolId: Number(withId[2]) });
    } else out.push(command === undefined ? { kind: 'unknown', text } : { kind: 'command', command });
  }
  return out;
}
