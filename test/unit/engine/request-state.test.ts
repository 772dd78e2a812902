// The request state of a sharded session (request-state.ts), without sockets: one of idle / acquiring / single / own /
// lookup / waiting / fan-out / commit at a time, each ended before the next starts; every move allowed or refused as
// the table says, through the one mover; busy, active and waiting for a server read from it. Then the two slots for
// what spans several requests — the proxy's transaction (none | script) and the request's run (none | copyIn |
// cursorRun | insertSource | insertStream) — every move of each through its mover, and every combination of the two
// with the work, refused or allowed through each of the three movers.
import { describe, expect, it } from 'vitest';
import {
  ACQUIRING,
  canCombine,
  canHoldRun,
  canMoveRun,
  canMoveTransaction,
  canMoveWork,
  COMMITTING,
  OWN,
  RequestState,
  type ProxyTransaction,
  type ProxyTransactionKind,
  type RequestRun,
  type RequestRunKind,
  type RequestWork,
  type RequestWorkKind,
  type ScriptRun,
} from '../../../src/engine/request-state.js';
import type { Fanout } from '../../../src/engine/fanout.js';
import type { CopyInSplit } from '../../../src/engine/copy-in.js';
import type { CursorRun } from '../../../src/engine/proxy-portal.js';
import type { InsertSourceRun } from '../../../src/engine/insert-source.js';
import type { InsertStreamRun } from '../../../src/engine/insert-stream.js';

// Payloads only carried by the state, never called.
const fanout = {} as Fanout;
const copy = {} as CopyInSplit;
const cursorRun = {} as CursorRun;
const insertSource = {} as InsertSourceRun;
const insertStream = {} as InsertStreamRun;
const script: ScriptRun = {
  remaining: 1,
  isImplicit: true,
  isSingleWrite: true,
  isQuery: true,
  hasFailed: false,
  heldTags: [],
};

/** Every work kind, listed here apart from the source's table (a kind the table forgot is still walked). */
const ALL_WORK: RequestWorkKind[] = [
  'idle',
  'acquiring',
  'single',
  'own',
  'lookup',
  'waiting',
  'fanout',
  'committing',
];

describe('RequestState', () => {
  it('runs a lookup, then a fan-out, then a commit, each ended before the next', () => {
    const r = new RequestState(2);
    expect([r.isIdle, r.fanout, r.isCommitting, r.isLookingUp]).toEqual([true, null, false, false]);
    r.move({ kind: 'lookup', what: 'the columns of users' });
    expect([r.isIdle, r.isLookingUp]).toEqual([false, true]);
    r.end('lookup');
    r.move({ kind: 'fanout', fanout });
    expect(r.fanout).toBe(fanout);
    r.end('fanout');
    r.move(COMMITTING);
    expect(r.isCommitting).toBe(true);
    r.end('committing');
    expect(r.work).toEqual({ kind: 'idle' });
  });

  it('waits for a phase 2 on its own kind, not as a lookup, and refuses a fan-out before the wait ended', () => {
    const r = new RequestState(2);
    r.move({ kind: 'waiting', what: "the end of a committed transaction's phase 2" });
    expect([r.isIdle, r.isWaiting, r.isLookingUp, r.fanout, r.isActive]).toEqual([
      false,
      true,
      false,
      null,
      false,
    ]);
    expect(() => r.move({ kind: 'fanout', fanout })).toThrow(/illegal state change waiting → fanout/);
    expect(() => r.end('lookup')).toThrow(/lookup ended while the state is waiting/);
    r.end('waiting');
    expect([r.isIdle, r.isWaiting]).toEqual([true, false]);
  });

  it('refuses a second piece of work while one runs, and ending what is not running', () => {
    const r = new RequestState(2);
    expect(() => r.end('fanout')).toThrow(/fanout ended while the state is idle/);
    r.move({ kind: 'fanout', fanout });
    expect(() => r.move(COMMITTING)).toThrow(/illegal state change fanout → committing/);
    expect(() => r.end('lookup')).toThrow(/lookup ended while the state is fanout/);
    expect(r.fanout).toBe(fanout);
  });

  it('a checkout: waiting for a server, not active, and nothing else may start before the servers are there', () => {
    const r = new RequestState(2);
    r.move(ACQUIRING);
    expect([r.isIdle, r.isAcquiring, r.isActive, r.singleShard]).toEqual([false, true, false, null]);
    expect(() => r.move(r.single(0))).toThrow(/illegal state change acquiring → single/);
    expect(() => r.move(ACQUIRING)).toThrow(/illegal state change acquiring → acquiring/);
    r.end('acquiring');
    expect([r.isIdle, r.isAcquiring]).toEqual([true, false]);
  });

  it('a single-shard request: its shard known, active, and the same value each time (no allocation per request)', () => {
    const r = new RequestState(3);
    expect(r.single(2)).toBe(r.single(2));
    expect(r.single(1)).toEqual({ kind: 'single', shard: 1 });
    r.move(r.single(2));
    expect([r.isIdle, r.isActive, r.singleShard, r.fanout]).toEqual([false, true, 2, null]);
    expect(() => r.move(r.single(1))).toThrow(/illegal state change single → single/);
    expect(() => r.end('fanout')).toThrow(/fanout ended while the state is single/);
    r.end('single');
    expect([r.isIdle, r.singleShard]).toEqual([true, null]);
  });

  it("statements of the proxy's own: active, one at a time", () => {
    const r = new RequestState(2);
    r.move(OWN);
    expect([r.isIdle, r.isActive, r.isAcquiring]).toEqual([false, true, false]);
    expect(() => r.move(OWN)).toThrow(/illegal state change own → own/);
    r.end('own');
    expect(r.isIdle).toBe(true);
  });
});

