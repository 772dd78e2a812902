// The replies to a statement the proxy answered itself (COMMIT across shards, a lazy BEGIN), for simple and extended
// protocol, success and failure.
import { describe, expect, it } from 'vitest';
import { commitReplies, localReplies } from '../../../src/engine/local-replies.js';
import { Frontend } from '../../../src/protocol/codes.js';
import { commandComplete, errorResponse } from '../../../src/protocol/messages.js';

/** Types and (for CommandComplete) tags of the frames in `buf`. */
function frames(buf: Buffer): string[] {
  const out: string[] = [];
  for (let p = 0; p < buf.length;) {
    const type = String.fromCharCode(buf[p]);
    const end = p + 1 + buf.readInt32BE(p + 1);
    if (type === 'C') out.push(`C:${buf.toString('utf8', p + 5, end - 1)}`);
    else if (type === 'Z') out.push(`Z:${String.fromCharCode(buf[p + 5])}`);
    else if (type === 'N')
      out.push(
        `N:${buf
          .toString('utf8', p + 5, end - 1)
          .split('\0')
          .find((x) => x.startsWith('C'))}`,
      );
    else out.push(type);
    p = end;
  }
  return out;
}

const f = (type: number, body: number[] = []): Buffer => {
  const b = Buffer.alloc(5 + body.length);
  b[0] = type;
  b.writeInt32BE(4 + body.length, 1);
  body.forEach((v, i) => (b[5 + i] = v));
  return b;
};
const ERR = errorResponse({ severity: 'ERROR', code: 'P0001', message: 'no' });

describe('commitReplies', () => {
  it('answers a simple Query COMMIT with the tag, or the error, then idle', () => {
    expect(frames(commitReplies([Frontend.Query], [f(Frontend.Query)], null))).toEqual(['C:COMMIT', 'Z:I']);
    expect(frames(commitReplies([Frontend.Query], [f(Frontend.Query)], ERR))).toEqual(['E', 'Z:I']);
  });

  it('answers Parse/Bind/Describe(S and P)/Execute/Sync like PostgreSQL', () => {
    const types = [
      Frontend.Parse,
      Frontend.Describe,
      Frontend.Bind,
      Frontend.Describe,
      Frontend.Execute,
      Frontend.Sync,
    ];
    const list = [
      f(Frontend.Parse),
      f(Frontend.Describe, [0x53, 0]),
      f(Frontend.Bind),
      f(Frontend.Describe, [0x50, 0]),
      f(Frontend.Execute),
      f(Frontend.Sync),
    ];
    expect(frames(commitReplies(types, list, null))).toEqual(['1', 't', 'n', '2', 'n', 'C:COMMIT', 'Z:I']);
  });

  it('skips what follows the failed Execute until Sync', () => {
    const types = [Frontend.Bind, Frontend.Execute, Frontend.Close, Frontend.Sync];
    const list = types.map((t) => f(t, t === Frontend.Close ? [0x53, 0] : []));
    expect(frames(commitReplies(types, list, ERR))).toEqual(['2', 'E', 'Z:I']);
    expect(frames(commitReplies(types, list, null))).toEqual(['2', 'C:COMMIT', '3', 'Z:I']);
  });
});

describe('localReplies', () => {
  const NOTICE = errorResponse({ severity: 'WARNING', code: '25001', message: 'already' }, 0x4e);

  it('answers a BEGIN kept by the proxy: the tag and status T, simple and extended', () => {
    const tag = commandComplete('BEGIN');
    expect(frames(localReplies([Frontend.Query], [f(Frontend.Query)], { tag, status: 0x54 }))).toEqual([
      'C:BEGIN',
      'Z:T',
    ]);
    const types = [Frontend.Parse, Frontend.Bind, Frontend.Execute, Frontend.Sync];
    const list = types.map((t) => f(t));
    expect(frames(localReplies(types, list, { tag, status: 0x54 }))).toEqual(['1', '2', 'C:BEGIN', 'Z:T']);
  });

  it('puts a notice before the tag, and leaves ReadyForQuery out for a script statement', () => {
    const tag = commandComplete('BEGIN');
    const reply = { tag, notice: NOTICE, status: 0x54, withReady: false };
    expect(frames(localReplies([Frontend.Query], [f(Frontend.Query)], reply))).toEqual([
      'N:C25001',
      'C:BEGIN',
    ]);
  });
});
