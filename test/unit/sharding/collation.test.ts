// Which database collations let the merger compare text by bytes.
import { describe, expect, it } from 'vitest';
import { isByteOrderCollation } from '../../../src/sharding/collation.js';

describe('isByteOrderCollation', () => {
  it('accepts C, POSIX and C.UTF-8 (code point order) with libc', () => {
    for (const c of ['C', 'POSIX', 'C.UTF-8', 'C.utf8', 'c.UTF8'])
      expect(isByteOrderCollation(c, 'c'), c).toBe(true);
    expect(isByteOrderCollation('C', null)).toBe(true); // before PostgreSQL 15: libc only
  });

  it('refuses language collations and ICU locales', () => {
    for (const c of ['en_US.UTF-8', 'de_DE.utf8', 'sv_SE'])
      expect(isByteOrderCollation(c, 'c'), c).toBe(false);
    expect(isByteOrderCollation('C', 'i')).toBe(false); // ICU: datcollate is not what sorts
  });
});
