// The sharded session's side of its transaction block (txn/transaction-block.ts): the transaction status of the shard
// servers it holds, and the SET / RESETs run inside the block — kept until the block ends, then made the session's
// (and its shards') if it committed, dropped if not; `onEnd` is told which (the proxy's own portals end with the block,
// the read/write split's overrides follow it).
import type { BlockHost } from '../txn/transaction-block.js';
import type { SessionRouter } from '../frontend/session-router.js';
import { applySettingChange, type SettingChange } from '../frontend/session-settings.js';
import type { ServerConnection } from '../backend/server-connection.js';

/** The session's shard servers, as far as the block needs them (shard-servers.ts has them). */
interface HeldServers {
  readonly byShard: readonly (ServerConnection | null)[];
  combinedStatus(): number;
}

export class SessionBlockHost implements BlockHost {
  /** SET / RESET run inside the block: they hold for the session once it commits. */
  private settings: SettingChange[] = [];
  private readonly servers: HeldServers;
  private readonly router: SessionRouter;
  private readonly onEnd: (isCommitted: boolean) => void;

  constructor(servers: HeldServers, router: SessionRouter, onEnd: (isCommitted: boolean) => void) {
    this.servers = servers;
    this.router = router;
    this.onEnd = onEnd;
  }

  get shardCount(): number {
    return this.servers.byShard.length;
  }

  statusOn(shard: number): number | null {
    return this.servers.byShard[shard]?.txStatus ?? null;
  }

  combinedStatus(): number {
    return this.servers.combinedStatus();
  }

  keepRequestSettings(isKept: boolean): void {
    if (isKept) this.settings.push(...this.router.takePendingSettings());
    else this.router.dropPendingSettings();
  }

  blockEnded(isCommitted: boolean, shards: ReadonlySet<number>): void {
    const changes = this.settings;
    this.settings = [];
    if (isCommitted && changes.length > 0) {
      this.router.applySettings(changes);
      for (const shard of shards) {
        const server = this.servers.byShard[shard];
        if (server != null) for (const c of changes) applySettingChange(server.settings, c);
      }
    }
    this.onEnd(isCommitted);
  }
}
