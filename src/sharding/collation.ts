// Which collations sort text by bytes. Merging ORDER BY / min / max of text across shards compares bytes (the "C"
// collation); under another collation (en_US.UTF-8, an ICU locale) that would give a wrong order, so the merger must
// know, per database, whether it may (lifecycle/collation-probe.ts asks a shard at start-up). Pure.

/** libc collations that sort by bytes / code points (UTF-8 byte order is code point order). */
const BYTE_ORDER = /^(c|posix|c\.utf-?8)$/i;

/** True when `datcollate` (with `provider`: 'c' libc, 'i' ICU, 'b' builtin) sorts text by bytes. */
export function isByteOrderCollation(datcollate: string, provider: string | null): boolean {
  if (provider === 'i') return false;
  if (provider === 'b') return /^(c|c\.utf-?8|ucs_basic)$/i.test(datcollate) || datcollate === '';
  return BYTE_ORDER.test(datcollate);
}
