// A server's ERROR about a startup setting becomes the FATAL PostgreSQL sends at login, every other field unchanged.
import { describe, expect, it } from 'vitest';
import { asFatal } from '../../../src/frontend/startup-check.js';
import { errorResponse } from '../../../src/protocol/messages.js';
import { PgError } from '../../../src/errors/pg-error.js';

describe('asFatal', () => {
  it('makes S and V FATAL and keeps code, message, detail and the rest', () => {
    const error = errorResponse({
      severity: 'ERROR',
      code: '22023',
      message: 'invalid value for parameter "DateStyle": "nonsense"',
      detail: 'Unrecognized key word: "nonsense".',
    });
    const fatal = PgError.fromServer(asFatal(error));
    expect(fatal.severity).toBe('FATAL');
    expect(fatal.code).toBe('22023');
    expect(fatal.message).toBe('invalid value for parameter "DateStyle": "nonsense"');
    expect(fatal.detail).toBe('Unrecognized key word: "nonsense".');
    const fields = asFatal(error).toString('latin1');
    expect(fields).toContain('SFATAL\0');
    expect(fields).toContain('VFATAL\0');
    expect(fields).not.toContain('ERROR');
    expect(asFatal(error).readInt32BE(1)).toBe(asFatal(error).length - 1);
  });
});
