// A tiny raw-socket PostgreSQL client for tests that send arbitrary bytes: startup packets, bad frames,
// SSL/GSS requests. It reads replies back as {type, body} and can log in (trust, md5, SCRAM-SHA-256).
import net from 'node:net';
import tls from 'node:tls';
import { md5PasswordHash } from '../../src/auth/md5.js';
import { ScramClientSession } from '../../src/auth/scram-client.js';
import { query as queryMessage, startupMessage } from '../../src/protocol/messages.js';

export interface RawMessage {
  /** The type byte as a character, e.g. 'E', 'Z'. */
  type: string;
  body: Buffer;
}

const DEFAULT_TIMEOUT_MS = 3_000;

/** A typed frontend message: type byte, int32 length, body. */
export function frame(type: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const out = Buffer.alloc(5 + b.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + b.length, 1);
  b.copy(out, 5);
  return out;
}

/** The fields of an ErrorResponse / NoticeResponse body keyed by their code letter (C = SQLSTATE, M = message). */
export function errorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let i = 0;
  while (i < body.length && body[i] !== 0) {
    const code = String.fromCharCode(body[i]);
    const end = body.indexOf(0, i + 1);
    if (end < 0) break;
    fields[code] = body.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return fields;
}

export class RawClient {
  socket: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  private isClosed = false;
  private wake: (() => void) | null = null;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.bind(socket);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.removeListener('error', reject);
        resolve(new RawClient(socket));
      });
    });
  }

  private bind(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.notify();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.isClosed = true;
      this.notify();
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Resolve once `ready()` is true, the socket closes, or the timeout passes (whichever first). */
  private async waitFor(ready: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready() && !this.isClosed) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  write(data: Buffer | string): void {
    this.socket.write(data);
  }

  /** Read one byte (the answer to SSLRequest / GSSENCRequest). */
  async readByte(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    await this.waitFor(() => this.buf.length >= 1, timeoutMs);
    if (this.buf.length < 1)
      throw new Error(this.isClosed ? 'connection closed' : 'timed out waiting for a byte');
    const b = String.fromCharCode(this.buf[0]);
    this.buf = this.buf.subarray(1);
    return b;
  }

  /** Read one typed message; throws on timeout or if the connection closes first. */
  async readMessage(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawMessage> {
    const isComplete = (): boolean => this.buf.length >= 5 && this.buf.length >= 1 + this.buf.readInt32BE(1);
    await this.waitFor(isComplete, timeoutMs);
    if (!isComplete()) {
      throw new Error(
        this.isClosed ? 'connection closed' : `timed out after ${timeoutMs} ms waiting for a message`,
      );
    }
    const len = this.buf.readInt32BE(1);
    const msg = { type: String.fromCharCode(this.buf[0]), body: Buffer.from(this.buf.subarray(5, 1 + len)) };
    this.buf = this.buf.subarray(1 + len);
    return msg;
  }

  /** Messages up to and including the first of type `type`. */
  async readUntil(type: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    for (;;) {
      const m = await this.readMessage(timeoutMs);
      out.push(m);
      if (m.type === type) return out;
    }
  }

  /** True once the peer closed the connection (false if still open after `timeoutMs`). */
  async waitClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<boolean> {
    await this.waitFor(() => false, timeoutMs);
    return this.isClosed;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Bytes received and not read yet. */
  get pending(): number {
    return this.buf.length;
  }

  /** After the server answered 'S' to an SSLRequest: continue over TLS. */
  async startTls(options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const secure = tls.connect({ socket: raw, rejectUnauthorized: false, ...options });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
    });
    this.socket = secure;
    this.bind(secure);
    return secure;
  }

  /** Send a StartupMessage and authenticate; resolves with the messages up to the first ReadyForQuery. */
  async login(params: Record<string, string>, password: string): Promise<RawMessage[]> {
    const out = await this.loginMessages(params, password);
    const error = out.find((m) => m.type === 'E');
    if (error !== undefined) {
      const f = errorFields(error.body);
      throw Object.assign(new Error(f.M), { code: f.C });
    }
    return out;
  }

  /**
   * Send a StartupMessage and authenticate: every message received up to the first ReadyForQuery, or up to the
   * ErrorResponse that ended the login (the connection then closes).
   */
  async loginMessages(params: Record<string, string>, password: string): Promise<RawMessage[]> {
    this.write(startupMessage(params));
    const out: RawMessage[] = [];
    let scram: ScramClientSession | null = null;
    for (;;) {
      const m = await this.readMessage();
      out.push(m);
      if (m.type === 'E' || m.type === 'Z') return out;
      if (m.type !== 'R') continue;
      const code = m.body.readInt32BE(0);
      if (code === 5) {
        const hash = md5PasswordHash(params.user, password, m.body.subarray(4, 8));
        this.write(frame('p', Buffer.from(`${hash}\0`)));
      } else if (code === 3) {
        this.write(frame('p', Buffer.from(`${password}\0`)));
      } else if (code === 10) {
        scram = new ScramClientSession(password);
        const first = Buffer.from(scram.clientFirst());
        const len = Buffer.alloc(4);
        len.writeInt32BE(first.length);
        this.write(frame('p', Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), len, first])));
      } else if (code === 11 && scram) {
        this.write(frame('p', scram.handleServerFirst(m.body.toString('utf8', 4))));
      } else if (code === 12 && scram) {
        scram.verifyServerFinal(m.body.toString('utf8', 4));
      }
    }
  }

  /** Simple-protocol query: the reply messages up to and including ReadyForQuery. */
  async query(sql: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawMessage[]> {
    this.write(queryMessage(sql));
    return this.readUntil('Z', timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The ParameterStatus values among `messages` (a login's), by name. */
export function parameterStatuses(messages: RawMessage[]): Record<string, string> {
  const status: Record<string, string> = {};
  for (const m of messages) {
    if (m.type !== 'S') continue;
    const [name, value] = m.body.toString('utf8').split('\0');
    status[name] = value;
  }
  return status;
}

/** The first ErrorResponse among `messages`, as fields (throws if there is none). */
export function firstError(messages: RawMessage[]): Record<string, string> {
  const e = messages.find((m) => m.type === 'E');
  if (!e) throw new Error(`no ErrorResponse among ${messages.map((m) => m.type).join('')}`);
  return errorFields(e.body);
}
