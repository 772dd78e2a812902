// Cursors across shards: a fan-out read the client executes with a row limit (PortalSuspended streaming, as
// postgres.js `.cursor()`, pg-cursor and JDBC's fetch size do), or sends without Sync (Flush only). The proxy runs the
// statement to completion on every shard (Execute without a limit, then Sync), merges the replies as for any fan-out,
// and keeps the merged rows as a portal of its own: the client's first Execute gets its rows and PortalSuspended, later
// Execute / Describe / Close of that portal are answered from it, as PostgreSQL would answer them — the last Execute's
// tag counts that Execute's rows, an exhausted portal answers `SELECT 0`, Sync ends it outside a transaction.
// Rows held are bounded (CURSOR_MAX_BYTES): past it the cursor fails with 54000 instead of the proxy growing.
import { Buffer } from 'node:buffer';
import { Backend, Frontend, TxStatus } from '../protocol/codes.js';
import { CLOSE_COMPLETE, commandComplete, NO_DATA, readyForQuery } from '../protocol/messages.js';
import { FrameReader } from '../protocol/frame-reader.js';
import { bindPortal, describedTarget, executeLimit, executePortal } from '../protocol/frontend-fields.js';
import { PgError } from '../errors/pg-error.js';
import { SqlState } from '../errors/sqlstate.js';
import { RelayingOwner, type SessionRelay } from './fanout.js';

/** Most merged reply bytes a cursor across shards may hold in the proxy. */
export const CURSOR_MAX_BYTES = 128 * 1024 * 1024;

const PORTAL_SUSPENDED = Buffer.from([Backend.PortalSuspended, 0, 0, 0, 4]);
const NO_REPLY = Buffer.alloc(0);

/** The rows of a cursor across shards not sent yet, and how to describe them. */
export class ProxyPortal {
  private rows: Buffer[];
  private next = 0;
  /** RowDescription (or NoData) of the portal, for a Describe of it. */
  private readonly description: Buffer;
  /** The command tag's word ("SELECT"); null when the tag has no row count. */
  private readonly tagWord: string | null;
  private readonly tag: string;

  constructor(rows: Buffer[], description: Buffer | null, tag: string) {
    this.rows = rows;
    this.description = description ?? NO_DATA;
    const space = tag.lastIndexOf(' ');
    this.tag = tag;
    this.tagWord = space > 0 && /^\d+$/.test(tag.slice(space + 1)) ? tag.slice(0, space) : null;
  }

  /** The replies to Execute with `limit` rows (0: all): rows, then PortalSuspended or the command tag. */
  execute(limit: number, out: Buffer[]): void {
    const left = this.rows.length - this.next;
    const n = limit > 0 && limit < left ? limit : left;
    for (let i = 0; i < n; i++) out.push(this.rows[this.next++]);
    if (n < left) {
      out.push(PORTAL_SUSPENDED);
      return;
    }
    this.rows = []; // sent: let them go
    this.next = 0;
    out.push(commandComplete(this.tagWord === null ? this.tag : `${this.tagWord} ${n}`));
  }

  describe(out: Buffer[]): void {
    out.push(this.description);
  }
}

/** The portal name and row limit of an Execute frame. */
export function executeTarget(frame: Buffer): { portal: string; limit: number } {
  return { portal: executePortal(frame), limit: executeLimit(frame) };
}

/**
 * The request the shards run for a cursor: its Execute without a row limit, Flushes dropped, ending in Sync. Null when
 * it cannot run as one (not exactly one Execute, or other messages after a Sync).
 */
export function cursorShardRequest(
  types: readonly number[],
  frames: readonly Buffer[],
): { types: number[]; frames: Buffer[] } | null {
  const outTypes: number[] = [];
  const outFrames: Buffer[] = [];
  let executes = 0;
  for (let i = 0; i < types.length; i++) {
    const t = types[i];
    if (t === Frontend.Flush) continue;
    if (t === Frontend.Query || t === Frontend.FunctionCall) return null;
    if (t === Frontend.Sync && i !== types.length - 1) return null;
    if (t === Frontend.Execute) {
      executes++;
      const name = Buffer.from(executePortal(frames[i]));
      const frame = Buffer.alloc(10 + name.length);
      frame[0] = Frontend.Execute;
      frame.writeInt32BE(frame.length - 1, 1);
      name.copy(frame, 5); // then NUL and a row limit of 0 (alloc zero-fills)
      outTypes.push(t);
      outFrames.push(frame);
      continue;
    }
    outTypes.push(t);
    outFrames.push(frames[i]);
  }
  if (executes !== 1) return null;
  if (outTypes[outTypes.length - 1] !== Frontend.Sync) {
    outTypes.push(Frontend.Sync);
    outFrames.push(Buffer.from([Frontend.Sync, 0, 0, 0, 4]));
  }
  return { types: outTypes, frames: outFrames };
}

