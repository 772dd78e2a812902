// A session's read/write split, shared by its one-server path and its sharded dispatch: what a request needs of a
// shard (read-intent.ts: primary, or a replica may answer), the session's `SET pgdog.role` override and the positions
// it brings with `SET pgdog.min_lsn` (read-overrides.ts: as PostgreSQL keeps a setting, block by block), the
// read-your-writes positions its reads must see (read-your-writes.ts), and the client's side of a replica ban.
import { Buffer } from 'node:buffer';
import type { Pool } from '../backend/pool.js';
import { hasReplayed, type ReadIntent, type ReplicaSet } from '../backend/replica-set.js';
import { classifyTexts, requestTexts, type RequestIntent } from './read-intent.js';
import { ReadOverrides } from './read-overrides.js';
import { ReadYourWrites, type ReplayNeed } from './read-your-writes.js';
import type { RequestBatch } from './request-batch.js';
import type { SessionLog } from './session-log.js';
import type { SessionParams } from './session-params.js';

/** host:port of a pool's server, for log lines. */
function poolLabel(pool: Pool): string {
  return `${pool.opts.address.host}:${pool.opts.address.port}`;
}

/** A request whose statements are not all known (a Bind of a statement prepared earlier, a FunctionCall). */
const UNKNOWN_REQUEST: RequestIntent = Object.freeze({ intent: 'write' });

/** The bytes of 'pgdog': a request without them sets no override. */
const PGDOG = Buffer.from('pgdog');

export class ReadChoice {
  /** Read-your-writes: the WAL positions this session's reads must see, per shard. */
  readonly writes = new ReadYourWrites();
  /** `SET pgdog.role`, `SET pgdog.min_lsn`: the session's, and its open block's. */
  private readonly overrides = new ReadOverrides((positions) => {
    for (const [shard, lsn] of positions) this.writes.require(shard, lsn);
  });
  private readonly logs: SessionLog;
  private readonly params: SessionParams;
  /** The text of a client's named statement (null: unknown, or names not tracked). */
  private readonly statementText: (name: string) => string | null;

  constructor(logs: SessionLog, params: SessionParams, statementText: (name: string) => string | null) {
    this.logs = logs;
    this.params = params;
    this.statementText = statementText;
  }

  /**
   * What a request needs of a shard (read-intent.ts); its `SET pgdog.role` / `SET pgdog.min_lsn` and transaction
   * control are followed (read-overrides.ts). `txStatus`: the session's transaction status before it, when every
   * request sent before has been answered (null: some are in flight, the status may be behind).
   */
  intentOf(types: readonly number[], frames: readonly Buffer[], txStatus: number | null): ReadIntent {
    return this.requestOf(types, frames, txStatus).intent;
  }

  /** intentOf, and the read-your-writes positions the request's comments bring (required here). */
  requestOf(types: readonly number[], frames: readonly Buffer[], txStatus: number | null): RequestIntent {
    if (txStatus !== null) this.overrides.sync(txStatus);
    const texts = requestTexts(types, frames, this.statementText);
    if (texts === null) return UNKNOWN_REQUEST;
    const request = classifyTexts(texts, this.overrides, this.params.isDefaultReadOnly);
    if (request.minLsns !== undefined)
      for (const [shard, lsn] of request.minLsns) this.writes.require(shard, lsn);
    return request;
  }

  /**
   * Before a request is sent to a server held already (its checkout was for an earlier request of the transaction):
   * the session's transaction status when it is current (`txStatus`; null: requests are in flight on it) is followed,
   * and whether the request must be classified for the overrides (heldIntentOf): it names pgdog, or the open block
   * holds a SET of pgdog.role / pgdog.min_lsn whose fate its end decides. No allocation.
   */
  mustFollowHeld(txStatus: number | null, batch: RequestBatch): boolean {
    const overrides = this.overrides;
    if (txStatus !== null) overrides.sync(txStatus);
    if (overrides.hasPending) return true;
    for (let i = 0; i < batch.length; i++) if (batch.frameAt(i).includes(PGDOG, 5)) return true;
    return false;
  }

  /**
   * What a request sent to a server held already would need — 'write' when it may change data (read-your-writes) —
   * its SETs of pgdog.role / pgdog.min_lsn and its transaction control followed (mustFollowHeld synced the status).
   */
  heldIntentOf(types: readonly number[], frames: readonly Buffer[]): ReadIntent {
    return this.requestOf(types, frames, null).intent;
  }

  /** A sharded session's transaction block ended, committed or not (read-overrides.ts `blockEnded`). */
  blockEnded(isCommitted: boolean): void {
    this.overrides.blockEnded(isCommitted);
  }

  /**
   * What a read of `shard` (served by `set`) needs now: read-your-writes (the session's writes and positions), and
   * the positions `SET pgdog.min_lsn` asked for in the open block.
   */
  needs(shard: number, set: ReplicaSet): ReplayNeed {
    const need = this.writes.needs(shard, set);
    const lsn = this.overrides.blockPosition(shard);
    if (lsn === null || need === 'primary' || !set.tracksLsn) return need;
    if (set.replicas.every((m) => hasReplayed(m, lsn))) return need;
    return need === null || lsn > need ? lsn : need;
  }

  /** The replica set logs the ban itself (warn, once); this only ties it to the client whose checkout moved on. */
  onReplicaBanned(pool: Pool, reason: string): void {
    this.logs.line(
      'debug',
      { server: poolLabel(pool), reason },
      'replica banned: checkout retried on another server',
    );
  }
}
