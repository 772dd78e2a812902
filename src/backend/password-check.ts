// passthrough_auth's server check: log in to a shard's server as the client, with the password the client gave,
// and close again. The server's own answer decides: accepted, refused (its FATAL: wrong password, no such role, no
// pg_hba entry …), or unreachable.
import type { PgError } from '../errors/pg-error.js';
import { ServerConnection, StartupRefused, type ServerAddress } from './server-connection.js';

export type PasswordCheck =
  /** `wasAsked` false: the server trusted the connection and never looked at the password. */
  | { readonly kind: 'accepted'; readonly wasAsked: boolean }
  | { readonly kind: 'refused'; readonly error: PgError }
  | { readonly kind: 'unreachable'; readonly reason: string };

export async function checkServerPassword(
  address: ServerAddress,
  connectTimeoutMs: number,
): Promise<PasswordCheck> {
  const server = new ServerConnection(address);
  try {
    await server.connect(connectTimeoutMs, {});
  } catch (err) {
    if (err instanceof StartupRefused) return { kind: 'refused', error: err.error };
    return { kind: 'unreachable', reason: (err as Error).message };
  }
  server.terminate('passthrough password checked');
  return { kind: 'accepted', wasAsked: server.hasRequestedPassword };
}
