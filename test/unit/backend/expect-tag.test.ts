// A statement that prepares or commits a transaction is held to its own tag: PostgreSQL answers ROLLBACK (not an
// error) to PREPARE TRANSACTION or COMMIT of a transaction that had failed, and that branch must count as failed.
import { describe, expect, it } from 'vitest';
import { expectTag, type QueryOutcome } from '../../../src/backend/server-query.js';
import { errorFields } from '../../../src/protocol/error-fields.js';

const ok = (tag: string): QueryOutcome => ({ kind: 'ok', tag, rows: [] });

describe('expectTag', () => {
  it('keeps the outcome when the tag is the statement’s own', () => {
    expect(expectTag(ok('PREPARE TRANSACTION'), 'PREPARE TRANSACTION')).toEqual(ok('PREPARE TRANSACTION'));
    expect(expectTag(ok('COMMIT'), 'COMMIT')).toEqual(ok('COMMIT'));
  });

  it('turns a ROLLBACK answer into a 40000 error whose frame says what happened', () => {
    for (const [tag, verb] of [
      ['PREPARE TRANSACTION', 'prepared'],
      ['COMMIT', 'committed'],
    ] as const) {
      const o = expectTag(ok('ROLLBACK'), tag);
      expect(o.kind).toBe('error');
      if (o.kind !== 'error') continue;
      expect(o.code).toBe('40000');
      const fields = errorFields(o.frame);
      expect(fields.get('C')).toBe('40000');
      expect(fields.get('M')).toContain(`rolled back instead of ${verb}`);
    }
  });

  it('leaves errors and lost connections as they are', () => {
    const lost: QueryOutcome = { kind: 'lost', reason: 'gone' };
    expect(expectTag(lost, 'COMMIT')).toBe(lost);
    const error: QueryOutcome = { kind: 'error', code: 'P0001', message: 'boom', frame: Buffer.alloc(0) };
    expect(expectTag(error, 'COMMIT')).toBe(error);
  });
});
