// Cursors across shards, the pure parts: which fan-out requests run as cursors, the request the shards run instead,
// the client's replies built from the merged reply (first rows, PortalSuspended, tags as PostgreSQL counts them),
// later Executes / Describes / Closes answered from the portal, and the bound on what the proxy holds.
import { describe, expect, it } from 'vitest';
import {
  answerFromPortals,
  CursorRun,
  cursorShardRequest,
  executeTarget,
  ProxyPortal,
  ProxyPortals,
} from '../../../src/engine/proxy-portal.js';
import { isCursorRequest } from '../../../src/engine/route-request.js';
import { Backend, Frontend, TxStatus } from '../../../src/protocol/codes.js';
import { commandComplete, readyForQuery } from '../../../src/protocol/messages.js';
import { MessageWriter } from '../../../src/protocol/writer.js';

const execute = (rows: number, portal = ''): Buffer =>
  new MessageWriter(16).cstring(portal).int32(rows).frame(Frontend.Execute);
const bare = (type: number): Buffer => Buffer.from([type, 0, 0, 0, 4]);
const portalMessage = (type: number, portal: string): Buffer =>
  new MessageWriter(16).int8(0x50).cstring(portal).frame(type);
const dataRow = (v: string): Buffer =>
  new MessageWriter(16).int16(1).int32(Buffer.byteLength(v)).bytes(Buffer.from(v)).frame(Backend.DataRow);
const ROW_DESCRIPTION = new MessageWriter(32)
  .int16(1)
  .cstring('id')
  .int32(0)
  .int16(0)
  .int32(20)
  .int16(8)
  .int32(-1)
  .int16(0)
  .frame(Backend.RowDescription);

/** Reply types, with DataRow values and tags spelled out. */
function spell(frames: Buffer[]): string[] {
  return frames.map((f) => {
    const t = String.fromCharCode(f[0]);
    if (f[0] === Backend.DataRow) return `D:${f.toString('utf8', 11)}`;
    if (f[0] === Backend.CommandComplete) return `C:${f.toString('utf8', 5, f.length - 1)}`;
    return t;
  });
}

const OWNER = {
  rankTexts: () => undefined,
  onServerParameter: () => undefined,
  onServerLost: () => undefined,
  onCursorRunDone: () => undefined,
};

describe('which requests run as cursors', () => {
  const P = bare(Frontend.Parse);
  const B = bare(Frontend.Bind);
  it('a row-limited Execute, or no Sync at the end', () => {
    expect(
      isCursorRequest(
        [Frontend.Parse, Frontend.Bind, Frontend.Execute, Frontend.Sync],
        [P, B, execute(5), bare(Frontend.Sync)],
      ),
    ).toBe(true);
    expect(
      isCursorRequest(
        [Frontend.Bind, Frontend.Execute, Frontend.Flush],
        [B, execute(0), bare(Frontend.Flush)],
      ),
    ).toBe(true);
    expect(
      isCursorRequest([Frontend.Bind, Frontend.Execute, Frontend.Sync], [B, execute(0), bare(Frontend.Sync)]),
    ).toBe(false);
  });

  it('the shards run Execute without a limit, no Flush, ending in Sync', () => {
    const shard = cursorShardRequest(
      [Frontend.Parse, Frontend.Bind, Frontend.Execute, Frontend.Flush],
      [P, B, execute(7, 'c1'), bare(Frontend.Flush)],
    );
    expect(shard?.types).toEqual([Frontend.Parse, Frontend.Bind, Frontend.Execute, Frontend.Sync]);
    expect(executeTarget(shard?.frames[2] as Buffer)).toEqual({ portal: 'c1', limit: 0 });
    // Two Executes, or a Sync in the middle: not one cursor.
    expect(cursorShardRequest([Frontend.Execute, Frontend.Execute], [execute(1), execute(1)])).toBeNull();
    expect(
      cursorShardRequest(
        [Frontend.Execute, Frontend.Sync, Frontend.Execute],
        [execute(1), bare(Frontend.Sync), execute(1)],
      ),
    ).toBeNull();
  });
});

