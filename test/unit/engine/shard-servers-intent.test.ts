// engine/shard-servers.ts: the sharded read-your-writes verdict is the request's intent — 'write' when the router
// found it may change data, 'read-primary' for a SET, SHOW, transaction control or a read kept on the primary, a
// replica's intent for a read that may go to one — and the hold taken with it is the one place that counts a tracked
// primary as written on (its WAL position asked when the server goes back). Sessions, pools and servers are stubs.
import { beforeAll, describe, expect, it } from 'vitest';
import type { ReadIntent } from '../../../src/backend/replica-set.js';
import type { ReplySink, ServerConnection } from '../../../src/backend/server-connection.js';
import { ShardServers } from '../../../src/engine/shard-servers.js';
import type { RequestState } from '../../../src/engine/request-state.js';
import type { BatchTarget } from '../../../src/frontend/batch-target.js';
import type { ShardedSession } from '../../../src/frontend/sharded-session.js';
import type { SessionRouter } from '../../../src/frontend/session-router.js';
import { TxStatus } from '../../../src/protocol/codes.js';
import { initParser } from '../../../src/router/parser.js';
import type { StatementPlan } from '../../../src/router/plan.js';

beforeAll(async () => {
  await initParser(); // isReadOnlyBlock parses the block's characteristics
});

interface Stubs {
  servers: ShardServers;
  /** Shards whose server's WAL position was asked at release (read-your-writes). */
  asked: number[];
  session: { status: { txStatus: number; state: string }; isTransactionMode: boolean };
}

/** Two shards, each with a tracked replica set when `hasReplicas`; the read-intent classifier answers `intent`. */
function stubs(hasReplicas: boolean, intent: ReadIntent = 'read'): Stubs {
  const asked: number[] = [];
  const server = (): ServerConnection =>
    ({
      attach: () => null,
      detach: () => undefined,
      params: new Map(),
      settings: new Map(),
    }) as unknown as ServerConnection;
  const pools = [0, 1].map(() => ({ tryAcquire: server, release: () => undefined }));
  const sets = pools.map((pool) => ({ hasReplicas, tracksLsn: hasReplicas, primary: { pool } }));
  const session = {
    pools: { shards: pools, sets, hasReplicas },
    isTransactionMode: true,
    status: { txStatus: TxStatus.Idle as number, state: 'ready' },
    send: { hasOpenSegment: false },
    params: { isDefaultReadOnly: false, syncSql: () => '' },
    reads: {
      intentOf: () => intent,
      writes: { afterWrite: (shard: number) => asked.push(shard) },
    },
  };
  const router = { settings: new Map() } as unknown as SessionRouter;
  const servers = new ShardServers(
    session as unknown as ShardedSession,
    router,
    {} as RequestState,
    {} as ReplySink,
  );
  return { servers, asked, session };
}

function target(
  flags: Partial<BatchTarget> = {},
  statement: Partial<StatementPlan> | null = null,
): BatchTarget {
  return {
    kind: 'one',
    shard: 0,
    isSessionLevel: false,
    isMultiShardWrite: false,
    isCommit: false,
    isWrite: false,
    mayWrite: false,
    preventsPrepare: null,
    sessionStatement: statement as StatementPlan | null,
    ...flags,
  } as BatchTarget;
}

const NO_BLOCK = { characteristics: (): readonly string[] => [] };

describe('ShardServers.readIntent: the verdict, per kind of request', () => {
  it("is 'write' for what the router finds may change data, with or without replicas", () => {
    for (const hasReplicas of [false, true]) {
      const { servers } = stubs(hasReplicas);
      for (const flags of [{ isWrite: true }, { mayWrite: true }, { isMultiShardWrite: true }])
        expect(servers.readIntent(target(flags), [], [], false, NO_BLOCK)).toBe('write');
    }
  });

  it("is 'read-primary' for what changes no data but runs on the primary", () => {
    // No replicas: everything runs on the primary.
    expect(stubs(false).servers.readIntent(target(), [], [], false, NO_BLOCK)).toBe('read-primary');
    // The classifier keeps it on the primary (a SET, SHOW, a locking read, pgdog_role: primary).
    expect(stubs(true, 'read-primary').servers.readIntent(target(), [], [], false, NO_BLOCK)).toBe(
      'read-primary',
    );
    // A read inside the proxy's own transaction, or inside a read-write block of the client's.
    expect(stubs(true).servers.readIntent(target(), [], [], true, NO_BLOCK)).toBe('read-primary');
    const inBlock = stubs(true);
    inBlock.session.status.txStatus = TxStatus.InTransaction;
    expect(inBlock.servers.readIntent(target(), [], [], false, { characteristics: () => ['BEGIN'] })).toBe(
      'read-primary',
    );
    // Session mode keeps the primaries.
    const sessionMode = stubs(true);
    sessionMode.session.isTransactionMode = false;
    expect(sessionMode.servers.readIntent(target(), [], [], false, NO_BLOCK)).toBe('read-primary');
  });

  it('is the replica intent for a read that may go to one: outside a block, or in a READ ONLY block', () => {
    expect(stubs(true, 'read').servers.readIntent(target(), [], [], false, NO_BLOCK)).toBe('read');
    expect(stubs(true, 'replica').servers.readIntent(target(), [], [], false, NO_BLOCK)).toBe('replica');
    const readOnly = stubs(true, 'read-primary');
    readOnly.session.status.txStatus = TxStatus.InTransaction;
    const block = { characteristics: () => ['BEGIN READ ONLY'] };
    // A SET inside a READ ONLY block runs where the block's reads run.
    expect(
      readOnly.servers.readIntent(target({}, { kind: 'set', text: 'SET x = 1' }), [], [], false, block),
    ).toBe('read');
  });
});

describe('ShardServers: the hold counts a tracked primary as written on only for a write intent', () => {
  const noop = (): void => undefined;
  const fail = (): void => undefined;

  it('asks the WAL position at release after a write, not after a read-primary request', () => {
    const { servers, asked } = stubs(true);
    servers.acquire([0], {} as ReplySink, noop, fail, 'read-primary');
    servers.release();
    expect(asked).toEqual([]);
    servers.acquire([0], {} as ReplySink, noop, fail, 'read-primary');
    servers.acquire([1], {} as ReplySink, noop, fail, 'read-primary');
    servers.acquire([1], {} as ReplySink, noop, fail, 'write'); // a later request of the same transaction, held
    servers.release();
    expect(asked).toEqual([1]);
  });

  it("counts every other hold (the proxy's own lookups and cuts: the default intent) as a write", () => {
    const { servers, asked } = stubs(true);
    servers.acquire([0], {} as ReplySink, noop, fail);
    servers.acquire([1], {} as ReplySink, noop, fail);
    servers.release();
    expect(asked).toEqual([0, 1]);
  });
});