describe('request state moves', () => {
  const all = ALL_WORK;
  const busy = all.filter((k) => k !== 'idle');
  const allowed: Record<RequestWorkKind, RequestWorkKind[]> = {
    idle: busy,
    acquiring: ['idle'],
    single: ['idle'],
    own: ['idle'],
    lookup: ['idle'],
    waiting: ['idle'],
    fanout: ['idle'],
    committing: ['idle'],
  };
  const member = (r: RequestState, kind: RequestWorkKind): RequestWork => workMember(r, kind);
  /** A state at `kind`, reached through allowed moves only. */
  const at = (kind: RequestWorkKind): RequestState => {
    const r = new RequestState(1);
    if (kind !== 'idle') r.move(member(r, kind));
    return r;
  };
  for (const from of all)
    for (const to of all) {
      const isAllowed = allowed[from].includes(to);
      it(`${isAllowed ? 'allows' : 'refuses'} ${from} → ${to}`, () => {
        expect(canMoveWork(from, to)).toBe(isAllowed);
        const r = at(from);
        const before = r.work;
        if (isAllowed) {
          r.move(member(r, to));
          expect(r.kind).toBe(to);
        } else {
          expect(() => r.move(member(r, to))).toThrow(`illegal state change ${from} → ${to}`);
          expect(r.work).toBe(before); // a refused move changes nothing
        }
      });
    }
  for (const kind of busy)
    it(`ends ${kind} only from ${kind}, back to idle`, () => {
      const r = at(kind);
      for (const other of busy)
        if (other !== kind)
          expect(() => r.end(other as Exclude<RequestWorkKind, 'idle'>)).toThrow(/ended while the state is/);
      r.end(kind as Exclude<RequestWorkKind, 'idle'>);
      expect(r.isIdle).toBe(true);
    });
});

const TRANSACTIONS: ProxyTransactionKind[] = ['none', 'script'];
const RUNS: RequestRunKind[] = ['none', 'copyIn', 'cursorRun', 'insertSource', 'insertStream'];

const workMember = (r: RequestState, kind: RequestWorkKind): RequestWork => {
  switch (kind) {
    case 'idle':
      return { kind: 'idle' };
    case 'acquiring':
      return ACQUIRING;
    case 'single':
      return r.single(0);
    case 'own':
      return OWN;
    case 'lookup':
      return { kind: 'lookup', what: 'the columns of users' };
    case 'waiting':
      return { kind: 'waiting', what: 'a phase 2' };
    case 'fanout':
      return { kind: 'fanout', fanout };
    case 'committing':
      return COMMITTING;
  }
};
const transactionMember = (kind: ProxyTransactionKind): ProxyTransaction =>
  kind === 'none' ? { kind: 'none' } : { kind: 'script', script };
