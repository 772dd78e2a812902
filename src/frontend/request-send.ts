// Sending a client request's frames to one server, whichever path routed it (the session's one server, the sharded
// dispatch and its run modules): statement names rewritten (prepared-statements.ts), stand-ins marked for the reply
// scanner, the frames written in one write, the open extended-protocol segment tracked, the client's input held back
// while the server does not take what it is sent, and query_timeout started for the request. One per session, built
// with it; the session stops the query timer when the request ends and when it closes.
import { Buffer } from 'node:buffer';
import type { GeneralConfig } from '../config/types.js';
import type { ServerConnection } from '../backend/server-connection.js';
import { Frontend } from '../protocol/codes.js';
import { FrameList } from '../protocol/frame-list.js';
import type { WatchedSession } from '../txn/watched-session.js';
import type { ClientOutput } from './client-output.js';
import { SHARD_BACKLOG_BYTES as SERVER_BACKLOG_BYTES } from '../engine/copy-in.js';
import { noteDescribeSent } from './describe-trims.js';
import type { ClientStatements } from './prepared-statements.js';
import { StandIns } from './stand-ins.js';

/** The session's ending (client-ending.ts): a frame the statement rewrite refused is a protocol violation. */
export interface SendEnding {
  protocolViolation(reason: string): void;
}

/** The session (no closure of its own per session, nor per request). */
export interface QueryTimeoutOwner {
  /** query_timeout passed for the request in flight: cancel it. */
  onQueryTimeout(timeoutMs: number): void;
}

export class RequestSend {
  /** Transaction mode or sharded: the client's statement names, rewritten per server (null: sent as written). */
  statements: ClientStatements | null = null;
  /** Sharded databases: what the distributed deadlock check reads of this session. */
  watched: WatchedSession | null = null;
  /** A replication connection: START_REPLICATION streams until the client stops it, so no query_timeout. */
  isReplication = false;
  /**
   * Extended-protocol messages went to a server after the last Sync: their replies (and the Sync that closes them)
   * are still to come, so the server must stay with this client even at an idle ReadyForQuery.
   */
  hasOpenSegment = false;
  /** Stand-ins of refused statements (stand-ins.ts), made on the first refusal. */
  private standIns: StandIns | null = null;
  private isServerBacklogged = false;
  /**
   * The frames of one write, rewritten for its server: one list for every request (emptied after each), made for the
   * first request that is rewritten (an idle client holds none).
   */
  private rewritten: FrameList | null = null;
  private queryTimer: NodeJS.Timeout | null = null;
  private readonly output: ClientOutput;
  /** A frame the statement rewrite refused ends the session with a protocol violation. */
  private readonly ending: SendEnding;
  private readonly general: () => GeneralConfig;
  private readonly owner: QueryTimeoutOwner;
  /** Made the first time a server lags behind (an idle client holds no closure of its own). */
  private onServerDrained: (() => void) | null = null;

  constructor(
    output: ClientOutput,
    ending: SendEnding,
    general: () => GeneralConfig,
    owner: QueryTimeoutOwner,
  ) {
    this.output = output;
    this.ending = ending;
    this.general = general;
    this.owner = owner;
  }

  /** The session's stand-ins (made on first use). */
  refusals(): StandIns {
    return (this.standIns ??= new StandIns());
  }

  /** Rewrite (transaction mode) and send a request's frames to one server in one write; starts query_timeout. */
  send(server: ServerConnection, types: number[], frames: Buffer[], ready: number): void {
    this.watched?.noteFrames(types, frames);
    // This server's own segment (a sharded session holds several servers; one may be mid-segment, another not).
    let isOpen = server.hasOpenSegment;
    const statements = this.statements;
    const out = statements !== null ? (this.rewritten ??= new FrameList()) : null;
    const standIns = this.standIns;
    const scanner = server.scanner;
    try {
      if (statements !== null && out !== null) {
        out.clear(); // (a request that failed half-rewritten left its frames)
        statements.beginBatch(server, out);
      }
      for (let i = 0; i < types.length; i++) {
        const type = types[i];
        const refusal = standIns?.refusalOf(frames[i]);
        if (refusal !== undefined) scanner.replaceError(refusal.marker, refusal.error);
        if (type === Frontend.Describe) noteDescribeSent(frames[i], scanner); // pgdog.unique_id() parameters hidden
        if (statements !== null && out !== null) {
          if (type === Frontend.Query) statements.noteQuery(frames[i], server);
          statements.rewrite(type, frames[i], server, out);
        }
        if (type === Frontend.Query || type === Frontend.Sync || type === Frontend.FunctionCall) {
          // Counted as we go: a swallow rule registered by a later frame is pinned after this ReadyForQuery.
          scanner.readyExpected++;
          isOpen = false;
        } else if (
          type !== Frontend.CopyData &&
          type !== Frontend.CopyDone &&
          type !== Frontend.CopyFail &&
          type !== Frontend.Flush
        ) {
          isOpen = true; // extended-protocol messages not yet closed by a Sync
        }
      }
    } catch (err) {
      out?.clear();
      return this.ending.protocolViolation((err as Error).message);
    }
    this.hasOpenSegment = isOpen;
    server.hasOpenSegment = isOpen;
    if (statements !== null)
      scanner.noteWriteEnd(isOpen, statements.writeParses, statements.writeCloses, statements.isNewWindow);
    if (out === null) server.send(frames.length === 1 ? frames[0] : Buffer.concat(frames), 0);
    else {
      server.send(out.join(), 0);
      out.clear(); // reused by the next request, holding no frame meanwhile
    }
    // A server that does not read what it is sent (busy, blocked on a lock, or not read itself because this client
    // does not read its replies): stop reading the client until the server's socket has passed it all on.
    if (server.unsentBytes > SERVER_BACKLOG_BYTES && !this.isServerBacklogged) {
      this.isServerBacklogged = true;
      this.output.pauseInput();
      server.onSendDrain(
        (this.onServerDrained ??= () => {
          this.isServerBacklogged = false;
          this.output.resumeInput();
        }),
      );
    }
    if (ready > 0) this.startQueryTimer();
  }

  /**
   * `query_timeout` for the request just sent, whichever path sent it (forwarded frames, or a request the sharded
   * dispatch rebuilt for its shards): cancelled when it has not finished in time. Started once per request.
   */
  startQueryTimer(): void {
    if (this.isReplication) return;
    this.watched?.requestStarted();
    const timeoutMs = this.general().queryTimeoutMs;
    if (timeoutMs > 0 && this.queryTimer === null) {
      this.queryTimer = setTimeout(() => this.onQueryTimeout(timeoutMs), timeoutMs);
    }
  }

  /** A sharded request ended (its replies all in, or it failed): query_timeout stops, the deadlock check is told. */
  requestEnded(): void {
    this.watched?.requestEnded();
    this.stopQueryTimer();
  }

  /** The request's replies are all in (or the session ends): query_timeout no longer runs. */
  stopQueryTimer(): void {
    if (this.queryTimer === null) return;
    clearTimeout(this.queryTimer);
    this.queryTimer = null;
  }

  private onQueryTimeout(timeoutMs: number): void {
    this.queryTimer = null;
    this.owner.onQueryTimeout(timeoutMs);
  }
}
