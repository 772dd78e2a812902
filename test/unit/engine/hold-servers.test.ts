// The hold-servers phase without sockets (hold-servers.ts): a shard the transaction block cannot bring in is refused
// before any checkout; an idle server taken at once has its settings synced (session mode), joins the block — its
// opening statements sent ahead of the request, replies swallowed — and the request goes on; a lookup of the proxy's
// own joins nothing; a checkout that waits and fails fails the request, and a deadlock victim (40P01) has its
// transaction rolled back on the shards it holds first (unless a script of the proxy's own runs it).
import { describe, expect, it } from 'vitest';
import { ServerHold } from '../../../src/engine/hold-servers.js';
import type { DispatchHost } from '../../../src/engine/dispatch-host.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { SqlState } from '../../../src/errors/sqlstate.js';
import { query } from '../../../src/protocol/messages.js';
import { NO_EFFECTS, type RequestEffects } from '../../../src/txn/transaction-block.js';

const WRITE: RequestEffects = { mayWrite: true, preventsPrepare: null };

function fakeEngine(opts: { isTransactionMode?: boolean; hasIdleServer?: boolean; canReach?: boolean } = {}) {
  const log: string[] = [];
  const sentAhead: Buffer[] = [];
  const state = {
    script: null as { isImplicit: boolean } | null,
    checkoutFailed: null as ((err: PgError) => void) | null,
    held: [0] as number[],
  };
  const server = {
    scanner: { swallowNextUntilReady: () => log.push('swallow') },
    sendAhead: (b: Buffer) => sentAhead.push(b),
  };
  const host = {
    session: { isTransactionMode: opts.isTransactionMode ?? true },
    request: {
      get script() {
        return state.script;
      },
    },
    block: {
      canReach: () => opts.canReach ?? true,
      participate: (
        shards: number[],
        effects: RequestEffects,
        join: (shard: number, sql: string) => void,
      ) => {
        log.push(`participate ${shards.join(',')} ${effects.mayWrite}`);
        join(shards[0], 'BEGIN ISOLATION LEVEL SERIALIZABLE');
      },
      rolledBackOnShards: () => log.push('rolledBack'),
    },
    servers: {
      at: () => server,
      tryAcquireOne: (shard: number) => {
        log.push(`tryAcquireOne ${shard}`);
        return opts.hasIdleServer ?? true;
      },
      acquire: (shards: number[], _sink: unknown, _then: () => void, onError: (err: PgError) => void) => {
        log.push(`acquire ${shards.join(',')}`);
        state.checkoutFailed = onError;
      },
      syncSettings: () => log.push('syncSettings'),
      heldShards: () => state.held,
      runOwn: (shards: number[], sql: string, _sink: unknown, done: () => void) => {
        log.push(`runOwn ${shards.join(',')} ${sql}`);
        done();
      },
      release: () => log.push('release'),
    },
    end: {
      refreshStatus: (sawError: boolean) => log.push(`refreshStatus ${sawError}`),
      failRequest: (err: PgError) => log.push(`failRequest ${err.code}`),
    },
  };
  // A fake of the parts the phase uses: the full DispatchHost needs sockets and pools.
  const hold = new ServerHold(host as unknown as DispatchHost);
  return { hold, state, log, sentAhead };
}

describe('ServerHold.acquire', () => {
  it('refuses a shard the block cannot bring in, before any checkout', () => {
    const { hold, log } = fakeEngine({ canReach: false });
    hold.acquire([1], WRITE, () => log.push('then'));
    expect(log).toEqual([`failRequest ${SqlState.FeatureNotSupported}`]);
  });

  it('an idle server: joined (its opening statement sent ahead, swallowed), then the request goes on', () => {
    const { hold, log, sentAhead } = fakeEngine();
    hold.acquire([1], WRITE, () => log.push('then'));
    expect(log).toEqual(['tryAcquireOne 1', 'participate 1 true', 'swallow', 'then']);
    expect(sentAhead).toEqual([query('BEGIN ISOLATION LEVEL SERIALIZABLE')]);
  });

  it('session mode syncs the settings first; a lookup of the proxy own joins nothing', () => {
    const session = fakeEngine({ isTransactionMode: false });
    session.hold.acquire([0], NO_EFFECTS, () => session.log.push('then'));
    expect(session.log).toEqual([
      'tryAcquireOne 0',
      'syncSettings',
      'participate 0 false',
      'swallow',
      'then',
    ]);

    const lookup = fakeEngine();
    lookup.hold.acquire([0], NO_EFFECTS, () => lookup.log.push('then'), false);
    expect(lookup.log).toEqual(['tryAcquireOne 0', 'then']);
  });

  it('several shards, or no idle server: the waiting checkout; its failure fails the request', () => {
    const { hold, state, log } = fakeEngine({ hasIdleServer: false });
    hold.acquire([0], WRITE, () => log.push('then'));
    hold.acquire([0, 1], WRITE, () => log.push('then'));
    expect(log).toEqual(['tryAcquireOne 0', 'acquire 0', 'acquire 0,1']);
    const timeout = PgError.poolTimeout('app', 'alice', 1, 1000);
    state.checkoutFailed?.(timeout);
    expect(log.at(-1)).toBe(`failRequest ${timeout.code}`);
  });

  it('a deadlock victim: ROLLBACK on the shards it holds, servers back (transaction mode), status failed, then 40P01', () => {
    const { hold, state, log } = fakeEngine();
    hold.acquire([0, 1], WRITE, () => log.push('then'));
    const victim = new PgError('ERROR', SqlState.DeadlockDetected, 'deadlock detected');
    state.checkoutFailed?.(victim);
    expect(log).toEqual([
      'acquire 0,1',
      'runOwn 0 ROLLBACK',
      'release',
      'rolledBack',
      'refreshStatus true',
      `failRequest ${SqlState.DeadlockDetected}`,
    ]);
  });

  it("a deadlock victim in a script of the proxy's own fails as any statement (the script rolls back)", () => {
    const { hold, state, log } = fakeEngine();
    state.script = { isImplicit: true };
    hold.acquire([0, 1], WRITE, () => log.push('then'));
    state.checkoutFailed?.(new PgError('ERROR', SqlState.DeadlockDetected, 'deadlock detected'));
    expect(log).toEqual(['acquire 0,1', `failRequest ${SqlState.DeadlockDetected}`]);
  });
});
