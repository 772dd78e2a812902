// What the admin console needs from the running proxy (and what a client session exposes about itself): the seam
// between src/admin and src/proxy.ts, so commands can be read without the proxy's wiring.
import type { PoolManager } from '../backend/pool-manager.js';
import type { Config } from '../config/types.js';
import type { StatsRegistry } from '../stats/stats-registry.js';
import type { TransactionManager } from '../txn/manager.js';
import type { VisibilityFences } from '../txn/visibility-fence.js';

/** login: startup/authentication; waiting: for a server connection; active: holding one (or a command running). */
export type ClientActivity = 'login' | 'idle' | 'active' | 'waiting';

/** One client connection as SHOW CLIENTS and the metrics see it. */
export interface ClientInfo {
  id: number;
  user: string;
  database: string;
  remoteAddress: string;
  remotePort: number;
  activity: ClientActivity;
  /** From its last ReadyForQuery: 'idle', 'in transaction' or 'failed'. */
  txState: string;
  connectedAt: number;
  applicationName: string | null;
  /** Server connections it holds (ids, as in SHOW SERVERS). */
  serverIds: number[];
  bytesReceived: number;
  bytesSent: number;
  isAdmin: boolean;
}

export type ReloadOutcome =
  { ok: true; changed: string[]; needsRestart: string[] } | { ok: false; error: string };

/** The admin console's side of a client connection: it gets every frame once the admin has logged in. */
export interface AdminConsoleHandle {
  onFrame(type: number, frame: Buffer): void;
  /** A command is running (PAUSE waiting, RELOAD). */
  readonly isBusy: boolean;
}

/** How the console answers its client. */
export interface AdminIo {
  write(buf: Buffer): void;
  /** The client sent Terminate. */
  close(): void;
}

export interface AdminContext {
  config(): Config;
  readonly pools: PoolManager;
  readonly stats: StatsRegistry;
  clients(): ClientInfo[];
  txn(): TransactionManager | null;
  /** atomic_visibility's fences (absent or null: off). */
  fences?(): VisibilityFences | null;
  /** Re-read both TOML files and apply what can change while running. */
  reload(): ReloadOutcome;
  /** Stop handing out server connections; resolves once none is in use. */
  pause(): Promise<void>;
  resume(): void;
  /** Graceful shutdown, as on SIGTERM. */
  shutdown(): void;
}
