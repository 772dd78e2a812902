// ErrorClassCounts: SQLSTATE classes from codes and from raw ErrorResponse frames (whole, or cut short).
import { describe, expect, it } from 'vitest';
import { ErrorClassCounts } from '../../../src/stats/error-classes.js';
import { errorResponse } from '../../../src/protocol/messages.js';

describe('ErrorClassCounts', () => {
  it('counts codes by their first two characters', () => {
    const c = new ErrorClassCounts();
    for (const code of ['23505', '23503', '0A000', '57P01', 'XX000', '0a000']) c.record(code);
    expect(c.entries()).toEqual([
      ['0A', 2],
      ['23', 2],
      ['57', 1],
      ['XX', 1],
    ]);
    expect(c.total).toBe(6);
  });

  it('reads the C field of an ErrorResponse frame at any offset', () => {
    const c = new ErrorClassCounts();
    const frame = errorResponse({ severity: 'ERROR', code: '42P01', message: 'relation "x" does not exist' });
    const buf = Buffer.concat([Buffer.from('prefix'), frame, Buffer.from('tail')]);
    c.recordFrame(buf, 6);
    expect(c.entries()).toEqual([['42', 1]]);
  });

  it('counts a frame cut before its code, or without one, as "??"', () => {
    const c = new ErrorClassCounts();
    const frame = errorResponse({ severity: 'ERROR', code: '42P01', message: 'm' });
    c.recordFrame(frame.subarray(0, 14), 0); // S and V fields only
    c.recordFrame(Buffer.from([0x45, 0, 0, 0, 5, 0]), 0); // no fields at all
    c.record('');
    expect(c.entries()).toEqual([['??', 3]]);
  });
});
