// passthrough_auth's modes: when a client's password is taken as remembered, checked by the servers, or refused.
import { describe, expect, it } from 'vitest';
import { passthroughVerdict } from '../../../src/auth/passthrough.js';

describe('passthroughVerdict', () => {
  it('checks a first password with the servers, then accepts it as remembered', () => {
    expect(passthroughVerdict('enabled_plain', false, null, 'pw')).toBe('check');
    expect(passthroughVerdict('enabled_plain', false, 'pw', 'pw')).toBe('accept');
  });

  it('keeps the first password unless the mode allows a change, which is checked again', () => {
    expect(passthroughVerdict('enabled_plain', false, 'old', 'new')).toBe('refuse-change');
    expect(passthroughVerdict('enabled', true, 'old', 'new')).toBe('refuse-change');
    expect(passthroughVerdict('enabled_plain_allow_change', false, 'old', 'new')).toBe('check');
    expect(passthroughVerdict('enabled_allow_change', true, 'old', 'new')).toBe('check');
    expect(passthroughVerdict('enabled_plain', false, 'pw', 'pw2')).toBe('refuse-change');
  });

  it('takes passwords in clear only over TLS unless the mode is a plain one', () => {
    expect(passthroughVerdict('enabled', false, null, 'pw')).toBe('needs-tls');
    expect(passthroughVerdict('enabled_allow_change', false, 'pw', 'pw')).toBe('needs-tls');
    expect(passthroughVerdict('enabled', true, null, 'pw')).toBe('check');
    expect(passthroughVerdict('enabled_plain_allow_change', false, 'pw', 'pw')).toBe('accept');
  });
});
