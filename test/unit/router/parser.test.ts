// Parser: statements split with their exact source text (byte offsets over UTF-8 handled), utility statements kept
// as written, comment hints per statement, and syntax errors as PgError 42601 with PostgreSQL's message.
import { beforeAll, describe, expect, it } from 'vitest';
import { PgError } from '../../../src/errors/pg-error.js';
import { initParser, parseStatements, SqlSource } from '../../../src/router/parser.js';

beforeAll(async () => {
  await initParser();
});

function syntaxError(sql: string): PgError {
  try {
    parseStatements(sql);
  } catch (err) {
    if (err instanceof PgError) return err;
    throw err;
  }
  throw new Error(`expected a syntax error for ${sql}`);
}

describe('parseStatements', () => {
  it('loads once and can be awaited again', async () => {
    await expect(initParser()).resolves.toBeUndefined();
  });

  it('splits a simple query into statements with their own text', () => {
    const stmts = parseStatements('BEGIN; UPDATE t SET x = 1 WHERE id = 2;\nCOMMIT AND CHAIN');
    expect(stmts.map((s) => s.nodeType)).toEqual(['TransactionStmt', 'UpdateStmt', 'TransactionStmt']);
    expect(stmts.map((s) => s.text)).toEqual([
      'BEGIN',
      'UPDATE t SET x = 1 WHERE id = 2',
      'COMMIT AND CHAIN',
    ]);
  });

  it('keeps the text exact around multi-byte characters (locations are UTF-8 byte offsets)', () => {
    const stmts = parseStatements('SELECT \'ééé\' AS «x»; SELECT \'ü\', "Ñame" FROM "Tâble";SELECT 3');
    expect(stmts.map((s) => s.text)).toEqual([
      "SELECT 'ééé' AS «x»",
      'SELECT \'ü\', "Ñame" FROM "Tâble"',
      'SELECT 3',
    ]);
  });

  it('keeps leading comments with their statement and drops stray semicolons', () => {
    const stmts = parseStatements(';; /*+ SeqScan(t) */ SELECT 1 ;\n -- note\nSELECT 2');
    expect(stmts.map((s) => s.text)).toEqual(['/*+ SeqScan(t) */ SELECT 1', '-- note\nSELECT 2']);
  });

  it('returns nothing for empty or comment-only text', () => {
    expect(parseStatements('')).toEqual([]);
    expect(parseStatements('  ;; ')).toEqual([]);
    expect(parseStatements('-- nothing\n/* here */')).toEqual([]);
  });

  it('returns the whole text unchanged for a single clean statement', () => {
    const sql = 'SELECT * FROM users WHERE id = $1';
    expect(parseStatements(sql)[0].text).toBe(sql);
  });

  it('reads comment hints per statement', () => {
    const stmts = parseStatements(
      '/* pgdog_shard: 1 */ SELECT 1; SELECT 2 /* shardgate: shard=3 */; SELECT 4',
    );
    expect(stmts.map((s) => s.hints.shard)).toEqual([1, 3, null]);
  });

  it('turns a syntax error into PgError 42601 with the server message and 1-based position', () => {
    const err = syntaxError('SELECT * FRM users');
    expect(err.code).toBe('42601');
    expect(err.severity).toBe('ERROR');
    expect(err.message).toBe('syntax error at or near "FRM"');
    expect(err.position).toBe(10);
    expect(err.toBuffer().includes(Buffer.from('42601'))).toBe(true);
  });

  it('reports errors at the end of input and lexer errors like PostgreSQL', () => {
    expect(syntaxError('SELECT 1 +').message).toBe('syntax error at end of input');
    expect(syntaxError("SELECT 'abc").message).toBe('unterminated quoted string at or near "\'abc"');
    expect(syntaxError("SELECT 'é' FROM t WHER x").position).toBe(24);
  });

  it('parses the statements PostgreSQL accepts and ORMs send', () => {
    const sqls = [
      'START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE',
      'SAVEPOINT a',
      'RELEASE SAVEPOINT a',
      'ROLLBACK TO SAVEPOINT a',
      "PREPARE TRANSACTION 'g'",
      "COMMIT PREPARED 'g'",
      "ROLLBACK PREPARED 'g'",
      'END',
      'ABORT',
      'COPY t (a, b) FROM STDIN WITH (FORMAT csv)',
      'RESET ALL',
      'DISCARD ALL',
      'EXPLAIN (ANALYZE, BUFFERS) SELECT 1',
      'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE',
      'DELETE FROM t USING s WHERE t.id = s.id',
      'SELECT * FROM t WHERE a IS DISTINCT FROM b AND c IS NOT DISTINCT FROM d',
    ];
    for (const sql of sqls) expect(parseStatements(sql)).toHaveLength(1);
  });
});

describe('SqlSource', () => {
  it('maps byte offsets to string indexes', () => {
    const s = new SqlSource('é1ü2');
    expect(s.isAscii).toBe(false);
    expect(s.charIndex(2)).toBe(1);
    expect(s.charIndex(5)).toBe(3);
    expect(new SqlSource('abc').charIndex(2)).toBe(2);
  });

  it('reads qualified names as written', () => {
    const s = new SqlSource('SELECT * FROM public . "My ""T"" able" x');
    expect(s.nameAt(14, 2)).toBe('public . "My ""T"" able"');
    expect(s.nameAt(14, 1)).toBe('public');
    expect(s.nameAt(7, 1)).toBeNull();
  });
});
