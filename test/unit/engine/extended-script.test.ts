// Cutting an extended-protocol batch (several statements before one Sync) into one request per statement, each ended
// by a Sync of the proxy's, and the batches that cannot be cut that way.
import { describe, expect, it } from 'vitest';
import { splitStatements } from '../../../src/engine/extended-script.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { MessageWriter } from '../../../src/protocol/writer.js';

const parse = (name = ''): Buffer =>
  new MessageWriter(32).cstring(name).cstring('select 1').int16(0).frame(Frontend.Parse);
const bind = (stmt = ''): Buffer =>
  new MessageWriter(32).cstring('').cstring(stmt).int16(0).int16(0).int16(0).frame(Frontend.Bind);
const execute = (rows = 0): Buffer => new MessageWriter(16).cstring('').int32(rows).frame(Frontend.Execute);
const bare = (type: number): Buffer => Buffer.from([type, 0, 0, 0, 4]);
const closeStatement = new MessageWriter(16).int8(0x53).cstring('s1').frame(Frontend.Close);
const P = Frontend.Parse;
const B = Frontend.Bind;
const E = Frontend.Execute;
const S = Frontend.Sync;

describe('splitStatements', () => {
  it('cuts after each Execute, keeps trailing Close with the last statement, and ends each with Sync', () => {
    const types = [P, B, E, B, E, Frontend.Close, S];
    const frames = [parse('s1'), bind('s1'), execute(), bind('s1'), execute(), closeStatement, bare(S)];
    const out = splitStatements(types, frames);
    expect(out.map((r) => r.types)).toEqual([
      [P, B, E, S],
      [B, E, Frontend.Close, S],
    ]);
    expect(out[1].frames[2]).toBe(closeStatement);
  });

  it('refuses what cannot be cut into statements (0A000)', () => {
    // No Sync at the end
    expect(() =>
      splitStatements([P, B, E, Frontend.Flush], [parse(), bind(), execute(), bare(Frontend.Flush)]),
    ).toThrow(/must end with that Sync/);
    // A row-limited Execute
    expect(() =>
      splitStatements(
        [P, B, E, P, B, E, S],
        [parse(), bind(), execute(5), parse(), bind(), execute(), bare(S)],
      ),
    ).toThrow(/row-limited/);
    // The unnamed statement bound again without its Parse
    expect(() =>
      splitStatements([P, B, E, B, E, S], [parse(), bind(), execute(), bind(), execute(), bare(S)]),
    ).toThrow(/Parse repeated/);
    try {
      splitStatements([P, B, E, B, E, S], [parse(), bind(), execute(), bind(), execute(), bare(S)]);
    } catch (err) {
      expect((err as { code: string }).code).toBe('0A000');
    }
  });
});
