// A `[[databases]]` host as libpq and PgBouncer read it: an absolute path is the directory holding the server's
// Unix-domain socket (`<dir>/.s.PGSQL.<port>`), anything else a TCP host name or address. Pure: config/databases.ts
// checks a host with it, backend/server-connection.ts connects by it.
import { Buffer } from 'node:buffer';
import path from 'node:path';

/** sockaddr_un.sun_path is 108 bytes on Linux (107 and the NUL); PostgreSQL refuses longer socket paths too. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Where a server connection goes: a Unix-domain socket file, or TCP host:port. */
export type ServerEndpoint = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** The host names a socket directory (libpq: "if a host name looks like an absolute path name"). */
export function isSocketDirectory(host: string): boolean {
  return host.startsWith('/');
}

/** The socket file PostgreSQL listening on `port` creates in `dir`. */
export function socketPath(dir: string, port: number): string {
  return path.posix.join(dir, `.s.PGSQL.${port}`);
}

export function serverEndpoint(host: string, port: number): ServerEndpoint {
  return isSocketDirectory(host)
    ? { kind: 'unix', path: socketPath(host, port) }
    : { kind: 'tcp', host, port };
}

/** Why `host` (with `port`) cannot be connected to, for a config error; null: it can. */
export function hostProblem(host: string, port: number): string | null {
  if (isSocketDirectory(host)) {
    const file = socketPath(host, port);
    if (Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES)
      return `socket path ${JSON.stringify(file)} is longer than ${MAX_SOCKET_PATH_BYTES} bytes`;
    return null;
  }
  if (host.startsWith('@'))
    return `${JSON.stringify(host)} is an abstract-namespace socket, which shardgate does not support`;
  if (host.includes('/')) return `${JSON.stringify(host)} is a relative path`;
  return null;
}