/** Where a cursor run reports its end: the cursor requests that started it. */
export interface CursorRunOwner {
  onCursorRunDone(run: CursorRun, status: number): void;
}

/**
 * A cursor's fan-out in flight: collects the merged reply (as a FanoutOwner, instead of the client) and, once every
 * shard has answered, turns it into the client's replies and the portal kept for its later Executes.
 */
export class CursorRun extends RelayingOwner {
  private readonly owner: CursorRunOwner;
  /** The client's own request (the shards ran its rewritten form). */
  readonly clientTypes: readonly number[];
  readonly clientFrames: readonly Buffer[];
  private readonly reader = new FrameReader(1 << 30);
  private readonly frames: Buffer[] = [];
  private bytes = 0;
  private readonly maxBytes: number;
  /** The merged reply outgrew CURSOR_MAX_BYTES: its rows are dropped, the client gets this error. */
  overflow: PgError | null = null;
  /** Called once when the reply outgrows the bound (the dispatch cancels the shards' statements). */
  onOverflow: (() => void) | null = null;

  /** `owner` is told when the run is over; the servers' other events go to `session` (RelayingOwner). */
  constructor(
    owner: CursorRunOwner,
    session: SessionRelay,
    clientTypes: readonly number[],
    clientFrames: readonly Buffer[],
    maxBytes = CURSOR_MAX_BYTES,
  ) {
    super(session);
    this.owner = owner;
    this.maxBytes = maxBytes;
    this.clientTypes = clientTypes;
    this.clientFrames = clientFrames;
  }

  writeToClient(buf: Buffer): boolean {
    if (this.overflow !== null) return true;
    this.bytes += buf.length;
    if (this.bytes > this.maxBytes) {
      this.frames.length = 0;
      this.overflow = new PgError(
        'ERROR',
        SqlState.ProgramLimitExceeded,
        `a cursor across shards holds its rows in the proxy, and this one exceeds ${Math.ceil(this.maxBytes / 1048576)} MiB`,
        undefined,
        'Add the sharding key so the cursor runs on one shard, or page with WHERE … ORDER BY … LIMIT.',
      );
      this.onOverflow?.();
      return true;
    }
    this.reader.push(Buffer.from(buf), (_type, frame) => this.frames.push(frame));
    return true;
  }

  onClientDrain(resume: () => void): void {
    resume(); // never backpressured: the proxy holds the rows (bounded)
  }

  onFanoutDone(status: number): void {
    this.owner.onCursorRunDone(this, status);
  }

  /**
   * The client's replies (without ReadyForQuery) and the portal to keep (null: the statement failed). `failed`: an
   * error was sent; frames up to the client's Sync are to be skipped.
   */
  replies(): { replies: Buffer[]; portal: { name: string; portal: ProxyPortal } | null; failed: boolean } {
    if (this.overflow !== null) return { replies: [this.overflow.toBuffer()], portal: null, failed: true };
    const frames = this.frames;
    const out: Buffer[] = [];
    let i = 0;
    let description: Buffer | null = null;
    for (; i < frames.length; i++) {
      const t = frames[i][0];
      if (t === Backend.DataRow || t === Backend.CommandComplete || t === Backend.EmptyQueryResponse) break;
      if (t === Backend.ErrorResponse) return { replies: frames, portal: null, failed: true };
      if (t === Backend.RowDescription || t === Backend.NoData) description = frames[i];
      out.push(frames[i]);
    }
    const rows: Buffer[] = [];
    for (; i < frames.length && frames[i][0] === Backend.DataRow; i++) rows.push(frames[i]);
    const end = frames[i];
    if (end === undefined || end[0] === Backend.ErrorResponse) {
      // Rows then an error: PostgreSQL would have sent some rows before it; the client sees the error either way.
      return { replies: [...out, ...frames.slice(i)], portal: null, failed: true };
    }
    const exec = this.clientTypes.indexOf(Frontend.Execute);
    const { portal: name, limit } = executeTarget(this.clientFrames[exec]);
    if (end[0] === Backend.EmptyQueryResponse) {
      return { replies: [...out, ...frames.slice(i)], portal: null, failed: false };
    }
    const portal = new ProxyPortal(rows, description, end.toString('utf8', 5, end.length - 1));
    portal.execute(limit, out);
    out.push(...frames.slice(i + 1)); // replies to what followed the Execute (Close …)
    const closesIt = this.clientTypes.some(
      (t, k) => k > exec && t === Frontend.Close && closeTarget(this.clientFrames[k]) === name,
    );
    return { replies: out, portal: closesIt ? null : { name, portal }, failed: false };
  }
}

