// What a server connection shows of the commit its holder runs on it (set by txn/commit-steps.ts' Runner, read by
// the distributed deadlock check): the step in flight, and the branch the commit prepared there.
/**
 * A statement of the proxy's own that the connection's holder runs on it — a commit's step (txn/commit-steps.ts) —
 * as the distributed deadlock check reads it: a wait of the holder's transaction like a client's statement.
 */
export interface OwnStatement {
  readonly sql: string;
  /** performance.now() when it was sent. */
  readonly sinceMs: number;
  /** Unique per statement in this process: a change means it is not the statement seen before. */
  readonly seq: number;
  /** Which commit runs it (unique per commit in this process). */
  readonly commitId: number;
  /** Whether cancelling it now rolls its transaction back everywhere (false once the commit is past its decision). */
  isCancellable(): boolean;
}

/** A branch prepared on the connection by the commit `commitId`: its locks are that commit's while it runs. */
export interface PreparedBranch {
  readonly gid: string;
  readonly commitId: number;
}