const runMember = (kind: RequestRunKind): RequestRun => {
  switch (kind) {
    case 'none':
      return { kind: 'none' };
    case 'copyIn':
      return { kind: 'copyIn', copy };
    case 'cursorRun':
      return { kind: 'cursorRun', run: cursorRun };
    case 'insertSource':
      return { kind: 'insertSource', run: insertSource };
    case 'insertStream':
      return { kind: 'insertStream', run: insertStream };
  }
};
/** Put the run slot at `kind` through allowed moves (a stream replaces a source). */
const reachRun = (r: RequestState, kind: RequestRunKind): void => {
  if (kind === 'none') return;
  if (kind === 'insertStream') r.moveRun(runMember('insertSource'));
  r.moveRun(runMember(kind));
};

describe('the proxy transaction and the request run, in the flows that overlap them', () => {
  it('COPY outside BEGIN: a script of one statement around the split COPY; the COPY fails before the client ends its data, the script rolls back while the copy still drops data', () => {
    const r = new RequestState(2);
    r.moveTransaction({ kind: 'script', script });
    expect(r.script).toBe(script);
    r.move({ kind: 'fanout', fanout });
    r.moveRun({ kind: 'copyIn', copy });
    expect([r.copyIn, r.cursorRun, r.insertSource, r.insertStream]).toEqual([copy, null, null, null]);
    r.end('fanout'); // the shards answered (an error); the client still sends copy data
    r.endScript();
    r.move(OWN); // the script's ROLLBACK
    expect(() => r.move(COMMITTING)).toThrow(/illegal state change own → committing/);
    r.end('own');
    expect(() => r.move(ACQUIRING)).toThrow(
      'impossible combination: work acquiring with transaction none and run copyIn',
    );
    r.endRun('copyIn'); // the client's CopyDone
    expect([r.run.kind, r.transaction.kind, r.kind]).toEqual(['none', 'none', 'idle']);
  });

  it('a copy is never committed: the commit waits until the split COPY is over', () => {
    const r = new RequestState(2);
    r.moveRun({ kind: 'copyIn', copy });
    expect(() => r.move(COMMITTING)).toThrow(
      'impossible combination: work committing with transaction none and run copyIn',
    );
    expect(r.kind).toBe('idle');
  });

  it('a streamed INSERT … SELECT outside BEGIN: the source, the stream in its place, then the script; the stream ends before the commit', () => {
    const r = new RequestState(2);
    r.moveRun({ kind: 'insertSource', run: insertSource });
    r.move(ACQUIRING);
    r.end('acquiring');
    r.moveRun({ kind: 'insertStream', run: insertStream });
    expect([r.insertSource, r.insertStream]).toEqual([null, insertStream]);
    r.moveTransaction({ kind: 'script', script });
    r.move({ kind: 'fanout', fanout }); // a step of the stream
    r.end('fanout');
    expect(() => r.move(COMMITTING)).toThrow(/work committing with transaction script and run insertStream/);
    r.endRun('insertStream');
    r.endScript();
    r.move(COMMITTING);
    expect([r.run.kind, r.transaction.kind, r.kind]).toEqual(['none', 'none', 'committing']);
  });

  it('a script never has a single-shard request in flight: its statements are fan-outs, their ReadyForQuery its own', () => {
    const r = new RequestState(2);
    r.moveTransaction({ kind: 'script', script });
    expect(() => r.move(r.single(1))).toThrow(
      'impossible combination: work single with transaction script and run none',
    );
    r.move(COMMITTING); // a COMMIT statement of the script
    r.end('committing');
    r.endScript();
    r.move(r.single(1));
    expect(() => r.moveTransaction({ kind: 'script', script })).toThrow(
      'impossible combination: work single with transaction script and run none',
    );
    expect(r.transaction.kind).toBe('none');
  });

  it('a cursor run is forgotten at the next routing, which leaves any other run alone', () => {
    const r = new RequestState(2);
    r.dropRun('cursorRun'); // nothing to forget
    r.moveRun({ kind: 'cursorRun', run: cursorRun });
    expect(r.cursorRun).toBe(cursorRun);
    r.dropRun('cursorRun');
    expect(r.run.kind).toBe('none');
    r.moveRun({ kind: 'insertSource', run: insertSource });
    r.dropRun('cursorRun');
    expect(r.insertSource).toBe(insertSource);
    expect(() => r.endRun('cursorRun')).toThrow('run cursorRun ended while the run is insertSource');
  });

  it("a script's statements and an INSERT … SELECT's query run for the proxy; a COPY's or a cursor's do not", () => {
    const r = new RequestState(2);
    expect(r.isOwnRun).toBe(false);
    for (const [run, isOwn] of [
      ['cursorRun', false],
      ['copyIn', false],
      ['insertSource', true],
      ['insertStream', true], // reached through a source
    ] as const) {
      reachRun(r, run);
      expect([run, r.isOwnRun]).toEqual([run, isOwn]);
      r.endRun(run);
    }
    r.moveTransaction({ kind: 'script', script });
    expect(r.isOwnRun).toBe(true);
    r.moveRun({ kind: 'copyIn', copy }); // a COPY outside BEGIN, in its script of one statement
    expect(r.isOwnRun).toBe(true);
  });

  it('both slots start empty as one shared value each (nothing allocated for them per request)', () => {
    const a = new RequestState(1);
    const b = new RequestState(1);
    expect(a.run).toBe(b.run);
    expect(a.transaction).toBe(b.transaction);
    a.moveRun({ kind: 'cursorRun', run: cursorRun });
    a.endRun('cursorRun');
    expect(a.run).toBe(b.run);
  });
});

