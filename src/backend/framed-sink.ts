// A ReplySink that cuts a server's reply stream into whole frames: used wherever the proxy reads replies itself
// (fan-out merging, statements of its own such as COMMIT PREPARED) instead of forwarding them to a client.
import { FrameReader } from '../protocol/frame-reader.js';
import type { ReplySink, ServerConnection } from './server-connection.js';

const MAX_FRAME_BYTES = 1 << 30;

/** Where a framed sink reports what is not a reply frame. */
export interface FramedSinkOwner {
  onServerParameter(name: string, value: string): void;
  onServerLost(server: ServerConnection, reason: string): void;
}

/** Backpressure for a framed sink (fan-out): whether the server may be read on, and how a paused one resumes. */
export interface SinkFlow {
  /** Asked after each chunk: false = stop reading the server until the `resume` given to `onPause` is called. */
  canRead(): boolean;
  /** The server stopped reading; `resume` restarts it. */
  onPause(resume: () => void): void;
}

/**
 * A ReplySink that splits a server's replies into whole frames for `onFrame` (then calls `afterChunk`), and reports
 * ReadyForQuery to `onReady`. Chunks are copied: the server reads into a buffer it reuses, and partial frames wait
 * here for the next chunk (so the server's read buffer is never pinned). Lengths were already checked by the server's
 * scanner. Without `flow` the server is always read on.
 */
export function framedSink(
  owner: FramedSinkOwner,
  onFrame: (type: number, frame: Buffer) => void,
  afterChunk: () => void,
  onReady: (server: ServerConnection, status: number) => void,
  flow?: SinkFlow,
): ReplySink {
  const reader = new FrameReader(MAX_FRAME_BYTES);
  return {
    writeToClient: (buf) => {
      reader.push(Buffer.from(buf), onFrame);
      afterChunk();
      return flow === undefined || flow.canRead();
    },
    hasPendingWrites: () => false,
    onClientDrain: (resume) => (flow === undefined ? resume() : flow.onPause(resume)),
    onServerParameter: (name, value) => owner.onServerParameter(name, value),
    onServerLost: (server, reason) => owner.onServerLost(server, reason),
    onServerReady: onReady,
  };
}