describe('ProxyPortal', () => {
  it('hands out rows with PortalSuspended, then the last Execute’s count, then SELECT 0', () => {
    const portal = new ProxyPortal(['1', '2', '3', '4', '5'].map(dataRow), ROW_DESCRIPTION, 'SELECT 5');
    const out: Buffer[] = [];
    portal.execute(2, out);
    expect(spell(out)).toEqual(['D:1', 'D:2', 's']);
    out.length = 0;
    portal.execute(2, out);
    portal.execute(2, out);
    portal.execute(2, out);
    expect(spell(out)).toEqual(['D:3', 'D:4', 's', 'D:5', 'C:SELECT 1', 'C:SELECT 0']);
  });

  it('an Execute for exactly the rows left completes (no PortalSuspended), and 0 means all', () => {
    const a = new ProxyPortal(['1', '2'].map(dataRow), null, 'SELECT 2');
    const out: Buffer[] = [];
    a.execute(2, out);
    expect(spell(out)).toEqual(['D:1', 'D:2', 'C:SELECT 2']);
    const b = new ProxyPortal(['1', '2', '3'].map(dataRow), null, 'SELECT 3');
    out.length = 0;
    b.execute(0, out);
    expect(spell(out)).toEqual(['D:1', 'D:2', 'D:3', 'C:SELECT 3']);
    out.length = 0;
    b.describe(out);
    expect(spell(out)).toEqual(['n']);
  });
});

describe('CursorRun', () => {
  const clientTypes = [Frontend.Parse, Frontend.Bind, Frontend.Execute, Frontend.Flush];
  const clientFrames = [bare(Frontend.Parse), bare(Frontend.Bind), execute(2), bare(Frontend.Flush)];
  const merged = (...frames: Buffer[]): Buffer => Buffer.concat(frames);

  it('gives the first rows and PortalSuspended, and keeps the rest as the portal', () => {
    const run = new CursorRun(OWNER, OWNER, clientTypes, clientFrames);
    run.writeToClient(
      merged(bare(Backend.ParseComplete), bare(Backend.BindComplete), dataRow('a'), dataRow('b')),
    );
    run.writeToClient(merged(dataRow('c'), commandComplete('SELECT 3')));
    const { replies, portal, failed } = run.replies();
    expect(failed).toBe(false);
    expect(spell(replies)).toEqual(['1', '2', 'D:a', 'D:b', 's']);
    const out: Buffer[] = [];
    portal?.portal.execute(2, out);
    expect(portal?.name).toBe('');
    expect(spell(out)).toEqual(['D:c', 'C:SELECT 1']);
  });

  it('passes an error through and keeps no portal', () => {
    const run = new CursorRun(OWNER, OWNER, clientTypes, clientFrames);
    const error = new MessageWriter(32).int8(0x43).cstring('22012').int8(0).frame(Backend.ErrorResponse);
    run.writeToClient(merged(bare(Backend.ParseComplete), bare(Backend.BindComplete), error));
    const { replies, portal, failed } = run.replies();
    expect([spell(replies), portal, failed]).toEqual([['1', '2', 'E'], null, true]);
  });

  it('drops what it holds past its bound and answers 54000', () => {
    const run = new CursorRun(OWNER, OWNER, clientTypes, clientFrames, 64);
    let cancelled = 0;
    run.onOverflow = () => cancelled++;
    for (let i = 0; i < 10; i++) run.writeToClient(dataRow(`row-${i}`));
    const { replies, portal, failed } = run.replies();
    expect(cancelled).toBe(1);
    expect(failed).toBe(true);
    expect(portal).toBeNull();
    expect(replies).toHaveLength(1);
    expect(replies[0].toString('latin1')).toContain('54000');
  });
});