/** The portal a Close frame closes, or null for a Close of a statement. */
export function closeTarget(frame: Buffer): string | null {
  const { isPortal, name } = describedTarget(frame);
  return isPortal ? name : null;
}

/** The portal an Execute, or a Describe / Close of a portal, names; null for any other message. */
function portalOf(type: number, frame: Buffer): string | null {
  if (type === Frontend.Execute) return executePortal(frame);
  if (type !== Frontend.Describe && type !== Frontend.Close) return null;
  const { isPortal, name } = describedTarget(frame);
  return isPortal ? name : null;
}

/**
 * Answer a request made only of Execute / Describe / Close of the proxy's portals, Flush and Sync; null when it holds
 * anything else (then it is routed as usual). `onSync` gives the ReadyForQuery for each Sync (and ends the portals
 * outside a transaction).
 */
export function answerFromPortals(
  portals: Map<string, ProxyPortal>,
  types: readonly number[],
  frames: readonly Buffer[],
  onSync: () => Buffer,
): Buffer[] | null {
  for (let i = 0; i < types.length; i++) {
    const t = types[i];
    if (t === Frontend.Flush || t === Frontend.Sync) continue;
    const name = portalOf(t, frames[i]);
    if (name === null || !portals.has(name)) return null;
  }
  const out: Buffer[] = [];
  let isSkipping = false; // after an error, up to the next Sync
  for (let i = 0; i < types.length; i++) {
    const t = types[i];
    if (t === Frontend.Sync) {
      isSkipping = false;
      out.push(onSync());
      continue;
    }
    if (isSkipping || t === Frontend.Flush) continue;
    const name = portalOf(t, frames[i]) as string; // checked above
    const portal = portals.get(name);
    if (t === Frontend.Close) {
      portals.delete(name);
      out.push(CLOSE_COMPLETE);
    } else if (portal === undefined) {
      // Ended by a Sync earlier in this request (outside a transaction), as PostgreSQL ends it.
      out.push(
        new PgError('ERROR', SqlState.InvalidCursorName, `portal "${name}" does not exist`).toBuffer(),
      );
      isSkipping = true;
    } else if (t === Frontend.Execute) portal.execute(executeLimit(frames[i]), out);
    else portal.describe(out);
  }
  return out;
}

/**
 * The proxy's portals of one session, by name: what answers the client's later Executes of its cursors. A Map, so that
 * routing reads whether there is any (`size`) without a call into this module (the dispatch owns it: sharded-dispatch.ts).
 */
export class ProxyPortals extends Map<string, ProxyPortal> {
  /**
   * The replies to a request only for these portals (with `status` for its Syncs), or null to route it. `status`
   * null: a statement of a script, whose Sync is the proxy's own — no ReadyForQuery for it, the portals kept (the
   * script answers the client's one Sync at its end).
   */
  answer(types: readonly number[], frames: readonly Buffer[], status: number | null): Buffer[] | null {
    return answerFromPortals(this, types, frames, () =>
      status === null ? NO_REPLY : this.syncReply(status),
    );
  }

  /** ReadyForQuery for a Sync the proxy answers; outside a transaction it ends the portals, as in PostgreSQL. */
  syncReply(status: number): Buffer {
    if (status === TxStatus.Idle) this.clear();
    return readyForQuery(status);
  }

  /** A Bind to a portal name held here (or a simple Query, for the unnamed portal) replaces that portal. */
  forgetRebound(types: readonly number[], frames: readonly Buffer[]): void {
    for (let i = 0; i < types.length; i++) {
      if (types[i] === Frontend.Query) this.delete('');
      else if (types[i] === Frontend.Bind) this.delete(bindPortal(frames[i]));
    }
  }
}
