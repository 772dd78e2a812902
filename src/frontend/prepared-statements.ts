// Named prepared statements under transaction pooling: each client's statement names map to server-side names
// derived from the statement text (shared by every client that prepares the same text), and a client's batch is
// rewritten for whichever server connection it lands on, preparing statements that server lacks. Memory is bounded:
// the shared cache drops statements no client uses beyond its limits, and each server connection keeps at most
// `prepared_statements_limit` statements (the least recently used are closed at the start of its next batch).
// Parse/Bind/Describe/Close are decoded only as far as their names; everything else is copied as bytes.
import { Buffer } from 'node:buffer';
import { hash } from 'node:crypto';
import { Backend, Frontend } from '../protocol/codes.js';
import { closeStatement } from '../protocol/messages.js';
import type { FrameSink } from '../protocol/frame-list.js';
import type { GeneralConfig } from '../config/types.js';
import { evictStatement, type ServerStatements, type StatementRef } from '../backend/server-statements.js';

/** The per-connection statement set a server offers (ServerStatements, or a test double). */
export type ServerStatementSet = Pick<
  ServerStatements,
  'has' | 'use' | 'add' | 'delete' | 'clear' | 'size' | 'takeVictims'
>;

/** What a server connection must offer for statement rewriting (kept minimal for unit tests). */
export interface StatementServer {
  readonly prepared: ServerStatementSet;
  /** Names added by the batch in flight; dropped again if that batch fails. */
  readonly unconfirmed: string[];
  /**
   * The reply (CloseComplete / ParseComplete) to the message just written is the proxy's own: `inWrite` is that
   * message's position among its kind in the write since its last Sync / Query; `isNewWindow`: the write had one
   * (ResponseScanner.swallowReply).
   */
  swallowReply(type: number, inWrite: number, isNewWindow: boolean): void;
}

/** One distinct statement (query text and parameter types) and its server-side name, shared by every client. */
export interface CachedStatement extends StatementRef {
  readonly name: string;
  /** Parse under the server name (re-sent to servers that lack it); null once evicted. */
  parse: Buffer | null;
  /** Client statements (over all clients) mapped to it; evictable at 0. */
  refs: number;
  /** What it costs the cache: its Parse frame, its key and bookkeeping. */
  readonly bytes: number;
  isEvicted: boolean;
  readonly key: string;
}

export interface StatementCacheLimits {
  /** Statements kept (`prepared_statements_limit`); only unused ones are dropped to get there. */
  maxCount: number;
  /** Bytes kept (`prepared_statements_cache_size`); likewise. */
  maxBytes: number;
}

export const UNLIMITED_STATEMENTS: StatementCacheLimits = Object.freeze({
  maxCount: Number.MAX_SAFE_INTEGER,
  maxBytes: Number.MAX_SAFE_INTEGER,
});

/** Per entry besides its Parse frame: the map entries, the object, its name. */
const ENTRY_OVERHEAD_BYTES = 200;

/**
 * The proxy's statement cache: server-side names, one per distinct (query text, parameter types), shared across clients
 * and servers. Entries no client statement uses are kept, least recently released first, while the cache is within
 * its limits, and dropped beyond them (their text is freed; servers that still have the name close it in time).
 * Names are never reused: `sg_<n>` counts up for the life of the process, so a server still holding an evicted name
 * can never mistake it for another statement — the same text prepared again gets a new name.
 */
export class StatementNames {
  private readonly byKey = new Map<string, CachedStatement>();
  /** Entries with refs = 0, oldest first. */
  private readonly unused = new Map<string, CachedStatement>();
  private readonly limits: () => StatementCacheLimits;
  private next = 1;
  private totalBytes = 0;
  evictions = 0;

  constructor(limits: () => StatementCacheLimits = () => UNLIMITED_STATEMENTS) {
    this.limits = limits;
  }

  /** The statement for a Parse's text and parameter types (`tail`, the bytes after its name), taken once more. */
  acquire(tail: Buffer): CachedStatement {
    // Keyed by a digest, not the text: the text is kept once (in `parse`), however long it is.
    const key = hash('sha256', tail, 'base64');
    let entry = this.byKey.get(key);
    if (entry === undefined) {
      const name = `sg_${(this.next++).toString(36)}`;
      const parse = withName(Frontend.Parse, tail, 0, 0, name, 0);
      entry = { name, parse, refs: 0, bytes: parse.length + ENTRY_OVERHEAD_BYTES, isEvicted: false, key };
      this.byKey.set(key, entry);
      this.totalBytes += entry.bytes;
    } else if (entry.refs === 0) {
      this.unused.delete(key);
    }
    entry.refs++;
    this.trim();
    return entry;
  }

  /** A client statement no longer maps to `entry` (closed, replaced, its client gone). */
  release(entry: CachedStatement): void {
    if (entry.isEvicted || --entry.refs > 0) return;
    this.unused.set(entry.key, entry);
    this.trim();
  }

