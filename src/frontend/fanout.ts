// One statement running on several shards: each server's replies are split into frames and fed to a ReplyMerger,
// whose output goes to the client; when every server has sent ReadyForQuery the session gets one combined status.
// Fan-out replies are copied off the servers' reused read buffers and are not backpressured yet (see docs/sharding.md).
import { Backend, Frontend, TxStatus } from '../protocol/codes.js';
import { ReplyMerger, withShardInDetail } from '../execute/reply-merger.js';
import type { MergeSpec } from '../execute/merge-spec.js';
import type { ServerClient, ServerConnection } from '../backend/server-connection.js';
import { framedSink } from '../backend/framed-sink.js';
import { readRowDescription } from '../protocol/rows.js';
import type { PgError } from '../errors/pg-error.js';

/** What the fan-out reports back to its session. */
export interface FanoutOwner {
  writeToClient(buf: Buffer): boolean;
  onServerParameter(name: string, value: string): void;
  onServerLost(server: ServerConnection, reason: string): void;
  /** Every server has answered the request; `status` combines their ReadyForQuery statuses. */
  onFanoutDone(status: number): void;
}

export class Fanout {
  private readonly merger: ReplyMerger;
  private readonly owner: FanoutOwner;
  private waiting: number;
  private status: number = TxStatus.Idle;
  private out: Buffer[] = [];

  /** Servers still owing the reply to a Describe the proxy added (its row types feed the merge, not the client). */
  private readonly isDescribePending: boolean[];
  private readonly spec: MergeSpec;

  /**
   * `hasInjectedDescribe`: the request carries a Describe of the portal added by the proxy, because sorting or
   * aggregating needs the result's types and the client did not ask for them.
   */
  constructor(serverCount: number, spec: MergeSpec, owner: FanoutOwner, hasInjectedDescribe = false) {
    this.owner = owner;
    this.waiting = serverCount;
    this.spec = { ...spec };
    this.isDescribePending = new Array<boolean>(serverCount).fill(hasInjectedDescribe);
    this.merger = new ReplyMerger(serverCount, this.spec, (frame) => this.out.push(frame));
  }

  /** The ServerClient for the `index`-th server of this fan-out. */
  sinkFor(index: number): ServerClient {
    const onFrame = (type: number, frame: Buffer): void => {
      if (type === Backend.ReadyForQuery) return;
      if (type === Backend.ErrorResponse) {
        this.sawError = true;
        this.onServerError?.(index);
      }
      if (this.isDescribePending[index] && (type === Backend.RowDescription || type === Backend.NoData)) {
        this.isDescribePending[index] = false;
        // Read lazily by the merger at the first row, which comes after this.
        if (type === Backend.RowDescription) this.spec.columnTypes ??= readRowDescription(frame);
        return;
      }
      this.merger.push(index, frame);
    };
    return framedSink(
      this.owner,
      onFrame,
      () => this.flush(),
      (server, status) => {
        if (server.pendingReady !== 0) return;
        this.onServerDone?.(index);
        if (status === TxStatus.Failed) this.status = TxStatus.Failed;
        else if (status === TxStatus.InTransaction && this.status !== TxStatus.Failed) this.status = status;
        if (--this.waiting === 0) {
          this.flush();
          this.owner.onFanoutDone(this.status);
        }
      },
    );
  }

  /** Fail the request with the proxy's own error (sent once; the shards' later errors are not). */
  abort(err: PgError): void {
    this.merger.abort(err);
    this.flush();
  }

  /** Some server sent an ErrorResponse for this request. */
  sawError = false;

  /** Called when a server sends an ErrorResponse (COPY uses it to stop the other shards at once). */
  onServerError: ((index: number) => void) | null = null;

  /** Called when a server has answered the request (used to start the next shard of a sequential write). */
  onServerDone: ((index: number) => void) | null = null;

  /**
   * Set (to []) for a write the proxy wraps in a transaction of its own: its command tags wait here for the commit,
   * because PostgreSQL reports a simple Query's tag only once its implicit transaction has committed.
   */
  heldTags: Buffer[] | null = null;

  private flush(): void {
    if (this.out.length === 0) return;
    let frames = this.out;
    this.out = [];
    const held = this.heldTags;
    if (held !== null) {
      frames = frames.filter((f) => f[0] !== Backend.CommandComplete || (held.push(f), false));
      if (frames.length === 0) return;
    }
    this.owner.writeToClient(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  }
}

/**
 * The replies to a COMMIT or ROLLBACK the proxy sends on its own to end a transaction it opened: nothing reaches the
 * client except errors, which `onDone` gets (as frames, with the shard named) once every server has answered.
 */
export function endTransactionSinks(
  shards: readonly number[],
  owner: Pick<FanoutOwner, 'onServerParameter' | 'onServerLost'>,
  onDone: (errors: Buffer[]) => void,
): ServerClient[] {
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

/**
 * The request with a Describe of the portal added before its Execute, when it has an Execute and no Describe of its
 * own: merging sorted or aggregated rows needs their types. Null when nothing needs adding (simple Query, or the
 * client described the portal itself).
 */
export function withPortalDescribe(
  types: number[],
  frames: Buffer[],
): { types: number[]; frames: Buffer[] } | null {
  const exec = types.indexOf(Frontend.Execute);
  if (exec < 0 || types.includes(Frontend.Describe)) return null;
  const portalEnd = frames[exec].indexOf(0, 5);
  const portal = frames[exec].subarray(5, portalEnd + 1); // name + NUL
  const describe = Buffer.alloc(6 + portal.length);
  describe[0] = Frontend.Describe;
  describe.writeInt32BE(describe.length - 1, 1);
  describe[5] = 0x50; // 'P'
  portal.copy(describe, 6);
  return {
    types: [...types.slice(0, exec), Frontend.Describe, ...types.slice(exec)],
    frames: [...frames.slice(0, exec), describe, ...frames.slice(exec)],
  };
}
