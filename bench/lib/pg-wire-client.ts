// A minimal PostgreSQL wire-protocol client: StartupMessage, authentication (cleartext, md5, SCRAM-SHA-256),
// wait for ReadyForQuery, then sit idle. Thousands of these are cheap, unlike `pg` clients. Also used as the
// readiness probe for proxies ("can a real user log in?").
import net from 'node:net';
import { md5PasswordHash } from '../../src/auth/md5.js';
import { ScramClientSession } from '../../src/auth/scram-client.js';

export interface LoginOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Startup parameters besides user and database (default: application_name = bench-idle). */
  params?: Record<string, string>;
}

export class PgLoginError extends Error {
  constructor(
    message: string,
    readonly sqlState?: string,
  ) {
    super(message);
  }
}

/** A logged-in, idle connection. */
export class IdleConnection {
  /** Why the server closed it or sent an error while idle; null while it is alive. */
  lostReason: string | null = null;

  constructor(readonly socket: net.Socket) {}

  /** Send Terminate and close. */
  close(): void {
    if (this.socket.destroyed) return;
    const terminate = Buffer.from([0x58, 0, 0, 0, 4]);
    this.socket.end(terminate);
    this.socket.destroySoon();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function startupMessage(
  user: string,
  database: string,
  extra: Record<string, string> = { application_name: 'bench-idle' },
): Buffer {
  let text = `user\0${user}\0database\0${database}\0`;
  for (const [name, value] of Object.entries(extra)) text += `${name}\0${value}\0`;
  const params = Buffer.from(`${text}\0`, 'utf8');
  const buf = Buffer.alloc(8 + params.length);
  buf.writeInt32BE(buf.length, 0);
  buf.writeInt32BE(196608, 4); // protocol 3.0
  params.copy(buf, 8);
  return buf;
}

/** A 'p' message (PasswordMessage / SASLInitialResponse / SASLResponse) with the given body. */
function passwordMessage(body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = 0x70;
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

function cstring(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf8');
}

function errorFields(body: Buffer): { message: string; code?: string } {
  const fields: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const key = String.fromCharCode(body[i]);
    const end = body.indexOf(0, i + 1);
    if (end < 0) break;
    fields[key] = body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return { message: `${fields.S ?? 'ERROR'}: ${fields.M ?? '(no message)'}`, code: fields.C };
}

/** Connect and log in; resolves once the server sent ReadyForQuery. */
export function login(opts: LoginOptions): Promise<IdleConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    const conn = new IdleConnection(socket);
    let pending: Buffer = Buffer.alloc(0);
    let scram: ScramClientSession | null = null;
    let isDone = false;

    const timer = setTimeout(
      () => fail(new PgLoginError(`login timed out after ${opts.timeoutMs ?? 30_000} ms`)),
      opts.timeoutMs ?? 30_000,
    );

    function fail(err: Error): void {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    }

    function succeed(): void {
      isDone = true;
      clearTimeout(timer);
      pending = Buffer.alloc(0);
      socket.removeListener('data', onData);
      // Idle from now on: note anything the server says or does (errors, shutdown), drop the rest.
      socket.on('data', (chunk: Buffer) => {
        if (chunk[0] === 0x45 && chunk.length > 5) conn.lostReason = errorFields(chunk.subarray(5)).message;
      });
      socket.on('close', () => {
        conn.lostReason ??= 'closed by server';
      });
      resolve(conn);
    }

    function handle(type: number, body: Buffer): void {
      switch (type) {
        case 0x52: {
          // 'R' Authentication*
          const code = body.readInt32BE(0);
          if (code === 0) return; // AuthenticationOk
          if (code === 3) {
            socket.write(passwordMessage(cstring(opts.password)));
          } else if (code === 5) {
            const salt = body.subarray(4, 8);
            socket.write(passwordMessage(cstring(md5PasswordHash(opts.user, opts.password, salt))));
          } else if (code === 10) {
            const mechanisms = body.toString('utf8', 4).split('\0').filter(Boolean);
            if (!mechanisms.includes('SCRAM-SHA-256')) {
              throw new PgLoginError(`server offers SASL ${mechanisms.join(', ')}, not SCRAM-SHA-256`);
            }
            scram = new ScramClientSession(opts.password);
            const first = Buffer.from(scram.clientFirst(), 'utf8');
            const len = Buffer.alloc(4);
            len.writeInt32BE(first.length, 0);
            socket.write(passwordMessage(Buffer.concat([cstring('SCRAM-SHA-256'), len, first])));
          } else if (code === 11) {
            if (scram === null) throw new PgLoginError('SASLContinue before SASL');
            const final = scram.handleServerFirst(body.toString('utf8', 4));
            socket.write(passwordMessage(Buffer.from(final, 'utf8')));
          } else if (code === 12) {
            if (scram === null) throw new PgLoginError('SASLFinal before SASL');
            scram.verifyServerFinal(body.toString('utf8', 4));
          } else {
            throw new PgLoginError(`unsupported authentication request ${code}`);
          }
          return;
        }
        case 0x45: {
          // 'E' ErrorResponse
          const { message, code } = errorFields(body);
          throw new PgLoginError(message, code);
        }
        case 0x5a: // 'Z' ReadyForQuery
          succeed();
          return;
        default:
          return; // ParameterStatus, BackendKeyData, NoticeResponse
      }
    }

    function onData(chunk: Buffer): void {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      try {
        while (!isDone && pending.length >= 5) {
          const len = pending.readInt32BE(1);
          if (len < 4 || len > 1 << 20) throw new PgLoginError(`bad message length ${len}`);
          if (pending.length < 1 + len) return;
          const type = pending[0];
          const body = pending.subarray(5, 1 + len);
          pending = pending.subarray(1 + len);
          handle(type, body);
        }
      } catch (err) {
        fail(err instanceof Error ? err : new Error(String(err)));
      }
    }

    socket.on('data', onData);
    socket.on('error', (err) => {
      if (!isDone) fail(err);
      else conn.lostReason ??= err.message;
    });
    socket.on('close', () => fail(new PgLoginError('connection closed during login')));
    socket.once('connect', () => socket.write(startupMessage(opts.user, opts.database, opts.params)));
  });
}

