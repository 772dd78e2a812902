// The one-server request path of a client on a database with one shard: the server it holds, checked out at a flush
// point (primary or replica by what the queued requests need, read-your-writes), brought in step with the client's
// startup settings, sent the queued requests (pgdog.unique_id() calls replaced first where the database has
// replicas), given back to its pool (after the WAL position a write left, for read-your-writes), or at the session's
// end reset and released. A session-mode or replication client holds its server from login to the end. The
// ClientSession stays the server's reply sink and decides when the server goes back. In transaction mode a request
// that may change session state (SET, set_config, PREPARE …: settings-truth.ts) has the server asked what holds
// before it goes back: that is what the session replays on its next servers and what the next client's sync resets.
import type { DatabasePools } from '../backend/pool-manager.js';
import type { Pool } from '../backend/pool.js';
import { mayUseReplica, type ReplicaSet, type SetAcquireCallback } from '../backend/replica-set.js';
import { resetAndRelease } from '../backend/server-reset.js';
import type { ReplySink, ServerConnection } from '../backend/server-connection.js';
import { PgError } from '../errors/pg-error.js';
import { query } from '../protocol/messages.js';
import type { ClientEnding } from './client-ending.js';
import type { ClientOutput } from './client-output.js';
import type { ReadChoice } from './read-choice.js';
import type { RequestBatch } from './request-batch.js';
import type { RequestSend } from './request-send.js';
import type { SessionParams } from './session-params.js';
import type { SessionStatus } from './session-status.js';
import { runQuery } from '../backend/server-query.js';
import { settingsSyncSql } from './session-settings.js';
import {
  customSettingNames,
  mayChangeSettings,
  settingsFromRows,
  settingsTruthSql,
} from './settings-truth.js';
import { withUniqueIds, type UniqueIdRequests } from './unique-id-request.js';

/** What the one-server path uses of its session (fixed at the session's start). */
export interface HeldServerHost {
  readonly batch: RequestBatch;
  readonly params: SessionParams;
  readonly send: RequestSend;
  readonly output: ClientOutput;
  /** Where the held server's replies go: the session. */
  readonly sink: ReplySink;
  /** The session's status: a server that arrives once it is no longer ready goes straight back (session-status.ts). */
  readonly status: SessionStatus;
  /** Answers the queued requests with an error when no server can run them (client-ending.ts). */
  readonly ending: ClientEnding;
}

/**
 * The statements bringing `server`'s settings to the client's (another client's reset, this one's applied),
 * recorded as what the server now holds; '' when it holds them already.
 */
function settingsSync(want: ReadonlyMap<string, string>, server: ServerConnection): string {
  const have = server.settings;
  if (want.size === 0 && have.size === 0) return '';
  const sql = settingsSyncSql(want, have);
  if (sql !== '') recordHeld(server, want);
  return sql;
}

/** `settings` are what `server` holds now. */
function recordHeld(server: ServerConnection, settings: ReadonlyMap<string, string>): void {
  server.settings.clear();
  for (const [name, text] of settings) server.settings.set(name, text);
}

export class HeldServer {
  /** The server held (null: none). */
  server: ServerConnection | null = null;
  /** Its pool (null: none, or the client's own connection, never pooled: replication). */
  private pool: Pool | null = null;
  /** A checkout is queued in a pool. */
  isWaiting = false;
  /** The database's pools (set at login). */
  pools: DatabasePools | null = null;
  /** One shard with replicas: pgdog.unique_id() calls replaced before sending (unique-id-request.ts); else null. */
  private uniqueIds: UniqueIdRequests | null = null;
  /** The read/write split of a database with replicas (set at login; null: none, every request goes to the primary). */
  reads: ReadChoice | null = null;
  /**
   * A request that may change data ran on the server held, a primary's (its WAL position is asked when it is
   * released): set at the checkout, or by a later request of the transaction on the server held (sendBatch).
   */
  private isWriteCheckout = false;
  /**
   * The server held is a tracked primary's in transaction mode (read-your-writes: its WAL position is asked at release
   * after a write), so its requests are checked for writes until one may: decided once per checkout (hold), not per
   * request.
   */
  private checksWrites = false;
  /**
   * The session's settings as its last server reported them after a request that may have changed them
   * (settings-truth.ts); null: none yet, the startup settings hold.
   */
  private settings: ReadonlyMap<string, string> | null = null;
  /** A request of the transaction on the server held may have changed session state: asked before the release. */
  private mayHaveChangedSettings = false;
  /** Custom settings (placeholders such as `app.tenant`) the session was seen to set: asked by name (settings-truth.ts). */
  private customNames: Set<string> | null = null;
  /** The server is being asked what holds (release): the session's next checkout waits for the answer. */
  private learning: Promise<void> | null = null;
  private readonly host: HeldServerHost;
  /** Made with `uniqueIds` (an idle client without them holds no closure of its own). */
  private failBatch: ((err: PgError, count?: number) => void) | null = null;