describe('proxy transaction moves', () => {
  const allowed: Record<ProxyTransactionKind, ProxyTransactionKind[]> = {
    none: ['script'],
    script: ['none'],
  };
  for (const from of TRANSACTIONS)
    for (const to of TRANSACTIONS) {
      const isAllowed = allowed[from].includes(to);
      it(`${isAllowed ? 'allows' : 'refuses'} ${from} → ${to}`, () => {
        expect(canMoveTransaction(from, to)).toBe(isAllowed);
        const r = new RequestState(1);
        if (from !== 'none') r.moveTransaction(transactionMember(from));
        const before = r.transaction;
        if (isAllowed) {
          r.moveTransaction(transactionMember(to));
          expect(r.transaction.kind).toBe(to);
        } else {
          expect(() => r.moveTransaction(transactionMember(to))).toThrow(
            `illegal transaction change ${from} → ${to}`,
          );
          expect(r.transaction).toBe(before);
        }
      });
    }
});

describe('request run moves', () => {
  const allowed: Record<RequestRunKind, RequestRunKind[]> = {
    none: ['copyIn', 'cursorRun', 'insertSource'],
    copyIn: ['none'],
    cursorRun: ['none'],
    insertSource: ['insertStream', 'none'],
    insertStream: ['none'],
  };
  for (const from of RUNS)
    for (const to of RUNS) {
      const isAllowed = allowed[from].includes(to);
      it(`${isAllowed ? 'allows' : 'refuses'} ${from} → ${to}`, () => {
        expect(canMoveRun(from, to)).toBe(isAllowed);
        const r = new RequestState(1);
        reachRun(r, from);
        const before = r.run;
        if (isAllowed) {
          r.moveRun(runMember(to));
          expect(r.run.kind).toBe(to);
        } else {
          expect(() => r.moveRun(runMember(to))).toThrow(`illegal run change ${from} → ${to}`);
          expect(r.run).toBe(before);
        }
      });
    }
  for (const kind of RUNS.filter((k) => k !== 'none'))
    it(`ends ${kind} only from ${kind}, back to none`, () => {
      const r = new RequestState(1);
      reachRun(r, kind);
      for (const other of RUNS)
        if (other !== kind && other !== 'none')
          expect(() => r.endRun(other as Exclude<RequestRunKind, 'none'>)).toThrow(/ended while the run is/);
      r.endRun(kind as Exclude<RequestRunKind, 'none'>);
      expect(r.run.kind).toBe('none');
    });
});