/** Retry logging in (and disconnecting) until it works; throws the last error after `timeoutMs`. */
export async function waitForLogin(
  opts: LoginOptions,
  timeoutMs: number,
  isAlive: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (!isAlive())
      throw new Error(`the process exited before accepting logins (last error: ${lastError || 'none'})`);
    try {
      const conn = await login({ ...opts, timeoutMs: 2_000 });
      conn.close();
      return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      // Wrong password or unknown database will not fix itself.
      if (err instanceof PgLoginError && err.sqlState !== undefined && /^(28|3D)/.test(err.sqlState)) {
        throw new Error(`login to ${opts.host}:${opts.port} refused: ${lastError}`);
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `no successful login to ${opts.host}:${opts.port} within ${timeoutMs} ms (last error: ${lastError})`,
  );
}

/**
 * Open `count` idle connections, at most `concurrency` logins in flight. Returns the connections that made it
 * and the failures (the first few messages, and a count).
 */
export async function openIdleConnections(
  opts: LoginOptions,
  count: number,
  concurrency: number,
  onProgress?: (done: number) => void,
): Promise<{ conns: IdleConnection[]; failures: number; firstErrors: string[] }> {
  const conns: IdleConnection[] = [];
  const firstErrors: string[] = [];
  let failures = 0;
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      try {
        conns.push(await login(opts));
      } catch (err) {
        failures++;
        const msg = err instanceof Error ? err.message : String(err);
        if (firstErrors.length < 5 && !firstErrors.includes(msg)) firstErrors.push(msg);
      }
      const done = conns.length + failures;
      if (onProgress !== undefined && done % 1000 === 0) onProgress(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { conns, failures, firstErrors };
}