  constructor(host: HeldServerHost) {
    this.host = host;
  }

  /** pgdog.unique_id() calls are replaced before sending (one shard with replicas). */
  useUniqueIds(uniqueIds: UniqueIdRequests): void {
    this.uniqueIds = uniqueIds;
    const ending = this.host.ending;
    this.failBatch = (err, count) => ending.failBatch(err, count);
  }

  /**
   * Hold `server`, its replies going to the session; from `pool` it is brought in step with the client's settings
   * first (null: the client's own connection, already opened with them).
   */
  hold(server: ServerConnection, pool: Pool | null): void {
    this.server = server;
    this.pool = pool;
    server.attach(this.host.sink);
    this.checksWrites = false;
    if (pool === null) return;
    if (this.reads !== null) this.checksWrites = this.isTrackedPrimary(pool);
    const params = this.host.params;
    const sets = params.syncSql(server.params) + settingsSync(this.settings ?? params.settings, server);
    if (sets !== '') {
      server.scanner.swallowNextUntilReady();
      server.send(query(sets), 1);
    }
  }

  /**
   * Send every queued frame to the held `server` (pgdog.unique_id() calls replaced first). `isCheckedOut`: the server
   * was just checked out for them (their read-your-writes effect is known from the checkout).
   */
  sendBatch(server: ServerConnection, isCheckedOut = false): void {
    const batch = this.host.batch;
    if (!isCheckedOut && this.reads !== null) this.noteHeldRequest(this.reads, server);
    const uniqueIds = this.uniqueIds;
    if (uniqueIds !== null && this.failBatch !== null && !withUniqueIds(uniqueIds, batch, this.failBatch))
      return;
    const { types, frames, readyCount } = batch.take();
    if (
      this.pool !== null &&
      this.pools?.mode === 'transaction' &&
      mayChangeSettings(types, frames, types.length)
    ) {
      this.mayHaveChangedSettings = true;
      customSettingNames(types, frames, (this.customNames ??= new Set()));
    }
    this.host.send.send(server, types, frames, readyCount);
  }

  /** Check a server out for the queued requests, then send them (input paused while the checkout waits). */
  checkout(): void {
    const pools = this.pools;
    if (this.isWaiting || pools === null) return;
    if (this.learning !== null) return this.afterLearning(this.learning);
    this.isWaiting = true;
    let isPaused = false;
    const onServer = (err: PgError | null, server: ServerConnection | null, pool: Pool | null): void => {
      this.isWaiting = false;
      if (!this.host.status.isReady) {
        if (server && pool) pool.release(server);
        return;
      }
      if (isPaused) this.host.output.resumeInput();
      if (err || server === null || pool === null)
        return this.host.ending.failBatch(err ?? PgError.internal('no server'));
      this.hold(server, pool);
      this.sendBatch(server, true);
    };
    if (pools.hasReplicas && this.reads !== null) {
      this.acquireByRole(pools.sets[0], this.reads, onServer);
    } else {
      const pool = pools.shards[0];
      pool.acquire((err, server) => onServer(err, server, pool));
    }
    // Backpressure: read no more requests until this one has a server. An idle server is handed over
    // synchronously, so the common case never pauses (pause/resume cost a syscall each).
    if (this.isWaiting) {
      isPaused = true;
      this.host.output.pauseInput();
    }
  }

  /**
   * The queued requests, sent to `server` held since an earlier request of the transaction: read-your-writes — on a
   * tracked primary whose transaction has not written yet (BEGIN, a SET, a read on the primary), they count if they
   * may change data there — and the session's pgdog.role / pgdog.min_lsn overrides, followed through the block
   * (read-choice.ts: only requests that may matter to them are classified).
   */
  private noteHeldRequest(reads: ReadChoice, server: ServerConnection): void {
    const isWriteCheck = this.checksWrites && !this.isWriteCheckout;
    const batch = this.host.batch;
    const txStatus = server.pendingReady === 0 ? this.host.status.txStatus : null; // current, or null
    if (!reads.mustFollowHeld(txStatus, batch) && !isWriteCheck) return; // nearly every request: nothing made
    const { types, frames } = batch.peek(batch.length);
    if (reads.heldIntentOf(types, frames) === 'write' && isWriteCheck) this.isWriteCheckout = true;
  }

