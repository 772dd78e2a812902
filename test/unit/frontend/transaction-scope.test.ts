// The transaction block a sharded session keeps: what a shard joining it late runs first (BEGIN with its options,
// SET LOCAL, savepoints folded by RELEASE / ROLLBACK TO), and when the block is open.
import { describe, expect, it } from 'vitest';
import { TransactionScope } from '../../../src/frontend/transaction-scope.js';

/** The statements of `joinSql()`, trimmed. */
function replay(scope: TransactionScope): string[] {
  return scope
    .joinSql()
    .split('\n;')
    .filter((s) => s !== '');
}

function run(scope: TransactionScope, ...statements: Parameters<TransactionScope['expect']>[0][]): void {
  for (const s of statements) {
    scope.expect(s);
    scope.confirm();
  }
}

describe('TransactionScope', () => {
  it('opens on BEGIN and replays it with its options', () => {
    const scope = new TransactionScope();
    expect(scope.isOpen).toBe(false);
    scope.open('BEGIN ISOLATION LEVEL REPEATABLE READ');
    expect(scope.isOpen).toBe(true);
    expect(replay(scope)).toEqual(['BEGIN ISOLATION LEVEL REPEATABLE READ']);
    run(scope, { kind: 'setting', text: "SET LOCAL statement_timeout = '5s'" });
    expect(replay(scope)).toEqual([
      'BEGIN ISOLATION LEVEL REPEATABLE READ',
      "SET LOCAL statement_timeout = '5s'",
    ]);
    scope.close();
    expect(scope.isOpen).toBe(false);
  });

  it('keeps a statement only once its request succeeded', () => {
    const scope = new TransactionScope();
    scope.open('BEGIN');
    scope.expect({ kind: 'setting', text: 'SET LOCAL work_mem = 1' });
    scope.dropPending();
    scope.confirm();
    expect(replay(scope)).toEqual(['BEGIN']);
  });

  it('folds savepoints: ROLLBACK TO drops what came after, RELEASE drops the savepoint and keeps the effects', () => {
    const scope = new TransactionScope();
    scope.open('BEGIN');
    run(
      scope,
      { kind: 'savepoint', action: 'savepoint', name: 'a' },
      { kind: 'setting', text: 'SET LOCAL x.y = 1' },
      { kind: 'savepoint', action: 'savepoint', name: 'b' },
      { kind: 'setting', text: 'SET LOCAL x.y = 2' },
    );
    expect(replay(scope)).toEqual([
      'BEGIN',
      'SAVEPOINT "a"',
      'SET LOCAL x.y = 1',
      'SAVEPOINT "b"',
      'SET LOCAL x.y = 2',
    ]);
    run(scope, { kind: 'savepoint', action: 'rollback_to', name: 'b' });
    expect(replay(scope)).toEqual(['BEGIN', 'SAVEPOINT "a"', 'SET LOCAL x.y = 1', 'SAVEPOINT "b"']);
    run(scope, { kind: 'savepoint', action: 'release', name: 'a' });
    expect(replay(scope)).toEqual(['BEGIN', 'SET LOCAL x.y = 1']);
  });

  it('stays short under an ORM opening and releasing savepoints in a loop', () => {
    const scope = new TransactionScope();
    scope.open('BEGIN');
    for (let i = 0; i < 5000; i++) {
      run(
        scope,
        { kind: 'savepoint', action: 'savepoint', name: `sp${i}` },
        {
          kind: 'savepoint',
          action: 'release',
          name: `sp${i}`,
        },
      );
    }
    expect(replay(scope)).toEqual(['BEGIN']);
    expect(scope.canJoin).toBe(true);
  });

  it('quotes savepoint names (keywords and mixed case stay names)', () => {
    const scope = new TransactionScope();
    scope.open('BEGIN');
    run(scope, { kind: 'savepoint', action: 'savepoint', name: 'User"s' });
    expect(replay(scope)).toEqual(['BEGIN', 'SAVEPOINT "User""s"']);
  });

  it('AND CHAIN starts the next block with the same BEGIN on the same shards', () => {
    const scope = new TransactionScope();
    scope.open('START TRANSACTION READ ONLY');
    scope.joined.add(1);
    run(scope, { kind: 'setting', text: 'SET LOCAL a.b = 1' });
    scope.close('sameShards');
    expect(scope.isOpen).toBe(true);
    expect([...scope.joined]).toEqual([1]);
    expect(replay(scope)).toEqual(['START TRANSACTION READ ONLY']);
    scope.close();
    expect(scope.joined.size).toBe(0);
  });

  it('AND CHAIN after the proxy ended the block: the same characteristics (SET TRANSACTION too), no shard joined yet', () => {
    const scope = new TransactionScope();
    scope.open('BEGIN ISOLATION LEVEL SERIALIZABLE');
    scope.joined.add(0);
    scope.joined.add(1);
    run(scope, { kind: 'setting', text: 'SET TRANSACTION READ ONLY', isCharacteristic: true });
    run(scope, { kind: 'savepoint', action: 'savepoint', name: 'a' });
    run(scope, { kind: 'setting', text: 'SET LOCAL a.b = 1' });
    scope.close('lazy');
    expect(scope.isOpen).toBe(true);
    expect(scope.joined.size).toBe(0);
    expect(replay(scope)).toEqual(['BEGIN ISOLATION LEVEL SERIALIZABLE', 'SET TRANSACTION READ ONLY']);
  });

  it('adopts a block a shard opened on its own with a plain BEGIN for later joiners', () => {
    const scope = new TransactionScope();
    scope.adopt([2]);
    expect(scope.isOpen).toBe(true);
    expect([...scope.joined]).toEqual([2]);
    expect(replay(scope)).toEqual(['BEGIN']);
  });
});
