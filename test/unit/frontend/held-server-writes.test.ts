// frontend/held-server.ts, read-your-writes on a held server (one shard): the requests of a transaction on a tracked
// primary (lsn_check_delay) are classified until one may write, then no more; on a replica, an untracked primary, or in
// session mode none is (unless it must be followed for pgdog.role / pgdog.min_lsn). Whether the server is a tracked
// primary's is decided once per checkout. Counts classifications with a stub ReadChoice.
import { describe, expect, it } from 'vitest';
import type { Pool } from '../../../src/backend/pool.js';
import type { ServerConnection } from '../../../src/backend/server-connection.js';
import { HeldServer, type HeldServerHost } from '../../../src/frontend/held-server.js';
import type { ReadChoice } from '../../../src/frontend/read-choice.js';
import { RequestBatch } from '../../../src/frontend/request-batch.js';
import { Frontend, TxStatus } from '../../../src/protocol/codes.js';
import { query } from '../../../src/protocol/messages.js';

interface Setup {
  held: HeldServer;
  batch: RequestBatch;
  server: ServerConnection;
  primary: Pool;
  replica: Pool;
  /** The verdicts the stub classifier gives, in order ('write' or 'read-primary'), and how many it gave. */
  verdicts: string[];
  classified: () => number;
}

function setup(opts: { tracksLsn: boolean; mode: 'transaction' | 'session' }): Setup {
  const batch = new RequestBatch();
  const primary = {} as Pool;
  const replica = {} as Pool;
  const host = {
    batch,
    params: { settings: new Map(), syncSql: () => '' },
    send: { send: () => undefined },
    status: { txStatus: TxStatus.InTransaction },
  } as unknown as HeldServerHost;
  const held = new HeldServer(host);
  held.pools = {
    mode: opts.mode,
    sets: [{ tracksLsn: opts.tracksLsn, primary: { pool: primary } }],
  } as unknown as HeldServer['pools'];
  const verdicts: string[] = [];
  let count = 0;
  held.reads = {
    mustFollowHeld: () => false,
    heldIntentOf: () => verdicts[count++] ?? 'read-primary',
  } as unknown as ReadChoice;
  const server = { attach: () => null, settings: new Map(), params: new Map(), pendingReady: 0 };
  return {
    held,
    batch,
    server: server as unknown as ServerConnection,
    primary,
    replica,
    verdicts,
    classified: () => count,
  };
}

/** One request on the held server. */
function request(s: Setup, sql: string): void {
  s.batch.push(Frontend.Query, query(sql));
  s.held.sendBatch(s.server);
}

describe('HeldServer: requests on a held server checked for writes', () => {
  it('on a tracked primary: each request until one may write, then none', () => {
    const s = setup({ tracksLsn: true, mode: 'transaction' });
    s.verdicts.push('read-primary', 'read-primary', 'write');
    s.held.hold(s.server, s.primary);
    for (const sql of [
      "SET LOCAL work_mem = '8MB'",
      'SELECT 1',
      'INSERT INTO t VALUES (1)',
      'SELECT 2',
      'SELECT 3',
    ])
      request(s, sql);
    expect(s.classified()).toBe(3);
  });

  it('on a replica, an untracked primary, or in session mode: none', () => {
    for (const [opts, onPrimary] of [
      [{ tracksLsn: true, mode: 'transaction' }, false],
      [{ tracksLsn: false, mode: 'transaction' }, true],
      [{ tracksLsn: true, mode: 'session' }, true],
    ] as const) {
      const s = setup(opts);
      s.held.hold(s.server, onPrimary ? s.primary : s.replica);
      for (const sql of ['SELECT 1', 'INSERT INTO t VALUES (1)']) request(s, sql);
      expect([opts, onPrimary, s.classified()]).toEqual([opts, onPrimary, 0]);
    }
  });
});
