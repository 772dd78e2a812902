// The end-request phase without sockets (end-request.ts): a request's end gives the servers back only in transaction
// mode, idle, with no open segment, and starts the next queued request; a fan-out's end keeps the request's settings
// only when it succeeded outside a block, writes its one ReadyForQuery, or ends into its script instead; a request that
// cannot run is answered through the session (the request's frames), the Sync owed to shards mid-segment sent on, or,
// inside a script, fails the script's statement.
import { describe, expect, it } from 'vitest';
import { RequestEnd, type EndingRuns } from '../../../src/engine/end-request.js';
import type { DispatchHost } from '../../../src/engine/dispatch-host.js';
import { PgError } from '../../../src/errors/pg-error.js';
import { Frontend, TxStatus } from '../../../src/protocol/codes.js';
import { readyForQuery, SYNC } from '../../../src/protocol/messages.js';

/** The split COPY in the fake run slot. */
const COPY = { isClientDone: false };

/** The parts of the dispatch the end of a request touches, recording what was done to them. */
function fakeEngine(opts: { isTransactionMode?: boolean; status?: number; isInBlock?: boolean } = {}) {
  const log: string[] = [];
  const written: Buffer[] = [];
  const serverSettings = new Map<string, string>();
  const state = {
    isIdle: true,
    fanout: null as { sawError: boolean; heldTags: Buffer[] | null } | null,
    batch: [] as number[],
    hasOpenSegment: false,
    openSegmentShards: [] as number[],
    isScriptRunning: false,
    run: 'none' as 'none' | 'copyIn' | 'cursorRun' | 'insertSource' | 'insertStream',
    confirmed: [] as { name: string; text: string | null }[],
    pendingOwn: null as (() => void) | null,
  };
  const host = {
    requestLength: 0,
    openSegmentShard: 2 as number | null,
    read: null,
    block: {
      isOpen: opts.isInBlock === true,
      refresh: (sawError: boolean) => {
        log.push(`refresh ${sawError}`);
        return sawError ? TxStatus.Failed : (opts.status ?? TxStatus.Idle);
      },
    },
    session: {
      isTransactionMode: opts.isTransactionMode ?? true,
      status: {
        txStatus: opts.status ?? TxStatus.Idle,
        tell: (s: number) => log.push(`tell ${String.fromCharCode(s)}`),
      },
      send: {
        get hasOpenSegment() {
          return state.hasOpenSegment;
        },
        requestEnded: () => log.push('requestEnded'),
      },
      output: { write: (b: Buffer) => written.push(b) },
      // As ClientEnding.failBatch: the error for the request's `n` frames, which leave the batch.
      ending: {
        failBatch: (err: PgError, n: number) => {
          log.push(`failBatch ${err.code} ${n}`);
          state.batch.splice(0, n);
        },
      },
    },
    request: {
      get isIdle() {
        return state.isIdle;
      },
      get fanout() {
        return state.fanout;
      },
      // The two slots, as request-state.ts gives them: the run's kind, its payload, the script or null.
      get run() {
        return { kind: state.run };
      },
      get copyIn() {
        return state.run === 'copyIn' ? COPY : null;
      },
      get script() {
        return state.isScriptRunning ? {} : null;
      },
    },
    servers: {
      byShard: [{ settings: serverSettings }, null],
      release: () => log.push('release'),
      endLoan: (kind: string) => log.push(`endLoan ${kind}`),
      openSegmentShards: () => state.openSegmentShards,
      // As ShardServers.runOwn: the request is `own` (not idle) until every shard has answered.
      runOwn: (shards: number[], sql: Buffer | string, _sink: unknown, done: () => void) => {
        log.push(
          `runOwn ${shards.join(',')} ${Buffer.isBuffer(sql) && sql.equals(SYNC) ? 'Sync' : String(sql)}`,
        );
        state.isIdle = false;
        state.pendingOwn = () => {
          state.isIdle = true;
          done();
        };
      },
    },
    batch: {
      get isEmpty() {
        return state.batch.length === 0;
      },
      typeAt: (i: number) => state.batch[i],
    },
    router: {
      dropPendingSettings: () => log.push('dropSettings'),
      confirmSettings: () => {
        log.push('confirmSettings');
        return state.confirmed;
      },
    },
    dispatch: () => log.push('dispatch'),
  };
  const runs = {
    scripts: {
      holdTags: (tags: Buffer[]) => log.push(`holdTags ${tags.length}`),
      onStatementDone: (sawError: boolean) => log.push(`statementDone ${sawError}`),
      failStatement: (err: PgError) => log.push(`failStatement ${err.code}`),
    },
    inserts: { restoreClientRequest: () => log.push('inserts.restore') },
    cursors: { restoreClientRequest: () => log.push('cursors.restore') },
    copyIn: { onFanoutDone: (copy: unknown) => log.push(`copyIn.fanoutDone ${copy === COPY}`) },
  };
  // Fakes of the parts the phase uses: the full DispatchHost / run modules need sockets and pools.
  const end = new RequestEnd(host as unknown as DispatchHost, runs as unknown as EndingRuns);
  return { end, host, state, log, written, serverSettings };
}

