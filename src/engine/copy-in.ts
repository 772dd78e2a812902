// One client's COPY … FROM STDIN spread over shards: the COPY statement runs on every shard; the client's CopyData
// is cut into rows by CopyRowRouter and each shard gets a CopyData message with its rows; CopyDone / CopyFail go to
// every shard. When one shard fails, the others get CopyFail at once, and what the client still sends is dropped
// until its CopyDone / CopyFail, as PostgreSQL does after an error in COPY. Backpressure: while a shard's socket holds
// more than SHARD_BACKLOG_BYTES it has not taken, the client is not read (a shard slow to read — busy, waiting for a
// lock — holds the client back instead of making the proxy buffer its rows).
import { Buffer } from 'node:buffer';
import type { ServerConnection } from '../backend/server-connection.js';
import { PgError } from '../errors/pg-error.js';
import { CopyRowRouter } from '../execute/copy-rows.js';
import { PASS_THROUGH_SPEC, type MergeSpec } from '../execute/merge-spec.js';
import type { CopyInfo } from '../router/plan.js';
import { shardForParameter } from '../sharding/shard-of.js';
import { Frontend } from '../protocol/codes.js';
import { MessageWriter } from '../protocol/writer.js';
import type { ClientOutput } from '../frontend/client-output.js';

const COPY_DONE = Buffer.from([Frontend.CopyDone, 0, 0, 0, 4]);
/** Rows are sent on at least this often, so a large client batch does not pile up in the proxy. */
const FLUSH_BYTES = 256 * 1024;
/**
 * Unsent bytes a shard's socket may hold before the client is no longer read (reading resumes once that socket has
 * sent everything): four flushes, so a shard that reads steadily never stalls the client, while one that stops reading
 * costs at most this plus one client read per shard (the kernel's socket buffers come on top).
 */
export const SHARD_BACKLOG_BYTES = 4 * FLUSH_BYTES;

/** Whose input stops while a shard is backlogged: the client session. */
export type CopyInput = Pick<ClientOutput, 'pauseInput' | 'resumeInput'>;

function copyFail(message: string): Buffer {
  return new MessageWriter(16 + message.length).cstring(message).frame(Frontend.CopyFail);
}

export function isCopyMessage(type: number): boolean {
  return type === Frontend.CopyData || type === Frontend.CopyDone || type === Frontend.CopyFail;
}

/**
 * The split of a routed COPY over `servers` (one per shard it runs on), rows routed by the key column at `keyIndex`
 * (null: a table copied to every shard), and how its replies merge.
 */
export function splitCopyIn(
  info: CopyInfo,
  keyIndex: number | null,
  servers: readonly ServerConnection[],
  input: CopyInput,
): { copy: CopyInSplit; spec: MergeSpec } {
  const key = info.keyColumn;
  const shardCount = servers.length;
  const rows = new CopyRowRouter(info, keyIndex, shardCount, (value, isBinary) =>
    shardForParameter(key as NonNullable<typeof key>, shardCount, value, isBinary ? 1 : 0),
  );
  // A table copied to every shard gets every row on each: one logical COPY, its count reported once.
  const spec = key === null ? { ...PASS_THROUGH_SPEC, isReplicated: true } : PASS_THROUGH_SPEC;
  return { copy: new CopyInSplit(servers, rows, input), spec };
}

export class CopyInSplit {
  private readonly servers: readonly ServerConnection[];
  private readonly router: CopyRowRouter;
  /** Servers sent CopyDone or CopyFail already. */
  private readonly isServerDone: boolean[];
  /** A shard or the proxy failed the COPY: the client's remaining data is dropped. */
  isFailed = false;
  /** The client sent CopyDone or CopyFail: its COPY data is over. */
  isClientDone = false;
  /** Client bytes routed since the last flush. */
  private queuedBytes = 0;
  private readonly input: CopyInput;
  /** Servers whose socket is over SHARD_BACKLOG_BYTES, waited on (drain) with the client's input paused. */
  private readonly isBacklogged: boolean[];
  private backloggedCount = 0;
  /** Per server, called when its socket has drained (built once). */
  private readonly onDrained: (() => void)[];

  constructor(servers: readonly ServerConnection[], router: CopyRowRouter, input: CopyInput) {
    this.servers = servers;
    this.router = router;
    this.input = input;
    this.isServerDone = servers.map(() => false);
    this.isBacklogged = servers.map(() => false);
    this.onDrained = servers.map((_, i) => () => this.onServerDrained(i));
  }

  /**
   * One copy message from the client. Throws PgError when a row cannot be routed (the caller fails the request with
   * it; the shards have been sent CopyFail already).
   */
  feed(type: number, frame: Buffer): void {
    if (type === Frontend.CopyData) {
      if (this.isFailed || this.isClientDone) return;
      this.route(() => this.router.push(frame.subarray(5)));
      this.queuedBytes += frame.length;
      if (this.queuedBytes >= FLUSH_BYTES) this.flush();
      return;
    }
    if (this.isClientDone) return;
    this.isClientDone = true;
    if (this.isFailed) return;
    if (type === Frontend.CopyDone) {
      this.route(() => this.router.end());
      this.flush();
      this.toEveryServer(COPY_DONE);
    } else {
      this.toEveryServer(frame); // the client's CopyFail, with its message
    }
  }

  /**
   * Send the rows routed so far, one CopyData per shard. Called after each batch of client messages (clients such as
   * pgbench send one CopyData per row: a write per row and shard would cost more than the copy itself).
   */
  flush(): void {
    this.queuedBytes = 0;
    if (this.isFailed) return;
    const out = this.router.take();
    out.forEach((rows, i) => {
      if (rows.length === 0 || this.isServerDone[i]) return;
      let length = 0;
      for (const r of rows) length += r.length;
      const head = Buffer.allocUnsafe(5);
      head[0] = Frontend.CopyData;
      head.writeInt32BE(length + 4, 1);
      const server = this.servers[i];
      server.send(Buffer.concat([head, ...rows], length + 5), 0);
      if (server.unsentBytes > SHARD_BACKLOG_BYTES && !this.isBacklogged[i]) this.holdInputFor(i);
    });
  }

  /** Server `index` is not keeping up: read no more from the client until its socket has sent what it holds. */
  private holdInputFor(index: number): void {
    this.isBacklogged[index] = true;
    if (this.backloggedCount++ === 0) this.input.pauseInput();
    this.servers[index].onSendDrain(this.onDrained[index]);
  }

  private onServerDrained(index: number): void {
    if (!this.isBacklogged[index]) return;
    this.isBacklogged[index] = false;
    if (--this.backloggedCount === 0) this.input.resumeInput();
  }

  /** Server `index` reported an error: the COPY is over everywhere. */
  onServerError(index: number): void {
    this.isServerDone[index] = true;
    this.fail('COPY failed on another shard');
  }

  private route(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.fail(err instanceof PgError ? err.message : String(err));
      throw err;
    }
  }

  private fail(reason: string): void {
    if (this.isFailed) return;
    this.isFailed = true;
    this.toEveryServer(copyFail(reason));
  }

  private toEveryServer(frame: Buffer): void {
    this.servers.forEach((server, i) => {
      if (this.isServerDone[i]) return;
      this.isServerDone[i] = true;
      server.send(frame, 0);
    });
  }
}
