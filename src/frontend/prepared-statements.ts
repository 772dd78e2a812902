// Named prepared statements under transaction pooling: each client's statement names map to server-side names
// derived from the statement text (shared by every client that prepares the same text), and a client's batch is
// rewritten for whichever server connection it lands on, preparing statements that server lacks.
// Parse/Bind/Describe/Close are decoded only as far as their names; everything else is copied as bytes.
import { Frontend } from '../protocol/codes.js';
import { closeStatement } from '../protocol/messages.js';

/** What a server connection must offer for statement rewriting (kept minimal for unit tests). */
export interface StatementServer {
  readonly prepared: Set<string>;
  /** Names added by the batch in flight; dropped again if that batch fails. */
  readonly unconfirmed: string[];
  /** The next reply of this type (CloseComplete / ParseComplete) from the batch being written is the proxy's own. */
  swallowNext(type: number): void;
}

interface ClientStatement {
  serverName: string;
  /** The client's Parse rewritten to the server name (re-sent when a server lacks the statement). */
  parse: Buffer;
}

/** Server-side names, one per distinct (query text, parameter types): shared across clients and servers. */
export class StatementNames {
  private readonly names = new Map<string, string>();
  private next = 1;

  nameFor(key: string): string {
    let name = this.names.get(key);
    if (name === undefined) {
      name = `sg_${(this.next++).toString(36)}`;
      this.names.set(key, name);
    }
    return name;
  }

  get size(): number {
    return this.names.size;
  }
}

/** A name no statement ever has: closing it makes the server answer CloseComplete with no effect. */
const NEVER_NAME = 'sg_never';
const CLOSE_NEVER = closeStatement(NEVER_NAME);

function cstringEnd(frame: Buffer, from: number): number {
  const end = frame.indexOf(0, from);
  if (end < 0) throw new Error('unterminated string in message');
  return end;
}

/** Build a frame: same type, `head` bytes, a new name, then `tail` bytes of the original. */
function withName(type: number, head: Buffer | null, name: string, tail: Buffer): Buffer {
  const nameLen = Buffer.byteLength(name);
  const headLen = head ? head.length : 0;
  const total = 5 + headLen + nameLen + 1 + tail.length;
  const out = Buffer.allocUnsafe(total);
  out[0] = type;
  out.writeInt32BE(total - 1, 1);
  let p = 5;
  if (head) p += head.copy(out, p);
  p += out.write(name, p, 'utf8');
  out[p++] = 0;
  tail.copy(out, p);
  return out;
}

export class ClientStatements {
  private readonly byName = new Map<string, ClientStatement>();
  private readonly names: StatementNames;

  constructor(names: StatementNames) {
    this.names = names;
  }

  get size(): number {
    return this.byName.size;
  }

  clear(): void {
    this.byName.clear();
  }

  /** DISCARD ALL / DEALLOCATE ALL drop every prepared statement on the server (and the client's view of them). */
  noteQuery(frame: Buffer, server: StatementServer): void {
    const c = frame[5] | 0x20;
    if (c !== 0x64) return; // not 'd'
    const text = frame.toString('utf8', 5, Math.min(frame.length, 64)).toLowerCase();
    if (/^(discard\s+all|deallocate\s+(prepare\s+)?all)\b/.test(text)) {
      server.prepared.clear();
      this.clear();
    }
  }

  /**
   * Rewrite one client frame for `server`, appending what to send to `out`. Frames that need no change are
   * appended as they are. Throws on a malformed frame (the caller answers 08P01).
   */
  rewrite(type: number, frame: Buffer, server: StatementServer, out: Buffer[]): void {
    switch (type) {
      case Frontend.Parse:
        return this.rewriteParse(frame, server, out);
      case Frontend.Bind: {
        const portalEnd = cstringEnd(frame, 5);
        const stmtEnd = cstringEnd(frame, portalEnd + 1);
        if (stmtEnd === portalEnd + 1) break; // unnamed statement
        const stmt = this.byName.get(frame.toString('utf8', portalEnd + 1, stmtEnd));
        if (stmt === undefined) break; // unknown: the server answers 26000 itself
        this.ensurePrepared(stmt, server, out);
        out.push(
          withName(type, frame.subarray(5, portalEnd + 1), stmt.serverName, frame.subarray(stmtEnd + 1)),
        );
        return;
      }
      case Frontend.Describe:
      case Frontend.Close: {
        if (frame[5] !== 0x53) break; // 'P' portal: unchanged
        const nameEnd = cstringEnd(frame, 6);
        if (nameEnd === 6) break; // unnamed statement
        const name = frame.toString('utf8', 6, nameEnd);
        if (type === Frontend.Close) {
          // The server copy stays for other clients; the server still owes a CloseComplete.
          this.byName.delete(name);
          out.push(CLOSE_NEVER);
          return;
        }
        const stmt = this.byName.get(name);
        if (stmt === undefined) break;
        this.ensurePrepared(stmt, server, out);
        out.push(withName(type, frame.subarray(5, 6), stmt.serverName, frame.subarray(nameEnd + 1)));
        return;
      }
    }
    out.push(frame);
  }

  /** Learn a client's named statement without sending it anywhere (its Parse went out rewritten, e.g. split). */
  remember(frame: Buffer): void {
    const nameEnd = cstringEnd(frame, 5);
    if (nameEnd === 5) return;
    const tail = frame.subarray(nameEnd + 1);
    const serverName = this.names.nameFor(tail.toString('latin1'));
    this.byName.set(frame.toString('utf8', 5, nameEnd), {
      serverName,
      parse: withName(Frontend.Parse, null, serverName, tail),
    });
  }

  private rewriteParse(frame: Buffer, server: StatementServer, out: Buffer[]): void {
    const nameEnd = cstringEnd(frame, 5);
    if (nameEnd === 5) {
      out.push(frame); // unnamed statement: lives only until the next unnamed Parse, no mapping needed
      return;
    }
    const clientName = frame.toString('utf8', 5, nameEnd);
    const tail = frame.subarray(nameEnd + 1); // query text, parameter types
    const serverName = this.names.nameFor(tail.toString('latin1'));
    const stmt: ClientStatement = { serverName, parse: withName(Frontend.Parse, null, serverName, tail) };
    this.byName.set(clientName, stmt);
    if (server.prepared.has(serverName)) {
      // The server has it already: an unnamed Parse of the same text earns the client its ParseComplete
      // (and reports the same errors) without touching the shared named statement.
      out.push(withName(Frontend.Parse, null, '', tail));
      return;
    }
    this.sendPrepare(stmt, server, out, false);
  }

  private ensurePrepared(stmt: ClientStatement, server: StatementServer, out: Buffer[]): void {
    if (!server.prepared.has(stmt.serverName)) this.sendPrepare(stmt, server, out, true);
  }

  /** Close-then-Parse, so re-preparing is harmless even if the server had the statement after all. */
  private sendPrepare(
    stmt: ClientStatement,
    server: StatementServer,
    out: Buffer[],
    swallowParse: boolean,
  ): void {
    out.push(closeStatement(stmt.serverName), stmt.parse);
    server.swallowNext(0x33); // CloseComplete
    if (swallowParse) server.swallowNext(0x31); // ParseComplete
    server.prepared.add(stmt.serverName);
    server.unconfirmed.push(stmt.serverName);
  }
}