  /**
   * Whether a server of `pool` would have its WAL position asked after a write (read-your-writes): the shard's primary,
   * its replay tracked (lsn_check_delay), in transaction mode (in session mode the server is never given back while
   * the client is there).
   */
  private isTrackedPrimary(pool: Pool): boolean {
    const pools = this.pools;
    if (pools === null || pools.mode !== 'transaction') return false;
    const set = pools.sets[0];
    return set.tracksLsn && pool === set.primary.pool;
  }

  /** Read/write split (read-intent.ts): the queued requests decide between the shard's primary and its replicas. */
  private acquireByRole(set: ReplicaSet, reads: ReadChoice, cb: SetAcquireCallback): void {
    const batch = this.host.batch;
    const { types, frames } = batch.peek(batch.length);
    const { intent } = reads.requestOf(types, frames, this.host.status.txStatus); // no server held: it is current
    // A request that only sets, shows or reads ('read-primary', 'read', 'replica') leaves nothing on the primary its
    // later reads must wait for.
    this.isWriteCheckout = intent === 'write';
    const need = mayUseReplica(intent) ? reads.needs(0, set) : null; // read-your-writes
    set.acquire(
      need === 'primary' ? 'read-primary' : intent,
      cb,
      (m, reason) => reads.onReplicaBanned(m.pool, reason),
      typeof need === 'bigint' ? need : null,
    );
  }

  /** The session's next checkout, once its last server said what holds (input paused meanwhile). */
  private afterLearning(learning: Promise<void>): void {
    this.isWaiting = true;
    this.host.output.pauseInput();
    void learning.then(() => {
      this.isWaiting = false;
      this.host.output.resumeInput();
      if (this.host.status.isReady) this.checkout();
    });
  }

  /**
   * Ask `server` what session state holds after a transaction that may have changed it; then it is what the session
   * wants of every server and what this one holds, and `done` gives it back. A server that cannot say is closed: its
   * state is unknown, so no other client may get it.
   */
  private learnSettings(server: ServerConnection, done: () => void): void {
    this.mayHaveChangedSettings = false;
    const sql = settingsTruthSql(this.customNames ?? new Set());
    const learning = runQuery(server, sql).then((outcome) => {
      this.learning = null;
      if (outcome.kind !== 'ok') {
        server.terminate(
          `could not learn its session settings: ${outcome.kind === 'error' ? outcome.message : outcome.reason}`,
        );
        return done();
      }
      const held = settingsFromRows(outcome.rows);
      recordHeld(server, held);
      // A startup setting the server no longer holds (RESET, SET … TO DEFAULT, RESET ALL, DISCARD ALL on a pooled
      // server, where the proxy had SET it) is back at its startup value, as on a connection of the client's own.
      const wanted = new Map(this.host.params.settings);
      for (const [key, text] of held) wanted.set(key, text);
      this.settings = wanted;
      done();
    });
    this.learning = learning;
  }

  /** Give the held server back to its pool (after its WAL position, when it took a write on a tracked primary). */
  release(): void {
    const server = this.server;
    const pool = this.pool;
    this.server = null;
    this.pool = null;
    if (server === null || pool === null) return;
    server.detach();
    if (this.mayHaveChangedSettings) return this.learnSettings(server, () => this.giveBack(server, pool));
    this.giveBack(server, pool);
  }

  private giveBack(server: ServerConnection, pool: Pool): void {
    const set = this.pools?.sets[0];
    const reads = this.reads;
    if (
      this.isWriteCheckout &&
      reads !== null &&
      set !== undefined &&
      pool === set.primary.pool &&
      set.tracksLsn
    ) {
      this.isWriteCheckout = false;
      return reads.writes.afterWrite(0, server, () => pool.release(server)); // read-your-writes
    }
    pool.release(server);
  }

  /** `server` died: no longer held (false: it was not the one held). */
  forget(server: ServerConnection): boolean {
    if (this.server !== server) return false;
    this.server = null;
    this.pool = null;
    return true;
  }

  /** The session ends: a pooled server is reset as its state requires and released; the client's own is closed. */
  end(state: { isSessionMode: boolean; txStatus: number; hasOpenSegment: boolean }): void {
    const server = this.server;
    const pool = this.pool;
    this.server = null;
    this.pool = null;
    if (server !== null && pool !== null) {
      resetAndRelease(server, pool, state);
    } else if (server !== null) {
      server.detach();
      server.terminate('replication client left'); // its own connection, never pooled
    }
  }
}