describe('answerFromPortals', () => {
  const SYNC = bare(Frontend.Sync);
  it('answers Execute / Describe / Close of held portals; routes anything else', () => {
    const portals = new Map([
      ['c1', new ProxyPortal(['1', '2', '3'].map(dataRow), ROW_DESCRIPTION, 'SELECT 3')],
    ]);
    const ready = (): Buffer => readyForQuery(0x54);
    const types = [Frontend.Describe, Frontend.Execute, Frontend.Sync];
    const replies = answerFromPortals(
      portals,
      types,
      [portalMessage(Frontend.Describe, 'c1'), execute(2, 'c1'), SYNC],
      ready,
    );
    expect(spell(replies ?? [])).toEqual(['T', 'D:1', 'D:2', 's', 'Z']);
    // Another portal, or a Bind, is not the proxy's to answer.
    expect(
      answerFromPortals(portals, [Frontend.Execute, Frontend.Sync], [execute(1, 'other'), SYNC], ready),
    ).toBeNull();
    expect(
      answerFromPortals(portals, [Frontend.Bind, Frontend.Sync], [bare(Frontend.Bind), SYNC], ready),
    ).toBeNull();
    const closed = answerFromPortals(
      portals,
      [Frontend.Close, Frontend.Sync],
      [portalMessage(Frontend.Close, 'c1'), SYNC],
      ready,
    );
    expect(spell(closed ?? [])).toEqual(['3', 'Z']);
    expect(portals.size).toBe(0);
  });

  it('a portal ended by a Sync earlier in the request fails with 34000 up to the next Sync', () => {
    const portals = new Map([['', new ProxyPortal([dataRow('1'), dataRow('2')], null, 'SELECT 2')]]);
    const endsPortals = (): Buffer => {
      portals.clear(); // outside a transaction
      return readyForQuery(0x49);
    };
    const types = [Frontend.Execute, Frontend.Sync, Frontend.Execute, Frontend.Sync];
    const replies = answerFromPortals(portals, types, [execute(1), SYNC, execute(1), SYNC], endsPortals);
    expect(spell(replies ?? [])).toEqual(['D:1', 's', 'Z', 'E', 'Z']);
    expect((replies ?? [])[3].toString('latin1')).toContain('34000');
  });
});

describe('ProxyPortals', () => {
  const rows = (): ProxyPortal => new ProxyPortal([dataRow('1'), dataRow('2')], null, 'SELECT 2');
  const sync = bare(Frontend.Sync);

  it('is a Map of the portals by name: its size tells routing whether to ask it at all', () => {
    const portals = new ProxyPortals();
    expect(portals.size).toBe(0);
    portals.set('c1', rows());
    expect(portals.size).toBe(1);
  });

  it("answers its portals' Executes; a Sync ends them outside a transaction, not inside one", () => {
    const inBlock = new ProxyPortals([['c1', rows()]]);
    const replies = inBlock.answer(
      [Frontend.Execute, Frontend.Sync],
      [execute(1, 'c1'), sync],
      TxStatus.InTransaction,
    );
    expect(spell(replies ?? [])).toEqual(['D:1', 's', 'Z']);
    expect(inBlock.size).toBe(1);
    const outside = new ProxyPortals([['c1', rows()]]);
    expect(
      spell(outside.answer([Frontend.Execute, Frontend.Sync], [execute(1, 'c1'), sync], TxStatus.Idle) ?? []),
    ).toEqual(['D:1', 's', 'Z']);
    expect(outside.size).toBe(0);
    expect(outside.syncReply(TxStatus.Idle)).toEqual(readyForQuery(TxStatus.Idle));
  });

  it("a script's statement: its Sync is the proxy's own — no ReadyForQuery, the portals kept even outside a transaction", () => {
    const portals = new ProxyPortals([['c1', rows()]]);
    const replies = portals.answer([Frontend.Execute, Frontend.Sync], [execute(0, 'c1'), sync], null);
    expect(spell((replies ?? []).filter((b) => b.length > 0))).toEqual(['D:1', 'D:2', 'C:SELECT 2']);
    expect(portals.size).toBe(1);
  });

  it('a Bind to a held portal name, or a simple Query (the unnamed portal), replaces that portal', () => {
    const portals = new ProxyPortals([
      ['', rows()],
      ['c1', rows()],
      ['c2', rows()],
    ]);
    const bindC1 = new MessageWriter(16)
      .cstring('c1')
      .cstring('')
      .int16(0)
      .int16(0)
      .int16(0)
      .frame(Frontend.Bind);
    portals.forgetRebound([Frontend.Bind, Frontend.Sync], [bindC1, sync]);
    expect([...portals.keys()]).toEqual(['', 'c2']);
    portals.forgetRebound([Frontend.Query], [bare(Frontend.Query)]);
    expect([...portals.keys()]).toEqual(['c2']);
  });
});
