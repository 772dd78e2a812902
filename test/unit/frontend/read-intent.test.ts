// read-intent.ts: which requests may go to a replica, and which transaction blocks are READ ONLY (isReadOnlyBlock:
// the last access mode wins, SERIALIZABLE never runs on a hot standby).
import { beforeAll, describe, expect, it } from 'vitest';
import {
  classifyTexts,
  defaultReadOnlyAfter,
  isReadOnlyBlock,
  parseMinLsns,
} from '../../../src/frontend/read-intent.js';
import { analyzeQuery } from '../../../src/router/analyze.js';
import { initParser } from '../../../src/router/parser.js';

beforeAll(async () => {
  await initParser();
});

describe('isReadOnlyBlock', () => {
  it('is READ ONLY when the last access mode of the BEGIN and SET TRANSACTIONs is', () => {
    expect(isReadOnlyBlock(['BEGIN READ ONLY'])).toBe(true);
    expect(isReadOnlyBlock(['START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY'])).toBe(true);
    expect(isReadOnlyBlock(['BEGIN', 'SET TRANSACTION READ ONLY'])).toBe(true);
    expect(isReadOnlyBlock(['BEGIN'])).toBe(false);
    expect(isReadOnlyBlock(['BEGIN READ WRITE'])).toBe(false);
    expect(isReadOnlyBlock(['BEGIN READ ONLY', 'SET TRANSACTION READ WRITE'])).toBe(false);
    expect(isReadOnlyBlock([])).toBe(false);
  });

  it('is never SERIALIZABLE (a hot standby refuses it)', () => {
    expect(isReadOnlyBlock(['BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY'])).toBe(false);
    expect(isReadOnlyBlock(['BEGIN READ ONLY', 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE'])).toBe(false);
    expect(
      isReadOnlyBlock([
        'BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY',
        'SET TRANSACTION ISOLATION LEVEL READ COMMITTED',
      ]),
    ).toBe(true);
  });
});

/** Whether the request `texts` may change data where it runs (read-your-writes): its intent is 'write'. */
const mayWrite = (texts: readonly string[], role: 'primary' | 'replica' | null): boolean =>
  classifyTexts(texts, role).intent === 'write';

describe("classifyTexts: 'write' is the one verdict that a request may change data (read-your-writes)", () => {
  it('is not for SET, SHOW, RESET, DISCARD, transaction control, PREPARE / DEALLOCATE and reads, on the primary too', () => {
    for (const texts of [
      ["SET work_mem = '8MB'"],
      ["SET LOCAL work_mem = '8MB'"],
      ['SHOW work_mem'],
      ['RESET work_mem'],
      ['DISCARD ALL'],
      ['BEGIN', 'SAVEPOINT a', 'ROLLBACK TO a', 'COMMIT'],
      ["BEGIN; SET LOCAL work_mem = '16MB'; SELECT count(*) FROM t; COMMIT"],
      ['SET default_transaction_read_only = on'],
      ['SET TRANSACTION ISOLATION LEVEL REPEATABLE READ'],
      ['PREPARE p AS INSERT INTO t VALUES ($1)', 'DEALLOCATE p'],
      ['SELECT 1'],
      ['SELECT * FROM t FOR UPDATE'],
    ]) {
      expect({ texts, mayWrite: mayWrite(texts, null) }).toEqual({ texts, mayWrite: false });
    }
    // SET is routed to the primary, but leaves nothing there to wait for.
    expect(classifyTexts(["SET work_mem = '8MB'"], null).intent).toBe('read-primary');
    expect(classifyTexts(['SELECT * FROM t FOR UPDATE'], null).intent).toBe('read-primary');
    expect(classifyTexts(['BEGIN'], null).intent).toBe('read-primary');
    expect(classifyTexts(['SHOW work_mem'], 'primary').intent).toBe('read-primary');
  });

  it('is for what the router counts as a write, a statement it cannot see into, or an unknown text', () => {
    for (const texts of [
      ['INSERT INTO t VALUES (1)'],
      ["SET work_mem = '8MB'; INSERT INTO t VALUES (1)"],
      ['BEGIN', 'UPDATE t SET a = 1'],
      ['EXECUTE p(1)'],
      ["SELECT nextval('s')"],
      ['CALL p()'],
      ['DO $$ begin insert into t values (1); end $$'],
      ['TRUNCATE t'],
      ['COPY t FROM STDIN'],
      ['LOCK t'],
      ['not sql at all'],
      [],
    ]) {
      expect({ texts, intent: classifyTexts(texts, null).intent }).toEqual({ texts, intent: 'write' });
    }
  });

  it('counts a read sent to the primary on purpose (a function that writes is routed so), never a SET', () => {
    expect(mayWrite(['SELECT f()'], null)).toBe(false);
    expect(mayWrite(['/* pgdog_role: primary */ SELECT f()'], null)).toBe(true);
    expect(mayWrite(['SELECT f()'], 'primary')).toBe(true);
    expect(mayWrite(["SET pgdog.role = 'primary'; SELECT f()"], null)).toBe(true);
    expect(mayWrite(["SET pgdog.role = 'primary'"], null)).toBe(false);
    expect(mayWrite(["SET work_mem = '8MB'"], 'primary')).toBe(false);
    expect(mayWrite(['RESET pgdog.role; SELECT f()'], 'primary')).toBe(false);
  });
});

describe('classifyTexts', () => {
  it('reads and READ ONLY openings may use a replica; writes and overrides to the primary do not', () => {
    expect(classifyTexts(['SELECT 1'], null).intent).toBe('read');
    expect(classifyTexts(['BEGIN READ ONLY'], null).intent).toBe('read');
    expect(classifyTexts(['INSERT INTO t VALUES (1)'], null).intent).toBe('write');
    expect(classifyTexts(['SELECT 1 FOR UPDATE'], null).intent).toBe('read-primary');
    expect(classifyTexts(['SELECT 1'], 'primary').intent).toBe('write');
    expect(classifyTexts(['/* pgdog_role: replica */ SELECT 1'], null).intent).toBe('replica');
  });
});

describe('a session whose transactions are READ ONLY by default (default_transaction_read_only)', () => {
  /** The default after `sql`, starting from `isDefaultReadOnly`. */
  const after = (sql: string, isDefaultReadOnly: boolean): boolean => {
    const plans = analyzeQuery(sql, null);
    return plans.reduce((ro, p) => defaultReadOnlyAfter(p, ro), isDefaultReadOnly);
  };

  it('is set by SET and SET SESSION CHARACTERISTICS, undone by RESET, = off, DEFAULT, RESET ALL, DISCARD ALL', () => {
    for (const sql of [
      'SET default_transaction_read_only = on',
      "SET SESSION default_transaction_read_only TO 'true'",
      'SET default_transaction_read_only = 1',
      'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
      'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY',
    ])
      expect([sql, after(sql, false)]).toEqual([sql, true]);
    for (const sql of [
      'RESET default_transaction_read_only',
      'SET default_transaction_read_only = off',
      'SET default_transaction_read_only TO DEFAULT',
      'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE',
      'RESET ALL',
      'DISCARD ALL',
    ])
      expect([sql, after(sql, true)]).toEqual([sql, false]);
    // SET LOCAL is the current transaction's only; other settings change nothing.
    expect(after('SET LOCAL default_transaction_read_only = on', false)).toBe(false);
    expect(after('SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE', true)).toBe(true);
    expect(after("SET search_path = 'x'", true)).toBe(true);
  });

  it('makes a plain BEGIN a READ ONLY opening; BEGIN READ WRITE and SET TRANSACTION READ WRITE override it', () => {
    expect(classifyTexts(['BEGIN'], null, true).intent).toBe('read');
    expect(classifyTexts(['START TRANSACTION ISOLATION LEVEL REPEATABLE READ'], null, true).intent).toBe(
      'read',
    );
    expect(classifyTexts(['BEGIN READ WRITE'], null, true).intent).toBe('read-primary');
    expect(classifyTexts(['BEGIN; SET TRANSACTION READ WRITE'], null, true).intent).toBe('read-primary');
    expect(classifyTexts(['BEGIN'], null, false).intent).toBe('read-primary');
    // Changed in the same request: the BEGIN after it follows the new default.
    expect(classifyTexts(['RESET default_transaction_read_only; BEGIN'], null, true).intent).toBe(
      'read-primary',
    );
    expect(classifyTexts(['SET default_transaction_read_only = on; BEGIN'], null, false).intent).toBe('read');
    // A write outside a block stays with the primary (which refuses it, 25006, with the session's default).
    expect(classifyTexts(['INSERT INTO t VALUES (1)'], null, true).intent).toBe('write');
  });

  it('makes a block with no access mode of its own READ ONLY', () => {
    expect(isReadOnlyBlock(['BEGIN'], true)).toBe(true);
    expect(isReadOnlyBlock(['BEGIN READ WRITE'], true)).toBe(false);
    expect(isReadOnlyBlock(['BEGIN', 'SET TRANSACTION READ WRITE'], true)).toBe(false);
    expect(isReadOnlyBlock(['BEGIN ISOLATION LEVEL SERIALIZABLE'], true)).toBe(false);
  });
});

describe('read-your-writes hints', () => {
  it('reads an LSN as PostgreSQL prints it, alone (shard 0) or per shard; refuses anything else', () => {
    expect(parseMinLsns('0/16B3748')).toEqual(new Map([[0, 0x16b3748n]]));
    expect(parseMinLsns('1:2/0, 0:0/10, 1:1/FF')).toEqual(
      new Map([
        [1, 0x200000000n],
        [0, 0x10n],
      ]),
    );
    expect(parseMinLsns('')).toBeNull();
    expect(parseMinLsns('16B3748')).toBeNull();
    expect(parseMinLsns('0/1; DROP TABLE t')).toBeNull();
  });

  it('takes SET pgdog.min_lsn and the pgdog_min_lsn comment; WAL position functions go to the primary', () => {
    expect(classifyTexts(["SET pgdog.min_lsn = '0/10'"], null).minLsns).toEqual(new Map([[0, 16n]]));
    const hinted = classifyTexts(['/* pgdog_min_lsn: 1:0/20 */ SELECT 1'], null);
    expect([hinted.intent, hinted.minLsns]).toEqual(['read', new Map([[1, 32n]])]);
    expect(classifyTexts(['SELECT pg_current_wal_insert_lsn()'], null).intent).toBe('read-primary');
    expect(classifyTexts(['SELECT pg_last_wal_replay_lsn()'], null).intent).toBe('read');
  });
});