describe('the combination of the slots and the work', () => {
  const notSingle = ALL_WORK.filter((k) => k !== 'single');
  const runWork: RequestWorkKind[] = ['idle', 'acquiring', 'own', 'lookup', 'waiting', 'fanout'];
  const withTransaction: Record<ProxyTransactionKind, RequestWorkKind[]> = {
    none: ALL_WORK,
    script: notSingle,
  };
  const withRun: Record<RequestRunKind, RequestWorkKind[]> = {
    none: ALL_WORK,
    copyIn: ['idle', 'fanout', 'own'],
    cursorRun: runWork,
    insertSource: runWork,
    insertStream: runWork,
  };
  /** The runs each member of the proxy's transaction may hold: a script never a cursor run. */
  const runsWith: Record<ProxyTransactionKind, RequestRunKind[]> = {
    none: RUNS,
    script: ['none', 'copyIn', 'insertSource', 'insertStream'],
  };
  for (const t of TRANSACTIONS)
    for (const run of RUNS) {
      const holds = runsWith[t].includes(run);
      it(`${holds ? 'allows' : 'refuses'} transaction ${t} holding run ${run}, through either slot's mover`, () => {
        expect(canHoldRun(t, run)).toBe(holds);
        if (t === 'none' || run === 'none') return; // one slot empty: always allowed, walked below
        const name = `impossible combination: work idle with transaction ${t} and run ${run}`;
        const runFirst = new RequestState(1);
        reachRun(runFirst, run);
        const scriptFirst = new RequestState(1);
        scriptFirst.moveTransaction(transactionMember(t));
        if (holds) {
          runFirst.moveTransaction(transactionMember(t));
          reachRun(scriptFirst, run);
          for (const r of [runFirst, scriptFirst]) expect([r.transaction.kind, r.run.kind]).toEqual([t, run]);
        } else {
          expect(() => runFirst.moveTransaction(transactionMember(t))).toThrow(name);
          expect(() => reachRun(scriptFirst, run)).toThrow(name);
          expect([runFirst.transaction.kind, runFirst.run.kind]).toEqual(['none', run]);
          expect([scriptFirst.transaction.kind, scriptFirst.run.kind]).toEqual([t, 'none']);
        }
      });
    }
  for (const t of TRANSACTIONS)
    for (const run of RUNS)
      for (const work of ALL_WORK) {
        if (!runsWith[t].includes(run)) {
          // Never together (tested above), whatever the work.
          it(`refuses work ${work} with transaction ${t} and run ${run}`, () => {
            expect(canCombine(t, run, work)).toBe(false);
          });
          continue;
        }
        const isAllowed = withTransaction[t].includes(work) && withRun[run].includes(work);
        const name = `work ${work} with transaction ${t} and run ${run}`;
        it(`${isAllowed ? 'allows' : 'refuses'} ${name}, through the work's mover`, () => {
          expect(canCombine(t, run, work)).toBe(isAllowed);
          const r = new RequestState(1);
          if (t !== 'none') r.moveTransaction(transactionMember(t));
          reachRun(r, run);
          if (work === 'idle') return; // every slot member goes with idle: reached above
          if (isAllowed) {
            r.move(workMember(r, work));
            expect(r.kind).toBe(work);
          } else {
            expect(() => r.move(workMember(r, work))).toThrow(`impossible combination: ${name}`);
            expect(r.kind).toBe('idle');
          }
        });
        if (work === 'idle' || (t !== 'none') === (run !== 'none')) continue; // exactly one slot to fill
        // One slot filled while the work runs, through that slot's mover (insertStream replaces a source that ran).
        it(`${isAllowed ? 'allows' : 'refuses'} ${name}, through the slot's mover`, () => {
          const r = new RequestState(1);
          if (run === 'insertStream') {
            if (!withRun.insertSource.includes(work)) return; // not reachable: the source could not run it
            r.moveRun(runMember('insertSource'));
          }
          r.move(workMember(r, work));
          const fill = (): void =>
            t !== 'none' ? r.moveTransaction(transactionMember(t)) : r.moveRun(runMember(run));
          if (isAllowed) {
            fill();
            expect([r.transaction.kind, r.run.kind]).toEqual([t, run]);
          } else {
            expect(fill).toThrow(`impossible combination: ${name}`);
            expect([r.transaction.kind, r.kind]).toEqual(['none', work]);
          }
        });
      }
  it('any slot may empty while any work runs', () => {
    for (const work of ALL_WORK) {
      const r = new RequestState(1);
      r.moveTransaction(transactionMember('script'));
      r.moveRun(runMember('insertSource'));
      if (work !== 'idle' && canCombine('script', 'insertSource', work)) r.move(workMember(r, work));
      r.endRun('insertSource');
      r.endScript();
      expect([r.transaction.kind, r.run.kind]).toEqual(['none', 'none']);
    }
  });
});