  get size(): number {
    return this.byKey.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Drop unused entries, least recently released first, while the cache is over a limit. */
  private trim(): void {
    const { maxCount, maxBytes } = this.limits();
    for (const [key, entry] of this.unused) {
      if (this.byKey.size <= maxCount && this.totalBytes <= maxBytes) return;
      this.unused.delete(key);
      this.byKey.delete(key);
      this.totalBytes -= entry.bytes;
      evictStatement(entry);
      entry.parse = null;
      this.evictions++;
    }
  }
}

/** A name no statement ever has: closing it makes the server answer CloseComplete with no effect. */
const NEVER_NAME = 'sg_never';
const CLOSE_NEVER = closeStatement(NEVER_NAME);

/** The end of the name at `from` (its zero byte). A loop, not `Buffer#indexOf` (a call into C++; a Bind has two names). */
function cstringEnd(frame: Buffer, from: number): number {
  for (let i = from; i < frame.length; i++) if (frame[i] === 0) return i;
  throw new Error('unterminated string in message');
}

/**
 * Build a frame: same type, the bytes [headStart, headEnd) of `frame`, a new name, then the bytes of `frame` from
 * `tailStart` on. Offsets rather than subarrays: this runs for every Bind of a named statement.
 */
function withName(
  type: number,
  frame: Buffer,
  headStart: number,
  headEnd: number,
  name: string,
  tailStart: number,
): Buffer {
  const nameLen = Buffer.byteLength(name);
  const headLen = headEnd - headStart;
  const total = 5 + headLen + nameLen + 1 + (frame.length - tailStart);
  const out = Buffer.allocUnsafe(total);
  out[0] = type;
  out.writeInt32BE(total - 1, 1);
  let p = 5;
  if (headLen > 0) p += frame.copy(out, p, headStart, headEnd);
  p += out.write(name, p, 'utf8');
  out[p++] = 0;
  frame.copy(out, p, tailStart);
  return out;
}

/** Closes of statements over a server's limit sent ahead of one batch at most (the rest go with the next ones). */
const MAX_CLOSES_PER_BATCH = 64;

/** One client's named statements: its names mapped to the shared cache's entries. */
const NO_STATEMENTS: ReadonlyMap<string, CachedStatement> = new Map();

/** What ClientStatements reads of the proxy's settings. */
export type StatementLimitConfig = Pick<GeneralConfig, 'preparedStatementsLimit'>;

export class ClientStatements {
  /**
   * A Parse of a name the client holds gets PostgreSQL's 42P05 (one-shard databases; a sharded session's engine also
   * maps names itself — `remember` — for Parses it splits, rewrites or answers, so it keeps the old remapping).
   */
  isDuplicateRefused = false;
  /** Shared and never written until the client names a statement (an idle client holds no map of its own). */
  private byName = NO_STATEMENTS as Map<string, CachedStatement>;
  /**
   * Of the write being rewritten: its Parse and Close messages since its last Sync / Query (the positions of injected
   * ones, so their replies are swallowed by position), and whether it had a Sync / Query yet (beginBatch resets).
   */
  writeParses = 0;
  writeCloses = 0;
  isNewWindow = false;
  private readonly names: StatementNames;
  /**
   * The proxy's settings, whose `prepared_statements_limit` is the statements a server connection may hold (absent: no
   * limit). The proxy's own function, not a closure per client.
   */
  private readonly general: (() => StatementLimitConfig) | undefined;

  constructor(names: StatementNames, general?: () => StatementLimitConfig) {
    this.names = names;
    this.general = general;
  }

  get size(): number {
    return this.byName.size;
  }

  /** Forget every statement (DISCARD ALL, or the client is gone): the cache may drop those nobody else uses. */
  clear(): void {
    for (const entry of this.byName.values()) this.names.release(entry);
    this.byName = NO_STATEMENTS as Map<string, CachedStatement>;
  }