describe('RequestEnd.requestDone', () => {
  it('waits while the request is still running', () => {
    const { end, state, log } = fakeEngine();
    state.isIdle = false;
    state.batch = [Frontend.Query];
    end.requestDone();
    expect(log).toEqual([]);
  });

  it('gives the servers back in transaction mode once idle, then runs the next queued request', () => {
    const { end, state, log } = fakeEngine();
    state.batch = [Frontend.Query];
    end.requestDone();
    expect(log).toEqual(['requestEnded', 'release', 'dispatch']);
  });

  it('keeps the servers in session mode, inside a transaction, or while a segment is open', () => {
    for (const [opts, hasOpenSegment] of [
      [{ isTransactionMode: false }, false],
      [{ status: TxStatus.InTransaction }, false],
      [{}, true],
    ] as const) {
      const { end, state, log } = fakeEngine(opts);
      state.hasOpenSegment = hasOpenSegment;
      end.requestDone();
      expect(log).toEqual(['requestEnded']); // nothing queued: no dispatch either
    }
  });
});

describe('RequestEnd.fanoutDone', () => {
  it('outside a block: keeps the settings of a request that succeeded, then one ReadyForQuery', () => {
    const { end, state, log, written, serverSettings } = fakeEngine();
    state.fanout = { sawError: false, heldTags: null };
    state.confirmed = [{ name: 'search_path', text: 'app' }];
    end.fanoutDone();
    expect(log).toEqual([
      'endLoan fanout', // no run, no script: no run module called
      'refresh false',
      'tell I',
      'confirmSettings',
      'requestEnded',
      'release',
    ]);
    expect(serverSettings.get('search_path')).toBe('app');
    expect(written).toEqual([readyForQuery(TxStatus.Idle)]);
  });

  it("drops a failed request's settings; inside a block the block keeps them (no decision here)", () => {
    const failed = fakeEngine();
    failed.state.fanout = { sawError: true, heldTags: null };
    failed.end.fanoutDone();
    expect(failed.log).toContain('dropSettings');
    expect(failed.written).toEqual([readyForQuery(TxStatus.Failed)]);

    const inBlock = fakeEngine({ isInBlock: true, status: TxStatus.InTransaction });
    inBlock.state.fanout = { sawError: false, heldTags: null };
    inBlock.end.fanoutDone();
    expect(inBlock.log).not.toContain('confirmSettings');
    expect(inBlock.log).not.toContain('dropSettings');
    expect(inBlock.written).toEqual([readyForQuery(TxStatus.InTransaction)]);
  });

  it('a script statement ends into its script: its held tags kept, no ReadyForQuery, no status told', () => {
    const { end, state, log, written } = fakeEngine();
    state.isScriptRunning = true;
    state.fanout = { sawError: true, heldTags: [Buffer.from('tag')] };
    end.fanoutDone();
    expect(log).toEqual(['endLoan fanout', 'holdTags 1', 'statementDone true']);
    expect(written).toEqual([]);
  });

  it("a split COPY's fan-out ends into the COPY's run (given the split from the slot), then as any fan-out", () => {
    const { end, state, log, written } = fakeEngine();
    state.run = 'copyIn';
    state.fanout = { sawError: true, heldTags: null };
    end.fanoutDone();
    expect(log.slice(0, 3)).toEqual(['endLoan fanout', 'copyIn.fanoutDone true', 'refresh true']);
    expect(written).toEqual([readyForQuery(TxStatus.Failed)]);
  });
});

describe('RequestEnd.failRequest', () => {
  const err = PgError.featureNotSupported('no');

  it("answers the request's frames, sends the Sync it ends with on to shards mid-segment, then goes on", () => {
    const { end, host, state, log } = fakeEngine();
    host.requestLength = 3;
    state.batch = [Frontend.Bind, Frontend.Execute, Frontend.Sync];
    state.openSegmentShards = [1];
    end.failRequest(err);
    expect(log).toEqual(['failBatch 0A000 3', 'runOwn 1 Sync']);
    expect(host.openSegmentShard).toBeNull();
    state.pendingOwn?.(); // the shard answered the Sync: the request is over
    expect(log.slice(2)).toEqual(['requestEnded', 'release']);
  });

  it("a request the proxy ran in the client's place: the run in the slot puts the client's request back first", () => {
    for (const [run, restore] of [
      ['insertSource', 'inserts.restore'],
      ['insertStream', 'inserts.restore'],
      ['cursorRun', 'cursors.restore'],
    ] as const) {
      const { end, host, state, log } = fakeEngine();
      host.requestLength = 1;
      state.batch = [Frontend.Query];
      state.run = run;
      end.failRequest(err);
      expect(log.slice(0, 2)).toEqual([restore, 'failBatch 0A000 1']);
    }
  });

  it('a request without Sync: no Sync sent for it', () => {
    const { end, host, state, log } = fakeEngine();
    host.requestLength = 2;
    state.batch = [Frontend.Bind, Frontend.Execute];
    state.openSegmentShards = [1];
    end.failRequest(err);
    expect(log.some((l) => l.startsWith('runOwn'))).toBe(false);
    expect(host.openSegmentShard).toBe(2);
  });

  it("a script statement: the INSERT … SELECT's client request put back, the script's statement failed", () => {
    const { end, state, log } = fakeEngine();
    state.isScriptRunning = true;
    end.failRequest(err);
    expect(log).toEqual(['failStatement 0A000']);
    const inserting = fakeEngine();
    inserting.state.isScriptRunning = true;
    inserting.state.run = 'insertSource';
    inserting.end.failRequest(err);
    expect(inserting.log).toEqual(['inserts.restore', 'failStatement 0A000']);
  });
});
