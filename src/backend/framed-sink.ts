// A ReplySink that cuts a server's reply stream into whole frames, for the replies to statements of the proxy's own
// (COMMIT PREPARED, lookups, the COMMIT / ROLLBACK ending a transaction it opened — endTransactionSinks, which only
// collect errors) instead of forwarding them to a client. A fan-out cuts its shards' replies itself (fanout.ts).
import { Buffer } from 'node:buffer';
import { FrameReader } from '../protocol/frame-reader.js';
import { Backend } from '../protocol/codes.js';
import { withShardInDetail } from '../errors/shard-detail.js';
import type { ReplySink, ServerConnection } from './server-connection.js';

const MAX_FRAME_BYTES = 1 << 30;

/** Where a framed sink reports what is not a reply frame. */
export interface FramedSinkOwner {
  onServerParameter(name: string, value: string): void;
  onServerLost(server: ServerConnection, reason: string): void;
}

/**
 * A ReplySink that splits a server's replies into whole frames for `onFrame` (then calls `afterChunk`), and reports
 * ReadyForQuery to `onReady`. Chunks are copied: the server reads into a buffer it reuses, and partial frames wait
 * here for the next chunk (so the server's read buffer is never pinned). Lengths were already checked by the server's
 * scanner. The server is always read on (the proxy's own statements answer little; a fan-out has its own sinks).
 */
export function framedSink(
  owner: FramedSinkOwner,
  onFrame: (type: number, frame: Buffer) => void,
  afterChunk: () => void,
  onReady: (server: ServerConnection, status: number) => void,
): ReplySink {
  const reader = new FrameReader(MAX_FRAME_BYTES);
  return {
    writeToClient: (buf) => {
      reader.push(Buffer.from(buf), onFrame);
      afterChunk();
      return true;
    },
    hasPendingWrites: () => false,
    onClientDrain: (resume) => resume(),
    onServerParameter: (name, value) => owner.onServerParameter(name, value),
    onServerLost: (server, reason) => owner.onServerLost(server, reason),
    onServerReady: onReady,
  };
}

/**
 * The replies to a COMMIT or ROLLBACK the proxy sends on its own to end a transaction it opened: nothing reaches the
 * client except errors, which `onDone` gets (as frames, with the shard named) once every server has answered.
 */
export function endTransactionSinks(
  shards: readonly number[],
  owner: FramedSinkOwner,
  onDone: (errors: Buffer[]) => void,
): ReplySink[] {
  let waiting = shards.length;
  const errors: Buffer[] = [];
  return shards.map((shard) =>
    framedSink(
      owner,
      (type, frame) => {
        if (type === Backend.ErrorResponse) errors.push(withShardInDetail(frame, shard));
      },
      () => undefined,
      (server) => {
        if (server.pendingReady === 0 && --waiting === 0) onDone(errors);
      },
    ),
  );
}