  /**
   * Before a batch is rewritten for `server`: Close the statements it holds beyond `prepared_statements_limit` (least
   * recently used first) and those the cache has dropped, ahead of the batch, so no portal of the batch is affected;
   * a statement the batch needs is prepared again by it.
   */
  beginBatch(server: StatementServer, out: FrameSink): void {
    this.writeParses = this.writeCloses = 0;
    this.isNewWindow = false;
    const limit = this.general?.().preparedStatementsLimit ?? Number.MAX_SAFE_INTEGER;
    for (const name of server.prepared.takeVictims(limit, MAX_CLOSES_PER_BATCH)) {
      this.emit(out, closeStatement(name));
      server.swallowReply(Backend.CloseComplete, this.writeCloses, this.isNewWindow);
    }
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
  rewrite(type: number, frame: Buffer, server: StatementServer, out: FrameSink): void {
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
        this.emit(out, withName(type, frame, 5, portalEnd + 1, stmt.name, stmtEnd + 1));
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
          this.forget(name);
          this.emit(out, CLOSE_NEVER);
          return;
        }
        const stmt = this.byName.get(name);
        if (stmt === undefined) break;
        this.ensurePrepared(stmt, server, out);
        this.emit(out, withName(type, frame, 5, 6, stmt.name, nameEnd + 1));
        return;
      }
    }
    this.emit(out, frame);
  }

  /** The SQL text of the client's statement `clientName`, or null when unknown (or evicted from the cache). */
  textOf(clientName: string): string | null {
    const parse = this.byName.get(clientName)?.parse ?? null;
    if (parse === null) return null;
    const nameEnd = parse.indexOf(0, 5);
    return parse.toString('utf8', nameEnd + 1, parse.indexOf(0, nameEnd + 1));
  }

  /** Learn a client's named statement without sending it anywhere (its Parse went out rewritten, e.g. split). */
  remember(frame: Buffer): void {
    const nameEnd = cstringEnd(frame, 5);
    if (nameEnd === 5) return;
    this.map(frame.toString('utf8', 5, nameEnd), frame.subarray(nameEnd + 1));
  }

  /** Map `clientName` to the statement of `tail` (text and parameter types), replacing what it named before. */
  private map(clientName: string, tail: Buffer): CachedStatement {
    const entry = this.names.acquire(tail); // before releasing the old one: the same text must not be dropped
    const previous = this.byName.get(clientName);
    if (this.byName === NO_STATEMENTS) this.byName = new Map();
    this.byName.set(clientName, entry);
    if (previous !== undefined) this.names.release(previous);
    return entry;
  }

  private forget(clientName: string): void {
    const entry = this.byName.get(clientName);
    if (entry === undefined) return;
    this.byName.delete(clientName);
    this.names.release(entry);
  }

  private rewriteParse(frame: Buffer, server: StatementServer, out: FrameSink): void {
    const nameEnd = cstringEnd(frame, 5);
    if (nameEnd === 5) {
      this.emit(out, frame); // unnamed statement: lives only until the next unnamed Parse, no mapping needed
      return;
    }
    const clientName = frame.toString('utf8', 5, nameEnd);
    const existing = this.byName.get(clientName);
    if (existing !== undefined && existing.isConfirmed === true && this.isDuplicateRefused) {
      // PostgreSQL keeps the first statement and answers 42P05 (after parsing the new text, so a syntax error comes
      // first): the server gives that answer to the new text under the existing statement's server name. Only for a
      // statement a server has prepared without error: the client's own Parse of a text that never parsed failed, so
      // its name is free again (a Parse the proxy cannot judge remaps the name, as before).
      this.ensurePrepared(existing, server, out);
      this.emit(out, withName(Frontend.Parse, frame, 0, 0, existing.name, nameEnd + 1));
      return;
    }
    const tail = frame.subarray(nameEnd + 1); // query text, parameter types
    const stmt = this.map(clientName, tail);
    if (server.prepared.has(stmt.name)) {
      // The server has it already: an unnamed Parse of the same text earns the client its ParseComplete
      // (and reports the same errors) without touching the shared named statement.
      server.prepared.use(stmt.name);
      this.emit(out, withName(Frontend.Parse, frame, 0, 0, '', nameEnd + 1));
      return;
    }
    this.sendPrepare(stmt, server, out, false);
  }

  private ensurePrepared(stmt: CachedStatement, server: StatementServer, out: FrameSink): void {
    if (server.prepared.has(stmt.name)) server.prepared.use(stmt.name);
    else this.sendPrepare(stmt, server, out, true);
  }

  /** Close-then-Parse, so re-preparing is harmless even if the server had the statement after all. */
  private sendPrepare(
    stmt: CachedStatement,
    server: StatementServer,
    out: FrameSink,
    swallowParse: boolean,
  ): void {
    // In use by this client, so never evicted: its Parse is there.
    this.emit(out, closeStatement(stmt.name));
    this.emit(out, stmt.parse as Buffer);
    server.swallowReply(Backend.CloseComplete, this.writeCloses, this.isNewWindow);
    if (swallowParse) server.swallowReply(Backend.ParseComplete, this.writeParses, this.isNewWindow);
    server.prepared.add(stmt.name, stmt);
    server.unconfirmed.push(stmt.name);
  }

  /** Append a frame to the write, counting what swallowReply's positions count. */
  private emit(out: FrameSink, frame: Buffer): void {
    const type = frame[0];
    if (type === Frontend.Parse) this.writeParses++;
    else if (type === Frontend.Close) this.writeCloses++;
    else if (type === Frontend.Sync || type === Frontend.Query || type === Frontend.FunctionCall) {
      this.writeParses = this.writeCloses = 0;
      this.isNewWindow = true;
    }
    out.push(frame);
  }
}
