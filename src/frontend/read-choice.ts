// A session's read/write split, shared by its one-server path and its sharded dispatch: what a request needs of a
// shard (read-intent.ts: primary, or a replica may answer), the session's `SET pgdog.role` override it keeps, the
// read-your-writes positions its reads must see (read-your-writes.ts), and the client's side of a replica ban.
import type { Pool } from '../backend/pool.js';
import type { ReadIntent } from '../backend/replica-set.js';
import { classifyTexts, requestTexts, type RequestIntent, type RoleOverride } from './read-intent.js';
import { ReadYourWrites } from './read-your-writes.js';
import type { SessionLog } from './session-log.js';
import type { SessionParams } from './session-params.js';

/** host:port of a pool's server, for log lines. */
function poolLabel(pool: Pool): string {
  return `${pool.opts.address.host}:${pool.opts.address.port}`;
}

/** A request whose statements are not all known (a Bind of a statement prepared earlier, a FunctionCall). */
const UNKNOWN_REQUEST: RequestIntent = Object.freeze({ intent: 'write' });

export class ReadChoice {
  /** Read-your-writes: the WAL positions this session's reads must see, per shard. */
  readonly writes = new ReadYourWrites();
  /** `SET pgdog.role`: the session's read/write split override. */
  private role: RoleOverride = null;
  private readonly logs: SessionLog;
  private readonly params: SessionParams;
  /** The text of a client's named statement (null: unknown, or names not tracked). */
  private readonly statementText: (name: string) => string | null;

  constructor(logs: SessionLog, params: SessionParams, statementText: (name: string) => string | null) {
    this.logs = logs;
    this.params = params;
    this.statementText = statementText;
  }

  /** What a request needs of a shard (read-intent.ts); a `SET pgdog.role` in it becomes the session's override. */
  intentOf(types: readonly number[], frames: readonly Buffer[]): ReadIntent {
    return this.requestOf(types, frames).intent;
  }

  /** intentOf, and the read-your-writes positions the request brings. */
  requestOf(types: readonly number[], frames: readonly Buffer[]): RequestIntent {
    const texts = requestTexts(types, frames, this.statementText);
    if (texts === null) return UNKNOWN_REQUEST;
    const request = classifyTexts(texts, this.role, this.params.isDefaultReadOnly);
    if (request.sessionRole !== undefined) this.role = request.sessionRole;
    if (request.minLsns !== undefined)
      for (const [shard, lsn] of request.minLsns) this.writes.require(shard, lsn);
    return request;
  }

  /**
   * What a request sent to a server held already (its checkout was for an earlier request of the transaction) would
   * need: 'write' when it may change data; it is not a new checkout, so it does not change the session's override or
   * positions.
   */
  heldIntentOf(types: readonly number[], frames: readonly Buffer[]): ReadIntent {
    const texts = requestTexts(types, frames, this.statementText);
    return texts === null ? 'write' : classifyTexts(texts, this.role, this.params.isDefaultReadOnly).intent;
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
